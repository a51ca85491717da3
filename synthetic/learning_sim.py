"""Does the list get better as investigators decide? A simulation on a generated data set (a benchmark, not a test).

Investigators, played from the generator's labels, work the top `work` not-yet-decided alerts of each monthly window
for `months` successive months (`--as-of` the month's last day): a planted account is escalated, any other dismissed
as explained; with `flip` a share of those decisions is turned the other way (investigators err). After each month
the re-ranker is refitted on every decision so far (`thb-signals rerank`), once there are enough. The figure of each
month is precision@k of the list on accounts not yet decided, before that month's decisions.

Two baselines, so the gain can be told from what the decisions do without learning (dismissed accounts held back,
escalated ones seeding the network rules): `paired`, the same run of the learning arm ranked by its score before the
re-ranker's blend (the same months, the same decisions so far, the same undecided accounts: the difference is
learning's own), and the arm `no_learning_flip0`, where investigators work the list without the re-ranker throughout.

Investigators work fewer alerts a month (`work`) than the cut-off (`k`), as a real team does: a bank's list is
longer than a month's capacity and the exploited are a small share of the customers, so a month's decisions take a
small part of them. Here 1.4% of accounts are planted; deciding 100 a month at 20,000 accounts would take most of
them within five months and measure the pool running dry, not learning. And a share of the accounts (`held_out`) is
never worked: precision@k on them measures the ranking of accounts no investigator has seen, which the removal of the
decided ones cannot flatter or depress. In stream mode (below) fresh planted accounts arrive every month and the
held-out half is never depleted, so `--work 100` (the whole measured top, as a team that clears its list would) is
fair too; it brings the first dismissals in month 1, where the top 50 alone is nearly all planted. `pool` says how
many planted accounts were still undecided, `rankable` how many of them any rule or the forest scored above 0 (no
blend can lift an account from 0), and `ceiling` the best precision@k that allows.

    PYTHONPATH=. python -m synthetic.learning_sim --out bench/learning --accounts 20000 --seed 101 --family holdout

`--stream [LIFE]` (stream mode, synthetic/generate.py `stream_life`): trafficking scenarios start throughout the
simulated months and each runs LIFE days (60 without a value), as many running on any day as in the default data, and
laundering patterns start in every month alike (each its bursts within a week of its onset), so every month brings as
many fresh planted accounts as any other. Without it the planted behaviour runs the whole span, decisions use the
findable positives up and the figures measure the pool running dry, not learning. `fresh` says how many planted
accounts' scenarios started in the month's window. Each arm's `monthM/top{k}.parquet` keeps the month's measured list
(the top k of the undecided) with every account's score, rules, reasons, held-out flag and what the generator made of
it (typology, role, look-alike kind), so a fall can be read account by account.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from casework.dispositions import record_disposition
from casework.learning import LearningError, fit_reranker
from pipelines import store
from pipelines.casework_db import open_casework
from pipelines.ingest import ingest
from pipelines.snapshot import score_and_publish
from schemas.settings import Settings
from synthetic.families import FAMILIES
from synthetic.generate import generate

END = "2026-09-30"
MONTH = 30  # days between two runs: an investigators' month
KEYS = ["bank_id", "account_id"]


def prepare(
    root: Path, accounts: int, months: int, window_days: int, seed: int, family: str, held_out: float, stream: int = 0
) -> tuple[Path, pl.DataFrame, date]:
    """Generate `months` windows of bookings for two banks and load them (kept and reused for the same parameters);
    returns the store, labels and first day."""
    days = window_days + MONTH * (months - 1)  # the first window, then one month more per month
    params = {"accounts": accounts, "days": days, "seed": seed, "family": family, "end": END}
    if stream:  # kept out of the default's marker, so a stored default base stays reusable
        params["stream"] = stream
    db, marker = root / "base.duckdb", root / "base.json"
    if not (db.exists() and marker.exists() and json.loads(marker.read_text()) == params):
        shutil.rmtree(root / "gen", ignore_errors=True)
        db.unlink(missing_ok=True)
        generate(root / "gen", accounts=accounts, days=days, banks=2, seed=seed, family=family, end=END, stream_life=stream)
        for bank in sorted(p.name for p in (root / "gen").iterdir() if p.is_dir()):
            out = ingest(root / "gen" / bank, db)
            if out.outcome != "loaded":
                raise RuntimeError(f"{bank}: {out.outcome}")
        marker.write_text(json.dumps(params))
    labels = pl.read_parquet(root / "gen" / "labels.parquet")
    onset = pl.col("onset") if "onset" in labels.columns else pl.lit(None, dtype=pl.Date)
    labels = labels.select(*KEYS, (pl.col("typology") != "none").alias("positive"), onset.alias("onset"))
    labels = labels.sort(KEYS).with_columns(
        pl.Series("held_out", np.random.default_rng([seed, 16]).random(labels.height) < held_out)
    )
    return db, labels, date.fromisoformat(END) - timedelta(days=days - 1)


def settings_for(as_of: date | None, window_days: int, learn: bool, overrides: dict | None = None) -> Settings:
    """A month's run: the window up to `as_of`, no budget and no floor: the whole population is ranked, so the re-ranker can lift what the rules rank low."""
    over = {"window.days": window_days, "budget.share": 1.0, "fusion.min_score": 0.0, "rerank.enabled": learn}
    return Settings().with_overrides(**{**over, **(overrides or {}), **({"window.as_of": as_of} if as_of else {})})


