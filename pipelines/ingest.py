"""Load a validated submission into the DuckDB store, all or nothing.

One transaction per submission: rows that fail a check go to `quarantine` (with the whole
original record, so nothing is lost), the rest replace any earlier rows with the same
(bank_id, txn_id) / (bank_id, account_id), and a `submissions` row records the outcome.
A crash anywhere before COMMIT leaves the store as it was.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from detectors.timing import Stopwatch
from pipelines import store
from pipelines.submission import Submission, SubmissionRejected, manifest_rows, open_submission
from pipelines.validation import Validation, assert_unchanged, drop_staging, masked_sql, quote, run_checks, stage
from schemas import contract


@dataclass
class IngestOutcome:
    path: str
    submission_id: str
    outcome: str  # loaded | loaded_with_quarantine | duplicate | rejected
    message: str = ""
    rows_loaded: dict[str, int] = field(default_factory=dict)
    rows_quarantined: dict[str, int] = field(default_factory=dict)
    rows_replaced: int = 0
    validation: Validation | None = None

    @property
    def accepted(self) -> bool:
        return self.outcome in ("loaded", "loaded_with_quarantine", "duplicate")


def checkpoint(name: str) -> None:
    """A named point inside the load transaction; THB_CRASH_AT=name kills the process there (crash tests)."""
    if os.environ.get("THB_CRASH_AT") == name:
        os._exit(137)


def _submission_id(sub: Submission | None, path: Path) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    bank = (sub.bank_id if sub else None) or path.name
    return f"{bank}-{stamp}"


def _record(
    con,
    sid: str,
    sub: Submission | None,
    path: Path,
    outcome: str,
    message: str,
    rows_in: dict | None = None,
    loaded: int = 0,
    quarantined: int = 0,
    replaced: int = 0,
) -> None:
    period = sub.period if sub else None
    kind = None if sub is None else ("fiu" if sub.fiu else "bank")
    con.execute(
        "INSERT INTO submissions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now(), ?, ?, ?)",
        [
            sid,
            sub.bank_id if sub else None,
            kind,
            period[0] if period else None,
            period[1] if period else None,
            str(path),
            json.dumps(sub.sha256 if sub else {}),
            sub.fingerprint if sub else None,
            json.dumps(rows_in or {}),
            loaded,
            quarantined,
            replaced,
            outcome,
            message,
            (sub.manifest or {}).get("key_id") if sub else None,
        ],
    )


def _load_file(
    con, sid: str, name: str, target: str, cols: tuple[contract.Column, ...], key: tuple[str, ...]
) -> tuple[int, int, int]:
    """Quarantine failing rows of stg_<name>, replace same-key rows in `target`, insert the rest."""
    staged = con.execute(f"DESCRIBE stg_{name}").fetchall()
    record = ", ".join(  # the whole row, as submitted but for a raw identifier in any text column (masked_sql)
        f"{quote(c)} := {masked_sql(f's.{quote(c)}') if t == 'VARCHAR' else f's.{quote(c)}'}" for c, t, *_ in staged
    )
    con.execute(
        f"""INSERT INTO quarantine
        SELECT ?, f.file, f.row, f.check_id, f."column", f.reason, f.value, to_json(struct_pack({record})), now()
        FROM failures f JOIN stg_{name} s ON s.__row = f.row WHERE f.file = ?""",
        [sid, name],
    )
    quarantined = con.execute("SELECT count(DISTINCT row) FROM failures WHERE file = ?", [name]).fetchall()[0][0]
    casts = ", ".join(f"CAST(s.{quote(c.name)} AS {c.sql_type}) AS {quote(c.name)}" for c in cols)
    ok = (
        (
            f"(SELECT {casts} FROM stg_{name} s ANTI JOIN (SELECT DISTINCT row FROM failures WHERE file = $file) b "
            f"ON s.__row = b.row)"
        )
        if quarantined
        else f"(SELECT {casts} FROM stg_{name} s)"
    )
    file = {"file": name} if quarantined else {}
    replaced = 0
    earlier = con.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM {target} WHERE bank_id IN "
        f"(SELECT DISTINCT CAST(bank_id AS VARCHAR) FROM stg_{name}) LIMIT 1)"
    ).fetchone()[0]
    if earlier:  # a resubmission: rows with the same key are replaced
        on = " AND ".join(f"t.{quote(k)} = o.{quote(k)}" for k in key)
        replaced = con.execute(f"DELETE FROM {target} t USING {ok} o WHERE {on}", file).fetchall()[0][0]
    names = ", ".join(quote(c.name) for c in cols)
    con.execute("SET preserve_insertion_order = false")  # the store's row order carries no meaning; about 10% faster
    try:
        loaded = con.execute(
            f"INSERT INTO {target} ({names}, submission_id) SELECT {names}, $sid FROM {ok}", {"sid": sid, **file}
        ).fetchall()[0][0]
    finally:
        con.execute("RESET preserve_insertion_order")
    return loaded, quarantined, replaced


def _load_all(con, sid: str, sub: Submission) -> tuple[dict, dict, int]:
    loaded, quarantined = {}, {}
    if "accounts" in sub.files:
        n, q, _ = _load_file(con, sid, "accounts", "accounts", contract.ACCOUNTS, ("bank_id", "account_id"))
        loaded["accounts"], quarantined["accounts"] = n, q
        checkpoint("after_accounts")
    target = "fiu_reports" if sub.fiu else "transactions"
    n, q, replaced = _load_file(
        con, sid, "transactions", target, contract.columns("transactions", sub.fiu), ("bank_id", "txn_id")
    )
    loaded["transactions"], quarantined["transactions"] = n, q
    checkpoint("after_transactions")
    return loaded, quarantined, replaced


def _miscounted(sub: Submission, rows_in: dict) -> SubmissionRejected | None:
    """The row-count check validation makes (pipelines/validation.py stage), for files already loaded once: their rows
    were counted then, so a resubmission of the same files with a wrong manifest is refused, not filed as a duplicate."""
    for name, file in sub.files.items():
        want, had = manifest_rows(sub, file.name), rows_in.get(name)
        if want is not None and had is not None and want != had:
            return SubmissionRejected(file.name, "row count mismatch", f"manifest says {want} rows, file has {had}")
    return None


def _stale_key(con, sub: Submission) -> str | None:
    """A submission pseudonymised with another key than the store's would not link to anything: refuse it by name."""
    from pipelines.rekey import current_key_id

    theirs, ours = (sub.manifest or {}).get("key_id"), current_key_id(con)
    rotated = con.execute("SELECT count(*) FROM key_versions").fetchone()[0]
    if ours and rotated and not theirs:  # after a rotation, ids made with the old key would load as other accounts
        return (
            f"manifest.json: key_id: the store's ids are under key {ours} since a key rotation, and this submission "
            "does not say which key made its ids (pseudonymise writes it into the manifest)"
        )
    if theirs and ours and theirs != ours:
        return (
            f"manifest.json: key_id: the ids were made with key {theirs}, the store is under key {ours} "
            "(pseudonymise again with the current key file)"
        )
    return None


