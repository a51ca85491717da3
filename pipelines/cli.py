"""`thb-signals`: the command line. Each command is a thin wrapper over a plain function.

Exit codes: 0 done, 1 a check failed (a submission rejected, a report refused), 2 a usage error (a wrong
path, a malformed file, a locked store). A user error is one line on stderr, never a traceback; `--debug`
shows the traceback. `main()` maps the known exception types to that line; each command checks its own
paths first, so a typo never creates an empty store or an empty inbox.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

DEMO_MARKER = ".thb-signals-demo"  # written into a folder `demo` made, so it only ever empties its own folder


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors exit 2, as documented
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


class UsageError(Exception):
    """A user error: reported as one line, exit 2."""


def _folder(path: str, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{what} {path} does not exist")
    if not p.is_dir():
        raise UsageError(f"{what} {path} is not a folder")
    return p


def _file(path: str | None, what: str) -> Path | None:
    if path is None:
        return None
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{what} {path} does not exist")
    if not p.is_file():
        raise UsageError(f"{what} {path} is not a file")
    return p


def _yaml(path: str | None, what: str) -> Path | None:
    """A YAML file that exists and is a mapping; names the line of a syntax error."""
    import yaml

    from schemas import strict_yaml

    p = _file(path, what)
    if p is None:
        return None
    try:
        data = strict_yaml.load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise UsageError(f"{what} {path} is not UTF-8 text") from e
    except ValueError as e:  # a YAML date that is no day (2026-02-30)
        raise UsageError(f"{what} {path}: {str(e).splitlines()[0]}") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UsageError(f"{what} {path} is not valid YAML{where}: {getattr(e, 'problem', None) or e}") from e
    if data is not None and not isinstance(data, dict):
        raise UsageError(f"{what} {path} must be a YAML mapping (key: value lines), not a {type(data).__name__}")
    return p


def _store(path: str, need: str | None = None) -> str:
    """An existing store (never created by a command that only reads one); `need`: transactions | accounts | alerts."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"store {path} does not exist (check --db; `thb-signals ingest` creates a store)")
    if not p.is_file():
        raise UsageError(f"store {path} is not a file")
    if need:
        from pipelines import store

        con = store.peek(p)
        try:
            tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
            if need == "alerts":  # scored at least once (an empty queue is fine)
                empty = "runs" not in tables or not con.execute("SELECT count(*) FROM runs").fetchone()[0]
            else:
                empty = need not in tables or not con.execute(f"SELECT count(*) FROM {need}").fetchone()[0]
        finally:
            con.close()
        if empty and need == "alerts":
            raise UsageError(f"store {path} has never been scored: run `thb-signals score --db {path} --out <folder>` first")
        if empty:
            raise UsageError(
                f"store {path} holds no {need}: ingest a submission first (`thb-signals ingest <folder> --db {path}`)"
            )
    return str(p)


def _scored_store(path: str) -> str:
    """A store that was scored: one with a published snapshot needs no look inside (a batch may hold it right now)."""
    from pipelines.snapshot import current

    return _store(path) if Path(path).is_file() and current(path) is not None else _store(path, "alerts")


