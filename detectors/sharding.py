"""Sharded scoring: the accounts split by a hash of account_id into N shards, each shard's per-account work in its own DuckDB.

The coordinator (the scoring run's store connection) cuts the window into partitioned Parquet under a shared folder
(`win_tx/shard=K/`, `win_accounts/shard=K/`, `known.parquet`). A shard reads only its own folder and makes, for its
accounts: features, pass-through, the money edges of the link graph (`net_paid`, `net_received`: each groups one
account's own bookings) and the hits of the rules that read only the account's own rows (`runs_on_shard`). The
coordinator then joins the small results: the link graph from every shard's edges, the rules that read other accounts
or the store (CROSS_SHARD_RULES, stage-2 rules), patterns and the isolation forest. A saved model (the usual run) is
known before the shards, so each shard also scores its accounts with it in the same task (each worker loads the file
once); a model fitted in the run (on the combined features, which it samples itself) is scored in a second round of
shard tasks. Fusion, cases and the budget follow as in a one-process run.

How the shards run is the caller's: `shard_map(function, calls)` runs `function(**call)` for each call and returns
the results in order. The default runs them one after the other in this process; pipelines/sharded.py runs them as
Prefect tasks on a Dask cluster. Window-wide figures stay on the coordinator: `win_accounts` (customers sharing an
address, phone or device) is built over every account before it is cut, so a shard sees the same values.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import socket
from pathlib import Path
from typing import Callable

import polars as pl

from detectors.anomaly import AnomalyDetector, model_file, saved_model
from detectors.features import compute_features
from detectors.network import build_edges, build_known, build_shared, join_edges
from detectors.rule_detector import RuleDetector
from detectors.rules import RULES, Rule
from detectors.stages import Run, Stage
from detectors.window import window_end
from pipelines import store

# Rules of stage 1 that read more than the account's own rows: they run on the coordinator over the combined tables.
# Found by reading each rule's tables (tests/test_sharding.py checks that every rule naming a store table, the link
# graph or `hits` is here or in stage 2, and that sharded and one-process runs give the same hits).
CROSS_SHARD_RULES: dict[str, str] = {
    "LE04_CROWDED_ADDRESS": "counts customers per address over the store's accounts table",
    "CD01_TELECOM_BURST": "reads the account's bookings before the window from the store's transactions table",
    "CD_YOUNG_NEW_CREDIT": "reads the account's bookings before the window from the store's transactions table",
    "CD02_LOAN_COLLECTOR": "joins a lender's payments to the borrowers' own rows (counterparty_id = account_id)",
    "XB01_SHARED_BENEFICIARY": "counts the senders of each foreign beneficiary across accounts",
    "NET_INSTALMENT_BENEFICIARY": "counts the senders of each beneficiary across accounts",
    "NET_LINKED_TO_REPORTED": "reads the link graph (net_money, net_shared, net_flagged)",
}
# Tables a rule may read on a shard: the shard's window and what it computes from it.
SHARD_TABLES = ("win_tx", "win_accounts", "features", "pass_through", "win_wages")
SHARD_OUTPUTS = ("features", "pass_through", "hits", "net_paid", "net_received")

ShardMap = Callable[[Callable, list[dict]], list]


def runs_on_shard(rule: Rule) -> bool:
    return rule.stage == 1 and rule.id not in CROSS_SHARD_RULES


def in_process(function: Callable, calls: list[dict]) -> list:
    """The default shard_map: one shard after the other, here."""
    return [function(**call) for call in calls]


def _shard_glob(root: Path, table: str, shard: int) -> str:
    return str(root / table / f"shard={shard}" / "*.parquet")


def _load(con, table: str, files: str, empty_like: str | None = None) -> None:
    """A temp table from Parquet files; with none (a shard without rows), empty with the columns of `empty_like`."""
    if list(Path(files).parent.glob(Path(files).name)):
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM read_parquet(?, hive_partitioning = false)", [files])
    else:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM read_parquet(?, hive_partitioning = false) LIMIT 0",
            [empty_like],
        )


def score_shard(
    shard_dir: str,
    shard: int,
    days: int,
    window_end: str,
    rules: dict,
    memory_limit: str | None = None,
    model_file: str | None = None,
    anomaly_floor: float = 0.0,
) -> dict:
    """One shard's per-account work in its own in-memory DuckDB; the results go to `out/K/` as Parquet. With
    `model_file` (a saved isolation forest the run loads rather than fits), the shard also scores its accounts with it
    in the same task: no second round of tasks."""
    root = Path(shard_dir)
    out = store.private_dir(root / "out" / str(shard))
    con = store.connect(None, memory_limit)
    try:
        con.execute("SET VARIABLE window_end = CAST(? AS TIMESTAMPTZ)", [window_end])
        for table in ("win_tx", "win_accounts"):
            _load(con, table, _shard_glob(root, table, shard), str(root / table / "*" / "*.parquet"))
        con.execute("CREATE OR REPLACE TEMP TABLE net_known AS SELECT * FROM read_parquet(?)", [str(root / "known.parquet")])
        features = compute_features(con, days)
        build_edges(con)
        detector = RuleDetector(rules)
        detector.run_rules(con, days, only={r.id for r in detector.rules if runs_on_shard(r)})
        for table in SHARD_OUTPUTS:
            con.execute(f"COPY {table} TO $dst (FORMAT parquet)", {"dst": str(out / f"{table}.parquet")})
        rows = con.execute("SELECT count(*) FROM win_tx").fetchone()[0]
    finally:
        con.close()
    done = {"shard": shard, "accounts": features.height, "rows": rows, "process": f"{socket.gethostname()}:{os.getpid()}"}
    if model_file:
        done |= score_shard_anomaly(shard_dir, shard, model_file, anomaly_floor)
    return done


@functools.lru_cache(maxsize=2)
def _cached_model(path: str, mtime_ns: int) -> AnomalyDetector:
    """A worker loads a model file once and keeps it for its next shards (the key changes if the file is rewritten)."""
    return AnomalyDetector.load(path)


def load_model(folder_or_file: str | Path) -> AnomalyDetector:
    p = model_file(folder_or_file)
    return _cached_model(str(p), p.stat().st_mtime_ns)


def score_shard_anomaly(shard_dir: str, shard: int, models_dir: str, anomaly_floor: float) -> dict:
    """The isolation forest (`models_dir`: its folder or file), scoring this shard's accounts, with the words for the
    odd ones."""
    out = Path(shard_dir) / "out" / str(shard)
    features = pl.read_parquet(out / "features.parquet")
    model = load_model(models_dir)
    anomaly = model.score(features).join(features.select("bank_id", "account_id", "segment"), on=["bank_id", "account_id"])
    odd = anomaly.filter(pl.col("anomaly") > anomaly_floor).select("bank_id", "account_id")
    words = model.explain(features.join(odd, on=["bank_id", "account_id"], how="semi"))
    explained = pl.DataFrame(
        {"bank_id": [k[0] for k in words], "account_id": [k[1] for k in words], "words": list(words.values())},
        schema={"bank_id": pl.Utf8, "account_id": pl.Utf8, "words": pl.Utf8},
    )
    anomaly.write_parquet(store.private_file(out / "anomaly.parquet"))
    explained.write_parquet(store.private_file(out / "explanations.parquet"))
    return {"shard": shard, "accounts": anomaly.height, "above_floor": odd.height, "model": model.version}


# ---- the coordinator's stages --------------------------------------------------------------------------------------


def _root(run: Run) -> Path:
    return Path(run.context["shard_dir"])


def _outputs(run: Run, name: str) -> str:
    return str(_root(run) / "out" / "*" / f"{name}.parquet")


def _export(run: Run) -> dict:
    """Cut the window into N shards by a hash of account_id, as partitioned Parquet under the shared folder."""
    root = _root(run)
    if root.exists():
        shutil.rmtree(root)
    store.private_dir(root)
    n = int(run.context["shards"])
    for table in ("win_tx", "win_accounts"):
        run.con.execute(
            f"COPY (SELECT *, hash(account_id) % $n AS shard FROM {table}) TO $dst (FORMAT parquet, PARTITION_BY (shard))",
            {"n": n, "dst": str(root / table)},
        )
    run.con.execute(
        "COPY (SELECT account_id, any_value(bank_id) AS bank_id FROM accounts GROUP BY 1) TO $dst (FORMAT parquet)",
        {"dst": str(root / "known.parquet")},
    )
    return {"shards": n}


def _saved_model(run: Run) -> str | None:
    """The model file iforest_fit will load (not refit), known before the shards; None when the run fits one."""
    saved = saved_model(run.context["models_dir"], run.context["refit"])
    return str(saved) if saved else None


def _shards(run: Run) -> dict:
    """Every shard's features, edges and own-row rule hits (and, with a saved model, its anomaly scores); loaded back
    as the combined temp tables."""
    model_file = _saved_model(run)
    calls = [
        {
            "shard_dir": str(_root(run)),
            "shard": k,
            "days": run.settings.window.days,
            "window_end": run["window"].end.isoformat(),
            "rules": run.context["rule_config"],
            "memory_limit": run.context.get("shard_memory_limit"),
            "model_file": model_file,
            "anomaly_floor": run.settings.fusion.anomaly_floor,
        }
        for k in range(int(run.context["shards"]))
    ]
    done = run.context["shard_map"](score_shard, calls)
    run["shard_model"] = {d.get("model") for d in done}  # the model the shards scored with: iforest_score checks it
    for table in SHARD_OUTPUTS:
        name = "shard_hits" if table == "hits" else table
        run.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM read_parquet(?)", [_outputs(run, table)])
    run["features"] = run.con.sql("SELECT * FROM features ORDER BY bank_id, account_id").pl()
    return {
        "accounts": run["features"].height,
        "rows": sum(d["rows"] for d in done),
        "processes": len({d["process"] for d in done}),
    }


def _network(run: Run) -> dict:
    """The link graph from every shard's edges; shared keys and seeds over all accounts."""
    build_known(run.con)
    join_edges(run.con)
    build_shared(run.con, run.settings.network.max_group, reported_until=window_end(run.settings.window.as_of))
    return {"money_links": run.con.execute("SELECT count(*) FROM net_money").fetchone()[0]}


