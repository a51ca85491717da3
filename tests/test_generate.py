"""The synthetic generator: deterministic, contract-valid, every typology and role planted."""

import hashlib

import polars as pl
import pytest

from pipelines.validation import validate
from synthetic.generate import generate
from synthetic.typologies import HARD_NEGATIVE_SHARE, INDICATORS, SIZES


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
        assert not (out / "a" / bank / "labels.parquet").exists()  # labels never inside a submission


def test_typologies_roles_and_shares(generated):
    out, info = generated
    lab = pl.read_parquet(out / "a" / "labels.parquet")
    assert lab.height == 3000 == sum(info["accounts"].values())
    got = {(t, r) for t, r in lab.select("typology", "role").unique().iter_rows()}
    want_roles = {
        ("sexual_exploitation", "victim"),
        ("sexual_exploitation", "controller"),
        ("labour_exploitation", "victim"),
        ("labour_exploitation", "employer"),
        ("labour_exploitation", "controller"),
        ("criminal_exploitation", "mule"),
        ("criminal_exploitation", "controller"),
        ("creditboys", "victim"),
        ("creditboys", "controller"),
        ("debt_bondage", "victim"),
        ("none", "hard_negative"),
        ("none", "background"),
    }
    assert want_roles <= got
    pos = lab.filter(pl.col("typology") != "none")
    for typ in INDICATORS:
        share = pos.filter(pl.col("typology") == typ).height / lab.height
        assert 0.0007 <= share <= 0.006, (typ, share)  # about 0.15 % each (whole scenarios: coarse at 3,000)
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
        paid = tx.filter(
            pl.col("account_id").is_in(victims.to_list()) & (pl.col("counterparty_id") == ctrl) & (pl.col("direction") == "debit")
        )
        assert paid.height > 0


def test_scenarios_differ_in_strength():
    import numpy as np

    from synthetic.typologies import _strength

    rng = np.random.default_rng(0)
    sizes = {len(_strength(rng, "sexual_exploitation")) for _ in range(200)}
    assert min(sizes) == 2 and max(sizes) == len(INDICATORS["sexual_exploitation"])
    assert set(SIZES) == set(INDICATORS)


def _tx(out):
    return pl.concat([pl.read_parquet(out / "a" / b / "transactions.parquet") for b in ("BANK_A", "BANK_B")])