def _lock_holder(pid: int) -> tuple[str, str]:
    """(what kind of process holds a store, what to do about it), from the holder's command line."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        cmd = ""
    if " serve" in cmd:
        return (
            "the review page (thb-signals serve)",
            f"stop it (Ctrl-C in its terminal, or kill {pid}), run this command, then start it again",
        )
    if re.search(r" (batch|run)\b|prefect", cmd):
        return (
            "a batch or scoring run (thb-signals batch/run or a Prefect flow)",
            "wait until it has finished, then run this again",
        )
    if re.search(r" (ingest|score|dispose|export-goaml|identities|purge|rekey)\b", cmd):
        return (
            f"another thb-signals command ({cmd.split('thb-signals', 1)[-1].split()[0] if 'thb-signals' in cmd else 'thb-signals'})",
            "wait until it has finished, then run this again",
        )
    if "duckdb" in cmd.split(" ")[0]:
        return "a DuckDB shell", "close it (.quit), then run this again"
    if cmd:
        return (
            f"another program ({Path(cmd.split(' ')[0]).name})",
            f"close its connection to the store (or stop process {pid}), then run this again",
        )
    return "another process", f"stop process {pid} or wait until it has finished, then run this again"


def _one_line(e: BaseException | str, limit: int = 300) -> str:
    """An error as one line on a terminal: what the user typed comes back without control characters (a newline or
    an escape code in an --alert id), identifier-like strings masked (an IBAN given as an id), and bounded."""
    from detectors.scoring import mask_identifiers

    text = "".join(ch if ch.isprintable() else " " for ch in str(e))
    text = mask_identifiers(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _user_error(e: BaseException) -> str | None:
    """The one line for a known kind of user error; None for anything else (a bug: the traceback is shown)."""
    import duckdb
    import yaml

    from pipelines.snapshot import NoSnapshot
    from pipelines.store_lock import StoreBusy
    from schemas.store import StoreVersionError

    if isinstance(e, (UsageError, StoreVersionError, StoreBusy, NoSnapshot)):
        return str(e)
    if isinstance(e, duckdb.IOException):
        m = re.search(r'lock on file "([^"]+)".*\(PID (\d+)\)', str(e))
        if m:
            kind, todo = _lock_holder(int(m.group(2)))
            return f"store {m.group(1)} is in use by {kind}, PID {m.group(2)}; {todo} (DuckDB lets one process at a time open a store for writing)"
        return "cannot open the store: " + str(e).split("\n")[0].removeprefix("IO Error: ")
    if isinstance(e, duckdb.OutOfMemoryException):
        from pipelines.store import DEFAULT_MEMORY_LIMIT

        first = str(e).split("\n")[0].removeprefix("Out of Memory Error: ")
        return f"DuckDB ran out of memory under its limit (--memory-limit, THB_DUCKDB_MEMORY_LIMIT; default {DEFAULT_MEMORY_LIMIT}): {first}"
    if isinstance(e, FileNotFoundError):
        return f"{e.filename}: no such file or folder" if e.filename else str(e)
    if isinstance(e, OSError):
        return f"{e.filename}: {e.strerror}" if e.filename else str(e)
    import polars as pl

    if isinstance(e, pl.exceptions.PolarsError):  # a file given as Parquet or CSV that is not one
        return "could not read a data file: " + str(e).split("\n")[0]
    if isinstance(e, yaml.YAMLError):
        return f"a YAML file is malformed: {e}".split("\n")[0]
    if isinstance(e, ValueError):  # bad values in a config, a key file, a size or a date
        return str(e).split("\n")[0]
    from sqlalchemy.exc import DatabaseError, IntegrityError, OperationalError, ProgrammingError

    if isinstance(e, RecursionError):  # a YAML or JSON file nested thousands deep (a config, users, identities)
        return "a file given is nested too deeply to read"
    if isinstance(e, (OperationalError, DatabaseError)) and not isinstance(e, (IntegrityError, ProgrammingError)):
        # the casework database: a damaged file, a server that refuses (a constraint or SQL fault is a bug: traceback)
        first = str(getattr(e, "orig", None) or e).split("\n")[0]
        return f"the casework database cannot be used: {first} (DB.casework.sqlite beside the store, or THB_CASEWORK_URL)"
    return None


def cmd_contract(a) -> int:
    from schemas.contract import markdown

    print(markdown())
    return 0


def cmd_validate(a) -> int:
    from pipelines.report import html_report, summary_text
    from pipelines.validation import validate

    _folder(a.submission, "submission")
    if a.report and not Path(a.report).resolve().parent.is_dir():
        raise UsageError(f"--report {a.report}: folder {Path(a.report).parent} does not exist")
    v = validate(a.submission, gx_sample_rows=a.gx_sample_rows, require_manifest=not a.no_manifest)
    print(summary_text(v))
    if a.report:
        Path(a.report).write_text(html_report(v), encoding="utf-8")
        print(f"report written to {a.report}")
    return 0 if v.ok else 1


def cmd_ingest(a) -> int:
    from detectors.timing import Progress
    from pipelines.ingest import ingest
    from pipelines.report import summary_text

    for path in a.submissions:
        _folder(path, "submission")
    _new_store_ok(a.db)
    worst = 0
    progress = Progress(a.quiet)
    for path in a.submissions:
        if _is_goaml(path):  # FIU: a folder of goAML XML reports (needs --key-file)
            worst = max(worst, cmd_ingest_goaml(path, a))
            continue
        out = ingest(
            path,
            a.db,
            a.memory_limit,
            require_manifest=not a.no_manifest,
            timer=progress.stopwatch(f"{Path(path).name}: "),
            progress=progress,
        )
        if out.validation is not None:
            print(summary_text(out.validation))
        print(f"  -> {out.outcome}: {out.message} [{out.submission_id}]")
        worst = max(worst, 0 if out.accepted else 1)
    return worst


def _new_store_ok(db: str) -> None:
    """A store a command may create: its folder must exist, and it must not be a folder itself."""
    p = Path(db)
    if p.is_dir():
        raise UsageError(f"--db {db} is a folder; give the store's file name, e.g. {p / 'thb.duckdb'}")
    if not p.resolve().parent.is_dir():
        raise UsageError(f"--db {db}: folder {p.parent} does not exist")


def cmd_pseudonymise(a) -> int:
    import json

    from pipelines.pseudonymise import pseudonymise

    _folder(a.raw_dir, "raw extract folder")
    _file(a.key_file, "key file")
    if Path(a.out_dir).resolve() == Path(a.raw_dir).resolve():
        raise UsageError("out_dir must differ from raw_dir: the raw files would be overwritten")
    rows = pseudonymise(a.raw_dir, a.out_dir, a.key_file)
    for name, n in rows.items():
        print(f"{name}: {n} rows pseudonymised -> {Path(a.out_dir) / name}")
    manifest = Path(a.out_dir) / "manifest.json"
    if manifest.exists():
        m = json.loads(manifest.read_text(encoding="utf-8"))
        came = "as in the raw folder's" if (Path(a.raw_dir) / "manifest.json").exists() else "from the data"
        print(f"manifest.json: bank {m['bank_id']}, period {m['period_start']}..{m['period_end']} ({came}) -> {manifest}")
    else:
        print(
            "no manifest.json written: the raw folder has none and the files do not hold exactly one bank with booking "
            "times; write one (docs/contract.md) or submit with --no-manifest"
        )
    return 0


def cmd_generate(a) -> int:
    if a.fiu and a.stream_life:
        raise UsageError("--stream-life is for bank extracts; an FIU extract (--fiu) has no stream mode")
    if Path(a.out_dir).is_dir() and any(Path(a.out_dir).iterdir()):  # an earlier run's banks would stay beside the new ones
        raise UsageError(f"{a.out_dir} is not empty: generate writes into a new or empty folder")
    if a.fiu:
        return cmd_generate_fiu(a)
    from detectors.timing import Progress
    from synthetic.generate import generate

    info = generate(
        a.out_dir,
        accounts=a.accounts,
        days=a.days,
        banks=a.banks,
        seed=a.seed,
        fmt=a.format,
        end=a.end,
        family=a.family,
        progress=Progress(a.quiet),
        stream_life=a.stream_life or 0,
    )
    for bank, n in info["transactions"].items():
        print(f"{bank}: {n} transactions, {info['accounts'][bank]} accounts -> {Path(a.out_dir) / bank}")
    print(f"labels: {info['labels']} rows -> {Path(a.out_dir) / 'labels.parquet'}")
    return 0


def cmd_evaluate(a) -> int:
    import json

    from synthetic.evaluate import EvaluationError, evaluate, format_table

    if a.subjects:
        return cmd_evaluate_subjects(a)
    try:
        m = evaluate(a.alerts, a.labels, accounts_scored=a.accounts_scored)
    except EvaluationError as e:
        print(f"thb-signals evaluate: {e}", file=sys.stderr)
        return 2
    print(json.dumps(m, indent=2) if a.json else format_table(m))
    return 0


def _settings(a):
    """The typed settings of the --config file (defaults without one), flags over the file; one clear line when wrong."""
    from detectors.settings_check import checked_settings

    config = getattr(a, "config", None)
    _yaml(config, "config")
    # every check now, naming the file, not after a run has loaded its submissions
    return checked_settings(config, **{"window.days": getattr(a, "window_days", None), "window.as_of": getattr(a, "as_of", None)})


def cmd_score(a) -> int:
    from detectors.fusion import budget_lines
    from detectors.timing import Progress
    from pipelines.report import print_alerts
    from pipelines.snapshot import score_and_publish
    from pipelines.store_lock import exclusive

    settings = _settings(a)
    _store(a.db)
    with exclusive(a.db, "score", wait=settings.store.lock_wait_seconds):  # wait for a batch before even peeking
        _store(a.db, "transactions")
        if a.shards > 1 or a.dask_address:  # sharded scoring: the shards as Prefect tasks on Dask (pipelines/sharded.py)
            from pipelines.sharded import score_on_dask

            res = score_on_dask(
                a.db,
                a.out,
                a.shards,
                a.dask_address,
                a.workers,
                config=settings,
                models=a.models,
                refit=a.refit,
                mode=a.mode,
                shard_dir=a.shard_dir,
                memory_limit=a.memory_limit,
            )
        else:
            res = score_and_publish(
                a.db,
                a.out,
                settings,
                models_dir=a.models,
                refit=a.refit,
                mode=a.mode,
                memory_limit=a.memory_limit,
                timer=Progress(a.quiet).stopwatch("score "),
            )
    print(
        f"run {res.run_id}: window {res.window_start:%Y-%m-%d} .. {res.window_end:%Y-%m-%d}, {res.accounts_scored} accounts scored, "
        f"{res.alerts.height} alerts ({int((res.alerts['status'] == 'new').sum()) if res.alerts.height else 0} new); "
        f"rules {res.rule_set_hash}, model {res.model_version}"
    )
    for line in res.warnings:
        print(line, file=sys.stderr)
    for line in budget_lines(res.budget_cut):
        print(line)
    print(f"alerts written to {res.files['parquet']} and {res.files['csv']}\n")
    print_alerts(res.alerts, a.top)
    return 0


def cmd_run(a) -> int:
    """Ingest every submission (a rejected one does not stop the others), then score what is loaded.
    By default as the Prefect flow `run`, in-process (no server needed); --no-prefect runs the plain functions."""
    for path in a.submissions:
        _folder(path, "submission")
    _settings(a)  # fail fast on a bad config (the file read and checked), before anything is loaded
    if a.no_prefect:
        rc = cmd_ingest(a)
        if rc:
            print("some submissions were rejected (see above); scoring what is loaded", file=sys.stderr)
        return cmd_score(a) or rc
    from pipelines.flows import run_flow

    _new_store_ok(a.db)
    res = run_flow(
        [str(p) for p in a.submissions],
        a.db,
        a.out,
        config=a.config,
        mode=a.mode,
        require_manifest=not a.no_manifest,
        window_days=a.window_days,
        as_of=a.as_of.isoformat() if a.as_of else None,
        shards=a.shards,
        dask_address=a.dask_address,
    )
    return _print_flow_result(res, a.top)


def _print_flow_result(res: dict, top: int) -> int:
    for s in res["submissions"]:
        print(
            f"{Path(s['path']).name}: {s['outcome']}: {s['message']}"
            + (f" (filed as {s['filed_as']})" if s.get("filed_as") else "")
        )
    sc = res["score"]
    if sc:
        print(f"\nrun {sc['run_id']}: {sc['alerts']} alerts ({sc['new']} new) -> {sc['files']['parquet']}")
        for line in sc.get("warnings", []):
            print(line, file=sys.stderr if line.startswith("WARNING") else sys.stdout)
        print()
        for row in sc["top"][:top]:
            print(f"{row['rank']:>4}  {row['score']:.3f}  {row['typology']:<22} {row['reasons'][:140]}")
    return 0 if all(s["accepted"] for s in res["submissions"]) else 1


def cmd_batch(a) -> int:
    _folder(a.inbox, "inbox")
    from pipelines.batch import PROCESSED, REJECTED

    for sub in (PROCESSED, REJECTED):  # where submissions are filed: checked before any is loaded, not after
        if (Path(a.inbox) / sub).exists() and not (Path(a.inbox) / sub).is_dir():
            raise UsageError(f"{Path(a.inbox) / sub} is a file: the batch files submissions into a folder of that name")
    _settings(a)  # every check of the config before any submission is loaded
    _new_store_ok(a.db)
    from pipelines.flows import batch_scoring_flow

    res = batch_scoring_flow(a.inbox, a.db, a.out, config=a.config, require_manifest=not a.no_manifest)
    return _print_flow_result(res, a.top)


def cmd_rules(a) -> int:
    """Every rule an analyst can tune: id, typology, indicators, severity, parameters, description; the laundering
    patterns (PT_*) too, which the config tunes and disables like rules."""
    from detectors.patterns import PATTERNS
    from detectors.rules import RULES

    if getattr(a, "stats", False):
        return cmd_rule_stats(a)

    for r in [*RULES, *PATTERNS]:
        params = ", ".join(f"{k}={v}" for k, v in r.params.items())
        print(
            f"{r.id:<28} {r.typology:<22} sev {r.severity}  [{', '.join(r.indicators)}]\n"
            f"    {r.description}\n    parameters: {params or '-'}"
        )
    return 0


def cmd_dispose(a) -> int:
    """An investigator's decision on one alert from the command line (the review page does the same)."""
    from casework.dispositions import DispositionError, record_disposition
    from pipelines import snapshot
    from pipelines.casework_db import open_casework

    if a.reason and a.action != "dismiss":  # it would not be kept: said now, not dropped in silence
        raise UsageError(f"--reason is for --action dismiss, not {a.action}")
    snapshot.ensure(_scored_store(a.db))  # an older store's decisions move to the casework database first
    try:
        out = record_disposition(open_casework(a.db), a.alert, a.action, a.user, a.reason, a.note)
    except DispositionError as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    print(f"{a.alert}: {out['previous_status']} -> {out['status']} (by {a.user})")
    return 0