def _rules(run: Run) -> dict:
    """The shards' hits, then the rules that read across accounts (CROSS_SHARD_RULES and stage 2) over the combined tables."""
    detector = RuleDetector(run.context["rule_config"]).fit()
    run["rule_detector"] = detector
    cross = {r.id for r in detector.rules if not runs_on_shard(r)}
    return {"rules": len(detector.rules), "hits": detector.run_rules(run.con, run.settings.window.days, cross, "shard_hits")}


def _iforest_score(run: Run) -> dict:
    """Every shard scores its accounts with the one model (already done in the shard tasks when the run loaded the model
    they used; a second round of tasks when it was fitted here); anomaly rows in the order a one-process run gives them."""
    if run.results.get("shard_model") != {run["model"].version}:
        _score_round(run)
    anomaly = pl.read_parquet(_outputs(run, "anomaly"))
    segments = list(run["model"].models)
    run["anomaly"] = (
        anomaly.with_columns(pl.col("segment").replace_strict(segments, list(range(len(segments)))).alias("seg_order"))
        .sort("seg_order", "bank_id", "account_id")
        .drop("segment", "seg_order")
    )
    words = pl.read_parquet(_outputs(run, "explanations"))
    run["explanations"] = {(b, a): w for b, a, w in words.iter_rows()}
    if not run.context.get("keep_shards"):
        shutil.rmtree(_root(run), ignore_errors=True)
    return {"accounts": run["anomaly"].height, "above_floor": len(run["explanations"])}