def ingest(
    path: str | Path,
    db_path: str | Path,
    memory_limit: str | None = None,
    timer: Stopwatch | None = None,
    require_manifest: bool = False,
    progress: Callable[[str], None] | None = None,
) -> IngestOutcome:
    """Validate and load one submission folder into the store at `db_path` (`require_manifest`: refuse one without).
    `progress` hears rows read and checks done as they happen; the timer's `on_stage` gets each stage's time and counts.
    Holds the store's write lock (a scoring run in progress is waited for, bounded)."""
    if not Path(db_path).parent.is_dir():  # the one-line 'no such folder' below, before any lock file is made
        return _ingest(path, db_path, memory_limit, timer, require_manifest, progress)
    with store.exclusive(db_path, "ingest"):
        return _ingest(path, db_path, memory_limit, timer, require_manifest, progress)


def _ingest(path, db_path, memory_limit, timer, require_manifest, progress) -> IngestOutcome:
    path = Path(path)
    timer = timer or Stopwatch()
    con = store.connect(db_path, memory_limit)
    try:
        try:
            sub = open_submission(path, require_manifest)
        except SubmissionRejected as e:
            sid = _submission_id(None, path)
            _record(con, sid, None, path, "rejected", str(e))
            return IngestOutcome(str(path), sid, "rejected", str(e), validation=Validation(Submission(path, {}), fault=e))
        sid = _submission_id(sub, path)
        earlier = con.execute(
            "SELECT submission_id, rows_in FROM submissions s WHERE fingerprint = ? AND outcome LIKE 'loaded%' "
            # a later submission of the bank that replaced rows may have replaced these: then the same files are the
            # bank putting them back (undoing a wrong correction), loaded again like any resubmission
            "AND NOT EXISTS (SELECT 1 FROM submissions c WHERE c.bank_id IS NOT DISTINCT FROM s.bank_id "
            "AND c.loaded_at > s.loaded_at AND c.outcome LIKE 'loaded%' AND c.rows_replaced > 0) "
            "ORDER BY loaded_at LIMIT 1",
            [sub.fingerprint],
        ).fetchone()
        wrong = earlier and _miscounted(sub, json.loads(earlier[1] or "{}"))
        if wrong:  # the files were loaded before, but this manifest miscounts them: the same refusal as a first load's
            _record(con, sid, sub, path, "rejected", str(wrong))
            return IngestOutcome(str(path), sid, "rejected", str(wrong), validation=Validation(sub, fault=wrong))
        if earlier:
            msg = f"identical files were already loaded as {earlier[0]}; nothing loaded again"
            _record(con, sid, sub, path, "duplicate", msg)
            return IngestOutcome(str(path), sid, "duplicate", msg)
        stale = _stale_key(con, sub)
        if stale:
            _record(con, sid, sub, path, "rejected", stale)
            return IngestOutcome(
                str(path),
                sid,
                "rejected",
                stale,
                validation=Validation(sub, fault=SubmissionRejected("manifest.json", "key_id", stale.split(": ", 2)[-1])),
            )
        con.execute("BEGIN TRANSACTION")
        try:
            with timer.stage("validate") as info:
                v = stage(con, sub)
                if progress:
                    progress(
                        f"{path.name}: {sum(v.rows.values()):,} rows read ({', '.join(f'{k} {n:,}' for k, n in v.rows.items())})"
                    )
                run_checks(con, v, progress)
                info.update(rows_read=sum(v.rows.values()), checks=len(v.results), rows_failing=sum(v.rejected_rows.values()))
            with timer.stage("load") as info:
                loaded, quarantined, replaced = _load_all(con, sid, sub)
                info.update(rows_loaded=sum(loaded.values()), rows_quarantined=sum(quarantined.values()))
            total_q = sum(quarantined.values())
            outcome = "loaded_with_quarantine" if total_q else "loaded"
            msg = f"loaded {', '.join(f'{v_} {k}' for k, v_ in loaded.items())}; quarantined {total_q} rows" + (
                f"; replaced {replaced} earlier transactions" if replaced else ""
            )
            assert_unchanged(v)  # a Parquet file is read again by the load: it must still be the file that was checked
            _record(con, sid, sub, path, outcome, msg, v.rows, sum(loaded.values()), total_q, replaced)
            drop_staging(con)
            con.execute("COMMIT")
            return IngestOutcome(str(path), sid, outcome, msg, loaded, quarantined, replaced, v)
        except SubmissionRejected as e:
            con.execute("ROLLBACK")
            _record(con, sid, sub, path, "rejected", str(e))
            return IngestOutcome(str(path), sid, "rejected", str(e), validation=Validation(sub, fault=e))
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.close()