def before_learning(db: Path, run_id: str) -> pl.DataFrame:
    """The run's alerts ranked by their score before the re-ranker's blend (kept in `learning_input`)."""
    con = store.connect(db, read_only=True)
    try:
        a = con.sql(
            """SELECT bank_id, account_id, CAST(learning_input->>'fused_score' AS DOUBLE) AS score FROM alerts
               WHERE run_id = $run ORDER BY score DESC, bank_id, account_id""",
            params={"run": run_id},
        ).pl()
    finally:
        con.close()
    return a


def precision_at(ranked: pl.DataFrame, decided: pl.DataFrame, labels: pl.DataFrame, k: int) -> tuple[float, pl.DataFrame]:
    """precision@k of a ranking on accounts not yet decided, and those top k (with `positive`)."""
    top = (
        ranked.select(KEYS + (["alert_id"] if "alert_id" in ranked.columns else []))
        .join(decided, on=KEYS, how="anti", maintain_order="left")
        .join(labels, on=KEYS, how="left", maintain_order="left")
        .with_columns(pl.col("positive").fill_null(False))
        .head(k)
    )
    return float(top["positive"].sum()) / k, top


def _keep_list(path: Path, listed: pl.DataFrame, ranked: pl.DataFrame, detail: pl.DataFrame) -> None:
    """The month's measured list (top k of the undecided) with each account's score, reasons and what the generator
    made of it (`detail`: typology, role, look-alike kind), so a fall can be read account by account."""
    cols = [c for c in ("rank", "score", "reasons", "rules") if c in ranked.columns]
    path.parent.mkdir(parents=True, exist_ok=True)
    listed.join(ranked.select(KEYS + cols), on=KEYS, how="left", maintain_order="left").join(
        detail, on=KEYS, how="left", maintain_order="left"
    ).write_parquet(path)


