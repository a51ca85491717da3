"""Privacy by design: retention (purge), key rotation (rekey), the hash-chained logs (verify-audit), the record of
processing (docs/privacy.md) against the store."""

import json
import re
import shutil
from datetime import datetime, timedelta, timezone

import duckdb
import polars as pl
import pytest

from casework import audit_chain, dispositions
from casework.access_log import log_access, verify
from pipelines import snapshot, store
from pipelines.casework_db import open_casework
from pipelines.cli import main
from pipelines.cli_privacy import log_purgers
from pipelines.ingest import ingest
from pipelines.pseudonymise import key_id, pseudonym, pseudonymise, read_key
from pipelines.purge import RULES, purge
from pipelines.rekey import EMPTIED_TABLES, LIST_COLUMNS, PSEUDONYM_COLUMNS, HalfRotated, RekeyError, rekey
from schemas.contract import PSEUDONYMISED
from schemas.settings import SettingsError, parse_settings
from tests.conftest import SAMPLES
from tests.test_pseudonymise import _raw

AS_OF = datetime(2031, 6, 30, tzinfo=timezone.utc)  # window 90 + margin 30: bookings before 2031-03-02 expire


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def _fill(con) -> None:
    """Rows on both sides of every cut-off: names say what should happen to them."""
    subs = [("s_old", "2031-01-01"), ("s_new", "2031-06-01"), ("s_ancient", "2025-01-01")]
    for sid, at in subs:
        con.execute("INSERT INTO submissions (submission_id, bank_id, loaded_at) VALUES (?, 'B', ?)", [sid, _t(at)])
    tx = [
        ("gone_old", "acc_gone", "2031-01-01", "s_old"),
        ("keep_new", "acc_new", "2031-06-01", "s_new"),
        ("keep_ev_reported", "acc_rep", "2031-01-01", "s_old"),
        ("gone_ev_dismissed_expired", "acc_gone", "2029-01-01", "s_old"),
        ("keep_ev_dismissed_recent", "acc_dis", "2031-01-01", "s_old"),
        ("gone_ev_reported_expired", "acc_gone", "2025-01-01", "s_ancient"),
    ]
    for txn, acc, at, sid in tx:
        con.execute(
            "INSERT INTO transactions (bank_id, txn_id, account_id, booked_at, submission_id) VALUES ('B', ?, ?, ?, ?)",
            [txn, acc, _t(at), sid],
        )
    for acc, sid in (("acc_gone", "s_old"), ("acc_new", "s_new"), ("acc_rep", "s_old"), ("acc_dis", "s_old")):
        con.execute("INSERT INTO accounts (bank_id, account_id, submission_id) VALUES ('B', ?, ?)", [acc, sid])
    alerts = [  # alert, account, status, decided, evidence
        ("A_rep", "acc_rep", "reported", "2031-01-10", ["keep_ev_reported"]),
        ("A_dis_old", "acc_gone", "dismissed", "2029-06-01", ["gone_ev_dismissed_expired"]),
        ("A_dis_new", "acc_dis", "dismissed", "2031-01-15", ["keep_ev_dismissed_recent"]),
        ("A_rep_old", "acc_gone", "reported", "2025-02-01", ["gone_ev_reported_expired"]),
        ("A_open_old", "acc_new", "open", "2020-01-01", []),
    ]
    for aid, acc, status, at, ev in alerts:
        con.execute(
            """INSERT INTO alerts (run_id, alert_id, bank_id, account_id, evidence, created_at, case_id)
               VALUES ('r', ?, 'B', ?, ?, ?, ?)""",
            [aid, acc, ev, _t(at), "C-" + aid],
        )
        con.execute(
            "INSERT INTO alert_status (alert_id, bank_id, account_id, status, updated_at) VALUES (?, 'B', ?, ?, ?)",
            [aid, acc, status, _t(at)],
        )
        con.execute("INSERT INTO cases (run_id, case_id, created_at) VALUES ('r', ?, ?)", ["C-" + aid, _t(at)])
    con.execute("INSERT INTO quarantine (submission_id, reason, quarantined_at) VALUES ('s_old', 'gone', ?)", [_t("2031-05-01")])
    con.execute("INSERT INTO quarantine (submission_id, reason, quarantined_at) VALUES ('s_new', 'keep', ?)", [_t("2031-06-15")])


def _ids(con, table, col):
    return sorted(r[0] for r in con.execute(f"SELECT {col} FROM {table}").fetchall())


def _at(monkeypatch, when: datetime):
    """Log entries written 'at' a given time (the logs take their time from datetime.now)."""

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return when

    import casework.access_log as access_log
    import pipelines.casework_db as casework_db

    monkeypatch.setattr(casework_db, "now", lambda: when)

    monkeypatch.setattr(access_log, "datetime", Clock)


