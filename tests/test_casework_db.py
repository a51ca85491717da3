"""The casework database on both engines: decisions, the audit log, FIU decisions and the hand-over of new alerts
behave the same on the embedded SQLite default and on a real PostgreSQL server."""

import os
import stat
import threading
from datetime import datetime, timezone

import duckdb
import polars as pl
import pytest

from casework.dispositions import DispositionError, alert_state, mark_reported, record_disposition, record_fiu_decision
from pipelines.casework_db import HEAD_META, Casework, ChainBroken, default_path, open_casework
from tests.pg import postgres_server


@pytest.fixture(scope="module")
def pg_url():
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def cw(request, tmp_path):
    if request.param == "sqlite":
        db = open_casework(tmp_path / "s.duckdb")
    else:
        url = request.getfixturevalue("pg_url")
        db = Casework(url)
        with db.engine.begin() as c:  # a clean database per test on the shared server
            for t in ("alert_status", "audit_log", "access_log", "fiu_decisions", "casework_meta"):
                c.exec_driver_sql(f"DELETE FROM {t}")
        db.upgrade()
    yield db


def _alerts(n=3, score=0.8, bank="BANK_A"):
    return pl.DataFrame(
        {
            "alert_id": [f"A{i}" for i in range(n)],
            "bank_id": [bank] * n,
            "account_id": [f"acc{i}" for i in range(n)],
            "last_score": [score] * n,
            "rules": [["R1", "R2"]] * n,
        }
    )


def test_new_alerts_start_open_and_keep_their_decision_when_rescored(cw):
    assert cw.sync_alerts(_alerts()) == 3
    record_disposition(cw, "A0", "dismiss", "ann", reason="explained")
    assert cw.sync_alerts(_alerts(4, score=0.9)) == 1  # A3 is new; A0..A2 re-scored
    s = {r["alert_id"]: r for r in cw.statuses().to_dicts()}
    assert s["A0"]["status"] == "dismissed" and s["A0"]["last_score"] == 0.9 and s["A0"]["dismissed_score"] == 0.8
    assert s["A0"]["dismissed_rules"] == ["R1", "R2"] and s["A3"]["status"] == "open"
    assert cw.statuses("BANK_B").is_empty() and cw.statuses("BANK_A").height == 4


def test_decisions_follow_the_rules_and_are_audited_in_order(cw):
    cw.sync_alerts(_alerts())
    with pytest.raises(DispositionError, match="needs a reason"):
        record_disposition(cw, "A1", "dismiss", "ann")
    with pytest.raises(DispositionError, match="needs a note"):
        record_disposition(cw, "A1", "dismiss", "ann", reason="other")
    with pytest.raises(DispositionError, match="no alert"):
        record_disposition(cw, "nope", "escalate", "ann")
    record_disposition(cw, "A1", "request_info", "ann", note="ask for the contract")
    record_disposition(cw, "A1", "escalate", "bob")
    with pytest.raises(DispositionError, match="is escalated"):
        record_disposition(cw, "A1", "dismiss", "ann", reason="explained")
    mark_reported(cw, "A1", "bob", "goaml-A1.xml", {"indicators": ["X"]})
    assert alert_state(cw, "A1")["status"] == "reported"
    log = cw.audit_rows()
    assert log.select("user_name", "action", "previous_status", "new_status", "note").rows() == [
        ("ann", "request_info", "open", "info_requested", "ask for the contract"),
        ("bob", "escalate", "info_requested", "escalated", None),
        ("bob", "report_goaml", "escalated", "reported", "goaml-A1.xml"),
    ]
    assert log["event_id"].n_unique() == 3 and log["logged_at"].is_sorted()
    s = cw.statuses().filter(pl.col("alert_id") == "A1").row(0, named=True)
    assert s["report_file"] == "goaml-A1.xml" and s["reported_at"] is not None
    # the page's view: newest first, one bank's only for an investigator
    assert cw.audit_entries("BANK_A", "A1")["action"].to_list() == ["report_goaml", "escalate", "request_info"]
    assert cw.audit_entries("BANK_B").is_empty()


def test_a_refused_decision_changes_nothing(cw):
    cw.sync_alerts(_alerts(1))
    record_disposition(cw, "A0", "escalate", "bob")
    with pytest.raises(DispositionError):
        record_disposition(cw, "A0", "request_info", "ann")
    assert cw.audit_rows().height == 1 and alert_state(cw, "A0")["status"] == "escalated"


def test_fiu_decisions_supersede_and_are_audited(cw):
    reports = duckdb.connect()
    reports.execute("CREATE TABLE fiu_reports AS SELECT 'R1' AS report_id, 'FIU_NL' AS bank_id, 'recv' AS account_id")
    with pytest.raises(DispositionError, match="needs a typology"):
        record_fiu_decision(cw, "R1", "suspicious", "fiona", reports=reports)
    with pytest.raises(DispositionError, match="no FIU report"):
        record_fiu_decision(cw, "R9", "not_suspicious", "fiona", reports=reports)
    first = record_fiu_decision(cw, "R1", "not_suspicious", "fiona", reports=reports)
    second = record_fiu_decision(cw, "R1", "suspicious", "fiona", "cross_border", "collector", reports=reports)
    assert first["previous"] == "undecided" and second["previous"] == "not_suspicious"
    d = cw.fiu_decisions()
    assert d.height == 2 and set(d["event_id"]) <= set(cw.audit_rows()["event_id"])


