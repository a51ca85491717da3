"""The review site's hardening: safe CSV exports, login throttling and timing, logout revocation, Secure cookies,
body limits, fixed messages, bad page numbers, private file modes, case ids that do not leak another bank's alert ids."""

import io
import re
import stat
import time

import polars as pl
import pytest
from starlette.testclient import TestClient

from casework.review.app import COOKIE as COOKIE_NAME
from casework.review.app import MAX_BODY, Review, csv_cell
from casework.review.auth import LOCK_AFTER, Sessions, hash_password
from pipelines.cli import build_parser, serve_secure_cookies
from tests import test_review
from tests.test_review import alert_of, csrf_of, login

site = test_review.site  # the shared scored two-bank store


def app_of(site, **kw):
    root, db, res, users, ids = site
    return Review(db, users, None, root / "goaml", secret=b"k" * 32, **kw).app()


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------- 1. CSV exports
def test_csv_cells_are_neutralised_and_masked():
    df = pl.DataFrame(
        {
            "alert_id": ["-A1"],
            "description": ['=HYPERLINK("http://x")'],
            "note": ["+31 6 1234 5678 call"],
            "reasons": ["@SUM(A1)"],
            "tab": ["\tx"],
            "cr": ["\rx"],
            "ok": ["plain"],
            "amount": [-20.5],
        }
    )
    body = Review._csv(df, "x.csv").body.decode()
    row = pl.read_csv(io.StringIO(body), infer_schema_length=0).row(0, named=True)
    assert row["description"] == '\'=HYPERLINK("http://x")' and row["reasons"] == "'@SUM(A1)" and row["ok"] == "plain"
    assert row["note"] == "'+[masked] call" or row["note"] == "[masked] call"
    assert row["tab"].startswith("'") and row["cr"].startswith("'") and row["alert_id"] == "'-A1"
    assert row["amount"] == "-20.5"  # numbers stay numbers
    assert csv_cell("description", "mail me@example.com, iban NL91ABNA0417164300") == "mail [masked], iban [masked]"


def test_alert_csv_masks_descriptions_like_the_page(site):
    root, db, res, users, ids = site
    c = TestClient(app_of(site))
    login(c, "ann")
    r = c.get(f"/alerts/{alert_of(res, 'z')}.csv")
    body = r.text
    assert "NL91ABNA" not in body and "me@example.com" not in body
    assert r.headers["cache-control"] == "no-store"  # like the pages: no copy left in a shared cache
    assert c.get("/queue.csv").headers["cache-control"] == c.get("/cases.csv").headers["cache-control"] == "no-store"
    # z is a likely victim: the export states the role and leaves descriptions and counterparties out (the cells'
    # masking itself: test_csv_cells_are_neutralised_and_masked)
    header = body.splitlines()[0].split(",")
    assert header[-1] == "case_role" and body.splitlines()[1].endswith(",victim")
    assert not {"description", "counterparty_id", "counterparty_name"} & set(header)


# ---------------------------------------------------------------- 2. throttling and timing
def test_failed_logins_slow_down_then_lock_until_an_analyst_unlocks(site):
    """A user name locks after LOCK_AFTER failures; an address only waits (a sweep found one person's typing locking
    everyone behind a shared address out, the analysts who could unlock too), and a typed name that is nobody's is
    not listed (it showed an e-mail address typed as a name to analysts)."""
    app = app_of(site)
    review_clock = [1000.0]
    admin = TestClient(app)
    assert login(admin, "fiona").status_code == 303
    sessions = next(
        r.endpoint.__self__ for r in app.routes if getattr(r, "path", "") == "/login" and "POST" in r.methods
    ).sessions
    sessions.throttle.clock = lambda: review_clock[0]
    c = TestClient(app)
    for _ in range(5):
        assert login(c, "ann", "wrong").status_code == 401
    r = login(c, "ann")  # the right password, but too soon after 5 failures
    assert r.status_code == 429 and "wait" in r.text
    waits = []
    for _ in range(LOCK_AFTER - 5):
        review_clock[0] += 100
        before = review_clock[0]
        assert login(c, "ann", "wrong").status_code == 401
        waits.append(sessions.throttle.next_try["user:ann"] - before)
    assert waits == sorted(waits) and waits[-1] > waits[0]  # a growing delay
    review_clock[0] += 10_000
    r = login(c, "ann")
    assert r.status_code == 429 and "locked" in r.text  # no time lifts a lock
    for _ in range(LOCK_AFTER):  # a name typed wrong, an e-mail address say, from the same address
        review_clock[0] += 100
        assert login(c, "jan.jansen@example.com", "wrong").status_code == 401
    page = admin.get("/audit").text
    assert 'name="user" value="ann"' in page  # the lock, with a button
    assert "jan.jansen" not in page and 'name="addr"' not in page  # a name nobody has locks nobody; an address never
    review_clock[0] += 100
    other = TestClient(app)  # the same address (a shared proxy, say): a right password still lets fiona in
    assert login(other, "fiona").status_code == 303
    r = admin.post("/unlock", data={"csrf": csrf_of(page), "user": "ann"})
    assert r.status_code == 200 and "Unlocked" in r.text
    assert login(c, "ann").status_code == 303