def test_background_has_realistic_retail_detail(generated):
    """Foreign merchants shared by many accounts, bills begun before the window, varying wages, households,
    BNPL and family phone plans: the ordinary banking that look-alikes hide in."""
    out, _ = generated
    tx = _tx(out)
    lab = pl.read_parquet(out / "a" / "labels.parquet")
    n_persons = (
        pl.concat([pl.read_parquet(out / "a" / b / "accounts.parquet") for b in ("BANK_A", "BANK_B")])
        .filter(pl.col("customer_type") == "person")
        .height
    )
    foreign = tx.filter((pl.col("channel") == "card") & (pl.col("counterparty_country") != "NL"))
    per_merchant = foreign.group_by("counterparty_id").agg(
        pl.col("account_id").n_unique().alias("accounts"), pl.col("counterparty_country").first()
    )
    assert per_merchant["accounts"].max() >= 0.2 * n_persons  # one merchant abroad, many accounts
    assert {"IE", "LU", "MT"} <= set(per_merchant["counterparty_country"].to_list())
    # telecom direct debits first booked a week or more into the window, then again a month later: running contracts
    start = tx["booked_at"].min()
    tel = (
        tx.filter((pl.col("channel") == "direct_debit") & (pl.col("mcc") == "4814"))
        .group_by("account_id", "counterparty_id")
        .agg(pl.col("booked_at").min().alias("first"), pl.len().alias("n"))
    )
    late = tel.filter((pl.col("first") - start >= pl.duration(days=7)) & (pl.col("n") >= 2))
    assert late.height >= 0.3 * tel.height
    # family phone plans: several telecom contracts on one account
    assert tel.group_by("account_id").len().filter(pl.col("len") >= 3).height >= 20
    # wages vary month to month for a share of employees
    sal = (
        tx.filter(pl.col("description") == "Salaris")
        .group_by("account_id")
        .agg(
            pl.col("amount_eur").cast(pl.Float64).std().alias("sd"),
            pl.col("amount_eur").cast(pl.Float64).mean().alias("mean"),
            pl.len(),
        )
    )
    sal = sal.filter(pl.col("len") >= 2)
    varying = sal.filter(pl.col("sd") / pl.col("mean") > 0.03).height / sal.height
    assert 0.15 <= varying <= 0.8, varying
    # households pay into a pot, parents give pocket money
    assert tx.filter(pl.col("description") == "huishoudpot").height > 100
    assert tx.filter(pl.col("description") == "zakgeld").height > 10
    # buy now, pay later instalments and refunds; ordinary consumer loans
    bnpl = tx.filter(pl.col("counterparty_name").is_in(["Klarna", "Riverty", "In3", "Afterpay"]))
    assert bnpl.filter(pl.col("direction") == "debit")["account_id"].n_unique() >= 0.05 * n_persons
    assert bnpl.filter(pl.col("direction") == "credit").height > 10
    assert (
        tx.filter(pl.col("channel") == "loan_disbursement")
        .join(lab, on=["bank_id", "account_id"])
        .filter(pl.col("role") == "background")
        .height
        > 10
    )
    # friends pay each other repeatedly, across banks
    p2p = tx.filter((pl.col("counterparty_type") == "person") & pl.col("channel").is_in(["transfer", "instant_transfer"]))
    pairs = p2p.group_by("account_id", "counterparty_id").len()
    assert pairs.filter(pl.col("len") >= 2).height > 200


def test_every_lookalike_is_labelled(generated):
    from synthetic.families import LOOKALIKES
    from synthetic.laundering import LOOKALIKES as LAUNDERING_LOOKALIKES

    out, _ = generated
    lab = pl.read_parquet(out / "a" / "labels.parquet")
    hn = lab.filter(pl.col("role") == "hard_negative")
    assert set(hn["lookalike"].to_list()) == set(LOOKALIKES) | set(LAUNDERING_LOOKALIKES)
    assert hn["scenario_id"].null_count() == 0 and (hn["typology"] == "none").all()
    # the seasonal employer's workers share a few addresses and send fixed sums home
    acc = pl.concat([pl.read_parquet(out / "a" / b / "accounts.parquet") for b in ("BANK_A", "BANK_B")])
    seasonal = (
        hn.filter(pl.col("lookalike") == "seasonal_employer")
        .join(acc, on=["bank_id", "account_id"])
        .filter(pl.col("customer_type") == "person")
    )
    assert seasonal["address_id"].n_unique() <= 3 * seasonal["scenario_id"].n_unique()
    tx = _tx(out).join(seasonal.select("bank_id", "account_id"), on=["bank_id", "account_id"], how="semi")
    rem = (
        tx.filter(pl.col("channel") == "money_remittance")
        .group_by("account_id", "amount_eur")
        .len()
        .group_by("account_id")
        .agg(pl.col("len").max().alias("same_sum"))
    )
    assert rem.height >= 0.8 * seasonal.height and rem["same_sum"].min() >= 2


def test_labels_carry_subtlety_and_subtle_scenarios_show_less(generated):
    out, _ = generated
    lab = pl.read_parquet(out / "a" / "labels.parquet")
    assert {"subtlety", "indicators", "lookalike", "family"} <= set(lab.columns)
    pos = lab.filter((pl.col("typology") != "none") & pl.col("pattern").is_null())  # laundering patterns have no subtlety knob
    assert pos["subtlety"].null_count() == 0 and pos["subtlety"].is_between(0, 1).all()
    assert lab.filter(pl.col("typology") == "none")["subtlety"].null_count() == lab.filter(pl.col("typology") == "none").height
    assert (lab["family"] == "tune").all()