def test_concurrent_decisions_on_one_alert_apply_once(cw):
    """Twenty investigators escalate the same alert at once: one wins, the others are refused, none is lost or doubled."""
    cw.sync_alerts(_alerts(1))
    outcomes = []

    def decide(i):
        try:
            record_disposition(cw, "A0", "escalate", f"user{i}")
            outcomes.append("ok")
        except DispositionError:
            outcomes.append("refused")

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["ok"] + ["refused"] * 19
    assert cw.audit_rows().height == 1


def test_concurrent_fiu_decisions_on_one_report_each_supersede_the_one_before(cw):
    """Analysts deciding one report at once are taken in turn: each audit entry's previous decision is the one before it."""
    reports = duckdb.connect()
    reports.execute("CREATE TABLE fiu_reports AS SELECT 'R1' AS report_id, 'FIU_NL' AS bank_id, 'recv' AS account_id")

    def decide(i):
        for j in range(3):
            if (i + j) % 2:
                record_fiu_decision(cw, "R1", "suspicious", f"analyst{i}", "cross_border", reports=reports.cursor())
            else:
                record_fiu_decision(cw, "R1", "not_suspicious", f"analyst{i}", reports=reports.cursor())

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    log = cw.audit_rows().sort("seq")
    assert log.height == 24 and cw.fiu_decisions().height == 24
    assert log["previous_status"].to_list() == ["undecided"] + log["new_status"].to_list()[:-1]


def test_concurrent_writers_keep_both_log_chains_whole(cw):
    """Decisions and page views from many threads at once: every entry lands, each log is one unbroken hash chain,
    and a changed entry is caught at its place (audit_chain), on either engine."""
    from casework.access_log import log_access, revealed, verify
    from casework.dispositions import audit

    def work(i):
        for j in range(5):
            audit(cw, f"user{i}", "note", f"A{i}", "BANK_A", note=str(j))
            log_access(cw, f"user{i}", "investigator", "view", "alert", f"A{i}", "BANK_A", "127.0.0.1")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [(name, broken, n, legacy) for name, broken, n, legacy, _ in verify(cw)] == [
        ("audit_log", None, 40, 0),
        ("access_log", None, 40, 0),
    ]
    log_access(cw, "ann", "investigator", "reveal", "alert", "A1", "BANK_A", reason="the FIU asked")
    assert revealed(cw, "ann", "A1") and not revealed(cw, "bob", "A1")
    with cw.engine.begin() as c:
        c.exec_driver_sql("UPDATE access_log SET user_name = 'mallory' WHERE seq = 7")
    assert [(name, broken) for name, broken, *_ in verify(cw)] == [("audit_log", None), ("access_log", 7)]


def _decide(cw, n=3):
    """n decisions, so n audit entries, seq 1..n."""
    cw.sync_alerts(_alerts(n))
    for i in range(n):
        record_disposition(cw, f"A{i}", "escalate", "ann")


def test_a_log_emptied_cut_off_or_dropped_is_broken(cw):
    """The hashes cannot see entries missing after the last one left: the last entry as written is kept in
    casework_meta, and a log that no longer reaches it is broken, not "intact: 0 entries"."""
    from casework.access_log import verify

    _decide(cw)
    assert [(name, broken, n) for name, broken, n, *_ in verify(cw)] == [("audit_log", None, 3), ("access_log", None, 0)]
    with cw.engine.begin() as c:
        c.exec_driver_sql("DELETE FROM audit_log WHERE seq >= 2")
    with pytest.raises(ChainBroken, match="audit_log broken at entry 2: the log ends at entry 1, but entries up to 3") as e:
        verify(cw)
    assert (e.value.log, e.value.seq) == ("audit_log", 2)
    with cw.engine.begin() as c:
        c.exec_driver_sql("DELETE FROM audit_log")
    with pytest.raises(ChainBroken, match="audit_log broken at entry 3: the log is empty, but entries up to 3 were written"):
        cw.chain("audit_log")
    with cw.engine.begin() as c:
        c.exec_driver_sql("DROP TABLE audit_log")
    cw.upgrade()  # what the next open does: the table comes back, empty
    with pytest.raises(ChainBroken, match="the log is empty"):
        cw.chain("audit_log")
    with cw.engine.begin() as c:  # the record gone too (or a database from before it): the decisions still tell
        c.exec_driver_sql(f"DELETE FROM casework_meta WHERE key = '{HEAD_META['audit_log']}'")
    with pytest.raises(ChainBroken, match="audit_log broken at entry 1: the log is empty, but 3 alert"):
        cw.chain("audit_log")


