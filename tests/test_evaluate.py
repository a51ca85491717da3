"""`evaluate` on small hand-made tables with known answers."""

import polars as pl
import pytest

from pipelines.cli import main
from synthetic.evaluate import EvaluationError, evaluate


def labels(n_bg=390):
    rows = [("B", f"p{i}", "sexual_exploitation" if i < 6 else "labour_exploitation", "victim") for i in range(10)]
    rows += [("B", f"h{i}", "none", "hard_negative") for i in range(5)]
    rows += [("B", f"n{i}", "none", "background") for i in range(n_bg - 5)]
    return pl.DataFrame(rows, schema=["bank_id", "account_id", "typology", "role"], orient="row")


def alerts(ids, typ=None):
    df = pl.DataFrame(
        {
            "bank_id": ["B"] * len(ids),
            "account_id": ids,
            "score": [1 - i / 1000 for i in range(len(ids))],
            "rank": list(range(1, len(ids) + 1)),
        }
    )
    if typ is not None:
        df = df.with_columns(pl.Series("typology", typ))
    return df


def test_perfect_ranking():
    ids = [f"p{i}" for i in range(10)] + [f"n{i}" for i in range(200)]
    m = evaluate(alerts(ids), labels())
    assert m["accounts"] == 400 and m["positives"] == 10
    assert m["precision@50"] == 10 / 50 and m["precision@100"] == 0.1
    assert m["budget@1%"] == 4 and m["recall@1%"] == 0.4  # 4 of 10 positives fit in a 1% budget
    assert m["budget@2%"] == 8 and m["recall@2%"] == 0.8
    assert m["recall_by_typology@2%"] == {"labour_exploitation": 0.5, "sexual_exploitation": 1.0}
    assert m["average_precision"] == 1.0
    assert m["hard_negative_share@2%"] == 0.0


def test_hard_negatives_first_and_unalerted_positives():
    ids = [f"h{i}" for i in range(5)] + ["p0", "p1", "n0"]
    m = evaluate(alerts(ids, ["sexual_exploitation"] * 5 + ["sexual_exploitation", "anomaly", "anomaly"]), labels())
    assert m["hard_negative_share@2%"] == 5 / 8
    assert m["recall@2%"] == 0.2
    # precision at the two positive ranks is 1/6 and 2/7; the 8 unalerted positives tie at score 0 with
    # everything else, so they are reached only at the last threshold, with precision 10/400
    assert m["average_precision"] == pytest.approx((1 / 6 + 2 / 7) / 10 + 8 / 10 * 10 / 400, abs=1e-4)
    assert m["typology_accuracy"] == 0.5  # p0 right, p1 'anomaly'


def test_missing_columns_are_named(tmp_path):
    bad = alerts(["p0"]).drop("score")
    with pytest.raises(EvaluationError, match="score"):
        evaluate(bad, labels())
    path = tmp_path / "a.csv"
    bad.write_csv(path)
    lp = tmp_path / "l.parquet"
    labels().write_parquet(lp)
    assert main(["evaluate", "--alerts", str(path), "--labels", str(lp)]) == 2


def test_cli_prints_table_and_json(tmp_path, capsys):
    ap, lp = tmp_path / "a.parquet", tmp_path / "l.parquet"
    alerts([f"p{i}" for i in range(10)]).write_parquet(ap)
    labels().write_parquet(lp)
    assert main(["evaluate", "--alerts", str(ap), "--labels", str(lp), "--json"]) == 0
    import json

    assert json.loads(capsys.readouterr().out)["recall@2%"] == 0.8
    assert main(["evaluate", "--alerts", str(ap), "--labels", str(lp)]) == 0
    assert "precision@100" in capsys.readouterr().out


def test_recall_by_subtlety_bins():
    """Positives p0-p9 with subtlety 0.0 .. 0.9: the 2% budget (8 alerts) holds p0-p3 and p7-p9 (and one background)."""
    from synthetic.evaluate import format_table

    lab = labels().with_columns(
        pl.when(pl.col("account_id").str.starts_with("p"))
        .then(pl.col("account_id").str.slice(1).cast(pl.Int64) / 10)
        .otherwise(None)
        .alias("subtlety")
    )
    m = evaluate(alerts(["p0", "p1", "p2", "p3", "p7", "p8", "p9", "n0"]), lab)
    # low [0, 1/3): p0-p3 all 4 found; mid [1/3, 2/3): p4-p6 none; high: p7-p9 all 3
    assert m["recall_by_subtlety@2%"] == {"low": 1.0, "mid": 0.0, "high": 1.0}
    assert "recall@2% subtlety mid [0.33, 0.67)" in format_table(m)
    assert evaluate(alerts(["p0"]), labels())["recall_by_subtlety@2%"] == {}  # labels without subtlety


def test_recall_by_pattern_counts_each_pattern_on_its_own():
    lab = labels().with_columns(
        pl.when(pl.col("account_id").is_in(["p0", "p1"]))
        .then(pl.lit("cycle"))
        .when(pl.col("account_id").is_in(["p6", "p7", "p8", "p9"]))
        .then(pl.lit("stack"))
        .otherwise(None)
        .alias("pattern")
    )
    m = evaluate(alerts(["p0", "p6", "p7", "n1", "p1", "n2", "n3", "n4", "p8"]), lab)  # budget@2% = 8 alerts: p8 falls outside
    assert m["recall_by_pattern@2%"] == {"cycle": 1.0, "stack": 0.5}
    assert evaluate(alerts(["p0"]), labels())["recall_by_pattern@2%"] == {}
