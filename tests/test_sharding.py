"""Sharded scoring gives the alerts of a one-process run: same accounts, rule hits, cases; scores equal to 1e-9."""

import logging
import re
import shutil

import polars as pl
import pytest

from detectors.rules import RULES
from detectors.scoring import score_store
from detectors.sharding import CROSS_SHARD_RULES, in_process, reads_beyond_shard, runs_on_shard, score_shard, sharded_stages
from tests.conftest import generated_store
from tests.same_alerts import assert_same_alerts


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("shard")
    return generated_store(root, accounts=1500, days=45)


def _copy(db, tmp_path, name):
    dst = tmp_path / f"{name}.duckdb"
    shutil.copy(db, dst)
    return dst


def _score(db, tmp_path, name, **kw):
    """A scoring run on a copy of the store, so runs do not see each other's alerts; the same model for both."""
    return score_store(_copy(db, tmp_path, name), tmp_path / name, models_dir=tmp_path / "models", **kw)


def test_every_rule_reading_beyond_its_account_runs_on_the_coordinator():
    ids = {r.id for r in RULES}
    assert set(CROSS_SHARD_RULES) <= ids
    for r in RULES:
        beyond = reads_beyond_shard(r)
        if beyond:
            assert not runs_on_shard(r), f"{r.id} reads {beyond} but runs on a shard"
    # the classification is not everything: most rules still run on the shards
    assert sum(runs_on_shard(r) for r in RULES) >= 20  # 26 of 38 today
    # a rule reading only its own rows is not held back on the coordinator without a reason in words
    assert all(len(why) > 20 for why in CROSS_SHARD_RULES.values())


def test_sharded_stages_keep_every_other_stage():
    from detectors.scoring import STAGES

    names = [s.name for s in sharded_stages(STAGES)]
    assert names[:3] == ["window", "shard_export", "shards"]
    assert {"patterns", "iforest_fit", "fusion", "cases", "write_alerts"} <= set(names)


def test_four_shards_in_process_give_the_same_alerts(store, tmp_path):
    one = _score(store, tmp_path, "one", refit=True)
    many = _score(store, tmp_path, "many", shards=4)
    assert many.model_version == one.model_version  # loaded, not refitted: the scores must then agree
    assert_same_alerts(one, many)
    assert not (tmp_path / "many" / ".shards" / many.run_id).exists()  # the shard files are removed after the run


def test_a_shard_with_no_accounts_still_runs(store, tmp_path):
    """A hash bucket no account falls into (likely with many shards over a small bank) gives empty results of the right
    columns, and the run still gives the one-process alerts."""
    results = []

    def with_an_empty_shard(function, calls):
        if function is score_shard:
            calls = [*calls, {**calls[0], "shard": len(calls)}]  # hash % N never reaches N: this bucket has no rows
        results.extend(in_process(function, calls))
        return results[-len(calls) :]

    one = _score(store, tmp_path, "one", refit=True)
    many = _score(store, tmp_path, "many", shards=3, shard_map=with_an_empty_shard)
    empty = [r for r in results if r.get("shard") == 3 and "rows" in r]
    assert len(empty) == 1 and empty[0]["rows"] == 0 and empty[0]["accounts"] == 0
    assert_same_alerts(one, many)


def test_shard_hits_plus_coordinator_hits_are_the_one_process_hits(store, tmp_path):
    """Rule by rule: a rule put on the shards by mistake would fire on fewer (or other) accounts there."""
    one = _score(store, tmp_path, "one", refit=True)
    many = _score(store, tmp_path, "many", shards=3)
    hits = {}
    for name, res in (("one", one), ("many", many)):
        written = pl.read_parquet(res.files["parquet"]).select("bank_id", "account_id", "rules").explode("rules")
        hits[name] = written.sort("bank_id", "account_id", "rules")
    assert hits["one"].height > 0 and hits["one"].equals(hits["many"])


@pytest.mark.slow
def test_four_shards_on_a_local_dask_cluster_through_prefect_give_the_same_alerts(store, tmp_path, prefect_harness):
    from pipelines.sharded import score_on_dask

    one = _score(store, tmp_path, "one", refit=True)
    db = _copy(store, tmp_path, "dask")
    heard = []
    handler = logging.Handler()
    handler.emit = lambda record: heard.append(record.getMessage())
    log = logging.getLogger("prefect.flow_runs")  # the flow run's log, where each stage's line goes
    log.addHandler(handler)
    try:
        many = score_on_dask(db, tmp_path / "dask", shards=4, workers=2, models=str(tmp_path / "models"))
    finally:
        log.removeHandler(handler)
    assert_same_alerts(one, many)
    # the shards ran in the cluster's two worker processes, not here
    assert any(re.search(r"score shards: .*processes 2\b", m) for m in heard), [m for m in heard if "shards" in m]


def test_a_saved_model_is_scored_in_the_shard_tasks_and_a_fitted_one_in_a_second_round(store, tmp_path):
    """With a saved model the shards score their accounts in the same task; a run that fits its model (refit) needs a
    second round after the fit. Both give the one-process alerts."""
    one = _score(store, tmp_path, "one", refit=True)
    rounds = {}

    def counting(function, calls):
        rounds[function.__name__] = rounds.get(function.__name__, 0) + 1
        return in_process(function, calls)

    loaded = _score(store, tmp_path, "loaded", shards=3, shard_map=counting)
    assert rounds == {"score_shard": 1} and loaded.model_version == one.model_version
    assert_same_alerts(one, loaded)
    rounds.clear()
    fitted = _score(store, tmp_path, "fitted", shards=3, shard_map=counting, refit=True)
    assert rounds == {"score_shard": 1, "score_shard_anomaly": 1}
    assert_same_alerts(one, fitted)
