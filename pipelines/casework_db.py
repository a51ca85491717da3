"""The casework database: investigators' decisions, the audit and access logs, owned by the review page, apart from the store.

DuckDB lets one process at a time write a file (and then nobody else may even read it), so the decisions the page
writes cannot live in the store that the batch holds for minutes. They live here instead: by default an embedded
SQLite file beside the store (`<store>.casework.sqlite`, WAL mode, 0600), or PostgreSQL through a connection URL
(`--casework-url postgresql+psycopg://...`, or THB_CASEWORK_URL) for a multi-user deployment. Both through
SQLAlchemy Core, so one set of statements serves both.

This module is the only code that touches the casework database: connect, create/upgrade the schema, and one
function per read or write. casework/dispositions.py holds the rules (which action applies when); scoring reads
the decisions as a polars table (`Casework.statuses`) and hands back new alerts (`Casework.sync_alerts`).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    type_coerce,
    update,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, OperationalError
from sqlalchemy.pool import StaticPool

SCHEMA_VERSION = 1
META = MetaData()
alert_status = Table(
    "alert_status",
    META,
    Column("alert_id", String(200), primary_key=True),
    Column("bank_id", String(200)),
    Column("account_id", String(200)),
    Column("status", String(40), nullable=False),
    Column("last_score", Float),
    Column("rules", Text),  # JSON list: the alert's latest rules (kept on dismissal, to hold back the same reasons)
    Column("dismiss_reason", String(80)),
    Column("dismissed_score", Float),
    Column("dismissed_rules", Text),  # JSON list
    Column("reported_at", DateTime(timezone=True)),
    Column("report_file", Text),
    Column("updated_at", DateTime(timezone=True)),
    Index("ix_alert_status_bank", "bank_id"),
)
audit_log = Table(
    "audit_log",
    META,
    Column("row_id", Integer, primary_key=True, autoincrement=True),  # storage order (entries moved in unchained too)
    Column("seq", Integer, unique=True),  # the hash chain's order (casework/audit_chain); NULL: from before the chain
    Column("event_id", String(64), unique=True, nullable=False),
    Column("logged_at", DateTime(timezone=True), nullable=False),
    Column("user_name", String(200)),
    Column("action", String(80)),
    Column("alert_id", String(200)),
    Column("bank_id", String(200)),
    Column("account_id", String(200)),
    Column("previous_status", String(40)),
    Column("new_status", String(40)),
    Column("reason", Text),
    Column("note", Text),
    Column("details", Text),  # JSON
    Column("prev_hash", String(64)),
    Column("entry_hash", String(64)),
    Index("ix_audit_alert", "alert_id"),
    Index("ix_audit_bank", "bank_id", "logged_at"),
)
access_log = Table(  # who looked at what (casework/access_log.py): hash-chained like the audit log
    "access_log",
    META,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("logged_at", DateTime(timezone=True), nullable=False),
    Column("user_name", String(200)),
    Column("role", String(40)),
    Column("action", String(40)),
    Column("object_kind", String(40)),
    Column("object_id", Text),
    Column("bank_id", String(200)),
    Column("address", String(100)),
    Column("reason", Text),
    Column("prev_hash", String(64)),
    Column("entry_hash", String(64)),
    Index("ix_access_reveal", "user_name", "object_id", "action"),
    Index("ix_access_logged", "logged_at"),
)
CHAINED = {"audit_log": audit_log, "access_log": access_log}
fiu_decisions = Table(
    "fiu_decisions",
    META,
    Column("event_id", String(64), primary_key=True),
    Column("report_id", String(200), nullable=False),
    Column("decision", String(40)),
    Column("typology", String(80)),
    Column("note", Text),
    Column("user_name", String(200)),
    Column("decided_at", DateTime(timezone=True)),
    Index("ix_fiu_decisions_report", "report_id"),
)
casework_meta = Table("casework_meta", META, Column("key", String(80), primary_key=True), Column("value", Text))


def case_ref(case_id: str, key: str) -> str:
    """A case as investigators name it: case ids name their oldest alert, which may be another bank's, so a bank's
    people see a hash of it keyed with the casework database's secret (casework/review/case_queries.py CASE_REF makes
    the same in SQL)."""
    return "C-" + hashlib.sha256((key + case_id).encode()).hexdigest()[:12]


CASE_REF_META = "case_ref_key"  # casework_meta: the secret behind investigators' case references (Casework.case_ref_key)
KEY_META = "key_id"  # casework_meta: the key (pipelines/pseudonymise.py key_id) the account ids are under, since a rekey
# casework_meta: {"seq", "entry_hash"} of each chained log's last entry as written, so a log cut off at its end (or
# emptied, or dropped and re-created empty on the next open) no longer verifies as intact
HEAD_META = {"audit_log": "audit_log_head", "access_log": "access_log_head"}
# casework_meta: a log found cut back when an entry was written (its number at or below the recorded last one)
CUT_META = {"audit_log": "audit_log_cut", "access_log": "access_log_cut"}
CHAIN_COLUMNS = ("prev_hash", "entry_hash")  # casework/audit_chain's links; every other column is what an entry's hash covers
AUDIT_COLUMNS = tuple(c.name for c in audit_log.columns if c.name != "row_id")
AUDIT_FIELDS = tuple(c for c in AUDIT_COLUMNS if c not in CHAIN_COLUMNS)
ACCESS_COLUMNS = tuple(c.name for c in access_log.columns)
ACCESS_FIELDS = tuple(c for c in ACCESS_COLUMNS if c not in CHAIN_COLUMNS)
STATUS_SCHEMA = {
    "alert_id": pl.Utf8,
    "bank_id": pl.Utf8,
    "account_id": pl.Utf8,
    "status": pl.Utf8,
    "last_score": pl.Float64,
    "dismiss_reason": pl.Utf8,
    "dismissed_score": pl.Float64,
    "dismissed_rules": pl.List(pl.Utf8),
    "reported_at": pl.Datetime("us", "UTC"),
    "report_file": pl.Utf8,
}


def default_path(store_path: str | Path) -> Path:
    return Path(f"{store_path}.casework.sqlite")


def casework_url(store_path: str | Path | None = None, url: str | None = None) -> str:
    """The casework database's URL: the one given, else THB_CASEWORK_URL, else SQLite beside the store."""
    url = url or os.environ.get("THB_CASEWORK_URL")
    if url:
        return url
    if not store_path:
        raise ValueError("the casework database needs a store path (for the SQLite file beside it) or a URL")
    return f"sqlite:///{default_path(store_path)}"