def play(
    base: Path,
    labels: pl.DataFrame,
    first: date,
    arm: Path,
    months: int,
    window_days: int,
    k: int,
    work: int,
    flip: float,
    learn: bool,
    seed: int,
    overrides: dict | None = None,
) -> list[dict]:
    """One arm: a fresh copy of the store, `months` months of scoring, deciding the top `work` and (if `learn`) refitting."""
    shutil.rmtree(arm, ignore_errors=True)
    store.private_dir(arm)
    db, models = arm / "s.duckdb", arm / "models"
    shutil.copy(base, db)
    rng = np.random.default_rng(seed)
    decided = pl.DataFrame(schema={"bank_id": pl.Utf8, "account_id": pl.Utf8})
    fresh = labels.filter("held_out").select(KEYS)
    detail = pl.read_parquet(base.parent / "gen" / "labels.parquet").select(KEYS + ["typology", "role", "lookalike", "pattern"])
    positives = labels.filter("positive").select(KEYS)
    out = []
    for m in range(1, months + 1):
        started = time.perf_counter()
        as_of = first + timedelta(days=window_days - 1 + MONTH * (m - 1))
        # the simulation's today is the month's end: its investigators' decisions and fits (made now) count as made by then
        res = score_and_publish(
            db, arm / f"month{m}", settings_for(as_of, window_days, learn, overrides), models_dir=models, casework_today=True
        )
        ranked, unblended = res.alerts.sort("rank"), before_learning(db, res.run_id)
        precision, listed = precision_at(ranked, decided, labels, k)
        _keep_list(arm / f"month{m}" / f"top{k}.parquet", listed, ranked, detail)
        paired, _ = precision_at(unblended, decided, labels, k)
        held, _ = precision_at(ranked.join(fresh, on=KEYS, how="semi", maintain_order="left"), decided, labels, k)
        held_paired, _ = precision_at(unblended.join(fresh, on=KEYS, how="semi", maintain_order="left"), decided, labels, k)
        _, top = precision_at(ranked.join(fresh, on=KEYS, how="anti", maintain_order="left"), decided, labels, work)
        undecided = positives.join(decided, on=KEYS, how="anti")
        raised = undecided.join(unblended.filter(pl.col("score") > 0), on=KEYS, how="semi")  # some rule or the forest saw it
        pool, rankable = undecided.height, raised.height
        held_rankable = raised.join(fresh, on=KEYS, how="semi").height
        started_now = labels.filter(pl.col("onset").is_between(as_of - timedelta(days=window_days - 1), as_of)).height
        todo = top.head(work)
        wrong = rng.random(todo.height) < flip
        cw = open_casework(db)
        for alert_id, positive, err in zip(todo["alert_id"], todo["positive"], wrong):  # a month of investigators' decisions
            escalate = bool(positive) != bool(err)
            record_disposition(cw, alert_id, "escalate" if escalate else "dismiss", "sim", None if escalate else "explained")
        decided = pl.concat([decided, todo.select(KEYS)])
        model = None
        if learn:
            try:  # the decisions as they stand now; the window is not needed (each alert kept what it showed)
                fit = Settings().with_overrides(**{"window.days": window_days}, **(overrides or {}))
                model = fit_reranker(db, fit, models_dir=models, seed=seed)
            except LearningError:
                model = None
        out.append(
            {
                "month": m,
                "as_of": as_of.isoformat(),
                f"precision@{k}": round(precision, 4),
                f"precision@{k}_before_blend": round(paired, 4),
                f"held_out_precision@{k}": round(held, 4),
                f"held_out_precision@{k}_before_blend": round(held_paired, 4),
                "pool": pool,
                "rankable": rankable,
                "ceiling": round(min(k, rankable) / k, 4),
                "held_out_rankable": held_rankable,
                "held_out_ceiling": round(min(k, held_rankable) / k, 4),
                "fresh": started_now,
                "ranked": res.alerts.height,
                "worked": todo.height,
                "escalated": int(todo["positive"].sum()),
                "reranker_used": bool(res.alerts["reasons"].str.contains("Learned from").any()) if res.alerts.height else False,
                "refit_on": (model["positives"] + model["negatives"]) if model else 0,
                "refit_C": model["C"] if model else None,
                "refit_unlabelled": model["unlabelled"] if model else 0,
                "weight_next": round(model["weight"], 4) if model else 0.0,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        print(
            f"  month {m} ({as_of}): precision@{k} {precision:.3f} (before blend {paired:.3f}), held out {held:.3f} "
            f"(before blend {held_paired:.3f}), planted undecided {pool}, rankable {rankable} (held out {held_rankable}), "
            f"{out[-1]['seconds']} s",
            file=sys.stderr,
        )
    return out


def summary(months: list[dict], key: str) -> dict:
    """The issue's goal: a rise of at least 0.1 from month 1 to the last where month 1 is below 0.9 (a list that starts
    at 0.9 or more need not), and never a fall of more than 0.02 from one month to the next."""
    p = [m[key] for m in months]
    drops = [round(b - a, 4) for a, b in zip(p, p[1:])]
    rise = p[0] >= 0.9 or round(p[-1] - p[0], 4) >= 0.1
    return {
        "precision": p,
        "gain_1_to_last": round(p[-1] - p[0], 4),
        "largest_fall": round(max(0.0, -min(drops + [0.0])), 4),
        "goal_met": rise and -min(drops + [0.0]) <= 0.02,
    }


def simulate(
    out: str | Path,
    accounts: int = 20_000,
    months: int = 5,
    window_days: int = 30,
    k: int = 100,
    work: int = 50,
    seed: int = 101,
    family: str = "holdout",
    flip: float = 0.1,
    held_out: float = 0.5,
    argv: list[str] | None = None,
    stream: int = 0,
    overrides: dict | None = None,
    arms: list[str] | None = None,
) -> dict:
    started = time.perf_counter()
    root = store.private_dir(out)
    base, labels, first = prepare(root, accounts, months, window_days, seed, family, held_out, stream)
    chosen = Settings().with_overrides(**(overrides or {}))
    result = {
        "command": "PYTHONPATH=. python -m synthetic.learning_sim " + " ".join(argv or []),
        "accounts": accounts,
        "planted": int(labels["positive"].sum()),
        "family": family,
        "seed": seed,
        "stream_life": stream,
        "months": months,
        "window_days": window_days,
        "k": k,
        "work": work,
        "held_out": held_out,
        "held_out_planted": int(labels.filter("held_out")["positive"].sum()),
        **{section: getattr(chosen, section).model_dump() for section in ("rerank", "fusion")},
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores (shared)",
        "generate_seconds": round(time.perf_counter() - started, 1),
        "arms": {},
    }
    for name, learn, f in (
        ("learning_flip0", True, 0.0),
        ("no_learning_flip0", False, 0.0),
        (f"learning_flip{int(flip * 100)}", True, flip),
    ):
        if arms and name not in arms:  # tuning runs may play only some arms
            continue
        print(f"{name}:", file=sys.stderr)
        t = time.perf_counter()
        months_out = play(base, labels, first, root / name, months, window_days, k, work, f, learn, seed, overrides)
        arm = {"months": months_out, "seconds": round(time.perf_counter() - t, 1), **summary(months_out, f"precision@{k}")}
        arm["held_out"] = summary(months_out, f"held_out_precision@{k}")
        if learn:
            arm["paired_without_blend"] = summary(months_out, f"precision@{k}_before_blend")
            arm["held_out_paired_without_blend"] = summary(months_out, f"held_out_precision@{k}_before_blend")
        result["arms"][name] = arm
    result["seconds"] = round(time.perf_counter() - started, 1)
    (root / "learning.json").write_text(json.dumps(result, indent=2))
    return result


def _at_least(low: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is below {low}")
        return value

    return parse


def _share(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a share (0 <= share < 1)")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="bench/learning", help="folder for the stores and learning.json")
    p.add_argument("--accounts", type=_at_least(100), default=20_000)
    p.add_argument("--months", type=_at_least(1), default=5)
    p.add_argument("--window-days", type=_at_least(1), default=30)
    p.add_argument("--k", type=_at_least(1), default=100, help="the precision cut-off")
    p.add_argument(
        "--work", type=_at_least(1), default=50, help="alerts investigators decide per month (the top of the undecided)"
    )
    p.add_argument("--seed", type=int, default=101)
    p.add_argument(
        "--family", choices=sorted(FAMILIES), default="holdout", help="generator settings family (detection was tuned on `tune`)"
    )
    p.add_argument("--flip", type=_share, default=0.1, help="share of decisions turned the other way in the third arm")
    p.add_argument("--held-out", type=_share, default=0.5, help="share of accounts no investigator works (measured fresh)")
    p.add_argument(
        "--stream",
        type=_at_least(7),
        nargs="?",
        const=60,
        default=0,
        metavar="LIFE",
        help="stream mode: scenarios start throughout the months, each running LIFE days (60 without a value)",
    )
    for section, example in (("rerank", "rerank.max_weight=0.8"), ("fusion", "fusion.link_only_factor=1")):
        p.add_argument(
            f"--{section}",
            type=_setting(section),
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help=f"a {section} setting for every run of the simulation ({example}; repeatable; default: schemas/settings.py)",
        )
    p.add_argument(
        "--arms",
        nargs="+",
        metavar="ARM",
        help="play only these arms (tuning; default all three: learning_flip0 no_learning_flip0 learning_flipN)",
    )
    return p


def _setting(section: str):
    """KEY=VALUE for one setting of `section` (rerank, fusion), checked against schemas/settings.py."""

    def parse(text: str) -> tuple[str, str]:
        key, sep, value = text.partition("=")
        key = key if key.startswith(f"{section}.") else f"{section}.{key}"
        if not sep or key.removeprefix(f"{section}.") not in type(getattr(Settings(), section)).model_fields:
            raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE with a {section} setting as KEY")
        try:
            Settings().with_overrides(**{key: value})
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"{text!r}: {str(e).splitlines()[0]}") from None
        return key, value

    return parse


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    a = parser().parse_args(argv)
    r = simulate(
        a.out,
        a.accounts,
        a.months,
        a.window_days,
        a.k,
        a.work,
        a.seed,
        a.family,
        a.flip,
        a.held_out,
        argv,
        a.stream,
        dict(a.rerank + a.fusion),
        a.arms,
    )
    for name, arm in r["arms"].items():
        print(
            f"{name:<22} precision@{a.k} by month {arm['precision']}  gain {arm['gain_1_to_last']:+.3f}  goal met: {arm['goal_met']}"
        )
        if "paired_without_blend" in arm:
            print(f"{'  same runs, no blend':<22} precision@{a.k} by month {arm['paired_without_blend']['precision']}")
        print(
            f"{'  held out':<22} precision@{a.k} by month {arm['held_out']['precision']}  goal met: {arm['held_out']['goal_met']}"
        )
        if "held_out_paired_without_blend" in arm:
            print(f"{'  held out, no blend':<22} precision@{a.k} by month {arm['held_out_paired_without_blend']['precision']}")
    print(f"{r['seconds']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