def _score_round(run: Run) -> None:
    """The second round of shard tasks, for a model fitted after the shards."""
    calls = [
        {
            "shard_dir": str(_root(run)),
            "shard": k,
            "models_dir": str(run.context["models_dir"]),
            "anomaly_floor": run.settings.fusion.anomaly_floor,
        }
        for k in range(int(run.context["shards"]))
    ]
    run.context["shard_map"](score_shard_anomaly, calls)


SHARDED: dict[str, tuple[Stage, ...]] = {
    "features": (
        Stage(
            "shard_export", _export, reads=("win_tx", "win_accounts", "accounts"), doc="the window cut into N shards as Parquet"
        ),
        Stage(
            "shards",
            _shards,
            writes=("features", "pass_through", "shard_hits", "net_paid", "net_received"),
            gives=("features",),
            doc="each shard's features, edges and own-row rule hits, in its own DuckDB",
        ),
    ),
    "network": (
        Stage(
            "network",
            _network,
            reads=("net_paid", "net_received", "win_tx", "win_accounts", "accounts"),
            writes=("net_money", "net_shared", "net_flagged"),
            doc="the link graph from every shard's edges",
        ),
    ),
    "rules": (
        Stage(
            "rules",
            _rules,
            reads=("shard_hits", "win_tx", "win_accounts", "features", "pass_through", "net_money", "net_shared", "net_flagged"),
            writes=("hits",),
            gives=("rule_detector",),
            doc="the shards' hits, then the rules across accounts",
        ),
    ),
    "iforest_score": (
        Stage(
            "iforest_score",
            _iforest_score,
            needs=("features", "model"),
            gives=("anomaly", "explanations"),
            doc="each shard scores its accounts with the one model",
        ),
    ),
}


def sharded_stages(stages: tuple[Stage, ...]) -> tuple[Stage, ...]:
    """A scoring run's stages with the per-account ones replaced by their sharded form; the others as they are."""
    return tuple(s for st in stages for s in SHARDED.get(st.name, (st,)))


def reads_beyond_shard(rule: Rule) -> list[str]:
    """The tables a rule's SQL reads that a shard does not hold (for the classification test)."""
    sql = re.sub(r"--[^\n]*|'[^']*'", "", rule.render(90))  # not the words of comments and strings
    named = set(re.findall(r"\b(?:FROM|JOIN)\s+([a-z_]+)", sql, flags=re.IGNORECASE))
    ctes = set(re.findall(r"\b([a-z_]+)\s+AS\s*\(", sql, flags=re.IGNORECASE))
    return sorted(named - ctes - set(SHARD_TABLES))


__all__ = ["CROSS_SHARD_RULES", "RULES", "in_process", "runs_on_shard", "sharded_stages", "score_shard", "score_shard_anomaly"]