def _casework(con, db):
    """The decisions _fill wrote the old way (in the store) moved to the casework database, where they live now."""
    cw = open_casework(db)
    cw.import_store(con)
    return cw


def test_purge_deletes_expired_rows_and_nothing_else(tmp_path, monkeypatch):
    db = tmp_path / "s.duckdb"
    con = store.connect(db)
    _fill(con)
    cw = _casework(con, db)
    con.close()
    _at(monkeypatch, _t("2024-01-01"))
    for i in range(3):
        dispositions.audit(cw, "ann", "escalate", f"old{i}")
        log_access(cw, "ann", "investigator", "view", "alert", f"old{i}")
    _at(monkeypatch, _t("2031-01-01"))
    dispositions.audit(cw, "ann", "escalate", "A_rep")
    log_access(cw, "ann", "investigator", "view", "alert", "A_rep")
    monkeypatch.undo()

    res = purge(db, parse_settings({}), AS_OF, user="dpo", logs=log_purgers())
    con = store.connect(db)
    try:
        assert _ids(con, "transactions", "txn_id") == ["keep_ev_dismissed_recent", "keep_ev_reported", "keep_new"]
        assert _ids(con, "accounts", "account_id") == ["acc_dis", "acc_new", "acc_rep"]
        assert _ids(con, "alerts", "alert_id") == ["A_dis_new", "A_open_old", "A_rep"]
        assert _ids(con, "alert_status", "alert_id") == ["A_dis_new", "A_open_old", "A_rep"]
        assert _ids(con, "cases", "case_id") == ["C-A_dis_new", "C-A_open_old", "C-A_rep"]
        assert _ids(con, "quarantine", "reason") == ["keep"]
        assert _ids(con, "submissions", "submission_id") == ["s_new", "s_old"]
        # decisions of the expired alerts went with them (casework database)
        assert sorted(cw.statuses()["alert_id"]) == ["A_dis_new", "A_open_old", "A_rep"]
        # the logs lost their three 2024 entries and gained a purge entry each; both chains still verify
        assert cw.audit_rows().sort("seq")["alert_id"].to_list() == ["A_rep", None]
        assert sorted(cw.access_entries()["action"]) == ["purge_log", "view"]
        assert all(broken is None for _, broken, *_ in verify(cw))
        record = con.execute("SELECT dry_run, user_name, deleted FROM purge_log").fetchall()
        assert len(record) == 1 and record[0][:2] == (False, "dpo")
        deleted = json.loads(record[0][2])
        assert deleted == res.deleted
        assert {k: deleted[k] for k in ("transactions", "accounts", "alerts", "quarantine", "audit_log", "access_log")} == {
            "transactions": 3,
            "accounts": 1,
            "alerts": 2,
            "quarantine": 1,
            "audit_log": 3,
            "access_log": 3,
        }
    finally:
        con.close()
    assert main(["verify-audit", "--db", str(db)]) == 0


def test_purge_commits_the_store_first_so_no_dropped_alert_comes_back(tmp_path, monkeypatch):
    """The store commits first and the casework database right after. If the store's commit fails, neither changes;
    if the casework database's fails, its expired decisions wait for the next purge, which removes them, and no alert
    the store dropped is handed back to the queue meanwhile. (In the other order a failed store commit left the store's
    copy of alerts whose decisions were gone, and the next refresh made them new open alerts.)"""
    from contextlib import contextmanager

    from pipelines import casework_db
    from pipelines.purge import CaseworkNotPurged, purge_store

    db = tmp_path / "s.duckdb"
    con = store.connect(db)
    _fill(con)
    cw = _casework(con, db)
    decided = sorted(cw.statuses()["alert_id"])
    assert {"A_dis_old", "A_rep_old"} <= set(decided)  # expire as of AS_OF

    class FailingCommit:  # the store's connection, whose COMMIT fails (disk full)
        def __init__(self, con):
            self.con = con

        def execute(self, sql, *args):
            if sql == "COMMIT":
                raise OSError("disk full")
            return self.con.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self.con, name)

    with pytest.raises(OSError, match="disk full"):
        purge_store(FailingCommit(con), parse_settings({}), AS_OF, cw=cw)
    assert sorted(cw.statuses()["alert_id"]) == decided  # the casework database did not commit either
    assert "A_dis_old" in _ids(con, "alerts", "alert_id")
    con.close()

    real_tx = casework_db.Casework.tx

    @contextmanager
    def casework_commit_fails(self):
        with real_tx(self) as c:
            yield c
            raise OSError("casework database went away")  # after the purge's work, before its commit: rolled back

    snapshot.refresh(db)  # the page's copy, before the purge: it holds the alerts that expire
    monkeypatch.setattr(casework_db.Casework, "tx", casework_commit_fails)
    with pytest.raises(
        CaseworkNotPurged, match=r"the store is purged, the casework database is not \(casework database went away\)"
    ):
        purge(db, parse_settings({}), AS_OF)
    monkeypatch.setattr(casework_db.Casework, "tx", real_tx)
    con = store.connect(db)
    try:  # the store's part is done, the expired decisions still in the casework database
        assert _ids(con, "alerts", "alert_id") == ["A_dis_new", "A_open_old", "A_rep"]
        assert con.execute("SELECT count(*) FROM purge_log").fetchall()[0][0] == 1
    finally:
        con.close()
    page = snapshot.open_current(db)
    try:  # the page's copy forgot them too, though the purge as a whole failed
        assert _ids(page, "alerts", "alert_id") == ["A_dis_new", "A_open_old", "A_rep"]
    finally:
        page.close()
    assert sorted(cw.statuses()["alert_id"]) == decided
    snapshot.refresh(db)  # hands the store's alerts over: none of the dropped ones comes back
    assert sorted(cw.statuses()["alert_id"]) == decided
    purge(db, parse_settings({}), AS_OF)  # the next purge finds them again
    assert sorted(cw.statuses()["alert_id"]) == ["A_dis_new", "A_open_old", "A_rep"]
    con = store.connect(db)
    try:  # each deletion counted once: the failed purge's record holds the store's part only
        logged = [json.loads(d) for (d,) in con.execute("SELECT deleted FROM purge_log ORDER BY purged_at").fetchall()]
    finally:
        con.close()
    assert "casework_alert_status" not in logged[0] and logged[0]["alerts"] == 2
    assert logged[1]["casework_alert_status"] == 2 and logged[1]["alerts"] == 0


