"""The rules, the link graph and the patterns give the same hits however win_tx's rows are stored.

win_tx is stored in detectors/window.py CLUSTER_BY order so each rule reads few row groups, and a nightly run
appends the new day's bookings after the kept ones: no hit, evidence list, figure or typology may depend on that.
"""

import polars as pl
import pytest

from detectors.features import compute_features
from detectors.rule_detector import RuleDetector
from detectors.window import define_window
from pipelines import store
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
        rows = con.sql("SELECT is_in, channel FROM win_tx").pl()  # a scan returns a table's rows in stored order
        runs = rows.select((pl.struct("is_in", "channel") != pl.struct("is_in", "channel").shift()).sum()).item()
        assert runs + 1 == rows.unique().height  # each (direction, channel) in one contiguous run
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
