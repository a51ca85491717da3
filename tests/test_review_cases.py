"""The case pages over HTTP: the case queue as the default view, ranking and leads, the directed network, proceeds, case-level
decisions audited per alert, and bank isolation (no other bank's ids, 404 for a case without an alert of yours)."""

import hashlib
import re

import polars as pl

from casework import access_log
from casework.review.formatting import age, clip, eur, short_id, tidy_amounts
from pipelines.casework_db import open_casework
from tests import test_review
from tests.test_review import alert_of, client, csrf_of, login

site = test_review.site  # the shared scored two-bank store


def case_of(res, account):
    return res.alerts.filter(pl.col("account_id") == account)["case_id"][0]


def hashed(case_id, db):
    """The case's reference as an investigator sees it: keyed with the store's own secret."""
    key = open_casework(db).case_ref_key()
    return "C-" + hashlib.sha256((key + case_id).encode()).hexdigest()[:12]


def visible_text(html):
    return re.sub(r"<[^>]+>", " ", html)


def test_people_read_numbers_ages_ids_and_long_reasons():
    assert eur(22828) == "EUR 22,828" and eur(5122.0) == "EUR 5,122" and eur(49.99) == "EUR 49.99" and eur(None) == "-"
    assert (
        tidy_amounts("wage EUR 1043, rent EUR 22828.5 to a private person")
        == "wage EUR 1,043, rent EUR 22,828.50 to a private person"
    )
    from datetime import date

    assert age(date(1986, 10, 1), date(2026, 10, 1)) == "40 years" and age(date(2026, 7, 15), date(2026, 10, 1)) == "2 months"
    assert (
        age(date(2024, 8, 1), date(2026, 10, 1)) == "2 years 2 months" and age(date(2026, 9, 20), date(2026, 10, 1)) == "11 days"
    )
    assert short_id("run-20261201T050325-c97047-00001") == "A-261201-00001"
    assert short_id("C-run-20261201T050325-c97047-00010") == "C-261201-00010"
    long = "Collects from accounts that show victim signals " * 5
    cut = clip(long, 140)
    assert len(cut) <= 140 and cut.endswith("…") and long.startswith(cut[:-1]) and long[len(cut) - 1] == " "


def test_login_lands_on_the_case_queue(site):
    c = client(site)
    r = login(c, "fiona")
    assert r.headers["location"] == "/queue"  # the test helper asks for the account queue explicitly
    assert c.get("/", follow_redirects=False).headers["location"] == "/cases"
    token = re.search(r'name="token" value="([^"]+)"', c.get("/login").text).group(1)
    assert 'name="next" value="/cases"' in c.get("/login").text and token
    assert c.get("/cases", follow_redirects=False).status_code == 200 and 'id="to-accounts"' in c.get("/cases").text


def test_cases_rank_above_lone_accounts_with_controllers_first(site):
    res = site[2]
    c = client(site)
    login(c, "fiona")
    html = c.get("/cases?status=all").text
    refs = re.findall(r'data-case="([^"]+)"', html)
    ring, lone = case_of(res, "v1"), case_of(res, "z")
    assert ring == case_of(res, "v2") == case_of(res, "ctrl") and ring != lone
    assert refs.index(ring) < refs.index(lone)  # three accounts at two banks with money between them outrank one account
    row = html.split(f'data-case="{ring}"')[1].split("</tr>")[0]
    assert row.index("controller") < row.index("victim") and "ctrl" in row and "BANK_A, BANK_B" in row
    csv = pl.read_csv(c.get("/cases.csv?status=all").content)
    assert csv["case_id"].to_list()[: len(refs)] == refs and csv["accounts_leads_first"][refs.index(ring)].startswith("ctrl")
    assert set(re.findall(r'data-case="([^"]+)"', c.get("/cases?status=all&typology=nothing").text)) == set()


def test_the_case_page_draws_who_pays_whom(site):
    res = site[2]
    c = client(site)
    login(c, "fiona")
    ring = case_of(res, "v1")
    html = c.get(f"/cases/{ring}").text
    assert 'class="case-network"' in html and 'marker-end="url(#arrow)"' in html
    edges = set(re.findall(r'class="money-edge" data-src="([^"]*)" data-dst="([^"]*)"', html))
    assert {("v1", "ctrl"), ("v2", "ctrl")} <= edges  # directed: the victims pay the controller
    nodes = set(re.findall(r'data-account="([^"]*)"', html))
    assert {"v1", "v2", "ctrl"} <= nodes  # every account of the case
    assert "EUR 1,800 · 3×" in html  # amount and count on the edge
    assert 'id="money-over-time"' in html and "week starting" in html
    proceeds = html.split('id="proceeds"')[1].split('id="case-accounts"')[0]
    assert 'data-account="ctrl"' in proceeds and "In from the case" in proceeds
    csv = pl.read_csv(c.get(f"/cases/{ring}/proceeds.csv").content)
    came_in = csv.filter((pl.col("account_id") == "ctrl") & (pl.col("flow") == "in from the case"))["amount"].sum()
    assert came_in == 3600.0  # v1 and v2 each pass EUR 1,800 to the controller


