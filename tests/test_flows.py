"""Prefect flows: a batch over an inbox, retries of transient faults only, artifacts, runs, deployments."""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import duckdb

from pipelines import batch
from pipelines.submission import SubmissionRejected
from tests.conftest import SAMPLES

REPO = Path(__file__).resolve().parent.parent


def _inbox(tmp_path, *cases):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for c in cases:
        shutil.copytree(SAMPLES / c, inbox / Path(c).name)
    return inbox


def test_batch_run_files_scores_and_publishes(prefect_harness, tmp_path):
    from prefect.artifacts import Artifact

    from pipelines.flows import batch_scoring_flow
    inbox = _inbox(tmp_path, "valid/BANK_A", "broken/empty_file")
    db = str(tmp_path / "s.duckdb")
    res = batch_scoring_flow(str(inbox), db, str(tmp_path / "out"))
    outcomes = {Path(s["path"]).name: s["outcome"] for s in res["submissions"]}
    assert outcomes == {"BANK_A": "loaded", "empty_file": "rejected"}
    assert (inbox / "processed" / "BANK_A" / "transactions.csv").exists()
    assert (inbox / "rejected" / "empty_file").is_dir()
    assert "empty file" in (inbox / "rejected" / "empty_file.validation.html").read_text()
    assert not [p for p in inbox.iterdir() if p.name not in ("processed", "rejected")]
    assert res["score"]["alerts"] > 0 and (tmp_path / "out" / "alerts.parquet").exists()
    con = duckdb.connect(db)
    runs = con.execute("SELECT kind, flow_run_id, rows_in, alerts_out FROM runs ORDER BY kind").fetchall()
    con.close()
    assert [r[0] for r in runs] == ["batch", "score"] and all(r[1] for r in runs)
    assert runs[0][2] > 2000 and runs[0][3] == res["score"]["alerts"]
    top = Artifact.get("top-alerts")
    import json
    rows = json.loads(top.data) if isinstance(top.data, str) else top.data
    assert len(rows) == min(25, res["score"]["alerts"])
    assert set(rows[0]) == {"rank", "score", "typology", "reasons"}           # no identifiers in the artifact
    summary = Artifact.get("run-summary").data
    assert "1 accepted, 1 rejected" in summary and "empty file" in summary
    # a second run with an empty inbox still scores and compares with the previous run
    res2 = batch_scoring_flow(str(inbox), db, str(tmp_path / "out"))
    assert res2["submissions"] == [] and "previous run" in Artifact.get("run-summary").data


def test_transient_fault_is_retried_and_recovers(prefect_harness, tmp_path, monkeypatch):
    import pipelines.flows as flows
    calls = []
    real = flows.ingest

    def flaky(path, db, **kw):
        calls.append(path)
        if len(calls) == 1:
            raise duckdb.IOException("IO Error: Could not set lock on file (injected)")
        return real(path, db, **kw)
    monkeypatch.setattr(flows, "ingest", flaky)
    out = flows.ingest_flow([str(SAMPLES / "valid" / "BANK_A")], str(tmp_path / "s.duckdb"))
    assert len(calls) == 2 and out[0]["outcome"] == "loaded"


def test_validation_failure_is_not_retried(prefect_harness, tmp_path, monkeypatch):
    import pipelines.flows as flows
    calls = []

    def broken(path, db, **_):
        calls.append(path)
        raise ValueError("bad value in the contract (injected)")
    monkeypatch.setattr(flows, "ingest", broken)
    inbox = _inbox(tmp_path, "valid/BANK_A")
    res = flows.batch_scoring_flow(str(inbox), str(tmp_path / "s.duckdb"), str(tmp_path / "out"))
    assert len(calls) == 1 and res["submissions"][0]["outcome"] == "failed" and res["score"] is None
    assert (inbox / "rejected" / "BANK_A").is_dir()


def test_transient_classification():
    assert batch.is_transient(duckdb.IOException("Could not set lock on file"))
    assert batch.is_transient(OSError("disk hiccup"))
    assert not batch.is_transient(SubmissionRejected("f", "empty file", "x"))
    assert not batch.is_transient(ValueError("contract"))
    assert not batch.is_transient(KeyError("bug"))


def test_summary_compares_with_previous_run():
    md = batch.run_summary_markdown([], {"run_id": "r2", "alerts": 5, "new": 1, "rule_set_hash": "h", "model_version": "m"},
                                    {"labour_exploitation": 3, "creditboys": 2}, {"labour_exploitation": 1})
    assert "| labour_exploitation | 3 | 1 | +2 |" in md and "| creditboys | 2 | - |  |" in md


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_prefect_deploy_registers_the_schedule(tmp_path):
    """A real `prefect server` on loopback accepts prefect.yaml, registers the nightly schedule, and a
    process worker runs the on-demand deployment: the README's server steps, as written."""
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "home"), "PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "THB_HOME": str(REPO), "THB_DATA": str(tmp_path / "data"), "PREFECT_CLI_PROMPT": "false"}
    server = subprocess.Popen([str(bindir / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{api}/health", timeout=2)
                break
            except OSError:
                assert time.time() < deadline, "prefect server did not start"
                time.sleep(1)
        run = lambda *args: subprocess.run([str(bindir / "prefect"), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=180)
        r = run("work-pool", "create", "thb-process", "--type", "process")
        assert r.returncode == 0, r.stdout + r.stderr
        r = run("--no-prompt", "deploy", "--all")
        assert r.returncode == 0, r.stdout + r.stderr
        r = run("deployment", "inspect", "batch-scoring/nightly-batch")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "0 2 * * *" in r.stdout and "Europe/Amsterdam" in r.stdout
        r = run("deployment", "ls")
        assert "score/score-on-demand" in r.stdout
        # and a worker runs a deployment from this checkout: on-demand scoring of a loaded store
        from pipelines.ingest import ingest
        (tmp_path / "data").mkdir()
        assert ingest(SAMPLES / "valid" / "BANK_A", tmp_path / "data" / "thb.duckdb").outcome == "loaded"
        r = run("deployment", "run", "score/score-on-demand")
        assert r.returncode == 0, r.stdout + r.stderr
        r = run("worker", "start", "--pool", "thb-process", "--run-once")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "Finished in state Completed" in r.stdout + r.stderr
        assert (tmp_path / "data" / "out" / "alerts.parquet").exists()
    finally:
        server.terminate()
        server.wait(timeout=30)