def cmd_export_goaml(a) -> int:
    """goAML XML for escalated alerts; names files and refusals, never the identities inside them."""
    from casework.goaml import ExportError, GoamlExporter

    _scored_store(a.db)
    _file(a.identities, "identities file")
    entity = _settings(a).goaml.entity()
    try:
        exporter = GoamlExporter(a.db, a.identities, entity)
        written, refused = exporter.export(a.out, a.user, alert=a.alert, case=a.case, escalated=a.escalated)
    except ExportError as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    for p in written:
        print(f"wrote {p} (validated against goAML 5.0.2)")
    if not written and not refused:
        print("nothing to export: no escalated alerts")
    for r in refused:
        print(f"not written: {r}", file=sys.stderr)
    return 1 if refused else 0


def cmd_identities(a) -> int:
    from synthetic.identities import write_identities

    _store(a.db, "accounts")
    print(f"wrote {write_identities(a.db, a.out)} (invented identities for a synthetic store)")
    return 0


def serve_secure_cookies(host: str, asked: bool | None) -> bool:
    """Secure cookies unless asked otherwise or served on loopback only (a non-loopback host sits behind a TLS proxy)."""
    if asked is not None:
        return asked
    import ipaddress

    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def cmd_serve(a) -> int:
    """The investigators' review page over the store (loopback by default)."""
    import uvicorn

    from casework.review.app import Review
    from casework.review.auth import UsersError, load_users

    _scored_store(a.db)
    _yaml(a.users, "users file")
    entity = _settings(a).goaml.entity()
    if a.identities:
        _file(a.identities, "identities file")
    try:
        users = load_users(a.users)
    except (UsersError, OSError) as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    exporter = None
    if a.identities:
        from casework.goaml import ExportError, GoamlExporter

        try:
            exporter = GoamlExporter(a.db, a.identities, entity)
        except ExportError as e:
            print(f"error: {_one_line(e)}", file=sys.stderr)
            return 2
    secure = serve_secure_cookies(a.host, a.secure_cookies)
    app = Review(a.db, users, exporter, a.goaml_out, secure_cookies=secure).app()
    print(
        f"review page on http://{a.host}:{a.port}/ ({len(users)} users; cookies {'Secure, for a TLS proxy' if secure else 'not Secure'})"
    )
    # a client's address is where the connection comes from, unless --proxy names the TLS proxy in front: any client
    # could otherwise write X-Forwarded-For, and the access log and the per-address login throttle would believe it
    proxy = {"proxy_headers": True, "forwarded_allow_ips": a.proxy} if a.proxy else {"proxy_headers": False}
    uvicorn.run(app, host=a.host, port=a.port, log_level="warning", **proxy)
    return 0