def now() -> datetime:
    return datetime.now(timezone.utc)


def _utc(v):
    """SQLite hands timestamps back naive; they were written in UTC."""
    return v.replace(tzinfo=timezone.utc) if isinstance(v, datetime) and v.tzinfo is None else v


def _time(v) -> datetime | None:
    """A stored logged_at as a UTC datetime, read as SQLAlchemy reads it (ISO text in SQLite); None when it is no time
    (a number, or text that is not ISO), which only a hand edit of the database writes."""
    if isinstance(v, str):
        try:
            v = datetime.fromisoformat(v)
        except ValueError:
            return None
    return _utc(v) if isinstance(v, datetime) else None


def _recorded_head(value: str) -> tuple[int, str] | None:
    """(seq, entry_hash) of a HEAD_META record; None when it cannot be read."""
    try:
        head = json.loads(value)
        return int(head["seq"]), head["entry_hash"]
    except (ValueError, TypeError, KeyError):
        return None


class ChainBroken(ValueError):
    """A chained log broken in a way its hashes cannot show or cannot even be computed for: an entry whose time is not
    a time, a log that ends before the last entry recorded as written. `log`, `seq` (the entry at fault, None when
    unknown) and `why` let verify-audit print its usual line; the message is that line for any other caller."""

    def __init__(self, where: str, log: str, seq: int | None, why: str):
        self.log, self.seq, self.why = log, seq, why
        super().__init__(f"{where}: {log} broken" + (f" at entry {seq}" if seq is not None else "") + f": {why}")


class CaseworkUnavailable(ValueError):
    """The casework database cannot be opened: a URL that is not one, a driver that is missing, a server that does not
    answer. One line for the command line, naming the URL without its password."""