def test_a_case_decision_is_recorded_per_alert_with_its_audit(site):
    root, db, res, users, ids = site
    c = client(site)
    login(c, "bert")  # bank B: the controller and v2 are theirs, v1 is bank A's
    ring = case_of(res, "v1")
    ref = hashed(ring, db)
    page = c.get(f"/cases/{ref}").text
    r = c.post(f"/cases/{ref}/decision", data={"csrf": csrf_of(page), "action": "dismiss", "reason": ""})
    assert "Not recorded: dismissing needs a reason" in r.text
    r = c.post(f"/cases/{ref}/decision", data={"csrf": csrf_of(page), "action": "escalate", "note": "controller and victims"})
    assert "Recorded escalate on the case&#39;s alerts: 2 recorded" in r.text
    cw = open_casework(db)  # decisions and their audit entries: the casework database
    log = (
        cw.audit_rows()
        .filter(pl.col("action") == "escalate")
        .sort("alert_id")
        .select("alert_id", "user_name", "action", "new_status", "note")
        .rows()
    )
    status = dict(cw.statuses().select("alert_id", "status").rows())
    mine = sorted([alert_of(res, "ctrl"), alert_of(res, "v2")])
    assert [row[0] for row in log] == mine and all(row[1:4] == ("bert", "escalate", "escalated") for row in log)
    assert all(row[4] == f"case {ref}: controller and victims" for row in log)
    assert status[alert_of(res, "v1")] == "open"  # bank A's alert is bank A's decision
    again = c.post(f"/cases/{ref}/decision", data={"csrf": csrf_of(page), "action": "escalate"})
    assert "Not recorded: no alert of this case is in a state that action applies to." in again.text
    assert c.post(f"/cases/{ref}/decision", data={"csrf": "forged", "action": "escalate"}).status_code == 403
    from casework.dispositions import audit

    with cw.tx() as t:  # the bank's log moves on: 210 entries on an alert of no case
        for i in range(210):
            audit(cw, "bert", "request_info", "elsewhere", "BANK_B", "acct", "open", "info_requested", note=f"n{i}", c=t)
    shown = c.get(f"/cases/{ref}").text  # the case's own entries, not the bank's newest 200 filtered to the case
    assert shown.count(f"case {ref}: controller and victims") == 2 and "No decisions yet" not in shown


def test_case_pages_keep_banks_apart(site):
    db, res = site[1], site[2]
    c = client(site)
    login(c, "ann")  # bank A: v1 and z; the controller and v2 are bank B's
    ring, ref = case_of(res, "v1"), hashed(case_of(res, "v1"), db)
    html = c.get("/cases?status=all").text
    assert set(re.findall(r'data-case="([^"]+)"', html)) == {hashed(ring, db), hashed(case_of(res, "z"), db)}
    assert "ctrl" not in visible_text(html) and ring not in html
    page = c.get(f"/cases/{ref}").text
    assert page.count('class="case-account"') == 3 and "v1" in page
    assert "ctrl" not in page and '"v2"' not in page and ring not in page  # no id of bank B's accounts, nor the real case id
    assert 'data-account=""' in page and "BANK_B" in page  # shown, without their ids
    assert c.get(f"/cases/{ring}").status_code == 404  # the real id is not a way in
    csv = c.get("/cases.csv?status=all").text
    assert "ctrl" not in csv and "(another bank)" in csv
    assert "ctrl" not in c.get(f"/cases/{ref}/proceeds.csv").text
    c2 = client(site)
    login(c2, "bert")
    lone = hashed(case_of(res, "z"), db)  # bank A's lone account: nothing of bank B in it
    assert c2.get(f"/cases/{lone}").status_code == 404 and c2.get(f"/cases/{lone}/proceeds.csv").status_code == 404
    page = c2.get(f"/cases/{ref}").text
    r = c2.post(f"/cases/{lone}/decision", data={"csrf": csrf_of(page), "action": "escalate"})
    assert r.status_code == 404


