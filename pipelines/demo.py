"""The demo behind `make demo`: the shipped samples through validation, then a generated two-bank
extract through ingest and scoring, ending with the ranked alerts and how good they are."""

from __future__ import annotations

from pathlib import Path

from pipelines import store
from pipelines.ingest import ingest
from pipelines.report import print_alerts, summary_text

SAMPLES = Path(__file__).resolve().parent.parent / "data_samples"


def _load_samples(db: Path) -> None:
    subs = sorted((SAMPLES / "valid").glob("BANK_*")) + [
        SAMPLES / "fiu" / "FIU_NL",
        SAMPLES / "broken" / "negative_amount",
        SAMPLES / "broken" / "wrong_delimiter",
    ]
    print(f"== 1. The shipped sample submissions into {db}\n")
    for path in subs:
        res = ingest(path, db)
        if res.validation is not None:
            print(summary_text(res.validation))
        print(f"  -> {res.outcome}: {res.message}\n")
    con = store.connect(db, read_only=True)
    try:
        counts = {
            t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("transactions", "accounts", "fiu_reports", "quarantine", "submissions")
        }
    finally:
        con.close()
    print("  store: " + ", ".join(f"{t} {n}" for t, n in counts.items()) + "\n")


def _privacy(db: Path, alerts) -> None:
    """A decision, then the checks a data-protection officer runs: the audit chain and what a purge would delete."""
    from casework.access_log import verify
    from casework.dispositions import record_disposition
    from pipelines.casework_db import open_casework
    from pipelines.cli_privacy import log_purgers
    from pipelines.purge import purge
    from schemas.settings import Settings

    print("\n== 6. Privacy: the hash-chained logs and retention (thb-signals verify-audit, purge --dry-run)\n")
    cw = open_casework(db)  # decisions and both logs live in the casework database beside the store
    for alert_id in alerts["alert_id"].head(2).to_list():
        record_disposition(cw, alert_id, "request_info", "demo", note="demo decision")
    for name, broken, n, _, why in verify(cw):
        print(f"  {name}: {n} entries, " + ("chain intact" if broken is None else f"broken at entry {broken}: {why}"))
    print("  " + purge(db, Settings(), dry_run=True, user="demo", logs=log_purgers()).line())
    print("  (bookings are kept for the scoring window plus a margin; a scheduled purge deletes them: see docs/privacy.md)")


def run_demo(out: Path, accounts: int = 20_000, seed: int = 1) -> int:
    from pipelines.snapshot import score_and_publish
    from synthetic.evaluate import evaluate, format_table
    from synthetic.generate import generate
    from synthetic.identities import write_identities

    _load_samples(out / "samples.duckdb")
    extracts = out / "extracts"
    print(f"== 2. A synthetic extract: {accounts} accounts, 90 days, 2 banks, planted typologies (seed {seed})\n")
    info = generate(extracts, accounts=accounts, days=90, banks=2, seed=seed)
    print("  " + ", ".join(f"{b}: {n} transactions" for b, n in info["transactions"].items()) + "\n")
    db = out / "thb.duckdb"
    for bank in info["transactions"]:
        res = ingest(extracts / bank, db)
        print(f"  ingest {bank}: {res.outcome}: {res.message}")
    print("\n== 3. Scoring: rules, isolation forest, fusion\n")
    res = score_and_publish(db, out / "alerts")
    print(f"  run {res.run_id}: {res.accounts_scored} accounts, {res.alerts.height} alerts -> {res.files['parquet']}\n")
    print_alerts(res.alerts, 20)
    print("\n== 4. The largest cases (connected alerts, worked once)\n")
    for c in res.cases.filter(res.cases["accounts"] > 1).sort("accounts", descending=True).head(5).iter_rows(named=True):
        print(
            f"  {c['case_id']}  {c['typology']:<22} {c['accounts']:>3} accounts at {', '.join(c['banks'])}; "
            f"{c['roles']}; EUR {c['money_eur']:,.0f} moved inside"
        )
    print("\n== 5. How good (labels are known because the data is synthetic)\n")
    print(format_table(evaluate(res.alerts, extracts / "labels.parquet")))
    _privacy(db, res.alerts)
    ids = write_identities(db, out / "identities.csv")
    print(f"""\n== 7. Next\n
  review page:  thb-signals hash-password  (put the hash in a users.yaml, see README), then
                thb-signals serve --db {db} --users users.yaml
                (reports from the page too: add --identities {ids} --config bank.yaml)
  FIU reports:  thb-signals dispose --db {db} --alert <id> --action escalate --user <you>, then
                thb-signals export-goaml --db {db} --escalated --identities {ids} --out {out / "goaml"} --config bank.yaml
                (bank.yaml: your goaml: reporting entity; the example config's placeholder bank is refused)""")
    return 0