def test_purge_dry_run_counts_and_changes_nothing(tmp_path, capsys):
    db = tmp_path / "s.duckdb"
    con = store.connect(db)
    _fill(con)
    cw = _casework(con, db)
    dispositions.audit(cw, "ann", "escalate", "A_rep")
    before = {r.table: con.execute(f"SELECT count(*) FROM {r.table}").fetchall()[0][0] for r in RULES}
    cw_before = cw.counts()
    con.close()
    assert main(["purge", "--db", str(db), "--dry-run", "--as-of", "2031-06-30"]) == 0
    out = capsys.readouterr().out
    assert "would delete" in out and "transactions 3" in out and "alerts 2" in out
    # a time, as the help says (ISO, UTC): it was handed to window.as_of, which takes a day, and refused
    assert main(["purge", "--db", str(db), "--dry-run", "--as-of", "2031-06-30T12:00"]) == 0
    assert "transactions 3" in capsys.readouterr().out
    con = store.connect(db)
    try:
        after = {r.table: con.execute(f"SELECT count(*) FROM {r.table}").fetchall()[0][0] for r in RULES}
        assert after == before and cw.counts() == cw_before
        assert con.execute("SELECT count(*) FROM purge_log").fetchall()[0][0] == 0
    finally:
        con.close()
    # a purge dated ahead would delete now what the law keeps until then: only its dry run is allowed
    ahead = (datetime.now(timezone.utc) + timedelta(days=400)).date().isoformat()
    assert main(["purge", "--db", str(db), "--as-of", ahead]) == 2
    assert f"--as-of {ahead} is in the future; purge as of today or earlier, or add --dry-run" in capsys.readouterr().err
    con = store.connect(db)
    try:
        assert {r.table: con.execute(f"SELECT count(*) FROM {r.table}").fetchall()[0][0] for r in RULES} == before
    finally:
        con.close()


@pytest.mark.parametrize(
    "retention, message",
    [
        ({"legal_years": 3}, "retention.legal_years: Input should be greater than or equal to 5"),
        ({"dismissed_days": 4000}, "retention.dismissed_days"),
        ({"keep_forever": True}, "retention.keep_forever: unknown key"),
        ({"legal_years": 5, "dismissed_days": 2000}, "must not exceed legal_years"),
    ],
)
def test_retention_settings_refuse_what_the_law_or_sense_does_not_allow(retention, message):
    with pytest.raises(SettingsError, match=re.escape(message)):
        parse_settings({"retention": retention})


