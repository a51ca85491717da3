"""`evaluate` on small hand-made tables with known answers."""

import json

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


def test_text_scores_and_ranks_are_numbers_or_refused(tmp_path, capsys):
    """Ranks as text sort "10" before "2": numeric text is read as numbers; other text is refused naming the cell."""
    ids = ["p0", "p1", "p2", "p3", "n0", "n1", "n2", "n3", "n4", "n5"]
    text_ranks = alerts(ids).with_columns(pl.col("rank").cast(pl.Utf8), pl.col("score").cast(pl.Utf8))
    m = evaluate(text_ranks, labels())
    assert m["budget@1%"] == 4 and m["recall@1%"] == 0.4  # ranks 1-4, not 1, 10, 2, 3
    bad = tmp_path / "a.csv"
    alerts(ids).with_columns(
        pl.when(pl.col("rank") == 3).then(pl.lit("n/a")).otherwise(pl.col("score")).alias("score")
    ).write_csv(bad)
    with pytest.raises(EvaluationError, match=r"a\.csv row 3: score 'n/a' is not a number"):
        evaluate(bad, labels())
    with pytest.raises(EvaluationError, match="row 2: rank is empty"):
        evaluate(
            alerts(ids).with_columns(pl.when(pl.col("rank") == 2).then(None).otherwise(pl.col("rank")).alias("rank")), labels()
        )
    lp = tmp_path / "l.parquet"
    labels().write_parquet(lp)
    assert main(["evaluate", "--alerts", str(bad), "--labels", str(lp)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err and "score" in err


def test_an_account_labelled_twice_is_refused():
    """A labels file listed twice would double precision (every alerted account counted twice)."""
    twice = pl.concat([labels(), labels().head(3)])
    with pytest.raises(
        EvaluationError, match=r"3 account\(s\) labelled more than once, 3 extra row\(s\) \(first: B/p0 in rows 1, 401\)"
    ):
        evaluate(alerts(["p0", "p1"]), twice)


def test_no_labels_is_refused(tmp_path, capsys):
    header_only, empty = tmp_path / "header.csv", tmp_path / "empty.csv"
    header_only.write_text("bank_id,account_id,typology,role\n")
    empty.write_text("")
    ap = tmp_path / "a.parquet"
    alerts(["p0"]).write_parquet(ap)
    for lp in (header_only, empty):
        assert main(["evaluate", "--alerts", str(ap), "--labels", str(lp)]) == 2
        assert capsys.readouterr().err.startswith(f"thb-signals evaluate: no labels in {lp}")
    with pytest.raises(EvaluationError, match="no labels in labels"):
        evaluate(alerts(["p0"]), labels().head(0))


def test_unreadable_files_are_named(tmp_path):
    """A folder, broken quoting or an empty file: one line naming the file; Parquet is Parquet whatever its name's case."""
    folder, quoted, empty = tmp_path / "dir.csv", tmp_path / "q.csv", tmp_path / "e.csv"
    folder.mkdir()
    quoted.write_text('bank_id,account_id,score,rank\n"B,p0,1,1\n')
    empty.write_text("")
    for path in (folder, quoted, empty):
        with pytest.raises(EvaluationError, match=f"alerts.*{path.name}"):
            evaluate(path, labels())
    upper = tmp_path / "LABELS.PARQUET"
    labels().write_parquet(upper)
    assert evaluate(alerts(["p0"]), upper)["accounts"] == 400


def test_csv_ids_stay_text(tmp_path):
    """Account 0001 in a CSV is the text "0001", so it matches the labels' "0001" (as a number it would not)."""
    ap = tmp_path / "a.csv"
    ap.write_text("bank_id,account_id,score,rank\nB,0001,0.9,1\n")
    lab = pl.DataFrame(
        {
            "bank_id": ["B", "B"],
            "account_id": ["0001", "0002"],
            "typology": ["labour_exploitation", "none"],
            "role": ["victim", "background"],
        }
    )
    m = evaluate(ap, lab)
    assert m["alerts_not_in_labels"] == 0 and m["recall@2%"] == 1.0


def test_budget_base_is_named_and_can_be_the_accounts_scored():
    """Labels from decisions cover a few accounts: the budget is a share of those unless the accounts scored are given,
    and the output says which, so 2% of 4 decided accounts is not read as 2% of the run."""
    from synthetic.evaluate import format_table

    decided = labels().filter(pl.col("account_id").is_in(["p0", "p1", "n0", "n1"]))
    ranked = alerts(["n0", "p0", "p1", "n1"] + [f"n{i}" for i in range(2, 12)])
    m = evaluate(ranked, decided)
    assert (m["budget_base"], m["budget_base_accounts"], m["budget@2%"], m["recall@2%"]) == ("labelled accounts", 4, 1, 0.0)
    assert "recall@2% (1 alerts: 2% of 4 labelled accounts)" in format_table(m)
    m = evaluate(ranked, decided, accounts_scored=400)
    assert (m["budget_base"], m["budget@2%"], m["recall@2%"]) == ("accounts scored", 8, 1.0)
    with pytest.raises(EvaluationError, match="accounts scored"):
        evaluate(ranked, decided, accounts_scored=0)


def test_the_command_takes_the_accounts_scored(tmp_path, capsys):
    """The budgets' base from the command line: `--accounts-scored N` for labels written from decisions."""
    from pipelines.cli import main

    labels().filter(pl.col("account_id").is_in(["p0", "p1", "n0", "n1"])).write_parquet(tmp_path / "l.parquet")
    alerts(["n0", "p0", "p1", "n1"] + [f"n{i}" for i in range(2, 12)]).write_parquet(tmp_path / "a.parquet")
    argv = ["evaluate", "--alerts", str(tmp_path / "a.parquet"), "--labels", str(tmp_path / "l.parquet"), "--json"]
    assert main([*argv, "--accounts-scored", "400"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert (m["budget_base"], m["budget@2%"], m["recall@2%"]) == ("accounts scored", 8, 1.0)


def test_a_subtlety_that_is_not_a_number_from_0_to_1_is_refused_naming_the_row(tmp_path):
    """Found by a hostile-input sweep: 'high' as a subtlety ended in "cannot compare string with numeric type",
    naming no file or row. Blank subtlety (unplanted accounts) stays allowed."""
    lab = labels().with_columns(pl.lit("0.5").alias("subtlety"))
    lab = lab.with_columns(pl.when(pl.col("typology") == "none").then(pl.lit("")).otherwise(pl.col("subtlety")).alias("subtlety"))
    ok = tmp_path / "ok.csv"
    lab.write_csv(ok)
    assert evaluate(alerts(["p0"]), ok)["recall_by_subtlety@2%"]
    bad = tmp_path / "bad.csv"
    lab.with_columns(
        pl.when(pl.col("account_id") == "p1").then(pl.lit("high")).otherwise(pl.col("subtlety")).alias("subtlety")
    ).write_csv(bad)
    row = lab["account_id"].to_list().index("p1") + 1
    with pytest.raises(EvaluationError, match=rf"bad\.csv row {row}: subtlety 'high' is not a number from 0 to 1"):
        evaluate(alerts(["p0"]), bad)
