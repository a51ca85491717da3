"""The review page and the store's writers at the same time: the page reads its snapshot and writes decisions to the
casework database, so a process holding the store neither breaks the page nor loses a decision; scoring runs while
the page serves; the snapshot switch is atomic; a second writer waits or names the holder; old decisions move."""

import re
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import polars as pl
import pytest
from starlette.testclient import TestClient

from casework.review.app import Review
from casework.review.auth import load_users
from detectors.scoring import score_store
from pipelines import snapshot, store
from pipelines.casework_db import open_casework
from pipelines.cli import main
from pipelines.snapshot import score_and_publish
from tests.book import Book
from tests.test_network import _ring
from tests.test_review import csrf_of, login, users_file

REPO = Path(__file__).resolve().parent.parent


def _scored(tmp_path):
    b = Book()
    _ring(b)
    db = b.write(tmp_path / "s.duckdb")
    res = score_and_publish(db, tmp_path / "out", models_dir=tmp_path / "m")
    return db, res


def _alert_of(res, account):
    return res.alerts.filter(pl.col("account_id") == account)["alert_id"][0]


def _hold(db, how: str) -> subprocess.Popen:
    """Another process holding the store: `duckdb` (a writable DuckDB connection, as a batch has) or `lock` (the
    write lock a scoring run takes, and the DuckDB file too)."""
    code = (
        "import sys, time\n"
        "from pipelines import store\n"
        "from pipelines.store_lock import exclusive\n"
        "db = sys.argv[1]\n"
        "ctx = exclusive(db, 'batch') if sys.argv[2] == 'lock' else None\n"
        "ctx and ctx.__enter__()\n"
        "con = store.connect(db)\n"
        "print('held', flush=True)\n"
        "time.sleep(float(sys.argv[3]))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(db), how, "60"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO)},
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def _release(proc):
    proc.kill()
    proc.wait()


def _site(tmp_path, db):
    return TestClient(Review(db, load_users(users_file(tmp_path / "users.yaml")), secret=b"k" * 32).app())


def test_the_page_reads_and_decides_while_another_process_holds_the_store(tmp_path):
    db, res = _scored(tmp_path)
    c = _site(tmp_path, db)
    login(c, "bert")
    aid = _alert_of(res, "v2")
    holder = _hold(db, "duckdb")
    try:
        with pytest.raises(duckdb.IOException, match="lock"):  # the store really is held: no other process may open it
            duckdb.connect(str(db), read_only=True)
        for path in ("/queue", "/queue?status=all", f"/alerts/{aid}", f"/alerts/{aid}.csv", "/audit", "/queue.csv"):
            assert c.get(path).status_code == 200, path
        page = c.get(f"/alerts/{aid}").text
        r = c.post(f"/alerts/{aid}/disposition", data={"csrf": csrf_of(page), "action": "dismiss", "reason": "explained"})
        assert r.status_code == 200 and "Recorded: dismiss" in r.text and 'id="status">dismissed' in r.text
        # the command line decides and starts a page while the store is held, too
        assert (
            main(["dispose", "--db", str(db), "--alert", _alert_of(res, "ctrl"), "--action", "request_info", "--user", "bob"])
            == 0
        )
        assert _site(tmp_path, db).get("/login").status_code == 200
    finally:
        _release(holder)
    # the decision posted while the store was held is kept, and the next scoring run holds the account back
    assert open_casework(db).statuses().filter(pl.col("alert_id") == aid)["status"][0] == "dismissed"
    again = score_and_publish(db, tmp_path / "out2", models_dir=tmp_path / "m")
    assert "v2" not in set(again.alerts["account_id"])
    assert open_casework(db).statuses().filter(pl.col("alert_id") == aid)["status"][0] == "dismissed"
    assert "dismissed" in c.get(f"/alerts/{aid}").text


def test_scoring_succeeds_while_the_page_serves_another_process(tmp_path):
    """The page as its own process (uvicorn) answering requests all through a scoring run in this one."""
    import socket

    import httpx

    db, res = _scored(tmp_path)
    users_file(tmp_path / "users.yaml")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "serve",
            "--db",
            str(db),
            "--users",
            str(tmp_path / "users.yaml"),
            "--port",
            str(port),
        ],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    statuses, done = [], threading.Event()
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                httpx.get(base + "/login", timeout=5)
                break
            except httpx.HTTPError:
                assert serve.poll() is None, serve.stderr.read()
                threading.Event().wait(0.1)
        c = httpx.Client(base_url=base, timeout=60)
        token = re.search(r'name="token" value="([^"]+)"', c.get("/login").text).group(1)
        assert c.post("/login", data={"username": "fiona", "password": "fiona-secret", "token": token}).status_code == 303

        def browse():
            while not done.is_set() or len(statuses) < 5:  # bounded: the scoring run below ends it
                statuses.append(c.get("/queue?status=all").status_code)
                if len(statuses) > 2000:
                    break

        reader = threading.Thread(target=browse)
        reader.start()
        before = snapshot.current(db)
        try:
            again = score_and_publish(db, tmp_path / "out2", models_dir=tmp_path / "m")
        finally:
            done.set()
            reader.join(120)
        assert again.alerts.height > 0 and snapshot.current(db) != before
        assert statuses and set(statuses) == {200}
        assert c.get("/queue?status=all").status_code == 200
        c.close()
    finally:
        serve.terminate()
        serve.wait(30)


