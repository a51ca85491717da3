"""Key rotation: re-key every pseudonym in the store with a new key, keeping every link.

A stored id is the current key chain's HMAC of an identifier (pipelines/pseudonymise.py). Rotating appends a key to
the chain, so the new id of anything is the new key's HMAC of its old id: the store is re-keyed by applying that to
every pseudonym column below, and banks pseudonymising with the longer chain produce the same ids from the raw
identifiers. The same account therefore keeps one id across tables and across submissions before and after the
rotation. The nightly run's kept feature parts are emptied (rebuilt by the next scoring run). Everything runs in DuckDB SQL (the key's pads bound), in one transaction, recorded in `key_versions`.
The casework database's `alert_status.account_id` is re-keyed in the same way (its transaction commits just before
the store's and records the new key's id: if the store's commit then fails, scoring and the review page's refresh
refuse until the rotation is re-run, and the re-run does not re-key those ids twice), and the review snapshot is
published again. The decision and access logs are not rewritten (rewriting
them would break their hash chain); their entries keep the ids of their time, and the alert ids that link them to
alerts do not depend on the key.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from detectors.nightly import CACHE_TABLES, clear
from pipelines import store
from pipelines.casework_db import KEY_META, Casework, open_casework
from pipelines.pseudonymise import key_id, pad_params, read_key, sql_pseudonym
from schemas.contract import PSEUDONYMISED

# Every column of the store that holds a pseudonym (a keyed hash of an identifier), per table. A test checks that
# each contract identifier column of every store table is here, and the record of processing (docs/privacy.md).
PSEUDONYM_COLUMNS: dict[str, tuple[str, ...]] = {
    "transactions": PSEUDONYMISED["transactions"],
    "accounts": PSEUDONYMISED["accounts"],
    "fiu_reports": PSEUDONYMISED["transactions"],
    "alerts": ("account_id",),
    "alert_status": ("account_id",),
    "fiu_theme_hits": ("subject_id",),
    "fiu_subjects": ("subject_id",),
}
LIST_COLUMNS: dict[str, tuple[str, ...]] = {"cases": ("account_ids",)}  # VARCHAR[] of pseudonyms
# Emptied instead of re-keyed: the nightly run's kept feature parts (detectors/nightly.py) hold pseudonyms in a
# generic `value` column too; the next scoring run rebuilds them from the re-keyed bookings.
EMPTIED_TABLES: tuple[str, ...] = CACHE_TABLES
QUARANTINE_ID_COLUMNS = tuple(sorted({c for cols in PSEUDONYMISED.values() for c in cols}))


class RekeyError(ValueError):
    pass


class HalfRotated(RekeyError):
    """The casework database's account ids are under another key than the store's: a rotation stopped between its two
    commits (the casework database's, then the store's)."""


def check_rotation(con: duckdb.DuckDBPyConnection, cw: Casework) -> None:
    """Refuse while a key rotation is half done: a scoring run would match no decision to its account (and raise alerts
    again for accounts already decided), and new alerts handed to the casework database would carry ids under the old
    key that the rotation's re-run, which leaves the casework ids it already re-keyed alone, would not re-key."""
    theirs = cw.meta(KEY_META)
    if theirs is None:
        return
    ours = current_key_id(con)
    if theirs != ours:
        raise HalfRotated(
            f"{cw!r} holds account ids under key {theirs}, the store under key {ours}: a key rotation stopped half way; "
            f"run `thb-signals rekey` again with the same key files (the new key is {theirs}) before anything else"
        )


def current_key_id(con: duckdb.DuckDBPyConnection) -> str | None:
    """The key the store's ids are under: the last rotation's, else the newest submission's that names one."""
    row = con.execute("SELECT key_id FROM key_versions ORDER BY activated_at DESC LIMIT 1").fetchall()
    if row:
        return row[0][0]
    row = con.execute("SELECT key_id FROM submissions WHERE key_id IS NOT NULL ORDER BY loaded_at DESC LIMIT 1").fetchall()
    return row[0][0] if row else None