def test_investigators_cannot_unlock(site):
    c = TestClient(app_of(site))
    login(c, "ann")
    assert c.post("/unlock", data={"csrf": csrf_of(c.get("/queue").text), "user": "bert"}).status_code == 404


def test_unknown_users_take_as_long_as_known_ones(site):
    root, db, res, users, ids = site

    def fastest(name):
        best = float("inf")
        for _ in range(3):
            s = Sessions(users, b"k" * 32)
            t = time.perf_counter()
            assert s.login(name, "wrong-password") is None
            best = min(best, time.perf_counter() - t)
        return best

    known, unknown = fastest("ann"), fastest("nobody-here")
    assert 1 / 1.5 < unknown / known < 1.5, (known, unknown)


# ---------------------------------------------------------------- 3. logout revokes
def test_a_logged_out_cookie_is_refused(site):
    app = app_of(site)
    c = TestClient(app)
    login(c, "ann")
    cookie = c.cookies.get(COOKIE_NAME)
    assert c.get("/queue", follow_redirects=False).status_code == 200
    c.post("/logout", data={"csrf": csrf_of(c.get("/queue").text)}, follow_redirects=False)
    replay = TestClient(app, cookies={COOKIE_NAME: cookie})
    r = replay.get("/queue", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


# ---------------------------------------------------------------- 4. Secure cookies
def test_secure_cookies_by_host_and_switch(site):
    assert (
        serve_secure_cookies("0.0.0.0", None)
        and serve_secure_cookies("10.1.2.3", None)
        and serve_secure_cookies("review.bank", None)
    )
    assert (
        not serve_secure_cookies("127.0.0.1", None)
        and not serve_secure_cookies("::1", None)
        and not serve_secure_cookies("localhost", None)
    )
    assert not serve_secure_cookies("0.0.0.0", False) and serve_secure_cookies("127.0.0.1", True)
    p = build_parser()
    assert p.parse_args(["serve", "--db", "x", "--no-secure-cookies"]).secure_cookies is False
    assert p.parse_args(["serve", "--db", "x"]).secure_cookies is None
    c = TestClient(app_of(site, secure_cookies=True), base_url="https://testserver")
    r = login(c, "ann")
    assert r.status_code == 303 and "secure" in r.headers["set-cookie"].lower()
    c = TestClient(app_of(site))
    assert "secure" not in login(c, "ann").headers["set-cookie"].lower()


# ---------------------------------------------------------------- 5. body limits
def test_large_forms_get_413(site):
    root, db, res, users, ids = site
    c = TestClient(app_of(site))
    big = "x" * (MAX_BODY + 1)
    assert c.post("/login", data={"username": "ann", "password": big}).status_code == 413
    login(c, "ann")
    aid = alert_of(res, "z")
    csrf = csrf_of(c.get(f"/alerts/{aid}").text)
    assert c.post(f"/alerts/{aid}/disposition", data={"csrf": csrf, "action": "request_info", "note": big}).status_code == 413
    assert c.post(f"/alerts/{aid}/disposition", data={"csrf": csrf, "action": "bogus", "note": "x"}).status_code == 200


# ---------------------------------------------------------------- 6. no free text from the query string
def test_messages_come_from_fixed_codes(site):
    root, db, res, users, ids = site
    c = TestClient(app_of(site))
    login(c, "ann")
    aid = alert_of(res, "z")
    spoof = "Your session expired, call 0800 123 4567 SPOOFED"
    assert "SPOOFED" not in c.get(f"/alerts/{aid}", params={"msg": spoof}).text
    r = c.post(f"/alerts/{aid}/disposition", data={"csrf": csrf_of(c.get(f"/alerts/{aid}").text), "action": "bogus"})
    assert re.search(r"msg=[a-z-]+$", str(r.url)) and "Not recorded: unknown action." in r.text


# ---------------------------------------------------------------- 7. bad page numbers
@pytest.mark.parametrize("page", ["100000000000000000000", "-1", "0", "abc", "1e3"])
def test_bad_page_numbers_get_400(site, page):
    c = TestClient(app_of(site))
    login(c, "ann")
    assert c.get("/queue", params={"page": page}).status_code == 400
    assert c.get("/queue.csv", params={"page": page}).status_code == 400
    assert c.get("/queue", params={"min_score": "nan"}).status_code == 400
    assert c.get("/queue", params={"page": "2"}).status_code == 200


# ---------------------------------------------------------------- 8. private file modes
def test_store_alerts_cases_and_models_are_private(site):
    root, db, res, users, ids = site
    from pathlib import Path

    assert mode(Path(db)) == 0o600
    for name in ("alerts.parquet", "alerts.csv", "cases.parquet"):
        assert mode(root / "out" / name) == 0o600, name
    assert mode(root / "out") == 0o700 and mode(root / "m") == 0o700
    assert all(mode(f) == 0o600 for f in (root / "m").iterdir())


# ---------------------------------------------------------------- 9. case ids
def test_investigators_never_see_another_banks_alert_ids(site):
    root, db, res, users, ids = site
    a = res.alerts
    led = a.filter(pl.col("case_id").is_not_null() & (pl.col("case_id") != "C-" + pl.col("alert_id")))
    led = led.filter(
        ~pl.col("case_id").str.slice(2).is_in(a.filter(pl.col("bank_id") == led["bank_id"][0])["alert_id"].implode())
    )
    assert not led.is_empty(), "the fixture needs a case led by another bank's alert"
    bank = led["bank_id"][0]
    user = {"BANK_A": "ann", "BANK_B": "bert"}[bank]
    other = set(a.filter(pl.col("bank_id") != bank)["alert_id"])
    mine = a.filter((pl.col("bank_id") == bank) & pl.col("case_id").is_not_null())
    c = TestClient(app_of(site))
    login(c, user)
    pages = [c.get(f"/alerts/{aid}").text for aid in mine["alert_id"]] + [
        c.get("/queue.csv?status=all").text,
        c.get("/queue?status=all").text,
    ]
    for text in pages:
        assert not [o for o in other if o in text], [
            text[max(0, text.index(o) - 300) : text.index(o) + 50] for o in other if o in text
        ]
    assert re.search(r"C-[0-9a-f]{12}", pages[0])
    f = TestClient(app_of(site))
    login(f, "fiona")
    assert mine["case_id"][0] in f.get(f"/alerts/{mine['alert_id'][0]}").text  # analysts see the real case id


# ---------------------------------------------------------------- 9. found by a hostile-request sweep
def test_a_non_ascii_cookie_or_login_token_is_refused_not_a_500(site):
    c = TestClient(app_of(site))
    r = c.get("/queue", headers={"cookie": f"{COOKIE_NAME}=x.\u00e9".encode()}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    c.get("/login")  # the login cookie
    r = c.post("/login", data={"token": "\u00e9", "username": "ann", "password": "x"}, follow_redirects=False)
    assert r.status_code == 403 and "login form expired" in r.text.lower()
    assert login(c, "ann").status_code == 303  # and a real login still works


def test_a_banks_audit_page_never_shows_the_fius_decisions_on_its_reports(site):
    """An FIU decision on a report a bank filed carries that bank's id in the audit log; the bank's investigators
    must not learn of it (tipping off), the FIU's analysts and the auditor see it."""
    from casework.dispositions import audit
    from pipelines.casework_db import open_casework

    root, db, res, users, ids = site
    cw = open_casework(db)
    audit(
        cw, "fiona", "fiu_suspicious", None, "BANK_A", "acct-x", "undecided", "suspicious", "sexual_exploitation", "FIU-ONLY-NOTE"
    )
    audit(cw, "ann", "escalate", None, "BANK_A", "acct-y", "open", "escalated", None, "BANK-A-NOTE")  # the near miss
    assert "FIU-ONLY-NOTE" not in cw.audit_entries("BANK_A")["note"].to_list()
    assert "BANK-A-NOTE" in cw.audit_entries("BANK_A")["note"].to_list()
    assert "FIU-ONLY-NOTE" in cw.audit_entries(None)["note"].to_list()
    for name, sees in (("ann", False), ("fiona", True)):
        c = TestClient(app_of(site))
        login(c, name)
        page = c.get("/audit").text
        assert "BANK-A-NOTE" in page and ("FIU-ONLY-NOTE" in page) == sees, name


def test_identifiers_typed_into_notes_and_links_are_masked_on_every_page(site):
    """A note, a reason or a link may carry a raw IBAN, e-mail or phone number; no page shows one."""
    root, db, res, users, ids = site
    raw = "NL91ABNA0417164300 jan@example.com +31612345678"
    aid = res.alerts.filter((pl.col("bank_id") == "BANK_A") & (pl.col("account_id") != "z"))["alert_id"][0]
    c = TestClient(app_of(site))
    login(c, "ann")
    page = c.get(f"/alerts/{aid}").text
    r = c.post(f"/alerts/{aid}/disposition", data={"csrf": csrf_of(page), "action": "request_info", "note": f"call {raw}"})
    assert "Recorded: request_info" in r.text
    for path in (f"/alerts/{aid}", "/audit"):
        shown = c.get(path).text
        assert "call [masked] [masked] [masked]" in shown, path
        assert not any(part in shown for part in raw.split()), path
    for path in ("/alerts/NL91ABNA0417164300", "/cases/jan@example.com"):
        r = c.get(path)
        assert r.status_code == 404 and "NL91ABNA0417164300" not in r.text and "jan@example.com" not in r.text


def test_a_note_too_long_is_named_on_the_alert_and_the_case_page(site):
    from casework.dispositions import MAX_NOTE

    root, db, res, users, ids = site
    c = TestClient(app_of(site))
    login(c, "ann")
    aid = res.alerts.filter((pl.col("bank_id") == "BANK_A") & (pl.col("account_id") != "z"))["alert_id"][0]
    page = c.get(f"/alerts/{aid}").text
    r = c.post(f"/alerts/{aid}/disposition", data={"csrf": csrf_of(page), "action": "request_info", "note": "x" * (MAX_NOTE + 1)})
    assert "Not recorded: a note is at most 4,000 characters." in r.text
    ref = re.search(r'href="/cases/(C-[0-9a-f]+)"', c.get("/cases").text).group(1)
    page = c.get(f"/cases/{ref}").text
    r = c.post(f"/cases/{ref}/decision", data={"csrf": csrf_of(page), "action": "escalate", "note": "x" * MAX_NOTE})
    assert "Not recorded: a note is at most 4,000 characters (the case reference included)." in r.text


@pytest.mark.parametrize(
    "text, says",
    [
        (
            "users:\n  ann: {password: 'scrypt$x', role: investigator, bank: BANK_A}\n"
            "  ann: {password: 'scrypt$x', role: analyst}\n",
            "line 3: 'ann' is given twice",
        ),
        ("users: [1, 2]\n", "users: must be a mapping of name"),
        ("users:\n  ann: x\n", "users: must be a mapping of name"),
    ],
)
def test_a_users_file_with_a_name_twice_or_the_wrong_shape_is_refused(tmp_path, text, says):
    """Found by a hostile-input sweep: a second `ann:` silently replaced the first (an investigator of one bank became
    an analyst of all), and a list or a string where a mapping belongs was an AttributeError traceback."""
    from casework.review.auth import UsersError, load_users

    f = tmp_path / "users.yaml"
    f.write_text(text)
    with pytest.raises(UsersError, match=re.escape(says)):
        load_users(f)


@pytest.mark.parametrize(
    "users, says",
    [
        ("users: {}\n", "users: none are given, so nobody could sign in"),
        ("# nobody yet\n", "users: none are given, so nobody could sign in"),
        ("users:\n  ann: {password: 'scrypt$x', role: analyst}\n", "user ann needs a scrypt password hash"),
        (
            "users:\n  ann: {password: '%s', role: analyst}\n" % hash_password("a").replace("$16384$", "$1024$"),
            "N at least 16384",
        ),
        ("users:\n  ann: {password: '%s', role: analyst}\n" % hash_password("a").replace("$16384$8$", "$16384$64$"), "user ann"),
        ("users:\n  ann: {password: '%s', role: analyst}\n" % hash_password("a")[:-2], "user ann"),
    ],
)
def test_a_users_file_nobody_could_sign_in_with_is_refused(tmp_path, users, says):
    """A users file with no users, or a hash no login can match (cut short, too weak, or needing more memory than
    hashlib allows a login), started a server that nobody, or that user, could ever sign in to."""
    from casework.review.auth import UsersError, load_users

    f = tmp_path / "users.yaml"
    f.write_text(users)
    with pytest.raises(UsersError, match=re.escape(says)):
        load_users(f)
    ok = tmp_path / "ok.yaml"
    ok.write_text("users:\n  ann: {password: '%s', role: analyst}\n" % hash_password("a"))
    assert list(load_users(ok)) == ["ann"]


def test_identities_with_an_id_on_two_rows_are_refused(tmp_path):
    """Found by a hostile-input sweep: the last of two rows for one id won silently, and the goAML report named the
    wrong person and account."""
    from casework.goaml import ExportError, load_identities

    f = tmp_path / "ids.csv"
    f.write_text("pseudonymous_id,first_name\nabc,Jan\ndef,Piet\nabc,Other\n")
    with pytest.raises(ExportError, match=re.escape("1 pseudonymous id(s) on more than one row (first: data rows 1, 3)")):
        load_identities(f)


@pytest.mark.parametrize(
    "content, says",
    [
        (b"pseudonymous_id,first_name\nabc,Ja\x01n\n", "data row 1, column first_name: a control character"),
        (b"", "cannot be read"),
        (b"pseudonymous_id,first_name\nabc,J\xe9\n", "cannot be read"),
    ],
)
def test_an_identities_file_that_cannot_make_xml_is_named(tmp_path, content, says):
    """Found by a hostile-input sweep: a control character gave lxml's "All strings must be XML compatible", an
    empty or Latin-1 file "could not read a data file", none naming the file, row or column."""
    from casework.goaml import ExportError, load_identities

    f = tmp_path / "ids.csv"
    f.write_bytes(content)
    with pytest.raises(ExportError, match=re.escape(says)) as e:
        load_identities(f)
    assert str(f) in str(e.value)


def test_a_burst_of_parallel_logins_is_throttled_like_one_at_a_time():
    """Found by a review: with scrypt moved to worker threads, 20 simultaneous wrong passwords were all checked (the
    throttle counted failures only after each check). An attempt now counts against its user name before its password
    is checked; an address counts only failures (the load test's investigators signing in at once were refused)."""
    from concurrent.futures import ThreadPoolExecutor

    from casework.review.auth import FREE_FAILURES, Throttled

    s = Sessions({"ann": {"password": hash_password("right"), "role": "analyst"}}, secret=b"k" * 32)

    def one(_):
        try:
            return s.login("ann", "wrong", "10.0.0.1")
        except Throttled as e:
            return str(e)

    with ThreadPoolExecutor(20) as pool:
        got = list(pool.map(one, range(20)))
    assert got.count(None) <= FREE_FAILURES and got.count("wait") >= 20 - FREE_FAILURES
    h = hash_password("right")
    office = Sessions({f"u{i}": {"password": h, "role": "analyst"} for i in range(12)}, secret=b"k" * 32)
    with ThreadPoolExecutor(12) as pool:  # colleagues behind one address signing in at the same moment
        assert all(pool.map(lambda i: office.login(f"u{i}", "right", "10.0.0.3"), range(12)))
    other = Sessions({"bo": {"password": h, "role": "analyst"}}, secret=b"k" * 32)
    for _ in range(3):  # a right password is no failure: its address may go on, its earlier failures stand
        assert other.login("bo", "right", "10.0.0.2")
    assert other.throttle.failures.get("addr:10.0.0.2") is None
    assert other.login("bo", "wrong", "10.0.0.2") is None and other.login("bo", "right", "10.0.0.2")
    assert other.throttle.failures["addr:10.0.0.2"] == 1