def test_a_reader_never_sees_a_half_published_snapshot(tmp_path):
    db, res = _scored(tmp_path)
    con = store.connect(db)
    expected = {*snapshot.COPIED, "alert_scores", "transactions", "snapshot_info"}
    counts, seen, problems, stop = set(), [], [], threading.Event()
    base = con.execute("SELECT count(*) FROM alerts").fetchall()[0][0]

    def read():
        while not stop.is_set() and len(seen) < 5000:
            r = snapshot.open_current(db)
            try:
                tables = {t[0] for t in r.execute("SELECT table_name FROM information_schema.tables").fetchall()}
                n = r.execute("SELECT count(*) FROM alerts").fetchall()[0][0]
            finally:
                r.close()
            seen.append(n)
            if tables != expected:
                problems.append(sorted(expected ^ tables))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for i in range(6):  # each publish has one more copy of the alerts: a reader sees one whole count or another
            con.execute("INSERT INTO alerts SELECT * FROM alerts WHERE created_at = (SELECT min(created_at) FROM alerts)")
            counts.add(con.execute("SELECT count(*) FROM alerts").fetchall()[0][0])
            snapshot.publish(con, db)
    finally:
        stop.set()
        for t in readers:
            t.join(60)
        con.close()
    assert not problems and seen
    assert set(seen) <= counts | {base}
    # only the current snapshot and the one before it are kept
    assert len(list(snapshot.snapshot_dir(db).glob("snap-*.duckdb"))) == 2


def test_a_second_writer_names_the_holder_in_one_line(tmp_path, capsys, monkeypatch):
    db, res = _scored(tmp_path)
    monkeypatch.setenv("THB_STORE_LOCK_WAIT", "0.5")
    holder = _hold(db, "lock")
    try:
        assert main(["score", "--db", str(db), "--out", str(tmp_path / "o")]) == 2
    finally:
        _release(holder)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "is being written by batch" in err and f"pid {holder.pid}" in err and re.search(r"waited \d+ s", err)
    assert "THB_STORE_LOCK_WAIT" in err and "--debug" not in err