def test_an_altered_old_audit_entry_is_caught_at_its_sequence_number(tmp_path, capsys):
    db = tmp_path / "s.duckdb"
    store.connect(db).close()
    cw = open_casework(db)  # the logs live in the casework database beside the store
    for i in range(5):
        dispositions.audit(cw, "ann", "dismiss", f"a{i}", "B", f"acc{i}", "open", "dismissed", "explained")
        log_access(cw, "ann", "investigator", "view", "alert", f"a{i}", "B", "127.0.0.1")
    assert main(["verify-audit", "--db", str(db)]) == 0
    with cw.engine.connect() as c:  # the line ends each log with its last entry's hash, to keep elsewhere
        heads = {log: cw.head(c, log) for log in ("audit_log", "access_log")}
    assert capsys.readouterr().out.strip() == (
        f"{db}: intact: audit_log 5 entries (last: entry 5, hash {heads['audit_log'][1]}), "
        f"access_log 5 entries (last: entry 5, hash {heads['access_log'][1]})"
    )

    with cw.engine.begin() as c:  # someone rewrites history: entry 2 was a dismissal by bob, not ann
        c.exec_driver_sql("UPDATE audit_log SET user_name = 'bob' WHERE seq = 2")
    assert main(["verify-audit", "--db", str(db)]) == 1
    out = capsys.readouterr().out.strip()
    assert out == f"{db}: audit_log broken at entry 2: its content was changed after it was written"

    with cw.engine.begin() as c:  # put it back, then delete an access entry in the middle
        c.exec_driver_sql("UPDATE audit_log SET user_name = 'ann' WHERE seq = 2")
        c.exec_driver_sql("DELETE FROM access_log WHERE seq = 3")
    assert main(["verify-audit", "--db", str(db)]) == 1
    assert "access_log broken at entry 4: entry 3 is missing or out of order" in capsys.readouterr().out


def test_chain_verification_on_plain_rows():
    fields = ("seq", "who", "what")
    rows, last = [], None
    for who in ("ann", "bob", "cy"):
        entry = {"who": who, "what": "view"}
        entry |= audit_chain.link(last, entry, fields)
        rows.append(entry)
        last = (entry["seq"], entry["entry_hash"])
    assert audit_chain.first_broken(rows, fields) == (None, 3, "")
    assert audit_chain.first_broken(rows[1:], fields)[0] == 2  # head cut off without a purge record
    assert audit_chain.first_broken(rows[1:], fields, {1: rows[0]["entry_hash"]}) == (None, 2, "")
    swapped = [rows[0], rows[2], rows[1]]
    assert audit_chain.first_broken(swapped, fields)[0] == 3


def _submission(tmp_path, name, raw, key_file):
    (raw / "manifest.json").write_text((SAMPLES / "valid" / "BANK_A" / "manifest.json").read_text())
    pseudonymise(raw, tmp_path / name, key_file)
    return tmp_path / name


def _alert(cw, alert_id: str, account_id: str) -> None:
    """An alert on `account_id` in the casework database: its account id lives there too."""
    cw.sync_alerts(
        pl.DataFrame({"alert_id": [alert_id], "bank_id": ["B"], "account_id": [account_id]}).with_columns(
            pl.lit(0.5).alias("last_score"), pl.lit(["R"]).alias("rules")
        )
    )


def _bookings_of(db, account_id: str) -> int:
    con = store.connect(db)
    try:
        return con.execute("SELECT count(*) FROM transactions WHERE account_id = ?", [account_id]).fetchall()[0][0]
    finally:
        con.close()


