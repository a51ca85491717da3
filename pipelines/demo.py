"""The demo behind `make demo`: validate and load the shipped samples, then show the store."""
from __future__ import annotations

from pathlib import Path

from pipelines import store
from pipelines.ingest import ingest
from pipelines.report import summary_text

SAMPLES = Path(__file__).resolve().parent.parent / "data_samples"


def run_demo(out: Path) -> int:
    db = out / "thb.duckdb"
    subs = sorted((SAMPLES / "valid").glob("BANK_*")) + [SAMPLES / "fiu" / "FIU_NL", SAMPLES / "broken" / "negative_amount",
                                                          SAMPLES / "broken" / "wrong_delimiter"]
    print(f"Loading {len(subs)} sample submissions into {db}\n")
    for path in subs:
        res = ingest(path, db)
        if res.validation is not None:
            print(summary_text(res.validation))
        print(f"  -> {res.outcome}: {res.message}\n")
    con = store.connect(db, read_only=True)
    try:
        print("Store contents:")
        for t in ("transactions", "accounts", "fiu_reports", "quarantine", "submissions"):
            print(f"  {t:<13} {con.execute(f'SELECT count(*) FROM {t}').fetchone()[0]:>7} rows")
        print("\nTransactions per bank and channel:")
        for row in con.execute("""SELECT bank_id, channel, count(*) n, round(sum(amount_eur), 2) eur FROM transactions
                                  GROUP BY ALL ORDER BY bank_id, n DESC""").fetchall():
            print(f"  {row[0]:<7} {row[1]:<18} {row[2]:>6} txns  EUR {row[3]:>12,.2f}")
    finally:
        con.close()
    return 0