def test_a_second_writer_waits_its_turn(tmp_path):
    db, res = _scored(tmp_path)
    code = (
        "import sys, time\nfrom pipelines.store_lock import exclusive\n"
        "with exclusive(sys.argv[1], 'batch'):\n    print('held', flush=True)\n    time.sleep(2)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(db)], stdout=subprocess.PIPE, text=True, cwd=REPO, env={"PYTHONPATH": str(REPO)}
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        again = score_and_publish(db, tmp_path / "out2", {"store": {"lock_wait_seconds": 120}}, models_dir=tmp_path / "m")
        assert again.alerts.height > 0
    finally:
        holder.wait(60)
    assert holder.returncode == 0


def test_decisions_of_an_older_store_move_to_the_casework_database_once(tmp_path):
    b = Book()
    _ring(b)
    db = b.write(tmp_path / "s.duckdb")
    res = score_store(db, tmp_path / "out", models_dir=tmp_path / "m")  # scored as before: no casework database yet
    aid, esc = _alert_of(res, "z"), _alert_of(res, "ctrl")
    con = store.connect(db)  # decisions as the code before kept them, in the store
    con.execute(
        "UPDATE alert_status SET status = 'dismissed', dismiss_reason = 'explained', dismissed_score = last_score, "
        "dismissed_rules = (SELECT rules FROM alerts WHERE alert_id = ? LIMIT 1) WHERE alert_id = ?",
        [aid, aid],
    )
    con.execute("UPDATE alert_status SET status = 'escalated' WHERE alert_id = ?", [esc])
    con.execute(
        "INSERT INTO audit_log (event_id, logged_at, user_name, action, alert_id, bank_id, account_id, previous_status, "
        "new_status, reason, note, details) VALUES ('e1', now() - INTERVAL 1 HOUR, 'ann', 'dismiss', ?, 'BANK_A', 'z', 'open', 'dismissed', "
        "'explained', 'old note', '{}')",
        [aid],
    )
    con.execute("INSERT INTO fiu_decisions VALUES ('e2', 'R1', 'suspicious', 'cross_border', NULL, 'fiona', now())")
    con.close()
    assert not Path(f"{db}.casework.sqlite").exists()
    snapshot.ensure(db)  # first use: serve, dispose, export or the next scoring run
    cw = open_casework(db)
    s = {r["alert_id"]: r for r in cw.statuses().to_dicts()}
    assert s[aid]["status"] == "dismissed" and s[aid]["dismiss_reason"] == "explained" and s[aid]["dismissed_rules"]
    assert s[esc]["status"] == "escalated" and len(s) == res.alerts.height
    assert cw.audit_rows().select("event_id", "note").rows() == [("e1", "old note")]
    assert cw.fiu_decisions()["event_id"].to_list() == ["e2"]
    from casework.access_log import verify

    assert [(name, broken, n, legacy) for name, broken, n, legacy, _ in verify(cw)] == [
        ("audit_log", None, 0, 1),  # written before the chain: moved, counted, not chained
        ("access_log", None, 0, 0),
    ]
    # once only: a later run neither copies them again nor lets the store's stale copy override a newer decision
    from casework.dispositions import record_disposition

    record_disposition(cw, aid, "reopen", "ann")
    again = score_and_publish(db, tmp_path / "out2", models_dir=tmp_path / "m")
    assert cw.counts()["audit_log"] == 2 and cw.counts()["fiu_decisions"] == 1
    assert cw.statuses().filter(pl.col("alert_id") == aid)["status"][0] == "open"
    assert "z" in set(again.alerts["account_id"])  # reopened: no longer held back


def test_the_snapshot_holds_the_bookings_of_the_unalerted_accounts_a_case_pays(tmp_path):
    """The case page's network and proceeds read the snapshot: an unalerted controller the victims pay must be in it."""
    db = tmp_path / "s.duckdb"
    con = store.connect(db)
    rows = [  # txn, account, booked, counterparty
        ("t1", "victim", "2026-09-01", "boss"),  # the alerted victim pays the boss
        ("t2", "boss", "2026-09-02", "abroad"),  # the boss's own booking: his proceeds
        ("t3", "stranger", "2026-09-02", "shop"),  # nobody in the case: not copied
        ("t4", "stranger", "2026-09-30", "shop"),  # the store's last day: copied (the window's end)
    ]
    for txn, acc, at, cp in rows:
        con.execute(
            """INSERT INTO transactions (bank_id, txn_id, account_id, booked_at, direction, amount_eur, channel,
                                         counterparty_id, counterparty_type) VALUES ('B', ?, ?, ?, 'debit', 100, 'transfer', ?, 'person')""",
            [txn, acc, datetime.fromisoformat(at).replace(tzinfo=timezone.utc), cp],
        )
    con.execute("INSERT INTO alerts (run_id, alert_id, bank_id, account_id, created_at) VALUES ('r', 'A1', 'B', 'victim', now())")
    con.execute("INSERT INTO alert_status (alert_id, bank_id, account_id, status) VALUES ('A1', 'B', 'victim', 'open')")
    try:
        path = snapshot.publish(con, db)
    finally:
        con.close()
    snap = duckdb.connect(str(path), read_only=True)
    try:
        got = sorted(r[0] for r in snap.execute("SELECT txn_id FROM transactions").fetchall())
    finally:
        snap.close()
    assert got == ["t1", "t2", "t4"]