def test_rekey_keeps_links_across_the_rotation(tmp_path, capsys):
    k1, k2, chain = tmp_path / "k1", tmp_path / "k2", tmp_path / "k12"
    k1.write_text("partners-shared-key-0001\n")
    k2.write_text("the-rotated-partners-key-0002\n")
    chain.write_text("partners-shared-key-0001\nthe-rotated-partners-key-0002\n")
    raw = _raw(tmp_path)
    tx = pl.read_csv(raw / "transactions.csv", infer_schema=False)
    (tmp_path / "r2").mkdir()
    shutil.copy(raw / "accounts.csv", tmp_path / "r2" / "accounts.csv")
    tx.tail(25).write_csv(tmp_path / "r2" / "transactions.csv")
    tx.head(25).write_csv(raw / "transactions.csv")
    before = _submission(tmp_path, "o1", raw, k1)
    assert json.loads((before / "manifest.json").read_text())["key_id"] == key_id(k1.read_bytes().strip())
    db = tmp_path / "s.duckdb"
    assert ingest(before, db).outcome == "loaded"
    con = store.connect(db)
    con.execute(
        """INSERT INTO quarantine (submission_id, "column", value, record) VALUES ('q', 'account_id', ?, ?)""",
        [pseudonym("NL91ABNA0417164300", k1.read_bytes().strip()), json.dumps({"account_id": "X", "amount": "1"})],
    )
    con.close()
    first = tx["account_id"][0]  # a decision on an alert: its account id lives in the casework database too
    cw = open_casework(db)
    _alert(cw, "A1", pseudonym(first, k1.read_bytes().strip()))

    assert main(["rekey", "--db", str(db), "--old-key-file", str(k2), "--new-key-file", str(k1)]) == 2
    assert "not the old key given" in capsys.readouterr().err
    out = rekey(db, k1, k2, "dpo")
    assert out["rows"]["transactions"] == 25 and out["new_key_id"] == key_id(k2.read_bytes().strip())

    stale = _submission(tmp_path, "o_stale", tmp_path / "r2", k1)  # a bank still on the old key: refused by name
    res = ingest(stale, db)
    assert res.outcome == "rejected" and "key_id" in res.message
    # found by an integrity sweep: the same submission with the key_id taken out of its manifest loaded, and its
    # bookings replaced the rotated ones under old-key ids that join nothing
    m = json.loads((stale / "manifest.json").read_text())
    del m["key_id"]
    (stale / "manifest.json").write_text(json.dumps(m))
    res = ingest(stale, db)
    assert res.outcome == "rejected" and "since a key rotation, and this submission does not say which key" in res.message
    after = _submission(tmp_path, "o2", tmp_path / "r2", chain)  # banks now use the chain (old, new)
    assert ingest(after, db).outcome == "loaded"

    keys = (b"partners-shared-key-0001", b"the-rotated-partners-key-0002")
    assert cw.statuses()["account_id"].to_list() == [pseudonym(first, keys)] and out["rows"]["casework_alert_status"] == 1
    con = store.connect(db)
    try:
        ids = {r[0] for r in con.execute("SELECT DISTINCT account_id FROM transactions").fetchall()}
        raw_ids = set(tx["account_id"].to_list())
        assert ids == {pseudonym(a, keys) for a in raw_ids}  # before and after the rotation: one id per account
        by_sub = con.execute("SELECT submission_id, list(DISTINCT account_id) FROM transactions GROUP BY 1").fetchall()
        assert len(by_sub) == 2 and set(by_sub[0][1]) & set(by_sub[1][1])  # the same accounts in both submissions link
        orphans = "SELECT count(*) FROM transactions t ANTI JOIN accounts a USING (bank_id, account_id)"
        assert con.execute(orphans).fetchall()[0][0] == 0
        value, record = con.execute("SELECT value, record FROM quarantine WHERE submission_id = 'q'").fetchall()[0]
        assert value == pseudonym("NL91ABNA0417164300", keys)
        assert json.loads(record) == {"account_id": pseudonym("X", (keys[1],)), "amount": "1"}
        assert con.execute("SELECT key_id, previous_key_id FROM key_versions").fetchall() == [(key_id(keys), key_id(keys[0]))]
    finally:
        con.close()
    with pytest.raises(RekeyError, match="the new key is the old key"):
        rekey(db, k2, k2)


def test_rekey_rerun_after_the_store_failed_keys_the_decisions_once(tmp_path, monkeypatch, capsys):
    """The casework database commits its re-keyed account ids just before the store does. When the store's commit
    then fails, the rerun of the same rotation must not apply the new key to those ids a second time (the decision
    would no longer match its account); a casework database not yet re-keyed is re-keyed (the near miss)."""
    from pipelines import casework_db

    k1, k2 = tmp_path / "k1", tmp_path / "k2"
    k1.write_text("partners-shared-key-0001\n")
    k2.write_text("the-rotated-partners-key-0002\n")
    raw = _raw(tmp_path)
    db = tmp_path / "s.duckdb"
    assert ingest(_submission(tmp_path, "o1", raw, k1), db).outcome == "loaded"
    first = pl.read_csv(raw / "transactions.csv", infer_schema=False)["account_id"][0]
    keys = (b"partners-shared-key-0001", b"the-rotated-partners-key-0002")
    cw = open_casework(db)
    _alert(cw, "A1", pseudonym(first, keys[:1]))
    real = casework_db.Casework.set_account_ids

    def then_the_store_fails(self, ids, key_id=None):
        real(self, ids, key_id)
        raise OSError("disk full")  # after the casework commit, before the store's

    monkeypatch.setattr(casework_db.Casework, "set_account_ids", then_the_store_fails)
    with pytest.raises(OSError, match="disk full"):
        rekey(db, k1, k2)
    con = store.connect(db)
    try:  # the store rolled back: no rotation recorded
        assert con.execute("SELECT count(*) FROM key_versions").fetchall()[0][0] == 0
    finally:
        con.close()
    assert _bookings_of(db, pseudonym(first, keys[:1]))  # still under the old key
    assert cw.statuses()["account_id"].to_list() == [pseudonym(first, keys)]  # the casework part did commit

    # half done: publishing (and scoring) would hand the casework database alerts under the old key; they refuse
    with pytest.raises(HalfRotated, match="a key rotation stopped half way; run `thb-signals rekey` again"):
        snapshot.refresh(db)
    assert main(["score", "--db", str(db), "--out", str(tmp_path / "o")]) == 2
    assert "stopped half way" in capsys.readouterr().err
    k3 = tmp_path / "k3"
    k3.write_text("a-third-partners-key-0003\n")
    with pytest.raises(RekeyError, match="stopped half way; run it again with that key file first"):
        rekey(db, k1, k3)  # another new key instead would key the casework ids twice (under k2, then k3)

    monkeypatch.setattr(casework_db.Casework, "set_account_ids", real)
    out = rekey(db, k1, k2)
    assert cw.statuses()["account_id"].to_list() == [pseudonym(first, keys)]  # keyed once, not twice
    assert out["casework"] == "re-keyed by an earlier run of this rotation" and "casework_alert_status" not in out["rows"]
    snapshot.refresh(db)  # whole again
    assert _bookings_of(db, pseudonym(first, keys))  # the decision's account id is again an account of the store

    _alert(cw, "A2", pseudonym(first, keys))  # near miss: the next rotation is a new key, so the decisions are re-keyed again
    chain = tmp_path / "k12"
    chain.write_text("partners-shared-key-0001\nthe-rotated-partners-key-0002\n")
    out = rekey(db, chain, k3)
    assert out["rows"]["casework_alert_status"] == 2 and "casework" not in out
    three = keys + (b"a-third-partners-key-0003",)
    assert cw.statuses()["account_id"].to_list() == [pseudonym(first, three)] * 2


