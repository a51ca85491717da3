"""The privacy commands of `thb-signals`: purge (retention), rekey (key rotation), verify-audit (tamper evidence).

Kept apart from pipelines/cli.py so the command line stays one list of commands; like cli.py, an entry point, so it
may hand the casework logs' purge functions to pipelines/purge.py.
"""

from __future__ import annotations

import argparse
import os
import sys


def log_purgers():
    """The logs' own retention functions (the logs live in the casework database; see casework/access_log.py)."""
    from casework.access_log import purge_access
    from casework.dispositions import purge_audit

    return (purge_audit, purge_access)


def _as_of(text: str | None):
    from datetime import datetime, timezone

    if not text:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--as-of {text[:40]!r} is not a date such as 2031-01-31") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def cmd_purge(a) -> int:
    from datetime import datetime, timezone

    from pipelines.cli import UsageError, _settings, _store
    from pipelines.purge import purge

    db = _store(a.db)
    as_of = _as_of(a.as_of)
    today = datetime.now(timezone.utc)
    ahead = as_of is not None and (as_of.date() > today.date() if len(a.as_of) <= 10 else as_of > today)  # a day: any hour of it
    if ahead and not a.dry_run:
        # a purge dated ahead deletes now what the law keeps until then (escalated alerts, the decision log)
        raise UsageError(f"--as-of {a.as_of[:40]} is in the future; purge as of today or earlier, or add --dry-run")
    # purge's --as-of is the purge's "now", not the scoring window's last day (window.as_of takes a day, not a time)
    settings = _settings(argparse.Namespace(**{**vars(a), "as_of": None}))
    res = purge(db, settings, as_of, a.dry_run, a.user, log_purgers(), getattr(a, "casework_url", None))
    print(res.line())
    for name, t in res.cutoffs.items():
        print(f"  {name.removesuffix('_cut')}: before {t:%Y-%m-%d %H:%M} UTC")
    return 0


def cmd_rekey(a) -> int:
    from pipelines.cli import _file, _store
    from pipelines.rekey import RekeyError, rekey

    db = _store(a.db)
    _file(a.old_key_file, "old key file")
    _file(a.new_key_file, "new key file")
    try:
        out = rekey(db, a.old_key_file, a.new_key_file, a.user)
    except RekeyError as e:
        print(f"thb-signals rekey: error: {e}", file=sys.stderr)
        return 2
    rows = ", ".join(f"{t} {n}" for t, n in out["rows"].items() if n)
    print(f"re-keyed {db} from key {out['old_key_id']} to {out['new_key_id']}: {rows or 'no rows'}")
    print("  banks now pseudonymise with the key chain (old key line, then the new key line) in one key file")
    return 0


def cmd_verify_audit(a) -> int:
    """One line: both logs intact, or the first broken entry (exit 1)."""
    from casework.access_log import verify
    from pipelines.casework_db import ChainBroken, default_path, open_casework
    from pipelines.cli import UsageError, _store

    db = _store(a.db)
    url = getattr(a, "casework_url", None) or os.environ.get("THB_CASEWORK_URL")
    if not url and not default_path(db).exists():  # opening it would make an empty one, which would verify "intact"
        raise UsageError(f"no casework database beside the store ({default_path(db)}): nothing to verify")
    cw = open_casework(db, url)
    try:
        results = verify(cw)
        broken = [(name, seq, why) for name, seq, _, _, why in results if seq is not None]
    except ChainBroken as e:  # a time that is no time, a log that ends before its last entry as written
        broken = [(e.log, e.seq, e.why)]
    if broken:
        name, seq, why = broken[0]
        print(f"{a.db}: {name} broken" + (f" at entry {seq}" if seq is not None else "") + f": {why}")
        return 1
    with cw.engine.connect() as c:  # each log's last entry, to copy elsewhere: a log rewritten whole shows there
        heads = {name: cw.head(c, name) for name, *_ in results}
    parts = [
        f"{name} {n} entries"
        + (f" (+{legacy} from before the chain)" if legacy else "")
        + (f" (last: entry {heads[name][0]}, hash {heads[name][1]})" if heads.get(name) else "")
        for name, _, n, legacy, _ in results
    ]
    print(f"{a.db}: intact: {', '.join(parts)}")
    return 0


def add_privacy_commands(command) -> None:
    s = command("purge", "delete what the retention periods no longer allow (retention: in the config)", cmd_purge)
    s.add_argument("--db", required=True, help="an existing store")
    s.add_argument("--config", help="YAML settings; its retention: and window: sections set the periods")
    s.add_argument("--dry-run", action="store_true", help="count what would be deleted; change nothing")
    s.add_argument("--as-of", help="purge as if it were this date (ISO, UTC; default now)")
    s.add_argument("--user", default=os.environ.get("USER", "purge"), help="who purges (purge record, audit log)")

    s = command("rekey", "rotate the pseudonymisation key: re-key every stored pseudonym, keeping links", cmd_rekey)
    s.add_argument("--db", required=True, help="an existing store")
    s.add_argument("--old-key-file", required=True, help="the key (chain) the store's ids are under now")
    s.add_argument("--new-key-file", required=True, help="the new key (its last line is applied)")
    s.add_argument("--user", default=os.environ.get("USER", "rekey"), help="who rotates (key_versions)")

    s = command(
        "verify-audit", "check the hash chains of the audit and access logs; name the first broken entry", cmd_verify_audit
    )
    s.add_argument("--db", required=True, help="an existing store")