def test_subtlety_sets_how_many_indicators_show():
    import numpy as np

    from synthetic.typologies import _strength

    rng = np.random.default_rng(0)
    for typ, names in INDICATORS.items():
        subtle = [len(_strength(rng, typ, 0.95)) for _ in range(100)]
        blatant = [len(_strength(rng, typ, 0.05)) for _ in range(100)]
        assert min(subtle) == 2 and np.mean(np.array(subtle) <= 3) >= 0.9, typ  # subtle: mostly only 2-3 indicators
        assert np.mean(blatant) >= len(names) - 1, typ


def test_families_differ(generated, tmp_path):
    """Same seed, holdout family: other data, other foreign merchants, labelled as holdout."""
    out, _ = generated
    generate(tmp_path / "h", accounts=3000, days=60, banks=2, seed=11, family="holdout")
    assert _digest(out / "a" / "BANK_A") != _digest(tmp_path / "h" / "BANK_A")
    lab = pl.read_parquet(tmp_path / "h" / "labels.parquet")
    assert (lab["family"] == "holdout").all()

    def merchants(folder):
        tx = pl.concat([pl.read_parquet(folder / b / "transactions.parquet") for b in ("BANK_A", "BANK_B")])
        return set(
            tx.filter((pl.col("channel") == "card") & (pl.col("counterparty_country") != "NL"))["counterparty_name"].to_list()
        )

    tune_m, hold_m = merchants(out / "a"), merchants(tmp_path / "h")
    assert len(tune_m ^ hold_m) >= 0.5 * len(tune_m | hold_m)

    def foreign_share(folder):
        acc = pl.concat([pl.read_parquet(folder / b / "accounts.parquet") for b in ("BANK_A", "BANK_B")])
        return acc.filter(pl.col("customer_type") == "person").select((pl.col("nationality") != "NL").mean()).item()

    assert foreign_share(tmp_path / "h") > foreign_share(out / "a") + 0.03  # holdout: more migrants in the population
    with pytest.raises(ValueError, match="unknown generator family"):
        generate(tmp_path / "x", accounts=300, days=30, banks=1, seed=1, family="nope")


def test_laundering_patterns_and_lookalikes_labelled(generated, tmp_path):
    out, _ = generated
    lab = pl.read_parquet(out / "a" / "labels.parquet")
    planted = lab.filter(pl.col("pattern").is_not_null())
    assert set(planted["pattern"]) == {"cycle", "scatter_gather", "gather_scatter", "fan_out", "stack", "bipartite", "fan_in"}
    # laundering accounts, and trafficking controllers whose proceeds start a pattern (they keep their own label)
    launderers = planted.filter(pl.col("typology") != "laundering")
    assert set(launderers["role"]) == {"controller"} and launderers.height >= 1
    assert lab.filter(pl.col("scenario_id").str.starts_with("HN-landlord"))["role"].unique().to_list() == ["hard_negative"]
    # every planted account moves money with another account of its pattern
    tx = pl.concat(
        [pl.read_parquet(out / "a" / b / "transactions.parquet") for b in ("BANK_A", "BANK_B")], how="diagonal_relaxed"
    )
    pairs = tx.join(planted.select("account_id", "scenario_id", "pattern"), on="account_id").join(
        planted.select(pl.col("account_id").alias("counterparty_id"), pl.col("scenario_id").alias("cp_scenario"), "pattern"),
        on=["counterparty_id", "pattern"],
    )
    controller = ~pl.col("scenario_id").str.starts_with("ML-") | ~pl.col("cp_scenario").str.starts_with("ML-")
    same = (pl.col("scenario_id") == pl.col("cp_scenario")) | controller
    assert pairs.filter(same)["account_id"].n_unique() == planted.height
    generate(tmp_path / "plain", accounts=3000, days=60, banks=2, seed=11, laundering=False)
    assert pl.read_parquet(tmp_path / "plain" / "labels.parquet")["pattern"].null_count() == 3000
