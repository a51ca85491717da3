"""The rules, the link graph and the patterns give the same hits however win_tx's rows are stored.

win_tx is stored in detectors/window.py CLUSTER_BY order so each rule reads few row groups, and a nightly run
appends the new day's bookings after the kept ones: no hit, evidence list, figure or typology may depend on that.
"""

import polars as pl
import pytest

from detectors.features import compute_features
from detectors.nightly_window import define_kept_window
from detectors.rule_detector import RuleDetector
from detectors.window import CATEGORIES, define_window
from pipelines import store
from tests.cluster_order import cluster_by_rows, cluster_runs
from tests.conftest import generated_store

DAYS = 45


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return generated_store(tmp_path_factory.mktemp("order"), accounts=1500, days=DAYS)


def _hits(con) -> pl.DataFrame:
    return RuleDetector().score(con, DAYS).sort("rule_id", "bank_id", "account_id")


def test_win_tx_is_stored_in_cluster_order(db):
    con = store.connect(db)
    try:
        define_window(con, DAYS)
        assert con.sql("SELECT count(DISTINCT bank_id) FROM win_tx").fetchall()[0][0] > 1  # each bank sorted on its own
        runs, in_order = cluster_runs(con, "win_tx")
        assert runs == in_order  # each bank's (direction, channel) in one contiguous run
    finally:
        con.close()


@pytest.mark.parametrize("kept", [False, True])
def test_win_tx_rows_follow_cluster_by_exactly(db, kept):
    """win_tx is sorted by one integer made of ranks (window.CLUSTER_KEY): its rows must still be in CLUSTER_BY order,
    NULLs last as ORDER BY puts them, both built as a temp table and kept in the store (a first nightly run)."""
    con = store.connect(db)
    try:
        if kept:
            define_kept_window(con, DAYS, CATEGORIES, "order-test")
        else:
            define_window(con, DAYS)
        rows, in_order = cluster_by_rows(con, "win_tx")
        assert rows["category"].null_count() and rows["category"].n_unique() > 5  # NULLs and several categories met
        assert in_order
    finally:
        con.close()


def test_same_hits_whatever_the_order_of_win_tx(db):
    con = store.connect(db)
    try:
        define_window(con, DAYS)
        compute_features(con, DAYS)
        clustered = _hits(con)
        for order in ("hash(txn_id)", "booked_at DESC, txn_id"):
            con.execute(f"CREATE OR REPLACE TEMP TABLE win_tx AS SELECT * FROM win_tx ORDER BY {order}")
            other = _hits(con)
            assert clustered.height > 50 and clustered.equals(other), order
    finally:
        con.close()
