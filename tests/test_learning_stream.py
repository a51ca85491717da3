"""Stream mode of the generator (synthetic/generate.py `stream_life`, learning_sim --stream): scenarios start throughout."""

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from synthetic.events import Events, Shifted
from synthetic.families import family
from synthetic.generate import generate
from synthetic.laundering import DEFAULT_DAYS, PATTERNS, PATTERNS_PER_ACCOUNT, STREAM_PATTERN_DAYS, plant_laundering
from synthetic.learning_sim import parser
from synthetic.population import make_population
from synthetic.typologies import SIZES, plan, scenario_events, spread_onsets, stream_scale

DAYS, LIFE, END = 150, 60, date(2026, 9, 30)


@pytest.fixture(scope="module")
def streamed(tmp_path_factory):
    out = tmp_path_factory.mktemp("stream") / "g"
    generate(out, accounts=3000, days=DAYS, banks=1, seed=21, family="holdout", end=END.isoformat(), stream_life=LIFE)
    labels = pl.read_parquet(out / "labels.parquet")
    tx = pl.read_parquet(out / "BANK_A" / "transactions.parquet", columns=["account_id", "counterparty_id", "booked_at"])
    return labels, tx


def _running(scenarios, day):
    return sum(sc.extra["onset"] <= day < sc.extra["onset"] + sc.extra["life"] for sc in scenarios)