def test_a_cut_stays_caught_after_the_next_entry(cw):
    """From a review: the next entry after a cut (a page view, a decision) chained from the cut end and overwrote the
    record, so the log verified "intact" again. A cut seen when writing is kept for good."""
    from casework.access_log import log_access, verify

    for i in range(5):
        log_access(cw, "ann", "investigator", "view", "alert", f"a{i}", "B", "127.0.0.1")
    with cw.engine.begin() as c:
        c.exec_driver_sql("DELETE FROM access_log WHERE seq >= 4")
    log_access(cw, "ann", "investigator", "view", "alert", "a9", "B", "127.0.0.1")  # chains on from entry 3
    with pytest.raises(ChainBroken, match="access_log broken at entry 4: it was cut back: entries up to 5 had been written"):
        verify(cw)


def test_a_purge_that_removes_every_entry_is_no_cut(cw):
    """A purge of every entry starts the log again at 1 with its purge entry: that is not a cut."""
    from casework.access_log import verify
    from casework.dispositions import purge_audit

    _decide(cw)
    purge_audit(cw, datetime(2999, 1, 1, tzinfo=timezone.utc), "dpo")
    assert all(broken is None for _, broken, *_ in verify(cw))


def test_a_log_rewritten_from_its_last_entry_is_broken(cw):
    """Entry 3 replaced by a new one that chains correctly to entry 2: the hashes agree, the recorded last hash does not."""
    from casework import audit_chain
    from casework.dispositions import AUDIT_FIELDS

    _decide(cw)
    rows, _ = cw.chain("audit_log")
    forged = {**rows[2], "user_name": "mallory"}
    forged["entry_hash"] = audit_chain.entry_hash(rows[1]["entry_hash"], forged, AUDIT_FIELDS)
    with cw.engine.begin() as c:
        c.exec_driver_sql(f"UPDATE audit_log SET user_name = 'mallory', entry_hash = '{forged['entry_hash']}' WHERE seq = 3")
    with pytest.raises(ChainBroken, match="at entry 3: its hash is not the one recorded when it was written"):
        cw.chain("audit_log")


@pytest.mark.parametrize("written", ["12345", "'garbage'"])
def test_an_entry_whose_time_is_not_a_time_is_named(tmp_path, capsys, written):
    """A hand-edited logged_at (a number, or text that is no time) is one line naming the entry, not a traceback."""
    from pipelines import store
    from pipelines.cli import main

    db = tmp_path / "s.duckdb"
    store.connect(db).close()
    cw = open_casework(db)
    _decide(cw)
    with cw.engine.begin() as c:
        c.exec_driver_sql(f"UPDATE audit_log SET logged_at = {written} WHERE seq = 2")
    with pytest.raises(ChainBroken, match="audit_log broken at entry 2: logged_at is not a time"):
        cw.chain("audit_log")
    assert main(["verify-audit", "--db", str(db)]) == 1  # verify-audit's own broken line, as for a changed entry
    out = capsys.readouterr()
    assert "Traceback" not in out.err and out.out == f"{db}: audit_log broken at entry 2: logged_at is not a time\n"


def test_a_moved_chain_records_its_last_entry(tmp_path):
    """Entries moved in from an older store carry their chain; its last entry is recorded as a written one is."""
    old = open_casework(tmp_path / "old.duckdb")
    _decide(old)
    rows = old.audit_rows()
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    con.register("moved", rows.to_arrow())
    con.execute("CREATE TABLE audit_log AS SELECT * FROM moved")
    cw = open_casework(tmp_path / "s.duckdb")
    assert cw.import_store(con)["audit_log"] == 3
    con.close()
    assert len(cw.chain("audit_log")[0]) == 3
    with cw.engine.begin() as c:
        c.exec_driver_sql("DELETE FROM audit_log WHERE seq = 3")
    with pytest.raises(ChainBroken, match="at entry 3: the log ends at entry 2"):
        cw.chain("audit_log")


def test_the_sqlite_file_is_private_and_in_wal_mode(tmp_path):
    cw = open_casework(tmp_path / "s.duckdb")
    path = default_path(tmp_path / "s.duckdb")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with cw.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_a_purge_of_only_entries_from_before_the_chain_leaves_a_record(cw):
    """From a review: a database whose log held only unchained entries (from before the chain) was purged with no
    entry left, and verify-audit then called the emptied log broken because alerts carry decisions."""
    from casework.access_log import verify
    from casework.dispositions import purge_audit

    cw.sync_alerts(_alerts(2))
    with cw.engine.begin() as c:  # decided before the chain: statuses and unchained log entries
        c.exec_driver_sql("UPDATE alert_status SET status = 'escalated'")
        c.exec_driver_sql(
            "INSERT INTO audit_log (event_id, logged_at, user_name, action) VALUES ('e0', '2020-01-01 00:00:00', 'ann', 'escalate')"
        )
    assert purge_audit(cw, datetime(2021, 1, 1, tzinfo=timezone.utc), "dpo") == ("audit_log", 1)
    assert all(broken is None for _, broken, *_ in verify(cw))
    assert cw.audit_rows()["action"].to_list() == ["purge_log"]