def test_every_identifier_column_of_the_store_is_rekeyed(tmp_path):
    """A new table holding a contract identifier column must join PSEUDONYM_COLUMNS (or be a log, which keeps its ids)."""
    con = store.connect(tmp_path / "s.duckdb")
    try:
        cols = con.execute("SELECT table_name, column_name FROM information_schema.columns").fetchall()
    finally:
        con.close()
    identifiers = {c for cs in PSEUDONYMISED.values() for c in cs} | {"subject_id", "account_ids"}
    logs = {"audit_log", "access_log"}
    covered = {(t, c) for t, cs in (PSEUDONYM_COLUMNS | LIST_COLUMNS).items() for c in cs}
    emptied = set(EMPTIED_TABLES)  # the nightly run's kept parts: emptied by a rekey, rebuilt by the next run
    missing = {(t, c) for t, c in cols if c in identifiers and t not in logs | emptied and t != "quarantine"} - covered
    assert missing == set()


def test_purge_of_an_old_store_keeps_the_unchained_entries_counted(tmp_path, capsys):
    db = tmp_path / "s.duckdb"
    con = store.connect(db)
    con.execute(
        "INSERT INTO audit_log (event_id, logged_at, user_name, action) VALUES ('e0', ?, 'ann', 'escalate')", [_t("2026-01-01")]
    )
    cw = _casework(con, db)  # the old store's unchained entry moves over as it is
    con.close()
    dispositions.audit(cw, "ann", "escalate", "a1")
    assert main(["verify-audit", "--db", str(db)]) == 0
    assert "audit_log 1 entries (+1 from before the chain)" in capsys.readouterr().out
    now = datetime.now(timezone.utc)
    res = purge(db, parse_settings({}), now + timedelta(days=1), dry_run=True, logs=log_purgers())
    assert res.deleted["audit_log"] == 0


def test_the_weekly_purge_deployment_runs_the_purge_flow(tmp_path):
    import inspect

    import yaml
    from prefect.logging import disable_run_logger

    from pipelines import flows

    deployments = yaml.safe_load((SAMPLES.parent / "prefect.yaml").read_text())["deployments"]
    purge_dep = next(d for d in deployments if d["name"] == "weekly-purge")
    assert purge_dep["entrypoint"] == "pipelines/flows.py:purge_flow" and purge_dep["schedules"][0]["active"]
    assert set(purge_dep["parameters"]) <= set(inspect.signature(flows.purge_flow.fn).parameters)
    db = tmp_path / "s.duckdb"
    con = store.connect(db)
    _fill(con)  # its rows are dated 2025-2031: relative to today only the one below has expired
    con.execute("INSERT INTO quarantine (submission_id, reason, quarantined_at) VALUES ('s', 'old', ?)", [_t("2020-01-01")])
    con.close()
    with disable_run_logger():
        out = flows.purge_flow.fn(str(db), user="flow")
    assert out["deleted"]["quarantine"] == 1 and not out["dry_run"]
    con = store.connect(db)
    try:
        assert con.execute("SELECT user_name FROM purge_log").fetchall() == [("flow",)]
    finally:
        con.close()


def _documented(text: str) -> dict[str, list[str]]:
    documented: dict[str, list[str]] = {}
    table = None
    for line in text.splitlines():
        if m := re.fullmatch(r"## `(\w+)`", line):
            table = documented.setdefault(m.group(1), [])
        elif table is not None and (m := re.match(r"\| `(\w+)` \| (.+?) \|$", line)):
            table.append(m.group(1))
    return documented


