"""End to end in headless chromium: log in, queue, filter, open an alert, escalate, see the audit entry, bank isolation."""

import os

import polars as pl
import pytest
from selenium.webdriver.support.ui import Select

from casework.review.app import Review
from tests.browser import DOCS, absent, browser_missing, chromium, click_and_wait, log_in, served, skip_module_without_browser
from tests.test_review import PASSWORDS, alert_of, site  # noqa: F401  (site is the shared store fixture)

pytestmark = pytest.mark.slow  # a real browser; `make test-fast` leaves these out

skip_module_without_browser()


def test_investigator_works_an_alert_end_to_end(web):
    base, res, profile = web
    with chromium(profile / "ann") as d:
        d.get(f"{base}/queue")
        assert "/login" in d.current_url  # every page needs a login
        log_in(d, base, "ann", PASSWORDS["ann"])
        assert d.current_url.endswith("/cases")  # the case queue is the default view; the account queue one click away
        click_and_wait(d, d.find_element("id", "to-accounts"))
        assert d.current_url.endswith("/queue")
        rows = d.find_elements("css selector", "tr.alert-row")
        assert {r.get_attribute("data-alert") for r in rows} == set(res.alerts.filter(pl.col("bank_id") == "BANK_A")["alert_id"])
        # filter: only the escalated ones (none yet), then back to the active queue for one typology
        Select(d.find_element("id", "f-status")).select_by_value("escalated")
        click_and_wait(d, d.find_element("id", "apply"))
        assert absent(d, "css selector", "tr.alert-row")
        typ = res.alerts.filter(pl.col("account_id") == "v1")["typology"][0]
        Select(d.find_element("id", "f-status")).select_by_value("active")
        Select(d.find_element("id", "f-typology")).select_by_value(typ)
        click_and_wait(d, d.find_element("id", "apply"))
        target = alert_of(res, "v1")
        click_and_wait(d, d.find_element("css selector", f'tr[data-alert="{target}"] a'))
        assert d.find_element("id", "status").text == "open"
        assert d.find_elements("css selector", "#timeline tr.evidence")  # the evidence is highlighted
        assert d.find_element("css selector", "#network svg")
        click_and_wait(d, d.find_element("id", "do-escalate"))
        assert d.find_element("id", "message").text == "Recorded: escalate"
        assert d.find_element("id", "status").text == "escalated"
        entry = d.find_element("css selector", "#alert-audit tr:nth-child(2)").text
        assert "ann" in entry and "escalate" in entry and "open → escalated" in entry
        click_and_wait(d, d.find_element("link text", "Audit log"))
        assert target in d.find_element("id", "audit").text


def test_a_bank_b_investigator_cannot_open_bank_as_alert(web):
    base, res, profile = web
    with chromium(profile / "bert") as d:
        log_in(d, base, "bert", PASSWORDS["bert"])
        d.get(f"{base}/queue")
        listed = {r.get_attribute("data-alert") for r in d.find_elements("css selector", "tr.alert-row")}
        theirs = alert_of(res, "z")  # bank A's alert
        assert theirs not in listed
        d.get(f"{base}/alerts/{theirs}")  # by link
        assert d.find_element("id", "error").text == "No such alert for you."
        assert absent(d, "id", "decide")  # no page, no forms


@pytest.mark.skipif(os.environ.get("THB_SCREENSHOTS") != "1", reason="THB_SCREENSHOTS=1 refreshes docs/ screenshots")
def test_refresh_the_screenshots_in_docs(tmp_path):
    """docs/queue.png and docs/alert.png from a generated 20,000-account store (make screenshots)."""
    from casework.review.auth import hash_password
    from detectors.scoring import score_store
    from pipelines.ingest import ingest
    from synthetic.generate import generate

    generate(tmp_path / "gen", accounts=20_000, days=90, banks=2, seed=1)
    db = tmp_path / "s.duckdb"
    for bank in ("BANK_A", "BANK_B"):
        ingest(tmp_path / "gen" / bank, db)
    res = score_store(db, tmp_path / "out", models_dir=tmp_path / "m")
    users = {"fiona": {"password": hash_password("pw"), "role": "analyst"}}
    best = res.alerts.filter(pl.col("case_role") == "controller").sort("score", descending=True)["alert_id"][0]
    with served(Review(db, users).app()) as base, chromium(tmp_path / "c") as d:
        log_in(d, base, "fiona", "pw")
        d.get(f"{base}/queue")  # login lands on the case queue (docs/cases.png); this is the account queue
        DOCS.mkdir(exist_ok=True)
        d.save_screenshot(str(DOCS / "queue.png"))
        d.get(f"{base}/alerts/{best}")
        d.set_window_size(1400, 2200)
        d.save_screenshot(str(DOCS / "alert.png"))
    assert (DOCS / "queue.png").stat().st_size > 10_000 and (DOCS / "alert.png").stat().st_size > 10_000


@pytest.fixture(scope="module")
def fiu_web(tmp_path_factory):
    """A store with a planted remittance collector (five senders, two money transfer offices) over 40 background pairs, screened."""
    from casework.fiu.screen import screen
    from casework.review.auth import load_users
    from pipelines import store
    from tests.test_fiu import END, START, planted_and_background
    from tests.test_review import users_file

    assert not browser_missing(), browser_missing()
    root = tmp_path_factory.mktemp("fiu")
    db = root / "s.duckdb"
    con = store.connect(db)
    planted_and_background().store(con)
    screen(None, START, END, con=con)
    con.close()
    with served(Review(db, load_users(users_file(root / "users.yaml"))).app()) as base:
        yield base, db, root