def _statements() -> list[tuple[str, str]]:
    """(table, UPDATE statement) for every pseudonym in the store; the new key's pads are $ipad/$opad."""
    out = []
    for table, cols in PSEUDONYM_COLUMNS.items():
        sets = ", ".join(f"{col} = {sql_pseudonym(col)}" for col in cols)
        out.append((table, f"UPDATE {table} SET {sets}"))
    for table, cols in LIST_COLUMNS.items():
        sets = ", ".join(f"{col} = list_transform({col}, lambda x: {sql_pseudonym('x', expr='x')})" for col in cols)
        out.append((table, f"UPDATE {table} SET {sets}"))
    # a quarantined row keeps the failing value and the whole record: re-key the id fields of both
    names = ", ".join(f"'{c}'" for c in QUARANTINE_ID_COLUMNS)
    value = sql_pseudonym("value")
    record = "record"
    for c in QUARANTINE_ID_COLUMNS:
        field = f"json_extract_string(record, '$.{c}')"
        patch = f"CASE WHEN {field} IS NULL THEN json('{{}}') ELSE json_object('{c}', {sql_pseudonym(c, expr=field)}) END"
        record = f"json_merge_patch({record}, {patch})"
    out.append(("quarantine", f'UPDATE quarantine SET value = CASE WHEN "column" IN ({names}) THEN {value} ELSE value END'))
    out.append(("quarantine", f"UPDATE quarantine SET record = {record} WHERE record IS NOT NULL"))
    return out


def rekey_store(
    con: duckdb.DuckDBPyConnection, old_key: tuple[bytes, ...], new_key: tuple[bytes, ...], user: str, cw: Casework | None = None
) -> dict:
    """Apply the new key to every stored pseudonym, in one transaction; refuses a store that is not under the old key."""
    old_id, new_id = key_id(old_key), key_id(new_key)
    if old_id == new_id:
        raise RekeyError("the new key is the old key: nothing to rotate")
    found = current_key_id(con)
    if found is not None and found != old_id:
        raise RekeyError(f"the store's ids are under key {found}, not the old key given ({old_id}): use that key's file")
    marker = cw.meta(KEY_META) if cw is not None else None
    if marker is not None and marker not in (found or old_id, new_id):
        raise RekeyError(
            f"{cw!r} holds account ids under key {marker}, the store under key {found or old_id}: a rotation to "
            f"key {marker} stopped half way; run it again with that key file first"
        )
    finished = marker == new_id  # this rotation's casework part committed in an earlier run whose store part failed
    params = pad_params(new_key[-1])
    counts: dict[str, int] = {}
    con.execute("BEGIN TRANSACTION")
    try:
        for table, sql in _statements():
            n = con.execute(sql, params).fetchall()[0][0]
            counts[table] = max(counts.get(table, 0), n)
        counts |= {f"{t} (emptied)": n for t, n in clear(con).items()}
        if cw is not None and not finished:  # the decisions' copy of the account ids, computed by the same SQL
            con.register("cw_ids", cw.statuses().select("alert_id", "account_id").to_arrow())
            try:
                ids = con.execute(
                    f"SELECT alert_id, {sql_pseudonym('account_id')} FROM cw_ids WHERE account_id IS NOT NULL", params
                ).fetchall()
            finally:
                con.unregister("cw_ids")
            counts["casework_alert_status"] = cw.set_account_ids(ids, new_id)
        con.execute("INSERT INTO key_versions VALUES (?, ?, ?, now(), ?)", [new_id, found or old_id, user, json.dumps(counts)])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    out = {"old_key_id": old_id, "new_key_id": new_id, "rows": counts}
    return out | {"casework": "re-keyed by an earlier run of this rotation"} if finished else out


def rekey(db: str | Path, old_key_file: str | Path, new_key_file: str | Path, user: str = "rekey") -> dict:
    """The old key file holds the store's current key (chain); the new key file the chain with the new key last, or
    just the new key. Either way the new key (the last line) is applied."""
    from pipelines import snapshot
    from pipelines.store_lock import exclusive

    old_key, new_key = read_key(old_key_file), read_key(new_key_file)
    if len(new_key) > 1 and new_key[:-1] != old_key:  # banks would pseudonymise with a chain the store is not under
        raise ValueError(
            f"{new_key_file}: the keys before the new one are not the chain of {old_key_file} ({len(old_key)} key(s)); "
            "give the old chain with the new key as its last line, or the new key alone"
        )
    with exclusive(db, "rekey"):
        con = store.connect(db)
        try:
            out = rekey_store(con, old_key, new_key, user, open_casework(db))
            if snapshot.current(db) is not None:  # the page's copy carries the new ids only
                keep = snapshot.publish(con, db)
                snapshot.prune(db, keep={keep.name})
            return out
        finally:
            con.close()
