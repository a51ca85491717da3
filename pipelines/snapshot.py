"""The review page's read-only copy of the store: published whole after each scoring run, switched to atomically.

The page never opens the store (a writing batch would lock it out, and it would lock the batch out). Instead every
scoring run, batch and FIU screening ends by copying what the page shows into a new DuckDB file under
`<store>.snapshots/`: alerts, cases, runs, the scorer's side of alert_status (as `alert_scores`), all accounts,
the bookings of alerted accounts, of those sharing a device with them (the network panel) and of the accounts they
pay or are paid by (the case page's network and proceeds of an unalerted controller), and the FIU screening tables. The file is fsynced, then the small pointer file CURRENT is replaced (write, fsync, os.replace),
so a reader sees the old snapshot or the new one, never half of one. Readers open the current file read_only
(many processes may); snapshots older than the previous one are removed (the previous stays for readers that
read the pointer just before the switch). Decisions are not in the snapshot: the page reads them live from the
casework database (pipelines/casework_db.py).
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from pipelines import store
from pipelines.store_lock import exclusive

POINTER = "CURRENT"
KEEP_DAYS = 731  # bookings sharing a device with an alerted account: as far back as the longest scoring window
COPIED = (
    "alerts",
    "cases",
    "runs",
    "accounts",
    "fiu_reports",
    "fiu_screens",
    "fiu_theme_hits",
    "fiu_subjects",
    "fiu_disseminations",
)


NOT_COPIED = {"alerts": "EXCLUDE (learning_input)"}  # what the re-ranker learns from: the scorer's, not the page's


class NoSnapshot(RuntimeError):
    """The store has not been published for the page yet (score it, or start `serve`, which publishes one)."""


def snapshot_dir(db_path: str | Path) -> Path:
    return Path(f"{db_path}.snapshots")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def current(db_path: str | Path) -> Path | None:
    """The snapshot the pointer names now, or None."""
    d = snapshot_dir(db_path)
    try:
        name = (d / POINTER).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return d / name if name else None


def publish(con: duckdb.DuckDBPyConnection, db_path: str | Path) -> Path:
    """Copy what the page reads from the store (`con`, writable) into a new snapshot and make it the current one."""
    d = store.private_dir(snapshot_dir(db_path))
    name = datetime.now(timezone.utc).strftime("snap-%Y%m%dT%H%M%S%f-") + uuid.uuid4().hex[:8] + ".duckdb"
    path = d / name
    before = current(db_path)
    con.execute("ATTACH ? AS snap", [str(path)])
    try:
        os.chmod(path, 0o600)
        con.execute("BEGIN TRANSACTION")
        for table in COPIED:
            con.execute(f"CREATE TABLE snap.{table} AS SELECT * {NOT_COPIED.get(table, '')} FROM main.{table}")
        con.execute("""CREATE TABLE snap.alert_scores AS
                       SELECT alert_id, bank_id, account_id, opened_run, last_run, last_score, updated_at FROM main.alert_status""")
        con.execute(f"""CREATE TABLE snap.transactions AS
            WITH alerted AS (SELECT DISTINCT bank_id, account_id FROM main.alerts),
                 last AS (SELECT max(booked_at) AS m FROM main.transactions),
                 devices AS (SELECT DISTINCT t.device_id FROM main.transactions t JOIN alerted USING (bank_id, account_id)
                             WHERE t.device_id IS NOT NULL),
                 paid AS (SELECT DISTINCT t.counterparty_id AS account_id FROM main.transactions t
                          JOIN alerted USING (bank_id, account_id)
                          WHERE t.counterparty_id IS NOT NULL AND t.counterparty_type = 'person'
                            AND t.booked_at > (SELECT m FROM last) - INTERVAL {KEEP_DAYS} DAY)
            SELECT t.* FROM main.transactions t
            WHERE EXISTS (SELECT 1 FROM alerted a WHERE a.bank_id = t.bank_id AND a.account_id = t.account_id)
               OR (t.booked_at > (SELECT m FROM last) - INTERVAL {KEEP_DAYS} DAY
                   AND (t.device_id IN (SELECT device_id FROM devices) OR t.account_id IN (SELECT account_id FROM paid)))
               OR t.booked_at = (SELECT m FROM last)""")
        con.execute("CREATE TABLE snap.snapshot_info AS SELECT now() AS published_at, ? AS store", [str(db_path)])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        con.execute("DETACH snap")
        path.unlink(missing_ok=True)
        raise
    con.execute("DETACH snap")
    _fsync(path)
    tmp = d / f".{POINTER}.{uuid.uuid4().hex[:8]}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, name.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, d / POINTER)  # the switch: atomic on POSIX
    _fsync(d)
    prune(db_path, keep={name, before.name if before else ""})
    return path


def prune(db_path: str | Path, keep: set[str]) -> list[Path]:
    """Remove snapshots other than `keep` (the current one and the one before it)."""
    gone = []
    for p in snapshot_dir(db_path).glob("snap-*.duckdb*"):
        if p.name.split(".duckdb")[0] + ".duckdb" not in keep:
            p.unlink(missing_ok=True)
            gone.append(p)
    return gone


def open_current(db_path: str | Path) -> duckdb.DuckDBPyConnection:
    """The current snapshot, read-only. Retries when the file named was removed between reading the pointer and
    opening it (two publishes in that instant)."""
    return open_current_with_path(db_path)[1]


def open_current_with_path(db_path: str | Path) -> tuple[Path, duckdb.DuckDBPyConnection]:
    """open_current, and which file it opened."""
    for attempt in range(5):
        path = current(db_path)
        if path is None:
            raise NoSnapshot(f"store {db_path} has no snapshot for the review page yet: score it (or restart serve)")
        try:
            con = duckdb.connect(str(path), read_only=True)
            con.execute("SET TimeZone = 'UTC'")
            return path, con
        except duckdb.IOException:
            if path.exists() or attempt == 4:
                raise
            time.sleep(0.02)
    raise NoSnapshot(f"store {db_path}: the snapshot kept changing")


def refresh(db_path: str | Path, con: duckdb.DuckDBPyConnection | None = None, casework_url: str | None = None) -> Path:
    """After a run wrote the store: move old decisions into the casework database (once), hand it the run's alerts
    (new ones start open), and publish a snapshot. Holds the store's write lock."""
    from pipelines.casework_db import open_casework
    from pipelines.rekey import check_rotation

    with exclusive(db_path, "publish"):
        own = con is None
        con = con or store.connect(db_path)
        try:
            cw = open_casework(db_path, casework_url)
            check_rotation(con, cw)
            cw.import_store(con)
            cw.sync_alerts(
                con.sql("""SELECT s.alert_id, s.bank_id, s.account_id, s.last_score, a.rules FROM alert_status s
                           LEFT JOIN (SELECT alert_id, arg_max(rules, created_at) AS rules FROM alerts GROUP BY 1) a
                           USING (alert_id)""").pl()
            )
            return publish(con, db_path)
        finally:
            if own:
                con.close()


