"""`thb-signals`: the command line. Each command is a thin wrapper over a plain function."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors exit 2, as documented
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def cmd_contract(a) -> int:
    from schemas.contract import markdown
    print(markdown())
    return 0


def cmd_validate(a) -> int:
    from pipelines.report import html_report, summary_text
    from pipelines.validation import validate
    if not Path(a.submission).is_dir():
        print(f"thb-signals validate: {a.submission} is not a submission folder", file=sys.stderr)
        return 2
    v = validate(a.submission, gx_sample_rows=a.gx_sample_rows)
    print(summary_text(v))
    if a.report:
        Path(a.report).write_text(html_report(v), encoding="utf-8")
        print(f"report written to {a.report}")
    return 0 if v.ok else 1


def cmd_ingest(a) -> int:
    from pipelines.ingest import ingest
    from pipelines.report import summary_text
    worst = 0
    for path in a.submissions:
        out = ingest(path, a.db, a.memory_limit)
        if out.validation is not None:
            print(summary_text(out.validation))
        print(f"  -> {out.outcome}: {out.message} [{out.submission_id}]")
        worst = max(worst, 0 if out.accepted else 1)
    return worst


def cmd_pseudonymise(a) -> int:
    from pipelines.pseudonymise import pseudonymise
    rows = pseudonymise(a.raw_dir, a.out_dir, a.key_file)
    for name, n in rows.items():
        print(f"{name}: {n} rows pseudonymised -> {Path(a.out_dir) / name}")
    return 0


def cmd_generate(a) -> int:
    from synthetic.generate import generate
    info = generate(a.out_dir, accounts=a.accounts, days=a.days, banks=a.banks, seed=a.seed,
                    fmt=a.format, end=a.end)
    for bank, n in info["transactions"].items():
        print(f"{bank}: {n} transactions, {info['accounts'][bank]} accounts -> {Path(a.out_dir) / bank}")
    print(f"labels: {info['labels']} rows -> {Path(a.out_dir) / 'labels.parquet'}")
    return 0


def cmd_evaluate(a) -> int:
    import json
    from synthetic.evaluate import EvaluationError, evaluate, format_table
    try:
        m = evaluate(a.alerts, a.labels)
    except EvaluationError as e:
        print(f"thb-signals evaluate: {e}", file=sys.stderr)
        return 2
    print(json.dumps(m, indent=2) if a.json else format_table(m))
    return 0


def cmd_score(a) -> int:
    from detectors.fusion import budget_lines
    from detectors.scoring import load_config, score_store
    from pipelines.report import print_alerts
    res = score_store(a.db, a.out, load_config(a.config), models_dir=a.models, refit=a.refit, mode=a.mode,
                      memory_limit=a.memory_limit)
    print(f"run {res.run_id}: window {res.window_start:%Y-%m-%d} .. {res.window_end:%Y-%m-%d}, {res.accounts_scored} accounts scored, "
          f"{res.alerts.height} alerts ({int((res.alerts['status'] == 'new').sum()) if res.alerts.height else 0} new); "
          f"rules {res.rule_set_hash}, model {res.model_version}")
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
    if a.no_prefect:
        rc = cmd_ingest(a)
        if rc:
            print("some submissions were rejected (see above); scoring what is loaded", file=sys.stderr)
        return cmd_score(a) or rc
    from detectors.scoring import load_config
    from pipelines.flows import run_flow
    load_config(a.config)   # fail fast on a bad config, before the flow starts
    res = run_flow([str(p) for p in a.submissions], a.db, a.out, config=a.config, mode=a.mode)
    return _print_flow_result(res, a.top)


def _print_flow_result(res: dict, top: int) -> int:
    for s in res["submissions"]:
        print(f"{Path(s['path']).name}: {s['outcome']}: {s['message']}" + (f" (filed as {s['filed_as']})" if s.get("filed_as") else ""))
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
    from pipelines.flows import batch_scoring_flow
    res = batch_scoring_flow(a.inbox, a.db, a.out, config=a.config)
    return _print_flow_result(res, a.top)


def cmd_rules(a) -> int:
    """Every rule an analyst can tune: id, typology, indicators, severity, parameters, description."""
    from detectors.rules import RULES
    for r in RULES:
        params = ", ".join(f"{k}={v}" for k, v in r.params.items())
        print(f"{r.id:<28} {r.typology:<22} sev {r.severity}  [{', '.join(r.indicators)}]\n"
              f"    {r.description}\n    parameters: {params or '-'}")
    return 0


def cmd_dispose(a) -> int:
    """An investigator's decision on one alert from the command line (the review page does the same)."""
    from pipelines import store
    from casework.dispositions import DispositionError, record_disposition
    con = store.connect(a.db)
    try:
        out = record_disposition(con, a.alert, a.action, a.user, a.reason, a.note)
    except DispositionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        con.close()
    print(f"{a.alert}: {out['previous_status']} -> {out['status']} (by {a.user})")
    return 0