def cmd_hash_password(a) -> int:
    import getpass

    from casework.review.auth import hash_password

    try:
        pw = os.environ.get("THB_PASSWORD") or getpass.getpass("password: ")
    except EOFError:  # no terminal and no THB_PASSWORD (stdin closed or /dev/null)
        pw = ""
    if not pw.strip():
        raise UsageError("the password is empty; give one (THB_PASSWORD or at the prompt)")
    print(hash_password(pw))
    return 0


def cmd_bench(a) -> int:
    from detectors.timing import Progress
    from synthetic.bench import HEADER, bench, parse_size

    try:
        sizes = [parse_size(x) for x in a.sizes.split(",")]
    except ValueError as e:
        raise UsageError(f"--sizes: {e}") from None
    print(HEADER)
    rep = bench(sizes, Path(a.out), reps=a.reps, memory_limit=a.memory_limit, progress=Progress(a.quiet), nightly=a.nightly)
    if a.nightly:  # the nightly run: detectors/nightly.py, synthetic/bench.py
        from synthetic.bench import NIGHTLY_HEADER, nightly_row

        print("\nnightly run (one day ingested, the window scored from the kept parts):\n" + NIGHTLY_HEADER)
        for e in rep["sizes"]:
            print(nightly_row(e))
    if "scaling" in rep:
        sc = rep["scaling"]
        print(f"\ntime x{sc['time_ratio']} for {sc['size_ratio']}x the transactions ({sc['from']:,} -> {sc['to']:,})")
    print(f"machine: {rep['machine']['cores']} cores, {rep['machine']['memory_gib']} GiB; figures in {rep['path']}")
    return 0


def cmd_loadtest(a) -> int:
    """Investigators on the review page while a batch ingests and scores (loopback only); exit 1 unless all held."""
    from synthetic.load_test import main_json, passed, run_load_test, summary

    r = run_load_test(a.work, investigators=a.investigators, accounts=a.accounts, days=a.days, max_requests=a.max_requests)
    print(main_json(r) if a.json else summary(r))
    for f in r["failures"]:
        print(f"failed: {f}", file=sys.stderr)
    if r["batch_tail"]:
        print(f"batch: {r['batch_tail']}", file=sys.stderr)
    return 0 if passed(r) else 1