def test_as_many_scenarios_run_and_start_in_every_month_as_in_the_default():
    fam = family("holdout")
    default, _ = plan(np.random.default_rng(5), make_population(np.random.default_rng(4), 20_000, 2, fam), fam)
    pop = make_population(np.random.default_rng(4), 20_000, 2, fam)
    scenarios, _ = plan(np.random.default_rng(5), pop, fam, stream_scale(DAYS, LIFE))
    spread_onsets(np.random.default_rng(6), pop, scenarios, DAYS, LIFE)
    assert len(scenarios) > 3 * len(default)
    for day in range(0, DAYS, 10):  # the default runs every scenario all the time; stream mode as many on any day
        assert abs(_running(scenarios, day) - len(default)) <= len(SIZES), day
    onsets = np.array([sc.extra["onset"] for sc in scenarios if sc.extra["onset"] >= 0])
    months = np.bincount(onsets // 30, minlength=DAYS // 30)  # as many start in every month (each kind +-1)
    assert months.min() >= 5 and months.max() - months.min() <= len(SIZES), months


def test_planted_accounts_carry_their_onset_and_their_scenario_starts_then(streamed):
    labels, tx = streamed
    planted = labels.filter(~pl.col("typology").is_in(["none", "laundering"]))
    assert planted.height and planted["onset"].null_count() == 0
    assert labels.filter(pl.col("typology") == "laundering")["onset"].null_count() == 0  # patterns start too
    assert labels.filter(pl.col("typology") == "none")["onset"].null_count() == labels.filter(pl.col("typology") == "none").height
    first = END - timedelta(days=DAYS - 1)
    month = planted.filter(pl.col("onset") >= first).select(((pl.col("onset") - first).dt.total_days() // 30).alias("m"))
    assert sorted(month["m"].unique()) == list(range(DAYS // 30))  # fresh planted accounts in every month of the data
    # the scenario's own bookings (its accounts with its controller: households they share book all along) fall in
    # its life, from the onset on
    day = (pl.col("booked_at").dt.date() - pl.col("onset")).dt.total_days()
    ctrl = planted.filter(pl.col("role") == "controller").select(pl.col("account_id").alias("counterparty_id"), "scenario_id")
    own = (
        tx.join(planted.select("account_id", "scenario_id", "onset"), on="account_id")
        .join(ctrl, on=["counterparty_id", "scenario_id"])
        .filter(pl.col("onset") >= first)
    )
    assert own.height > 50 and own.filter(day.is_between(0, LIFE + 7)).height >= 0.97 * own.height, own.select(day).describe()


def _laundering(stream: bool):
    pop = make_population(np.random.default_rng(4), 20_000, 2, family("holdout"))
    ev = Events(np.random.default_rng(3), DAYS)
    labels = plant_laundering(ev, pop, np.random.default_rng(7), np.array([], dtype=np.int64), stream=stream)
    return labels.filter(pl.col("typology") == "laundering"), ev.frame()


def test_laundering_patterns_start_in_every_month_and_run_within_days_of_their_onset():
    labels, tx = _laundering(stream=True)
    onset = labels.group_by("scenario_id").agg(pl.col("onset_day").unique())
    assert onset["onset_day"].list.len().max() == 1 and labels["onset_day"].null_count() == 0  # one onset per pattern
    per_kind = labels["scenario_id"].n_unique() // len(PATTERNS)
    assert per_kind == round(20_000 * PATTERNS_PER_ACCOUNT * DAYS / DEFAULT_DAYS)  # as many per day as the default 90 days
    months = np.bincount(onset["onset_day"].list.first().to_numpy() // 30, minlength=DAYS // 30)
    assert months.tolist() == [len(PATTERNS) * per_kind // (DAYS // 30)] * (DAYS // 30), months  # one slot each
    # every transfer of a pattern's account to or from another of its accounts falls in the days after its onset
    acc = labels.select(pl.col("acc"), "scenario_id", "onset_day")
    moves = tx.join(acc, on="acc").join(acc.select(pl.col("acc").alias("cp_acc"), "scenario_id"), on=["cp_acc", "scenario_id"])
    lag = moves["day"] - moves["onset_day"]
    assert moves.height > 100 and lag.min() >= 0 and lag.max() <= STREAM_PATTERN_DAYS == 7 + 15, lag.describe()


def test_without_stream_mode_patterns_have_no_onset_and_fall_anywhere_before_the_last_20_days():
    labels, tx = _laundering(stream=False)
    assert labels["onset_day"].null_count() == labels.height
    assert labels["scenario_id"].n_unique() == 3 * len(PATTERNS)
    moves = tx.join(labels.select("acc"), on="acc")
    assert moves["day"].max() < DAYS - 20 + 15 and moves["day"].min() < 30  # starts before the last 20 days, hops after


def test_a_shift_of_nothing_books_exactly_what_the_default_books():
    fam = family("tune")
    frames = []
    for shifted in (False, True):
        pop = make_population(np.random.default_rng(1), 3000, 2, fam)
        scenarios, _ = plan(np.random.default_rng(2), pop, fam)
        ev = Events(np.random.default_rng(3), 60)
        if shifted:
            for sc in scenarios:
                scenario_events(Shifted(ev, 0, 60), pop, [sc], fam)
        else:
            scenario_events(ev, pop, scenarios, fam)
        frames.append(ev.frame())
    assert frames[0].equals(frames[1])


def test_the_default_has_no_onsets(tmp_path):
    generate(tmp_path / "d", accounts=300, days=30, banks=1, seed=3)
    assert "onset" not in pl.read_parquet(tmp_path / "d" / "labels.parquet").columns


def test_stream_flag(capsys):
    assert parser().parse_args([]).stream == 0
    assert parser().parse_args(["--stream"]).stream == 60
    assert parser().parse_args(["--stream", "90"]).stream == 90
    for bad in ("3", "x"):
        with pytest.raises(SystemExit):
            parser().parse_args(["--stream", bad])
        err = capsys.readouterr().err.strip().splitlines()
        assert "error: argument --stream" in err[-1]
        assert [line for line in err if "error:" in line] == [err[-1]] and "Traceback" not in "".join(err)


def test_rerank_flag(capsys):
    a = parser().parse_args(["--rerank", "max_weight=0.8", "--rerank", "rerank.half_weight_decisions=50"])
    assert dict(a.rerank) == {"rerank.max_weight": "0.8", "rerank.half_weight_decisions": "50"}
    for bad in ("max_weight=3", "nope=1", "max_weight"):
        with pytest.raises(SystemExit):
            parser().parse_args(["--rerank", bad])
        err = capsys.readouterr().err.strip().splitlines()
        assert "error: argument --rerank" in err[-1] and "Traceback" not in "".join(err)
    assert dict(parser().parse_args(["--fusion", "link_only_factor=1"]).fusion) == {"fusion.link_only_factor": "1"}
    for bad in ("link_only_factor=2", "max_weight=0.5"):  # out of range; a rerank setting is not a fusion one
        with pytest.raises(SystemExit):
            parser().parse_args(["--fusion", bad])
        assert "error: argument --fusion" in capsys.readouterr().err.strip().splitlines()[-1]


def test_the_generate_command_writes_a_stream(tmp_path, capsys):
    """`thb-signals generate --stream-life DAYS` is stream mode for users: onsets inside the period; without it, none."""
    from pipelines.cli import main

    assert main(["generate", str(tmp_path / "s"), "--accounts", "800", "--days", "30", "--stream-life", "20", "--quiet"]) == 0
    onset = pl.read_parquet(tmp_path / "s" / "labels.parquet")["onset"].drop_nulls()
    assert onset.len() > 0 and onset.min() >= END - timedelta(days=29 + 20) and onset.max() <= END
    assert main(["generate", str(tmp_path / "d"), "--accounts", "800", "--days", "30", "--quiet"]) == 0
    assert "onset" not in pl.read_parquet(tmp_path / "d" / "labels.parquet").columns
    with pytest.raises(SystemExit):
        main(["generate", str(tmp_path / "x"), "--stream-life", "0"])
    assert "--stream-life: 0 must be at least 1" in capsys.readouterr().err