def test_a_case_reference_is_made_with_the_stores_own_secret(site):
    """An investigator's case reference hid the real case id (another bank's alert id, a run and a rank) behind an
    unkeyed hash, which anyone could compute for every run and rank. It is now keyed with a secret kept in the casework
    database: the same on every start, unknown outside it."""
    db, res = site[1], site[2]
    c = client(site)
    login(c, "ann")
    ring = case_of(res, "v1")
    unkeyed = "C-" + hashlib.sha256(ring.encode()).hexdigest()[:12]
    assert c.get(f"/cases/{unkeyed}").status_code == 404 and unkeyed not in c.get("/cases?status=all").text
    assert c.get(f"/cases/{hashed(ring, db)}").status_code == 200
    key = open_casework(db).case_ref_key()
    assert len(key) == 64 and open_casework(db).case_ref_key() == key  # made once, then kept
    c2 = client(site)  # another start of the site: the same references
    login(c2, "ann")
    assert hashed(ring, db) in c2.get("/cases?status=all").text


def test_a_case_shows_its_best_score_and_names_itself_in_notes_as_investigators_see_it(site):
    """Found by a sweep of the review site: the case page's best score was another bank's account's, an analyst's
    case decision wrote the raw case id (another bank's alert id) into notes every bank's people read, and a note of
    invisible characters passed as the note dismissing for 'other' needs."""
    db, res = site[1], site[2]
    ring = case_of(res, "v1")
    c = client(site)
    login(c, "ann")
    page = c.get(f"/cases/{hashed(ring, db)}").text
    mine = res.alerts.filter((pl.col("case_id") == ring) & (pl.col("bank_id") == "BANK_A"))["score"].max()
    assert f'<td class="score">{mine:.2f}</td>' in page
    lone = case_of(res, "z")
    r = c.post(
        f"/cases/{hashed(lone, db)}/decision",
        data={"csrf": csrf_of(page), "action": "dismiss", "reason": "other", "note": "\x01\u200b\u202e "},
    )
    assert "Not recorded: dismissing for &#39;other&#39; needs a note" in r.text or "needs a note" in r.text
    fiona = client(site)
    login(fiona, "fiona")
    page = fiona.get(f"/cases/{lone}").text  # analysts name the case by its id
    fiona.post(f"/cases/{lone}/decision", data={"csrf": csrf_of(page), "action": "dismiss", "reason": "other", "note": "ask"})
    notes = open_casework(db).audit_rows().filter(pl.col("user_name") == "fiona")["note"].to_list()
    assert notes and all(n == f"case {hashed(lone, db)}: ask" for n in notes) and lone not in " ".join(notes)


def test_the_access_log_keeps_what_a_request_typed_masked(site):
    """Found by a sweep: a queue filter or a reveal reason was stored in the access log as typed (an IBAN, an e-mail
    address), and an investigator's made-up bank filter was logged as the bank they looked at."""
    db = site[1]
    c = client(site)
    login(c, "ann")
    c.get("/queue?typology=NL91ABNA0417164300&bank=jan.jansen@example.com+%2B31612345678")
    logged, _, _ = access_log.access_rows(open_casework(db))
    queue = [r for r in logged if r["object_kind"] == "queue" and r["user_name"] == "ann"]
    assert queue
    text = " ".join(str(v) for r in queue for v in r.values())
    assert "NL91ABNA0417164300" not in text and "jan.jansen@example.com" not in text and "31612345678" not in text
    assert {r["bank_id"] for r in queue} == {"BANK_A"}


def test_notes_written_before_keyed_references_name_the_case_as_investigators_see_it(site):
    """Found by a review: entries written before case references were keyed name a case by its unkeyed hash (which
    the key was to stop anyone reversing) or by its id (an analyst's decision); they are shown keyed to investigators."""
    from casework.dispositions import audit

    db, res = site[1], site[2]
    ring = case_of(res, "v1")
    unkeyed = "C-" + hashlib.sha256(ring.encode()).hexdigest()[:12]
    aid = alert_of(res, "v1")  # bank A's
    for user, named, then in (("old-inv", unkeyed, "then"), ("old-fiona", ring, "then too")):
        audit(
            open_casework(db), user, "request_info", aid, "BANK_A", "v1", "open", "info_requested", note=f"case {named}: {then}"
        )
    c = client(site)
    login(c, "ann")
    for page in (c.get("/audit").text, c.get(f"/cases/{hashed(ring, db)}").text, c.get(f"/alerts/{aid}").text):
        assert f"case {hashed(ring, db)}: then" in page and f"case {hashed(ring, db)}: then too" in page
        assert unkeyed not in page and ring not in page