def test_the_record_of_processing_lists_every_table_and_column_of_the_store_and_the_casework_database(tmp_path):
    import sqlalchemy

    from pipelines.casework_db import open_casework

    text = (SAMPLES.parent / "docs" / "privacy.md").read_text(encoding="utf-8")
    store_part, casework_part = text.split("\n# The casework database\n")
    con = store.connect(tmp_path / "s.duckdb")
    try:
        rows = con.execute(
            "SELECT table_name, list(column_name ORDER BY ordinal_position) FROM information_schema.columns GROUP BY 1"
        ).fetchall()
    finally:
        con.close()
    inspector = sqlalchemy.inspect(open_casework(tmp_path / "s.duckdb").engine)
    for part, stored in (
        (store_part, {t: list(cols) for t, cols in rows}),
        (casework_part, {t: [c["name"] for c in inspector.get_columns(t)] for t in inspector.get_table_names()}),
    ):
        documented = _documented(part)
        assert sorted(documented) == sorted(stored)
        for t, cols in stored.items():
            assert documented[t] == cols, t
    for section in text.split("\n## ")[1:]:  # each table says where its data comes from, how long and who sees it
        assert all(w in section for w in ("Source:", "Retention:", "Seen by:")), section.splitlines()[0]


def test_the_manifest_names_the_key_by_a_public_id_only():
    from pipelines.submission import SubmissionRejected, check_manifest

    m = json.loads((SAMPLES / "valid" / "BANK_A" / "manifest.json").read_text())
    check_manifest(m | {"key_id": key_id(b"partners-shared-key-0001")})
    with pytest.raises(SubmissionRejected, match="key_id"):
        check_manifest(m | {"key_id": "partners-shared-key-0001"})  # a key pasted where its id belongs is refused


def test_goaml_intake_refuses_a_key_that_is_not_the_stores(tmp_path):
    from pipelines.goaml_intake import ingest_goaml

    db, old, new = tmp_path / "fiu.duckdb", tmp_path / "old", tmp_path / "new"
    old.write_text("partners-shared-key-0001\n")
    new.write_text("partners-shared-key-0001\nthe-rotated-partners-key-0002\n")
    con = store.connect(db)
    con.execute("INSERT INTO key_versions VALUES (?, ?, 'dpo', now(), '{}')", [key_id(read_key(new)), key_id(read_key(old))])
    con.close()
    (tmp_path / "xml").mkdir()
    with pytest.raises(ValueError, match="is not the store's current key"):
        ingest_goaml(tmp_path / "xml", db, old)
    assert ingest_goaml(tmp_path / "xml", db, new).loaded == 0  # the current chain is accepted


def test_a_raw_identifier_in_any_column_is_masked_in_reports_and_quarantine(tmp_path, capsys):
    """Found by a hostile-input sweep: an IBAN typed into booked_at, or an e-mail into currency, fails its column's check
    and was echoed in the validation report and kept in quarantine as is. The id columns refuse such a submission; any
    other column's failure now shows and keeps '[masked]', while an ordinary bad value is shown as it is."""
    import csv
    import hashlib

    sub = tmp_path / "BANK_A"
    shutil.copytree(SAMPLES / "valid" / "BANK_A", sub)
    path = sub / "transactions.csv"
    rows = list(csv.reader(path.open(newline="")))
    head = rows[0]
    rows[5][head.index("booked_at")] = "NL91ABNA0417164300"
    rows[6][head.index("currency")] = "jan@example.com"
    rows[7][head.index("booked_at")] = "not-a-date"  # the near miss
    rows[8][head.index("currency")] = "via DE89370400440532013000"  # one inside text, masked as the page masks it
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    manifest = json.loads((sub / "manifest.json").read_text())
    manifest["files"]["transactions.csv"]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (sub / "manifest.json").write_text(json.dumps(manifest))
    assert main(["validate", str(sub), "--report", str(tmp_path / "r.html")]) == 1
    shown = capsys.readouterr().out + (tmp_path / "r.html").read_text()
    assert "NL91ABNA0417164300" not in shown and "jan@example.com" not in shown
    assert "'[masked]'" in shown and "not-a-date" in shown and "DE8937040044" not in shown and "via [masked]" in shown
    db = tmp_path / "s.duckdb"
    assert ingest(sub, db).outcome == "loaded_with_quarantine"
    con = store.connect(db)
    try:
        kept = con.execute('SELECT "column", value, CAST(record AS VARCHAR) FROM quarantine ORDER BY "row"').fetchall()
    finally:
        con.close()
    assert [(c, v) for c, v, _ in kept] == [
        ("booked_at", "[masked]"),
        ("currency", "[masked]"),
        ("booked_at", "not-a-date"),
        ("currency", "via [masked]"),
    ]
    assert not any(raw in r for _, _, r in kept for raw in ("NL91ABNA", "example.com", "DE8937"))
    assert '"not-a-date"' in kept[2][2]