class Casework:
    """One casework database: an engine, its schema made or upgraded on open, and its reads and writes."""

    def __init__(self, url: str):
        self.url = url
        self.sqlite = url.startswith("sqlite")
        path = None
        if url == "sqlite://":  # an empty one in memory (open_casework(create=False)): one connection holds it
            self.engine = create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
        elif self.sqlite:
            path = Path(url.split("///", 1)[1])
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)  # decisions are personal data: owner only, from the start
            os.close(fd)
            os.chmod(path, 0o600)
            self.engine: Engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            try:
                self.engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
            except (ArgumentError, NoSuchModuleError) as e:
                raise CaseworkUnavailable(f"casework database URL {_shown(url)} is not usable: {e}") from None
        try:
            self.upgrade()
        except OperationalError as e:
            raise CaseworkUnavailable(f"cannot open the casework database {_shown(url)}: {str(e.orig).splitlines()[0]}") from None
        if path is not None:
            for extra in ("-wal", "-shm"):
                if Path(f"{path}{extra}").exists():
                    os.chmod(f"{path}{extra}", 0o600)

    def __repr__(self) -> str:
        return f"Casework({self.engine.url.render_as_string(hide_password=True)})"

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def tx(self):
        """One transaction; SQLite takes its write lock at the start (BEGIN IMMEDIATE) so a read-then-write cannot race."""
        with self.engine.connect() as c:
            if self.sqlite:
                c.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                c.begin()
            try:
                yield c
                c.commit()
            except BaseException:
                c.rollback()
                raise

    # ------------------------------------------------------------------ schema
    def upgrade(self) -> None:
        """Create the tables this code needs (an existing database keeps its rows) and record the schema version."""
        try:
            META.create_all(self.engine, checkfirst=True)
        except OperationalError:  # another process (the page, the batch) created them in the same instant
            META.create_all(self.engine, checkfirst=True)
        with self.tx() as c:
            found = c.execute(select(casework_meta.c.value).where(casework_meta.c.key == "schema_version")).scalar()
            if found is not None and int(found) > SCHEMA_VERSION:
                raise RuntimeError(f"casework database {self!r} is at version {found}, newer than this code ({SCHEMA_VERSION})")
            if found is None:
                c.execute(insert(casework_meta).values(key="schema_version", value=str(SCHEMA_VERSION)))

    def meta(self, key: str) -> str | None:
        with self.engine.connect() as c:
            return c.execute(select(casework_meta.c.value).where(casework_meta.c.key == key)).scalar()

    def case_ref(self, case_id: str) -> str:
        """The case as an investigator names it (case_ref)."""
        return case_ref(case_id, self.case_ref_key())

    def case_ref_key(self) -> str:
        """The secret an investigator's case references are made with (made once, kept): with an unkeyed hash anyone
        could try every run and rank and learn which, possibly another bank's, alert a case is named after."""
        for _ in range(2):
            found = self.meta(CASE_REF_META)
            if found:
                return found
            try:
                with self.tx() as c:
                    c.execute(insert(casework_meta).values(key=CASE_REF_META, value=secrets.token_hex(32)))
            except IntegrityError:  # another process made it in the same instant: read theirs
                pass
        return self.meta(CASE_REF_META)

    # ------------------------------------------------------------------ alerts and their decisions
    def state(self, c: Connection, alert_id: str, for_update: bool = False) -> dict | None:
        """One alert's row; `for_update` locks it until the transaction ends (PostgreSQL; SQLite's BEGIN IMMEDIATE
        already holds the whole database), so two decisions on one alert cannot both read the old status."""
        q = select(alert_status).where(alert_status.c.alert_id == alert_id)
        row = c.execute(q.with_for_update() if for_update else q).mappings().first()
        if row is None:
            return None
        out = dict(row)
        out["rules"] = json.loads(out["rules"]) if out["rules"] else []
        return out

    def set_status(self, c: Connection, alert_id: str, **values) -> None:
        if "dismissed_rules" in values and values["dismissed_rules"] is not None:
            values["dismissed_rules"] = json.dumps(list(values["dismissed_rules"]))
        c.execute(update(alert_status).where(alert_status.c.alert_id == alert_id).values(updated_at=now(), **values))

    def add_audit(self, c: Connection, user: str, action: str, link=None, **fields) -> str:
        """One audit entry; `link(last, row)` gives its chain columns (casework/audit_chain via dispositions.audit)."""
        event_id = fields.pop("event_id", None) or uuid.uuid4().hex
        details = fields.pop("details", None)
        row = dict(
            event_id=event_id,
            logged_at=now(),
            user_name=user,
            action=action,
            details=json.dumps(details or {}, default=str),
            **fields,
        )
        self.append(c, "audit_log", row, link)
        return event_id

    # ------------------------------------------------------------------ the hash-chained logs (audit_log, access_log)
    def append(self, c: Connection, log: str, row: dict, link=None) -> dict:
        """Insert one entry at the end of a chained log: `link((seq, entry_hash) of the last entry or None, row)` gives
        its seq/prev_hash/entry_hash. The head is read and written in one transaction that holds the log (SQLite: BEGIN
        IMMEDIATE; PostgreSQL: a table lock), so two writers cannot both chain to the same entry."""
        table = CHAINED[log]
        if not self.sqlite:
            c.exec_driver_sql(f"LOCK TABLE {log} IN SHARE ROW EXCLUSIVE MODE")
        if link is not None:
            row = {**row, **link(self.head(c, log), row)}
        c.execute(insert(table).values(**row))
        if row.get("seq") is not None:
            self._record_head(c, log, row["seq"], row["entry_hash"], purge=row.get("action") == "purge_log")
        return row

    def _record_head(self, c: Connection, log: str, seq: int, entry_hash: str, purge: bool = False) -> None:
        """Keep (seq, entry_hash) of the log's last entry as written (HEAD_META), in the transaction that wrote it. An
        entry numbered at or below the one recorded means the log was cut back since (only a purge that removed every
        entry starts again at 1): that is kept for good (CUT_META), or the next page view would hide the cut."""
        before = self.meta_in(c, HEAD_META[log])
        if before is not None and not purge and not self.meta_in(c, CUT_META[log]):
            last = _recorded_head(before)
            if last is None or last[0] >= int(seq):  # an unreadable record is no proof of the log either
                cut = {"written_up_to": last[0] if last else None, "next": int(seq)}
                c.execute(insert(casework_meta).values(key=CUT_META[log], value=json.dumps(cut)))
        value = json.dumps({"seq": int(seq), "entry_hash": entry_hash})
        key = HEAD_META[log]
        if not c.execute(update(casework_meta).where(casework_meta.c.key == key).values(value=value)).rowcount:
            c.execute(insert(casework_meta).values(key=key, value=value))

    @staticmethod
    def head(c: Connection, log: str) -> tuple[int, str] | None:
        table = CHAINED[log]
        r = c.execute(
            select(table.c.seq, table.c.entry_hash).where(table.c.seq.is_not(None)).order_by(table.c.seq.desc()).limit(1)
        ).first()
        return (int(r[0]), r[1]) if r else None

    def chain(self, log: str) -> tuple[list[dict], int]:
        """A chained log's entries in seq order (every column) and how many entries carry no seq (from before the chain),
        for verify-audit. Raises ChainBroken for what the hashes cannot catch: an entry whose logged_at is not a time
        (read raw, so it is named instead of failing the read), a log that ends before the last entry recorded as
        written (HEAD_META: cut off at its end, emptied, or dropped), and, in a database without that record, an
        empty audit log while alerts carry decisions (every decision writes an entry; a purge leaves one behind)."""
        table = CHAINED[log]
        raw_time = type_coerce(table.c.logged_at, String).label("logged_at")
        columns = [raw_time if col.name == "logged_at" else col for col in table.columns]
        with self.engine.connect() as c:
            rows = [dict(r) for r in c.execute(select(*columns).where(table.c.seq.is_not(None)).order_by(table.c.seq)).mappings()]
            legacy = int(c.execute(select(func.count()).select_from(table).where(table.c.seq.is_(None))).scalar() or 0)
            recorded = self.meta_in(c, HEAD_META[log])
            cut = self.meta_in(c, CUT_META[log])
            decided = 0
            if log == "audit_log" and not rows and not legacy and recorded is None:
                decided = c.execute(
                    select(func.count()).select_from(alert_status).where(alert_status.c.status != "open")
                ).scalar()
        where = f"casework database {self.url.split('///', 1)[1] if self.sqlite else _shown(self.url)}"
        for r in rows:
            r["logged_at"] = _time(r["logged_at"])
            if r["logged_at"] is None:
                raise ChainBroken(where, log, r["seq"], "logged_at is not a time")
        if cut is not None:
            try:
                found = json.loads(cut)
                was, nxt = found.get("written_up_to") or "?", found.get("next")
            except (ValueError, AttributeError):
                was, nxt = "?", None
            raise ChainBroken(where, log, nxt, f"it was cut back: entries up to {was} had been written before this one")
        if recorded is not None:
            self._check_head(where, log, rows, recorded)
        elif decided:
            raise ChainBroken(where, log, 1, f"the log is empty, but {decided} alert(s) carry decisions")
        return rows, legacy

    @staticmethod
    def _check_head(where: str, log: str, rows: list[dict], recorded: str) -> None:
        """The log still reaches the last entry recorded as written, and that entry is the one written."""
        head = _recorded_head(recorded)
        if head is None:
            raise ChainBroken(where, log, None, f"the record of its last entry ({HEAD_META[log]}) is unreadable")
        last_seq, last_hash = head
        by_seq = {r["seq"]: r for r in rows if isinstance(r["seq"], int)}
        top = max(by_seq, default=None)
        if top is None:
            raise ChainBroken(where, log, last_seq, f"the log is empty, but entries up to {last_seq} were written")
        if top < last_seq:
            raise ChainBroken(where, log, top + 1, f"the log ends at entry {top}, but entries up to {last_seq} were written")
        if last_seq in by_seq and by_seq[last_seq]["entry_hash"] != last_hash:
            raise ChainBroken(where, log, last_seq, "its hash is not the one recorded when it was written")

    def delete_before(self, c: Connection, log: str, before: datetime) -> tuple[list[tuple[int, str]], int]:
        """Retention: remove a log's entries logged before `before`; ((seq, entry_hash) of the chained ones, count)."""
        table = CHAINED[log]
        gone = [
            (int(s), h)
            for s, h in c.execute(
                select(table.c.seq, table.c.entry_hash).where(table.c.logged_at < before, table.c.seq.is_not(None))
            ).all()
        ]
        n = c.execute(delete(table).where(table.c.logged_at < before)).rowcount
        return gone, int(n or 0)

    def access_entries(self, limit: int = 500) -> pl.DataFrame:
        """The newest access-log entries first (the auditors' page)."""
        cols = list(ACCESS_FIELDS)
        with self.engine.connect() as c:
            rows = c.execute(select(*(access_log.c[k] for k in cols)).order_by(access_log.c.seq.desc()).limit(int(limit))).all()
        data = {k: [r[i] for r in rows] for i, k in enumerate(cols)}
        data["logged_at"] = [_utc(v) for v in data["logged_at"]]
        schema = {k: pl.Utf8 for k in cols} | {"seq": pl.Int64, "logged_at": pl.Datetime("us", "UTC")}
        return pl.DataFrame(data, schema=schema)

    def revealed_since(self, user: str, object_id: str, since: datetime) -> bool:
        q = select(func.count()).where(
            access_log.c.action == "reveal",
            access_log.c.user_name == user,
            access_log.c.object_id == object_id,
            access_log.c.logged_at >= since,
        )
        with self.engine.connect() as c:
            return bool(c.execute(q).scalar())

    def decisions(self, banks: list[str] | None = None) -> pl.DataFrame:
        """Every alert's current decision with when it was last decided (escalate, dismiss, report_goaml in the audit
        log): alert_id, bank_id, account_id, status, dismiss_reason, decided_at. `banks`: only these banks."""
        last = (
            select(audit_log.c.alert_id, func.max(audit_log.c.logged_at).label("decided_at"))
            .where(audit_log.c.action.in_(("escalate", "dismiss", "report_goaml")))
            .group_by(audit_log.c.alert_id)
            .subquery()
        )
        cols = ("alert_id", "bank_id", "account_id", "status", "dismiss_reason")
        q = select(*(alert_status.c[k] for k in cols), last.c.decided_at).select_from(
            alert_status.outerjoin(last, alert_status.c.alert_id == last.c.alert_id)
        )
        if banks is not None:
            q = q.where(alert_status.c.bank_id.in_(list(banks)))
        with self.engine.connect() as c:
            rows = c.execute(q).all()
        data = {k: [r[i] for r in rows] for i, k in enumerate(cols + ("decided_at",))}
        data["decided_at"] = [_utc(v) for v in data["decided_at"]]
        schema = {k: pl.Utf8 for k in cols} | {"decided_at": pl.Datetime("us", "UTC")}
        return pl.DataFrame(data, schema=schema).sort("bank_id", "account_id", "alert_id")

    def escalators(self, alert_ids: list[str]) -> list[str]:
        """Who made the latest escalation of each of these alerts (distinct names, sorted)."""
        q = (
            select(audit_log.c.alert_id, audit_log.c.user_name)
            .where(audit_log.c.action == "escalate", audit_log.c.alert_id.in_(list(alert_ids)))
            .order_by(audit_log.c.row_id)
        )
        with self.engine.connect() as c:
            latest = {a: u for a, u in c.execute(q).all()}  # later rows overwrite earlier ones
        return sorted(set(latest.values()))

    def status_times(self) -> pl.DataFrame:
        """alert_id, status, updated_at: when each alert's decision last changed (retention counts from it)."""
        with self.engine.connect() as c:
            rows = c.execute(select(alert_status.c.alert_id, alert_status.c.status, alert_status.c.updated_at)).all()
        return pl.DataFrame(
            {"alert_id": [r[0] for r in rows], "status": [r[1] for r in rows], "updated_at": [_utc(r[2]) for r in rows]},
            schema={"alert_id": pl.Utf8, "status": pl.Utf8, "updated_at": pl.Datetime("us", "UTC")},
        )

    def set_account_ids(self, ids: list[tuple[str, str]], key_id: str | None = None) -> int:
        """Key rotation (pipelines/rekey.py): each alert's account id under the new key and, as KEY_META, the id of the
        key they are now under, in one transaction. The store commits after this: should it fail, a re-run of the same
        rotation finds KEY_META already at the new key and does not apply the key to these ids a second time."""
        with self.tx() as c:
            if ids:
                c.execute(
                    update(alert_status)
                    .where(alert_status.c.alert_id == bindparam("b_id"))
                    .values(account_id=bindparam("b_acc")),
                    [{"b_id": a, "b_acc": acc} for a, acc in ids],
                )
            if key_id is not None:
                c.execute(delete(casework_meta).where(casework_meta.c.key == KEY_META))
                c.execute(insert(casework_meta).values(key=KEY_META, value=key_id))
        return len(ids)

    def delete_alerts(self, c: Connection, alert_ids: list[str]) -> int:
        n = 0
        for i in range(0, len(alert_ids), 500):
            n += c.execute(delete(alert_status).where(alert_status.c.alert_id.in_(alert_ids[i : i + 500]))).rowcount or 0
        return n

    def delete_fiu_decisions(self, c: Connection, before: datetime) -> int:
        return int(c.execute(delete(fiu_decisions).where(fiu_decisions.c.decided_at < before)).rowcount or 0)

    def statuses(self, bank_id: str | None = None) -> pl.DataFrame:
        """Every alert's decision state (one bank's with bank_id), as scoring and the page read it."""
        q = select(*(alert_status.c[k] for k in STATUS_SCHEMA))
        if bank_id is not None:
            q = q.where(alert_status.c.bank_id == bank_id)
        with self.engine.connect() as c:
            rows = c.execute(q).all()
        data = {k: [r[i] for r in rows] for i, k in enumerate(STATUS_SCHEMA)}
        data["dismissed_rules"] = [json.loads(v) if v else None for v in data["dismissed_rules"]]
        data["reported_at"] = [_utc(v) for v in data["reported_at"]]
        return pl.DataFrame(data, schema=STATUS_SCHEMA)

    def sync_alerts(self, alerts: pl.DataFrame) -> int:
        """Alerts a scoring run raised or re-scored (alert_id, bank_id, account_id, last_score, rules): new ones start
        'open'; known ones get their latest score and rules, their decision untouched. Returns how many were new."""
        if alerts.is_empty():
            return 0
        rows = alerts.select("alert_id", "bank_id", "account_id", "last_score", "rules").to_dicts()
        with self.tx() as c:
            known = set()
            ids = [r["alert_id"] for r in rows]
            for i in range(0, len(ids), 500):
                known |= set(
                    c.execute(select(alert_status.c.alert_id).where(alert_status.c.alert_id.in_(ids[i : i + 500]))).scalars()
                )
            stamp = now()
            fresh = [
                {**r, "rules": json.dumps(r["rules"] or []), "status": "open", "updated_at": stamp}
                for r in rows
                if r["alert_id"] not in known
            ]
            if fresh:
                c.execute(insert(alert_status), fresh)
            seen = [
                {"b_id": r["alert_id"], "b_score": r["last_score"], "b_rules": json.dumps(r["rules"] or [])}
                for r in rows
                if r["alert_id"] in known
            ]
            if seen:  # one executemany, not a statement per row
                c.execute(
                    update(alert_status)
                    .where(alert_status.c.alert_id == bindparam("b_id"))
                    .values(last_score=bindparam("b_score"), rules=bindparam("b_rules")),
                    seen,
                )
        return len(fresh)

    # ------------------------------------------------------------------ audit log
    def audit_entries(
        self, bank_id: str | None = None, alert_id: str | list[str] | None = None, limit: int = 200
    ) -> pl.DataFrame:
        """The newest entries first, narrowed to one bank and/or one alert. Narrowed to a bank, the FIU's own entries
        (its decisions on reports a bank filed: `fiu_*`) are left out: a bank must not learn what the FIU made of them."""
        cols = ("logged_at", "user_name", "action", "alert_id", "bank_id", "previous_status", "new_status", "reason", "note")
        q = select(*(audit_log.c[k] for k in cols)).order_by(audit_log.c.row_id.desc()).limit(int(limit))
        if bank_id is not None:
            q = q.where(audit_log.c.bank_id == bank_id, ~audit_log.c.action.startswith("fiu_", autoescape=True))
        if isinstance(alert_id, list):  # a case's alerts: their newest entries, not the bank's newest then filtered
            q = q.where(audit_log.c.alert_id.in_(alert_id))
        elif alert_id is not None:
            q = q.where(audit_log.c.alert_id == alert_id)
        with self.engine.connect() as c:
            rows = c.execute(q).all()
        schema = {k: pl.Utf8 for k in cols} | {"logged_at": pl.Datetime("us", "UTC")}
        data = {k: [r[i] for r in rows] for i, k in enumerate(cols)}
        data["logged_at"] = [_utc(v) for v in data["logged_at"]]
        return pl.DataFrame(data, schema=schema)

    def audit_rows(self) -> pl.DataFrame:
        """The whole log in the order written (every column): for tests, exports and the hash chain."""
        with self.engine.connect() as c:
            rows = c.execute(select(*(audit_log.c[k] for k in AUDIT_COLUMNS)).order_by(audit_log.c.row_id)).all()
        data = {k: [r[i] for r in rows] for i, k in enumerate(AUDIT_COLUMNS)}
        data["logged_at"] = [_utc(v) for v in data["logged_at"]]
        schema = {k: pl.Utf8 for k in AUDIT_COLUMNS} | {"seq": pl.Int64, "logged_at": pl.Datetime("us", "UTC")}
        return pl.DataFrame(data, schema=schema)

    # ------------------------------------------------------------------ FIU decisions
    def latest_fiu_decision(self, c: Connection, report_id: str, for_update: bool = False) -> str | None:
        """The report's standing decision; `for_update` holds FIU decisions until the transaction ends (PostgreSQL: a table
        lock that readers pass; SQLite's BEGIN IMMEDIATE already holds the database), so two analysts deciding one report
        at once are taken one after the other and each audit entry names the decision it superseded."""
        if for_update and not self.sqlite:
            c.exec_driver_sql("LOCK TABLE fiu_decisions IN SHARE ROW EXCLUSIVE MODE")
        q = (
            select(fiu_decisions.c.decision)
            .where(fiu_decisions.c.report_id == report_id)
            .order_by(fiu_decisions.c.decided_at.desc())
            .limit(1)
        )
        return c.execute(q).scalar()

    def add_fiu_decision(self, c: Connection, event_id: str, report_id: str, decision: str, typology, note, user: str) -> None:
        c.execute(
            insert(fiu_decisions).values(
                event_id=event_id,
                report_id=report_id,
                decision=decision,
                typology=typology,
                note=note,
                user_name=user,
                decided_at=now(),
            )
        )

    def fiu_decisions(self) -> pl.DataFrame:
        cols = ("event_id", "report_id", "decision", "typology", "note", "user_name", "decided_at")
        with self.engine.connect() as c:
            rows = c.execute(select(*(fiu_decisions.c[k] for k in cols))).all()
        data = {k: [r[i] for r in rows] for i, k in enumerate(cols)}
        data["decided_at"] = [_utc(v) for v in data["decided_at"]]
        return pl.DataFrame(data, schema={k: pl.Utf8 for k in cols} | {"decided_at": pl.Datetime("us", "UTC")})

    # ------------------------------------------------------------------ the one-time move from the store
    def import_store(self, con) -> dict | None:
        """Move the decisions an older store kept itself (alert_status, audit_log, fiu_decisions) in here, once.
        `con`: a connection to that store. Returns the counts moved, or None when already done."""
        if self.meta("imported_store") is not None:
            return None
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        counts = {"alert_status": 0, "audit_log": 0, "access_log": 0, "fiu_decisions": 0}
        with self.tx() as c:
            if self.meta_in(c, "imported_store") is not None:  # another process did it meanwhile
                return None
            if "alert_status" in tables:
                has_alerts = "alerts" in tables
                rules = (
                    "(SELECT alert_id, arg_max(rules, created_at) AS rules FROM alerts GROUP BY 1)"
                    if has_alerts
                    else "(SELECT NULL::VARCHAR AS alert_id, NULL::VARCHAR[] AS rules)"
                )
                df = con.sql(f"""SELECT s.alert_id, s.bank_id, s.account_id, s.status, s.last_score, a.rules, s.dismiss_reason,
                                        s.dismissed_score, s.dismissed_rules, s.reported_at, s.report_file, s.updated_at
                                 FROM alert_status s LEFT JOIN {rules} a USING (alert_id)""").pl()
                have = set(c.execute(select(alert_status.c.alert_id)).scalars())
                rows = [
                    {
                        **r,
                        "rules": json.dumps(r["rules"] or []),
                        "dismissed_rules": json.dumps(r["dismissed_rules"]) if r["dismissed_rules"] is not None else None,
                    }
                    for r in df.to_dicts()
                    if r["alert_id"] not in have
                ]
                if rows:
                    c.execute(insert(alert_status), rows)
                counts["alert_status"] = len(rows)
            # the logs keep their hash chains as they are (verify-audit checks them here after the move); should this
            # database have begun a chain of its own already, the moved entries come in unchained (counted, kept)
            if "audit_log" in tables:
                df = con.sql("SELECT * FROM audit_log ORDER BY seq NULLS FIRST, logged_at").pl()
                have = set(c.execute(select(audit_log.c.event_id)).scalars())
                chained = self.head(c, "audit_log") is None
                rows = [
                    {
                        **r,
                        "details": r["details"]
                        if isinstance(r["details"], str) or r["details"] is None
                        else json.dumps(r["details"]),
                    }
                    | ({} if chained else {"seq": None, "prev_hash": None, "entry_hash": None})
                    for r in df.select([k for k in AUDIT_COLUMNS if k in df.columns]).to_dicts()
                    if r["event_id"] not in have
                ]
                if rows:
                    c.execute(insert(audit_log), rows)
                counts["audit_log"] = len(rows)
            if "access_log" in tables and self.head(c, "access_log") is None:
                rows = con.sql("SELECT * FROM access_log ORDER BY seq").pl().select(ACCESS_COLUMNS).to_dicts()
                if rows:
                    c.execute(insert(access_log), rows)
                counts["access_log"] = len(rows)
            if "fiu_decisions" in tables:
                df = con.sql("SELECT * FROM fiu_decisions").pl()
                have = set(c.execute(select(fiu_decisions.c.event_id)).scalars())
                rows = [r for r in df.to_dicts() if r["event_id"] not in have]
                if rows:
                    c.execute(insert(fiu_decisions), rows)
                counts["fiu_decisions"] = len(rows)
            for log in CHAINED:  # the moved chains' last entries, as append records its own
                head = self.head(c, log) if counts[log] else None
                if head is not None:
                    self._record_head(c, log, *head)
            c.execute(insert(casework_meta).values(key="imported_store", value=json.dumps({"at": now().isoformat(), **counts})))
        return counts

    @staticmethod
    def meta_in(c: Connection, key: str) -> str | None:
        return c.execute(select(casework_meta.c.value).where(casework_meta.c.key == key)).scalar()

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as c:
            return {
                t.name: c.execute(select(func.count()).select_from(t)).scalar()
                for t in (alert_status, audit_log, access_log, fiu_decisions)
            }


def _sqlite_pragmas(dbapi_con, _record) -> None:
    """WAL: readers never block the writer or each other; a writer waits (busy_timeout) instead of failing at once."""
    cur = dbapi_con.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; WAL keeps the file consistent on a crash
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
    # pysqlite's own transaction handling would defer BEGIN; Casework.tx issues BEGIN IMMEDIATE itself
    dbapi_con.isolation_level = None


_OPEN: dict[str, Casework] = {}


def _shown(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return repr(url[:80])


def open_casework(store_path: str | Path | None = None, url: str | None = None, create: bool = True) -> Casework:
    """The casework database of a store (or at `url`); one engine per URL and process, shared by its threads.
    `create=False` (commands that only read decisions): when the SQLite file beside the store is not there, an empty
    one in memory, so nothing is made on disk (a file made empty after the real one was lost would verify "intact")."""
    u = casework_url(store_path, url)
    if not create and u.startswith("sqlite:///") and not Path(u.split("///", 1)[1]).exists():
        return Casework("sqlite://")
    cw = _OPEN.get(u)
    if cw is None:
        cw = _OPEN[u] = Casework(u)
    return cw