def cmd_export_goaml(a) -> int:
    """goAML XML for escalated alerts; names files and refusals, never the identities inside them."""
    from detectors.scoring import load_config
    from casework.goaml import ExportError, GoamlExporter
    try:
        exporter = GoamlExporter(a.db, a.identities, (load_config(a.config).get("goaml") or {}))
        written, refused = exporter.export(a.out, a.user, alert=a.alert, case=a.case, escalated=a.escalated)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
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
    print(f"wrote {write_identities(a.db, a.out)} (invented identities for a synthetic store)")
    return 0


def cmd_serve(a) -> int:
    """The investigators' review page over the store (loopback by default)."""
    import uvicorn

    from detectors.scoring import load_config
    from casework.review.app import Review
    from casework.review.auth import UsersError, load_users
    try:
        users = load_users(a.users)
    except (UsersError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    exporter = None
    if a.identities:
        from casework.goaml import GoamlExporter
        exporter = GoamlExporter(a.db, a.identities, load_config(a.config).get("goaml") or {})
    app = Review(a.db, users, exporter, a.goaml_out).app()
    print(f"review page on http://{a.host}:{a.port}/ ({len(users)} users)")
    uvicorn.run(app, host=a.host, port=a.port, log_level="warning")
    return 0


def cmd_hash_password(a) -> int:
    import getpass

    from casework.review.auth import hash_password
    pw = os.environ.get("THB_PASSWORD") or getpass.getpass("password: ")
    print(hash_password(pw))
    return 0


def cmd_bench(a) -> int:
    from synthetic.bench import HEADER, bench, parse_size
    sizes = [parse_size(x) for x in a.sizes.split(",")]
    print(HEADER)
    rep = bench(sizes, Path(a.out), reps=a.reps, memory_limit=a.memory_limit)
    if "scaling" in rep:
        sc = rep["scaling"]
        print(f"\ntime x{sc['time_ratio']} for {sc['size_ratio']}x the transactions ({sc['from']:,} -> {sc['to']:,})")
    print(f"machine: {rep['machine']['cores']} cores, {rep['machine']['memory_gib']} GiB; figures in {rep['path']}")
    return 0


def cmd_demo(a) -> int:
    """The README's first command: load the shipped sample extracts and show what was loaded."""
    import shutil
    from pipelines.demo import run_demo
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return run_demo(out)


def main(argv: list[str] | None = None) -> int:
    p = _Parser(prog="thb-signals", description="Financial signals of human trafficking in bank and FIU extracts.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("contract", help="print the extract contract as generated from schemas/")
    s.set_defaults(func=cmd_contract)

    s = sub.add_parser("validate", help="check a submission without loading it")
    s.add_argument("submission")
    s.add_argument("--report", help="write an HTML report here")
    s.add_argument("--gx-sample-rows", type=int, default=100_000,
                   help="rows per file the Great Expectations suite runs on (0: skip); SQL checks cover every row")
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("ingest", help="validate and load submissions into DuckDB")
    s.add_argument("submissions", nargs="+")
    s.add_argument("--db", required=True)
    s.add_argument("--memory-limit", default=None, help="DuckDB memory_limit, e.g. 4GB")
    s.set_defaults(func=cmd_ingest)

    s = sub.add_parser("pseudonymise", help="HMAC-SHA256 the identifier columns before submitting")
    s.add_argument("raw_dir")
    s.add_argument("out_dir")
    s.add_argument("--key-file", required=True)
    s.set_defaults(func=cmd_pseudonymise)

    s = sub.add_parser("generate", help="write synthetic submissions with planted typologies")
    s.add_argument("out_dir")
    s.add_argument("--accounts", type=int, default=20_000)
    s.add_argument("--days", type=int, default=90)
    s.add_argument("--banks", type=int, default=2)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    s.add_argument("--end", default="2026-09-30", help="last day of the period")
    s.set_defaults(func=cmd_generate)

    s = sub.add_parser("evaluate", help="score an alert table against labels")
    s.add_argument("--alerts", required=True)
    s.add_argument("--labels", required=True)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_evaluate)

    def scoring_args(s):
        s.add_argument("--out", required=True, help="folder for alerts.parquet and alerts.csv")
        s.add_argument("--config", help="YAML with rule thresholds, categories and fusion settings")
        s.add_argument("--models", help="folder of saved anomaly models (default: DB.models)")
        s.add_argument("--refit", action="store_true", help="fit the anomaly model on this window and save a new version")
        s.add_argument("--mode", choices=("fused", "rules", "anomaly"), default="fused", help="ablation: score with one part only")
        s.add_argument("--top", type=int, default=15, help="alerts to print")

    s = sub.add_parser("score", help="score the accounts in the store and write ranked alerts")
    s.add_argument("--db", required=True)
    s.add_argument("--memory-limit", default=None)
    scoring_args(s)
    s.set_defaults(func=cmd_score)

    s = sub.add_parser("run", help="ingest submissions, then score, in one go")
    s.add_argument("submissions", nargs="+")
    s.add_argument("--db", required=True)
    s.add_argument("--memory-limit", default=None)
    s.add_argument("--no-prefect", action="store_true", help="run the plain functions, without a Prefect flow")
    scoring_args(s)
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("batch", help="the scheduled batch run, in-process: ingest the inbox, file, score, publish")
    s.add_argument("inbox")
    s.add_argument("--db", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--config")
    s.add_argument("--top", type=int, default=15)
    s.set_defaults(func=cmd_batch)

    from casework.dispositions import ACTIONS, DISMISS_REASONS
    s = sub.add_parser("dispose", help="record a decision on an alert: escalate, dismiss, request_info, reopen")
    s.add_argument("--db", required=True)
    s.add_argument("--alert", required=True, help="alert id")
    s.add_argument("--action", required=True, choices=list(ACTIONS))
    s.add_argument("--user", required=True, help="who decides (written to the audit log)")
    s.add_argument("--reason", choices=list(DISMISS_REASONS), help="why an alert is dismissed")
    s.add_argument("--note", help="free text for the audit log")
    s.set_defaults(func=cmd_dispose)

    s = sub.add_parser("export-goaml", help="write goAML XML reports for escalated alerts, validated against the schema")
    s.add_argument("--db", required=True)
    pick = s.add_mutually_exclusive_group(required=True)
    pick.add_argument("--alert", help="one escalated alert")
    pick.add_argument("--case", help="the escalated alerts of one case, as one report")
    pick.add_argument("--escalated", action="store_true", help="every escalated alert, one report each")
    s.add_argument("--identities", required=True, help="the bank's file mapping pseudonymous ids to identities (CSV or Parquet)")
    s.add_argument("--out", required=True, help="folder for the XML reports")
    s.add_argument("--config", default=str(Path(__file__).resolve().parent.parent / "detectors" / "config.example.yaml"),
                   help="YAML with a goaml: section naming the reporting entity")
    s.add_argument("--user", default=os.environ.get("USER", "unknown"), help="who exports (audit log)")
    s.set_defaults(func=cmd_export_goaml)

    s = sub.add_parser("identities", help="invent a complete identities file for a synthetic store (tests, demo)")
    s.add_argument("--db", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_identities)

    s = sub.add_parser("serve", help="the investigators' review page: queue, alerts, decisions, audit, exports")
    s.add_argument("--db", required=True)
    s.add_argument("--users", default=os.environ.get("THB_USERS", "users.yaml"), help="YAML of users with scrypt hashes and roles")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8765)
    s.add_argument("--identities", help="the bank's identities file: enables goAML export from escalated alerts")
    s.add_argument("--goaml-out", default="goaml-reports", help="folder for goAML reports written from the page")
    s.add_argument("--config", default=str(Path(__file__).resolve().parent.parent / "detectors" / "config.example.yaml"))
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("hash-password", help="print a scrypt hash for users.yaml (reads THB_PASSWORD or asks)")
    s.set_defaults(func=cmd_hash_password)

    s = sub.add_parser("bench", help="time every stage and peak memory against DuckDB's single-pass floor")
    s.add_argument("--sizes", default="1M,10M", help="comma-separated transaction counts, e.g. 1M,10M")
    s.add_argument("--out", default="bench/results")
    s.add_argument("--reps", type=int, default=3)
    s.add_argument("--memory-limit", default=None, help="DuckDB memory_limit for the runs, e.g. 4GB")
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser("rules", help="list the detection rules with their indicators and parameters")
    s.set_defaults(func=cmd_rules)

    s = sub.add_parser("demo", help="load the shipped samples into a fresh store and show the result")
    s.add_argument("--out", default="demo-out")
    s.set_defaults(func=cmd_demo)

    a = p.parse_args(argv)
    return a.func(a)


if __name__ == "__main__":
    sys.exit(main())