def cmd_status(a) -> int:
    """What ran, what was loaded, what is open, what waits in the inbox; read-only, one line if the store is busy."""
    import duckdb

    from pipelines.status import StoreBusy, format_status, store_status

    try:
        print(format_status(store_status(a.db, a.inbox, a.runs)))
    except (StoreBusy, FileNotFoundError) as e:
        print(f"thb-signals status: {e}", file=sys.stderr)
        return 1
    except duckdb.Error as e:  # not a DuckDB file, or one from a newer DuckDB
        print(f"thb-signals status: {a.db}: cannot be read as a store: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    return 0


def cmd_demo(a) -> int:
    """The README's first command: load the shipped sample extracts and show what was loaded."""
    import shutil

    from pipelines.demo import run_demo

    out = Path(a.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {a.out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / DEMO_MARKER).exists():
        raise UsageError(f"--out {a.out} is a folder the demo did not make and it is not empty; give a new or empty folder")
    if (out / DEMO_MARKER).exists():
        shutil.rmtree(out)  # the demo's own earlier output
    out.mkdir(parents=True, exist_ok=True)
    (out / DEMO_MARKER).write_text("made by `thb-signals demo`; the demo empties this folder when it runs again\n")
    return run_demo(out)


# ---- FIU workflow: screen themes over reports, decide, disseminate (casework/fiu) ----------------------------------------


def cmd_generate_fiu(a) -> int:
    from synthetic.fiu import generate_fiu

    if a.days < 41:  # the planted networks run over the last 40 days ("high <= 0" from numpy)
        raise UsageError(f"--days {a.days}: an FIU extract needs at least 41 days")

    info = generate_fiu(a.out_dir, reports=a.reports, networks=a.networks, seed=a.seed, end=a.end, days=a.days, fmt=a.format)
    print(
        f"FIU extract: {info['reports']} reports from {info['entities']} reporting entities, {info['accounts']} accounts -> {info['folder']}"
    )
    print(f"labels: {info['labelled_subjects']} subjects in {info['networks']} planted networks -> {info['labels']}")
    return 0


def cmd_evaluate_subjects(a) -> int:
    import json

    from synthetic.evaluate import EvaluationError, evaluate_subjects

    try:
        m = evaluate_subjects(a.subjects, a.labels)
    except EvaluationError as e:
        print(f"thb-signals evaluate: {e}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(m, indent=2))
    else:
        for k, v in m.items():
            print(f"{k:<34} {v}")
    return 0


def cmd_screen(a) -> int:
    from casework.fiu.screen import ScreenError, check_screening, parse_period, screen

    try:
        start, end = parse_period(a.period)
    except ScreenError as e:
        print(f"thb-signals screen: {e}", file=sys.stderr)
        return 2
    if not Path(a.db).exists():
        print(f"thb-signals screen: no store at {a.db}", file=sys.stderr)
        return 2
    for folder in a.themes or []:  # refused before a screening is recorded, not reported after it
        _folder(folder, "--themes folder")
    _store(a.db, "fiu_reports")  # a bank's store or another DuckDB file would get an empty screening and FIU tables
    try:
        check_screening(a.db, start, end, a.themes)  # the flow refuses the same
    except ScreenError as e:
        raise UsageError(str(e)) from None
    from pipelines.snapshot import refresh
    from pipelines.store_lock import exclusive

    with exclusive(a.db, "screen"):
        res = screen(a.db, start, end, a.themes, a.out)
        refresh(a.db)  # the FIU pages read the screening from the published snapshot
    for line in res.theme_errors:
        print(f"not run: {line}", file=sys.stderr)
    s = res.subjects
    hit = int((s["themes"].list.len() > 0).sum()) if s.height else 0
    print(
        f"{res.screen_id}: {res.reports} reports in {start}..{end}, {len(res.themes_run)} themes run, {s.height} subjects "
        f"({hit} hit by a theme, {s['network_id'].n_unique() if s.height else 0} networks)"
    )
    if res.files:
        print(f"ranked subjects written to {res.files['parquet']}")
    for r in s.head(a.top).iter_rows(named=True):
        print(f"{r['rank']:>4}  {r['score']:6.2f}  {r['subject_id'][:12]}  {r['network_id']}  {r['reasons'][:150]}")
    return 1 if res.theme_errors else 0


def cmd_themes(a) -> int:
    from casework.fiu.screen import theme_summary
    from casework.fiu.themes import load_themes

    themes, problems = load_themes(a.themes)
    print(theme_summary(themes))
    for p in problems:
        print(f"not loaded: {p}", file=sys.stderr)
    return 1 if problems else 0


def _peek_fiu_store(db: str):
    """The store read-only, for a report loaded since the last snapshot (fiu-decide said "no FIU report" of it)."""
    from pipelines import store

    try:
        return store.peek(Path(db))
    except Exception as e:  # held by a writer: the snapshot is all there is to read now
        raise UsageError(
            f"report not in the published snapshot, and the store cannot be read now ({str(e).splitlines()[0]})"
        ) from None


def cmd_fiu_decide(a) -> int:
    from casework.dispositions import DispositionError, record_fiu_decision
    from pipelines import snapshot
    from pipelines.casework_db import open_casework

    snapshot.ensure(_store(a.db))
    con = snapshot.open_current(a.db)  # only to find the report: the decision goes to the casework database
    try:
        if not con.execute("SELECT count(*) FROM fiu_reports WHERE report_id = ?", [a.report]).fetchall()[0][0]:
            con.close()  # loaded since the snapshot was published: the store itself, read-only, has it
            con = _peek_fiu_store(a.db)
        out = record_fiu_decision(open_casework(a.db), a.report, a.decision, a.user, a.typology, a.note, reports=con)
    except DispositionError as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    finally:
        con.close()
    print(f"{a.report}: {out['previous']} -> {out['decision']} (by {a.user})")
    return 0


def cmd_disseminate(a) -> int:
    from casework.dispositions import DispositionError, check_user
    from casework.fiu.disseminate import DisseminationError, disseminate

    _store(a.db)
    try:
        check_user(a.user)  # the audit log's "who", as for decisions
        written = disseminate(a.db, a.out, a.user, a.identities)
    except (DisseminationError, DispositionError) as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    if not written:
        print("nothing to disseminate: no report declared suspicious since the last dissemination")
    for w in written:
        extra = f"; requests to FIU {', '.join(w['route_requests'])}" if w["route_requests"] else ""
        print(f"{w['package_id']}: network {w['network_id']}, {w['reports']} report(s) -> {w['folder']}{extra}")
    return 0


def _is_goaml(path) -> bool:
    from pipelines.goaml_intake import is_goaml_folder

    return is_goaml_folder(path)


def cmd_ingest_goaml(path, a) -> int:
    from pipelines.goaml_intake import ingest_goaml

    if not getattr(a, "key_file", None):
        print(f"thb-signals ingest: {path} holds goAML reports; pseudonymising them needs --key-file", file=sys.stderr)
        return 2
    try:
        res = ingest_goaml(path, a.db, a.key_file)
    except (OSError, ValueError) as e:
        print(f"thb-signals ingest: {path}: {e}", file=sys.stderr)
        return 2
    for q in res.quarantined:
        print(f"  quarantined {q}")
    print(f"  -> {res.message} [{res.submission_id}]")
    return 1 if res.quarantined or not res.loaded else 0


def add_fiu_commands(command) -> None:
    s = command("screen", "FIU: run the themes over a period's reports and rank subjects and networks", cmd_screen)
    s.add_argument("--db", required=True, help="an existing store holding FIU reports")
    s.add_argument("--period", required=True, help="YYYY-MM-DD..YYYY-MM-DD (both days included)")
    s.add_argument("--themes", action="append", help="a folder of the analyst's own theme YAML files (repeatable)")
    s.add_argument("--out", type=_out_folder, help="folder for fiu_subjects.parquet and fiu_theme_hits.parquet")
    s.add_argument("--top", type=_count, default=20, help="subjects to print")

    s = command("themes", "FIU: list the themes (shipped and from --themes folders) and any that cannot be read", cmd_themes)
    s.add_argument("--themes", action="append", help="a folder of the analyst's own theme YAML files (repeatable)")

    from casework.dispositions import FIU_DECISIONS

    s = command("fiu-decide", "FIU: declare a report suspicious or not (audit log)", cmd_fiu_decide)
    s.add_argument("--db", required=True, help="an existing, screened store")
    s.add_argument("--report", required=True, help="report_id")
    s.add_argument("--decision", required=True, choices=list(FIU_DECISIONS), help="the analyst's decision")
    s.add_argument("--typology", help="required when suspicious, e.g. sexual_exploitation")
    s.add_argument("--note", help="free text kept with the decision")
    s.add_argument("--user", required=True, help="who decides (audit log)")

    s = command("disseminate", "FIU: package the reports declared suspicious since the last run, per network", cmd_disseminate)
    s.add_argument("--db", required=True, help="an existing, screened store")
    s.add_argument("--out", type=_out_folder, required=True, help="folder for one package per subject network")
    s.add_argument("--identities", help="file mapping pseudonymous ids to names (else parties stay pseudonymous)")
    s.add_argument("--user", default=os.environ.get("USER", "unknown"), help="who disseminates (audit log)")


# ---- tuning: backtest, rule effectiveness, labels, re-ranker ----------------------------------------------------------


def add_tuning_rules_args(s) -> None:
    s.add_argument("--stats", action="store_true", help="with --db: how each rule fired and what investigators decided")
    s.add_argument("--db", help="with --stats: an existing, scored store")
    s.add_argument("--since", type=_day, help="with --stats: first day of the period (alerts raised from this day)")
    s.add_argument("--until", type=_day, help="with --stats: last day of the period")
    s.add_argument("--bank", action="append", help="with --stats: only this bank's figures (repeatable)")
    s.add_argument("--json", action="store_true", help="with --stats: print the figures as JSON")


def add_tuning_commands(command) -> None:
    s = command(
        "backtest", "score a config in a scratch copy and compare it with the current one (the queue is untouched)", cmd_backtest
    )
    s.add_argument("--db", required=True, help="an existing, scored store (opened read-only)")
    s.add_argument("--config", required=True, help="the new YAML settings to try")
    s.add_argument("--as-of", type=_day, help="the window ends on this day (YYYY-MM-DD)")
    s.add_argument(
        "--window-days", type=_window_days, help="the scoring window in days, 7 to 731 (overrides window.days of the config)"
    )
    s.add_argument("--against", help="compare with the alerts this run raised (default: the current config, scored alike)")
    s.add_argument("--models", help="folder of saved models (default: DB.models); read, never written")
    s.add_argument("--out", type=_out_folder, help="folder for backtest.json, backtest.txt and backtest.html")
    s.add_argument("--json", action="store_true", help="print the figures as JSON")
    s.add_argument("--quiet", action="store_true", help="no progress on stderr (also when CI=true)")

    s = command("labels", "write investigators' decisions as a labels file that `evaluate` reads", cmd_labels)
    s.add_argument("--db", required=True, help="an existing, scored store")
    s.add_argument("--out", type=_table_file, required=True, help="labels.csv or labels.parquet")
    s.add_argument("--bank", action="append", help="only this bank's decisions (repeatable)")

    s = command("rerank", "fit the re-ranker on investigators' decisions and save it beside the anomaly model", cmd_rerank)
    s.add_argument("--db", required=True, help="an existing, scored store (opened read-only)")
    s.add_argument("--config", help="YAML settings (rerank: min_positives, min_negatives, ...)")
    s.add_argument("--as-of", type=_day, help="features from the window ending on this day (default: the last booking)")
    s.add_argument("--models", help="folder of saved models (default: DB.models)")
    s.add_argument(
        "--seed", type=_seed, default=0, help="random seed, 0 to 2**32-1 (the same decisions and seed give the same model)"
    )


def cmd_backtest(a) -> int:
    import json

    from casework.backtest import backtest, format_text, write_outputs

    _store(a.db, "alerts")
    if a.models:  # read, never written: a folder that is not there would silently mean a model fitted afresh
        _folder(a.models, "--models")
    if a.against is not None and not a.against.strip():
        raise UsageError("--against needs a run id (thb-signals status lists the runs)")
    settings = _settings(a)
    report = backtest(a.db, settings, against=a.against, models_dir=a.models)
    if a.out:
        files = write_outputs(report, a.out)
        print(f"wrote {files['json']}, {files['text']} and {files['html']}", file=sys.stderr)
    print(json.dumps(report, indent=2, default=str) if a.json else format_text(report))
    return 0


def cmd_rule_stats(a) -> int:
    import json

    from casework.rule_stats import format_stats, rule_stats
    from pipelines import store
    from pipelines.casework_db import open_casework

    if not a.db:
        raise UsageError("rules --stats needs --db STORE")
    if a.since and a.until and a.since > a.until:
        raise UsageError(f"--since {a.since} is after --until {a.until}: the period would be empty")
    con = store.connect(_store(a.db, "alerts"), read_only=True)
    try:
        stats = rule_stats(con, open_casework(a.db, create=False), a.since, a.until, a.bank)
    finally:
        con.close()
    print(json.dumps(stats, indent=2, default=str) if a.json else format_stats(stats))
    return 0


def cmd_labels(a) -> int:
    from casework.labels import write_labels
    from pipelines import store
    from pipelines.casework_db import open_casework

    con = store.connect(_store(a.db, "alerts"), read_only=True)
    try:
        n = write_labels(con, open_casework(a.db, create=False), a.out, a.bank)
    finally:
        con.close()
    print(
        f"wrote {a.out}: {n['positives']} positive and {n['negatives']} negative labels ({n['skipped']} decisions are no label)"
    )
    return 0


def cmd_rerank(a) -> int:
    from casework.learning import LearningError, fit_reranker

    _store(a.db, "alerts")
    settings = _settings(a)
    try:
        out = fit_reranker(a.db, settings, models_dir=a.models, seed=a.seed)
    except LearningError as e:
        print(f"thb-signals rerank: {e}", file=sys.stderr)
        return 1
    print(
        f"re-ranker {out['version']} fitted on {out['positives']} positive and {out['negatives']} negative decisions, "
        f"weight {out['weight']:.2f}; saved to {out['path']}"
    )
    return 0


# ---- end of FIU workflow ------------------------------------------------------------------------------------------------


def build_parser() -> _Parser:
    p = _Parser(prog="thb-signals", description="Financial signals of human trafficking in bank and FIU extracts.")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error instead of one line")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p.commands = {}  # name -> its parser (main names a command's own usage in its errors)

    def command(name: str, help: str, func) -> _Parser:
        s = p.commands[name] = sub.add_parser(name, help=help, description=help)
        s.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show the full traceback of an error instead of one line",
        )
        s.add_argument(
            "--casework-url",
            default=argparse.SUPPRESS,
            help="where decisions and the audit log live: a SQLAlchemy URL such as postgresql+psycopg://user@host/db "
            "(default: THB_CASEWORK_URL, else SQLite beside the store, DB.casework.sqlite)",
        )
        s.set_defaults(func=func)
        return s

    def no_manifest(s):
        s.add_argument(
            "--no-manifest", action="store_true", help="accept a submission without manifest.json (by default it is refused)"
        )

    command("contract", "print the extract contract as generated from schemas/", cmd_contract)

    s = command("validate", "check a submission without loading it", cmd_validate)
    s.add_argument("submission", help="the submission folder (transactions, accounts and manifest.json)")
    s.add_argument("--report", help="write an HTML report here")
    s.add_argument(
        "--gx-sample-rows",
        type=_count,
        default=100_000,
        help="rows per file the Great Expectations suite runs on (0: skip); SQL checks cover every row",
    )
    no_manifest(s)

    s = command("ingest", "validate and load submissions into DuckDB", cmd_ingest)
    s.add_argument("submissions", nargs="+", help="one or more submission folders")
    s.add_argument("--db", required=True, help="the store (a DuckDB file; created if it does not exist)")
    s.add_argument("--memory-limit", default=None, help="DuckDB memory_limit, e.g. 4GB")
    s.add_argument("--key-file", help="FIU: the partners' key, to pseudonymise a folder of goAML XML reports")
    no_manifest(s)
    s.add_argument("--quiet", action="store_true", help="no progress on stderr (also when CI=true)")

    s = command("pseudonymise", "HMAC-SHA256 the identifier columns before submitting", cmd_pseudonymise)
    s.add_argument("raw_dir", help="folder with the raw transactions and accounts files")
    s.add_argument("out_dir", type=_out_folder, help="folder for the pseudonymised files and their manifest.json")
    s.add_argument("--key-file", required=True, help="file holding the key the partners share (at least 16 bytes)")

    s = command("generate", "write synthetic submissions with planted typologies", cmd_generate)
    s.add_argument("out_dir", type=_out_folder, help="folder for one submission per bank and labels.parquet")
    s.add_argument(
        "--accounts",
        type=_generated_accounts,
        default=20_000,
        help="accounts over all banks (at least 100: the planted scenarios need them)",
    )
    s.add_argument("--days", type=_generated_days, default=90, help="days of bookings (at most 3650; with --fiu at least 41)")
    s.add_argument("--banks", type=_positive, default=2, help="banks (one submission each)")
    s.add_argument("--seed", type=_count, default=1, help="random seed, 0 or more (the same seed gives the same files)")
    s.add_argument("--format", choices=("parquet", "csv"), default="parquet", help="file format of the submissions")
    s.add_argument("--end", type=_generated_end, default="2026-09-30", help="last day of the period (YYYY-MM-DD, 2000-2999)")
    s.add_argument(
        "--fiu", action="store_true", help="an FIU extract (reports from every kind of obliged entity) and fiu_labels.parquet"
    )
    s.add_argument(
        "--reports",
        type=_generated_reports,
        default=6000,
        help="with --fiu: size of the background, 100 to 10,000,000 (about twice as many reports)",
    )
    s.add_argument(
        "--networks", type=_generated_networks, default=40, help="with --fiu: planted trafficking networks, 1 to 1,000"
    )
    s.add_argument("--quiet", action="store_true", help="no progress on stderr (also when CI=true)")
    s.add_argument(
        "--family",
        choices=("tune", "holdout"),
        default="tune",
        help="generator settings: tune (for tuning detectors) or holdout (for reporting; never tune on it)",
    )
    s.add_argument(
        "--stream-life",
        type=_positive,
        default=None,
        metavar="DAYS",
        help="stream mode: trafficking scenarios start throughout the period, each running DAYS days (labels get `onset`)",
    )

    s = command("evaluate", "score an alert table (or an FIU subject list) against labels", cmd_evaluate)
    what = s.add_mutually_exclusive_group(required=True)
    what.add_argument("--alerts", help="alerts.parquet or alerts.csv written by score")
    what.add_argument("--subjects", help="an FIU screening's fiu_subjects.parquet (with --labels fiu_labels.parquet)")
    s.add_argument("--labels", required=True, help="labels.parquet (or fiu_labels.parquet) written by generate")
    s.add_argument("--json", action="store_true", help="print the figures as JSON")
    s.add_argument(
        "--accounts-scored",
        type=_positive,
        help="the run's scored accounts, the base of the @1%%/@2%% budgets (default: the labelled accounts, which is the "
        "same for generated labels but not for labels written from decisions)",
    )

    def scoring_args(s):
        s.add_argument("--out", type=_out_folder, required=True, help="folder for alerts.parquet and alerts.csv")
        s.add_argument(
            "--config", help="YAML settings: window, rules, network, fusion, cases, budget, review (docs/configuration.md)"
        )
        s.add_argument(
            "--window-days",
            type=_window_days,
            help="the scoring window in days, 7 to 731 (overrides window.days of the config; default 90)",
        )
        s.add_argument("--as-of", type=_day, help="the window ends on this day (YYYY-MM-DD), to replay a past month")
        s.add_argument("--models", help="folder of saved anomaly models (default: DB.models)")
        s.add_argument("--refit", action="store_true", help="fit the anomaly model on this window and save a new version")
        s.add_argument(
            "--mode", choices=("fused", "rules", "anomaly"), default="fused", help="ablation: score with one part only"
        )
        s.add_argument("--top", type=_count, default=15, help="alerts to print")
        s.add_argument("--quiet", action="store_true", help="no progress on stderr (also when CI=true)")
        s.add_argument(
            "--shards", type=_positive, default=1, help="split the accounts into N shards scored as Dask tasks (default 1)"
        )
        s.add_argument("--dask-address", help="a Dask scheduler such as tcp://scheduler:8786 (default: a LocalCluster here)")
        s.add_argument("--workers", type=_positive, default=2, help="worker processes of the LocalCluster (default 2)")
        s.add_argument("--shard-dir", help="folder the shards share; every worker must see it (default: OUT/.shards)")

    s = command("score", "score the accounts in the store and write ranked alerts", cmd_score)
    s.add_argument("--db", required=True, help="an existing store with transactions")
    s.add_argument("--memory-limit", default=None, help="DuckDB memory_limit, e.g. 4GB")
    scoring_args(s)

    s = command("run", "ingest submissions, then score, in one go", cmd_run)
    s.add_argument("submissions", nargs="+", help="one or more submission folders")
    s.add_argument("--db", required=True, help="the store (a DuckDB file; created if it does not exist)")
    s.add_argument("--memory-limit", default=None, help="DuckDB memory_limit, e.g. 4GB")
    s.add_argument("--no-prefect", action="store_true", help="run the plain functions, without a Prefect flow")
    no_manifest(s)
    scoring_args(s)

    s = command("batch", "the scheduled batch run, in-process: ingest the inbox, file, score, publish", cmd_batch)
    s.add_argument("inbox", help="an existing folder of submission folders; they are moved to processed/ or rejected/")
    s.add_argument("--db", required=True, help="the store (a DuckDB file; created if it does not exist)")
    s.add_argument("--out", type=_out_folder, required=True, help="folder for alerts.parquet and alerts.csv")
    s.add_argument("--config", help="YAML with rule thresholds, categories and fusion settings")
    s.add_argument("--top", type=_count, default=15, help="alerts to print")
    no_manifest(s)

    from casework.dispositions import ACTIONS, DISMISS_REASONS

    s = command("dispose", "record a decision on an alert: escalate, dismiss, request_info, reopen", cmd_dispose)
    s.add_argument("--db", required=True, help="an existing, scored store")
    s.add_argument("--alert", required=True, help="alert id")
    s.add_argument("--action", required=True, choices=list(ACTIONS), help="the decision")
    s.add_argument("--user", required=True, help="who decides (written to the audit log)")
    s.add_argument("--reason", choices=list(DISMISS_REASONS), help="why an alert is dismissed")
    s.add_argument("--note", help="free text for the audit log")

    s = command("export-goaml", "write goAML XML reports for escalated alerts, validated against the schema", cmd_export_goaml)
    s.add_argument("--db", required=True, help="an existing, scored store")
    pick = s.add_mutually_exclusive_group(required=True)
    pick.add_argument("--alert", help="one escalated alert")
    pick.add_argument("--case", help="the escalated alerts of one case, as one report")
    pick.add_argument("--escalated", action="store_true", help="every escalated alert, one report each")
    s.add_argument("--identities", required=True, help="the bank's file mapping pseudonymous ids to identities (CSV or Parquet)")
    s.add_argument("--out", type=_out_folder, required=True, help="folder for the XML reports")
    s.add_argument(
        "--config",
        default=str(Path(__file__).resolve().parent.parent / "detectors" / "config.example.yaml"),
        help="YAML with a goaml: section naming the reporting entity",
    )
    s.add_argument("--user", default=os.environ.get("USER", "unknown"), help="who exports (audit log)")

    s = command("identities", "invent a complete identities file for a synthetic store (tests, demo)", cmd_identities)
    s.add_argument("--db", required=True, help="an existing store with accounts")
    s.add_argument("--out", type=_table_file, required=True, help="the identities file to write (CSV or Parquet)")

    s = command("serve", "the investigators' review page: queue, alerts, decisions, audit, exports", cmd_serve)
    s.add_argument("--db", required=True, help="an existing, scored store")
    s.add_argument(
        "--users", default=os.environ.get("THB_USERS", "users.yaml"), help="YAML of users with scrypt hashes and roles"
    )
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback by default)")
    s.add_argument("--port", type=_port, default=8765, help="port to listen on")
    s.add_argument(
        "--secure-cookies",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="mark cookies Secure (HTTPS only); on by default when --host is not loopback",
    )
    s.add_argument(
        "--proxy",
        type=_proxy_addresses,
        metavar="ADDRESSES",
        help="the TLS proxy's address(es), comma-separated: its X-Forwarded-For names the client (no header is trusted without)",
    )
    s.add_argument("--identities", help="the bank's identities file: enables goAML export from escalated alerts")
    s.add_argument("--goaml-out", default="goaml-reports", help="folder for goAML reports written from the page")
    s.add_argument(
        "--config",
        default=str(Path(__file__).resolve().parent.parent / "detectors" / "config.example.yaml"),
        help="YAML with a goaml: section naming the reporting entity",
    )

    command("hash-password", "print a scrypt hash for users.yaml (reads THB_PASSWORD or asks)", cmd_hash_password)

    s = command("bench", "time every stage and peak memory against DuckDB's single-pass floor", cmd_bench)
    s.add_argument("--sizes", default="1M,10M", help="comma-separated transaction counts, e.g. 1M,10M")
    s.add_argument("--out", type=_out_folder, default="bench/results", help="folder for the JSON figures")
    s.add_argument("--reps", type=_positive, default=3, help="repetitions per size (the median is reported)")
    s.add_argument("--memory-limit", default=None, help="DuckDB memory_limit for the runs, e.g. 4GB")
    s.add_argument("--nightly", action="store_true", help="also time the nightly run: one day added to a loaded store")
    s.add_argument("--quiet", action="store_true", help="no progress on stderr (also when CI=true)")

    s = command("loadtest", "investigators on the review page while the batch ingests and scores (loopback)", cmd_loadtest)
    s.add_argument("--work", default="loadtest-work", help="a scratch folder (emptied first)")
    s.add_argument("--investigators", type=_positive, default=20, help="simulated investigators (threads)")
    s.add_argument("--accounts", type=_generated_accounts, default=4000, help="accounts in the generated extract (at least 100)")
    s.add_argument("--days", type=_positive, default=60, help="days in the generated extract")
    s.add_argument("--max-requests", type=_positive, default=400, help="requests per investigator at most")
    s.add_argument("--json", action="store_true", help="print the figures as JSON")

    s = command("rules", "list the detection rules with their indicators and parameters", cmd_rules)
    add_tuning_rules_args(s)
    add_tuning_commands(command)

    s = command("status", "last runs, submissions, open alerts per bank, store size, inbox (read-only)", cmd_status)
    s.add_argument("--db", required=True, help="an existing store")
    s.add_argument("--inbox", help="the batch's inbox folder: what is waiting there")
    s.add_argument("--runs", type=_count, default=10, help="how many recent runs to list")

    s = command("demo", "load the shipped samples into a fresh store and show the result", cmd_demo)
    s.add_argument("--out", default="demo-out", help="a new or empty folder (or one an earlier demo made) for the demo's files")

    add_fiu_commands(command)
    from pipelines.cli_privacy import add_privacy_commands

    add_privacy_commands(command)
    return p


def _day(text: str):
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day as YYYY-MM-DD") from None


def _out_folder(text: str) -> str:
    """A folder a command writes into: new, or an existing folder. A file there is refused before anything runs (a
    score used to finish, store its alerts, then fail writing alerts.parquet under a file)."""
    path = Path(text)
    there = next((p for p in (path, *path.parents) if p.exists()), None)  # the nearest part of the path that is there
    if there is not None and not there.is_dir():
        raise argparse.ArgumentTypeError(
            f"{text} is a file, not a folder" if there == path else f"{text}: {there} is a file, not a folder"
        )
    return text


def _table_file(text: str) -> str:
    """A table file a command writes: a .csv or .parquet name and not a folder. Anything else could be the store or the
    casework database (`labels --out s.duckdb` replaced the store with a CSV), or a format the writer does not make."""
    if Path(text).suffix.lower() not in (".csv", ".parquet"):
        raise argparse.ArgumentTypeError(f"{text} is not a .csv or .parquet file name")
    if Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder, not a file")
    return text


def _positive(text: str, low: int = 1, high: int | None = None) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < low:
        raise argparse.ArgumentTypeError(f"{n} must be at least {low}")
    if high is not None and n > high:
        raise argparse.ArgumentTypeError(f"{n} must be at most {high}")
    return n


def _generated_accounts(text: str) -> int:
    return _positive(text, 100)  # fewer left a planted scenario without the accounts it draws (an IndexError)


def _seed(text: str) -> int:
    return _positive(text, 0, 2**32 - 1)  # what scikit-learn's random_state takes


def _window_days(text: str) -> int:
    return _positive(text, 7, 731)  # the settings' window.days range: 1 passed here and was refused later by its key


def _generated_days(text: str) -> int:
    return _positive(text, 1, 3650)  # 800,000 days ran past the calendar (an OverflowError)


def _generated_reports(text: str) -> int:
    return _positive(text, 100, 10_000_000)  # 0 or -5 silently made 869; a 20-digit count overflowed


def _generated_networks(text: str) -> int:
    return _positive(text, 1, 1000)  # 0 failed concatenating no networks; 100,000 ran for minutes


def _generated_end(text: str) -> str:
    day = _day(text)
    if not 2000 <= day.year <= 2999:  # 0001-01-01 ran past the calendar going back (an OverflowError)
        raise argparse.ArgumentTypeError(f"{text} is not a day from 2000 to 2999")
    return day.isoformat()


def _count(text: str) -> int:
    """A count that may be 0 (none), bounded so it stays a 64-bit number in SQL."""
    return _positive(text, 0, 10**12)


def _port(text: str) -> int:
    return _positive(text, 1, 65535)


def _proxy_addresses(text: str) -> str:
    """serve --proxy: IP addresses or networks, comma-separated. uvicorn takes anything else as a name no client has,
    so a typo would silently believe no proxy; and `*` would believe every client's X-Forwarded-For."""
    import ipaddress

    for item in text.split(","):
        try:
            ipaddress.ip_network(item.strip(), strict=False)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{item.strip()!r} is not an IP address or network (e.g. 127.0.0.1 or 10.0.0.0/8)"
            ) from None
    return ",".join(item.strip() for item in text.split(","))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a, extra = parser.parse_known_args(argv)
    if extra:  # named by the command's own usage, not the whole program's list of commands
        parser.commands[a.command].error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(a, "casework_url", None):  # one setting for every part of this process (the batch's tasks too)
        os.environ["THB_CASEWORK_URL"] = a.casework_url
    try:
        return a.func(a)
    except KeyboardInterrupt:
        print(f"thb-signals {a.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `thb-signals rules | head`: the reader stopped; say nothing more, exit as SIGPIPE would
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's flush at exit would fail again
        except OSError:
            pass
        return 141  # not 0: a command cut short (a batch piped to head) did not finish
    except Exception as e:
        line = None if a.debug else _user_error(e)
        if line is None:
            raise
        hint = (
            ""
            if isinstance(e, UsageError) or "in use by" in line or "being written by" in line
            else " (--debug shows the traceback)"
        )
        print(f"thb-signals {a.command}: error: {_one_line(line, 2000)}{hint}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
