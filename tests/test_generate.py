"""The synthetic generator: deterministic, contract-valid, every typology and role planted."""
import hashlib

import polars as pl
import pytest

from synthetic.generate import generate
from synthetic.typologies import HARD_NEGATIVE_SHARE, INDICATORS, SIZES
from pipelines.validation import validate


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen")
    info = generate(out / "a", accounts=3000, days=60, banks=2, seed=11)
    return out, info


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes(generated, tmp_path):
    out, _ = generated
    generate(tmp_path / "b", accounts=3000, days=60, banks=2, seed=11)
    for bank in ("BANK_A", "BANK_B"):
        assert _digest(out / "a" / bank) == _digest(tmp_path / "b" / bank)
    assert _digest(out / "a")["labels.parquet"] == _digest(tmp_path / "b")["labels.parquet"]
    generate(tmp_path / "c", accounts=3000, days=60, banks=2, seed=12)
    assert _digest(out / "a" / "BANK_A") != _digest(tmp_path / "c" / "BANK_A")


def test_every_submission_validates(generated):
    out, _ = generated
    for bank in ("BANK_A", "BANK_B"):
        v = validate(out / "a" / bank)
        assert v.fault is None and v.ok, [r.check.id for r in v.results if r.failing]
        assert not (out / "a" / bank / "labels.parquet").exists()   # labels never inside a submission


def test_typologies_roles_and_shares(generated):
    out, info = generated
    lab = pl.read_parquet(out / "a" / "labels.parquet")
    assert lab.height == 3000 == sum(info["accounts"].values())
    got = {(t, r) for t, r in lab.select("typology", "role").unique().iter_rows()}
    want_roles = {("sexual_exploitation", "victim"), ("sexual_exploitation", "controller"),
                  ("labour_exploitation", "victim"), ("labour_exploitation", "employer"), ("labour_exploitation", "controller"),
                  ("criminal_exploitation", "mule"), ("criminal_exploitation", "controller"),
                  ("creditboys", "victim"), ("creditboys", "controller"), ("debt_bondage", "victim"),
                  ("none", "hard_negative"), ("none", "background")}
    assert want_roles <= got
    pos = lab.filter(pl.col("typology") != "none")
    for typ in INDICATORS:
        share = pos.filter(pl.col("typology") == typ).height / lab.height
        assert 0.0007 <= share <= 0.006, (typ, share)      # about 0.15 % each (whole scenarios: coarse at 3,000)
    hn = lab.filter(pl.col("role") == "hard_negative").height / lab.height
    assert 0.5 * HARD_NEGATIVE_SHARE <= hn <= 2 * HARD_NEGATIVE_SHARE
    assert pos["scenario_id"].null_count() == 0


def test_labels_reference_existing_accounts(generated):
    out, _ = generated
    lab = pl.read_parquet(out / "a" / "labels.parquet")
    accounts = pl.concat([pl.read_parquet(out / "a" / b / "accounts.parquet") for b in ("BANK_A", "BANK_B")])
    joined = lab.join(accounts, on=["bank_id", "account_id"], how="anti")
    assert joined.height == 0


def test_cross_bank_counterparties_share_ids(generated):
    """A transfer between banks appears at both, with the same pseudonymous ids."""
    out, _ = generated
    a = pl.read_parquet(out / "a" / "BANK_A" / "transactions.parquet")
    b_acc = set(pl.read_parquet(out / "a" / "BANK_B" / "accounts.parquet")["account_id"])
    assert a.filter(pl.col("counterparty_id").is_in(list(b_acc))).height > 100


def test_planted_signals_are_in_the_data(generated):
    """A victim of sexual exploitation sends money on to the scenario's controller."""
    out, _ = generated
    lab = pl.read_parquet(out / "a" / "labels.parquet")
    tx = pl.concat([pl.read_parquet(out / "a" / b / "transactions.parquet") for b in ("BANK_A", "BANK_B")])
    se = lab.filter(pl.col("typology") == "sexual_exploitation")
    for sid in se["scenario_id"].unique().to_list():
        ctrl = se.filter((pl.col("scenario_id") == sid) & (pl.col("role") == "controller"))["account_id"][0]
        victims = se.filter((pl.col("scenario_id") == sid) & (pl.col("role") == "victim"))["account_id"]
        paid = tx.filter(pl.col("account_id").is_in(victims.to_list()) & (pl.col("counterparty_id") == ctrl)
                         & (pl.col("direction") == "debit"))
        assert paid.height > 0


def test_scenarios_differ_in_strength():
    import numpy as np
    from synthetic.typologies import _strength
    rng = np.random.default_rng(0)
    sizes = {len(_strength(rng, "sexual_exploitation")) for _ in range(200)}
    assert min(sizes) == 2 and max(sizes) == len(INDICATORS["sexual_exploitation"])
    assert set(SIZES) == set(INDICATORS)


def test_laundering_patterns_and_lookalikes_labelled(generated, tmp_path):
    out, _ = generated
    lab = pl.read_parquet(out / "a" / "labels.parquet")
    planted = lab.filter(pl.col("pattern").is_not_null())
    assert set(planted["pattern"]) == {"cycle", "scatter_gather", "gather_scatter", "fan_out", "stack", "bipartite", "fan_in"}
    assert set(planted["typology"]) == {"laundering"}
    assert lab.filter(pl.col("scenario_id").str.starts_with("HN-landlord"))["role"].unique().to_list() == ["hard_negative"]
    # every planted account moves money with another account of its pattern
    tx = pl.concat([pl.read_parquet(out / "a" / b / "transactions.parquet") for b in ("BANK_A", "BANK_B")], how="diagonal_relaxed")
    pairs = tx.join(planted.select("account_id", "scenario_id"), on="account_id").join(
        planted.select(pl.col("account_id").alias("counterparty_id"), pl.col("scenario_id").alias("cp_scenario")), on="counterparty_id")
    linked = pairs.filter(pl.col("scenario_id") == pl.col("cp_scenario"))["account_id"].n_unique()
    assert linked == planted.height
    generate(tmp_path / "plain", accounts=3000, days=60, banks=2, seed=11, laundering=False)
    assert pl.read_parquet(tmp_path / "plain" / "labels.parquet")["pattern"].null_count() == 3000