def test_analyst_screens_fiu_reports_end_to_end(fiu_web):
    from pipelines import store
    from pipelines.casework_db import open_casework

    base, db, root = fiu_web
    con = store.connect(db)
    planted = con.execute("SELECT report_ids, themes FROM fiu_subjects WHERE subject_id = 'recv'").fetchall()[0]
    by_entity = dict(
        con.execute(
            """SELECT reporting_entity, list(report_id ORDER BY report_id) FROM fiu_reports
                                    WHERE list_contains(?, report_id) GROUP BY 1""",
            [planted[0]],
        ).fetchall()
    )
    con.close()
    assert len(by_entity) == 2 and planted[1]  # two offices reported it, a theme fired
    with chromium(root / "fiona") as d:
        d.get(f"{base}/fiu")
        assert "/login" in d.current_url
        log_in(d, base, "fiona", PASSWORDS["fiona"])
        click_and_wait(d, d.find_element("link text", "FIU subjects"))
        rows = d.find_elements("css selector", "#fiu-queue tr.subject-row")
        assert len(rows) > 40 and rows[0].get_attribute("data-subject") == "recv"  # the collector above 40 background pairs
        assert rows[0].find_element("css selector", "td.themes").text == ", ".join(planted[1])
        click_and_wait(d, rows[0].find_element("link text", "recv"))
        assert all(t in d.find_element("id", "themes").text for t in planted[1])
        groups = {
            g.get_attribute("data-entity"): sorted(
                r.get_attribute("data-report") for r in g.find_elements("css selector", "tr.report-row")
            )
            for g in d.find_elements("css selector", "#fiu-reports tbody.entity")
        }
        assert groups == by_entity
        rid = by_entity["MTO_WU"][0]
        row = f'tr[data-report="{rid}"]'
        assert d.find_element("css selector", f"{row} td.decision").text == "undecided"
        Select(d.find_element("id", f"decision-{rid}")).select_by_value("suspicious")
        d.find_element("id", f"typology-{rid}").clear()
        d.find_element("id", f"typology-{rid}").send_keys("remittance_collector")
        d.find_element("id", f"note-{rid}").send_keys("five senders, one receiver in NG")
        click_and_wait(d, d.find_element("id", f"record-{rid}"))
        assert d.find_element("id", "message").text == "Recorded: suspicious"
        assert d.find_element("css selector", f"{row} td.decision").text == "suspicious (fiona)"
        others = [r for g in by_entity.values() for r in g if r != rid]
        assert {d.find_element("css selector", f'tr[data-report="{o}"] td.decision').text for o in others} == {"undecided"}
        click_and_wait(d, d.find_element("link text", "Audit log"))
        entry = d.find_element("css selector", "#audit tr:nth-child(2)").text
        assert all(
            s in entry
            for s in ("fiona", "fiu_suspicious", "undecided", "remittance_collector", "five senders, one receiver in NG")
        )
    cw = open_casework(db)  # FIU decisions and their audit entries: the casework database
    assert cw.fiu_decisions().select("report_id", "decision", "typology", "note", "user_name").rows() == [
        (rid, "suspicious", "remittance_collector", "five senders, one receiver in NG", "fiona")
    ]
    log = cw.audit_rows()
    assert log.filter((pl.col("action") == "fiu_suspicious") & (pl.col("user_name") == "fiona")).height == 1


def test_an_investigator_gets_no_fiu_queue(fiu_web):
    base, db, root = fiu_web
    with chromium(root / "ann") as d:
        log_in(d, base, "ann", PASSWORDS["ann"])
        assert d.find_element("link text", "Audit log") and absent(d, "link text", "FIU subjects")  # no link
        for path in ("/fiu", "/fiu/subjects/recv"):  # nor by address
            d.get(f"{base}{path}")
            assert d.find_element("id", "error").text == "No such page for you."
            assert absent(d, "id", "fiu-queue") and absent(d, "css selector", "tr.report-row")


@pytest.mark.skipif(os.environ.get("THB_SCREENSHOTS") != "1", reason="THB_SCREENSHOTS=1 refreshes docs/ screenshots")
def test_refresh_the_fiu_screenshots_in_docs(tmp_path):
    """docs/fiu.png (the FIU queue) and docs/fiu_subject.png (the top subject) from a generated FIU extract, screened."""
    from datetime import date, timedelta

    from casework.fiu.screen import screen
    from casework.review.auth import hash_password
    from pipelines.ingest import ingest
    from synthetic.fiu import generate_fiu

    generate_fiu(tmp_path / "gen", seed=1)
    db = tmp_path / "s.duckdb"
    ingest(tmp_path / "gen" / "FIU_NL", db)
    end = date(2026, 9, 30)
    res = screen(db, end - timedelta(days=89), end)
    top = res.subjects.sort("rank")["subject_id"][0]
    users = {"fiona": {"password": hash_password("pw"), "role": "analyst"}}
    with served(Review(db, users).app()) as base, chromium(tmp_path / "c") as d:
        log_in(d, base, "fiona", "pw")
        d.get(f"{base}/fiu")
        DOCS.mkdir(exist_ok=True)
        d.save_screenshot(str(DOCS / "fiu.png"))
        d.get(f"{base}/fiu/subjects/{top}")
        d.set_window_size(1400, 1600)
        d.save_screenshot(str(DOCS / "fiu_subject.png"))
    assert (DOCS / "fiu.png").stat().st_size > 10_000 and (DOCS / "fiu_subject.png").stat().st_size > 10_000
