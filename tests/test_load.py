"""The load test, small: investigators on the uvicorn-served review page (real HTTP on loopback) while `batch`
ingests a bank's submission and scores in another process. No request may fail, no confirmed decision may be
missing from the casework database, and the batch must succeed."""

import pytest

from synthetic.load_test import passed, run_load_test, summary


@pytest.mark.slow
def test_investigators_and_the_batch_work_at_the_same_time(tmp_path):
    # 8 investigators of 30 requests each keep the page busy through the batch; the 20 of `make loadtest` starve it of
    # the two cores for a minute and a half, which is that command's measurement, not this test's point
    r = run_load_test(tmp_path / "load", investigators=8, accounts=1000, days=40, max_requests=30, max_seconds=900)
    assert r["failed"] == 0, r["failures"]
    assert r["lost_decisions"] == 0
    assert r["batch_exit"] == 0 and r["batch_outcome"] == "ok", r["batch_tail"]
    assert r["decisions"] > 0 and r["requests"] > 8 * 3
    assert passed(r), summary(r)