@pytest.mark.parametrize(
    "text, shown",
    [
        ("row 2 '2025-01-01T10:00:00+01:00'", "row 2 '2025-01-01T10:00:00+01:00'"),
        ("booked 2026-09-01 10:00 and 2026-09-02", "booked 2026-09-01 10:00 and 2026-09-02"),
        ('"account_id":"06d0f68771e5d1234567890df1234567"', '"account_id":"06d0f68771e5d1234567890df1234567"'),
        ("already loaded as BANK_A-20261202T043828163151", "already loaded as BANK_A-20261202T043828163151"),
        ("call 06-12345678 or 0031 6 1234 5678", "call [masked] or [masked]"),
        ("+31612345678 on 2026-01-02", "[masked] on 2026-01-02"),
        ("via NL91 ABNA 0417 1643 00, jan@example.com", "via [masked], [masked]"),
        # forms a review of the first fix found unmasked: a phone or lower-case IBAN inside a word, odd separators
        ("iban nl91abna0417164300", "iban nl91abna[masked]"),
        ("de89370400440532013000", "de[masked]"),
        ("tel0612345678 and phone_0612345678", "tel[masked] and phone_[masked]"),
        ("call 06 - 12345678 or 06  1234 5678", "call [masked] or [masked]"),
        ("jan.2001-02-03@example.com", "[masked]"),
        ("0612-11-2345678", "[masked]"),
        # forms a sweep of the review site found unmasked: no-break spaces, dots and dashes between groups, brackets
        (
            "NL91\u00a0ABNA\u00a00417\u00a01643\u00a000, tel 06.12.34.56.78 / 06\u00a012345678",
            "[masked], tel [masked] / [masked]",
        ),
        ("NL91.ABNA.0417.1643.00 or NL91-ABNA-0417-1643-00", "[masked] or [masked]"),
        ("+1 (555) 123-4567, (020) 123 4567", "[masked], [masked]"),
        # a review: the IPv4 keep step let dotted four-group numbers by; thin and zero-width spaces between groups
        ("02.123.45.67 or bel 020.123.45.67", "[masked] or bel [masked]"),
        ("NL91\u2009ABNA\u20090417\u20091643\u200900 and 06\u200b12345678", "[masked] and [masked]"),
        # a case as investigators name it is kept, also when ten of its hex digits are digits
        ("case C-c2430014943f: ask", "case C-c2430014943f: ask"),
        # a network address in a URL or with a port, an amount and a dotted number below ten digits stay
        (
            "no scheduler at tcp://192.168.100.200:8786; EUR 1.000.000 and 1234.56",
            "no scheduler at tcp://192.168.100.200:8786; EUR 1.000.000 and 1234.56",
        ),
        # the product's own ids are kept: run, alert and screening ids whose hex part is all digits, booking ids
        ("in case C-run-20261202T043828-123456-00001", "in case C-run-20261202T043828-123456-00001"),
        ("screen-20261202T043828163151-123456, BANK_A-T000000009", "screen-20261202T043828163151-123456, BANK_A-T000000009"),
    ],
)
def test_masking_keeps_days_and_pseudonyms_and_masks_identifiers(tmp_path, text, shown):
    """Found by a walk through the README: the phone pattern took any ten digits and dashes, so a day in a failure
    ('[masked]T10:00:00+01:00'), a run of digits inside a pseudonym and a submission id were masked in validation
    output, the quarantine record and status. The product's own days and ids are now kept, and everything else that
    looks like a phone number, IBAN or e-mail address is still masked, wherever it stands. Python and the SQL of
    intake failures mask alike (but for a whole value that is an identifier, which SQL masks whole)."""
    from detectors.scoring import mask_identifiers
    from pipelines.validation import _MACROS, masked_sql

    assert mask_identifiers(text) == shown
    con = duckdb.connect()
    con.execute(_MACROS)
    whole = con.execute(f"SELECT {masked_sql('v')} FROM (SELECT ? AS v)", [text]).fetchone()[0]
    assert whole in (shown, "[masked]") and (whole == shown or "[masked]" in shown)


def test_rekey_refuses_a_new_key_file_that_does_not_continue_the_old_chain(tmp_path, capsys):
    """Found by a hostile-input sweep: a new key file of another key and the new key was taken; its key id is the new
    key's, so banks' submissions under it were accepted and matched no stored account (half the accounts ghosts)."""
    db = tmp_path / "s.duckdb"
    store.connect(db).close()
    old, bad = tmp_path / "k1", tmp_path / "bad"
    old.write_text("partners-shared-key-0001\n")
    bad.write_text("some-other-partners-key-0009\nthe-rotated-partners-key-0002\n")
    assert main(["rekey", "--db", str(db), "--old-key-file", str(old), "--new-key-file", str(bad)]) == 2
    assert "the keys before the new one are not the chain of" in capsys.readouterr().err