def ensure(db_path: str | Path, casework_url: str | None = None) -> Path:
    """The current snapshot; publishes the first one for a store scored before snapshots existed."""
    return current(db_path) or refresh(db_path, casework_url=casework_url)


def score_and_publish(
    db_path: str | Path, out_dir: str | Path, config=None, casework_url: str | None = None, casework_today: bool = False, **kw
):
    """A scoring run as the command line and the batch start it: the investigators' decisions read from the casework
    database (a replay, window.as_of: as they stood on that day, unless `casework_today`), the store scored under its
    write lock, then the run's alerts handed to the casework database and a new snapshot published for the page (all
    before the lock is let go)."""
    from detectors.scoring import lock_wait, replay_day, score_store
    from pipelines.casework_as_of import statuses_as_of
    from pipelines.casework_db import open_casework

    with exclusive(db_path, "score", wait=lock_wait(config)):
        cw = open_casework(db_path, casework_url)
        _check_rotation_before_scoring(db_path, cw)
        day = None if casework_today else replay_day(config, kw.get("overrides"))
        decisions = cw.statuses() if day is None else statuses_as_of(cw, day)
        res = score_store(db_path, out_dir, config, decisions=decisions, casework_today=casework_today, **kw)
        refresh(db_path, casework_url=casework_url)
    return res


def _check_rotation_before_scoring(db_path: str | Path, cw) -> None:
    """pipelines/rekey.py check_rotation on the store as it is, read-only (scoring upgrades an older store itself; one
    without the key tables has had no rotation)."""
    from pipelines.rekey import check_rotation

    if not Path(db_path).exists():
        return
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        check_rotation(con, cw)
    except duckdb.CatalogException:
        return
    finally:
        con.close()
