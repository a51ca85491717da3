"""Prefect flows: a batch over an inbox, retries of transient faults only, artifacts, runs, deployments."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

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


@pytest.mark.slow
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
    assert set(rows[0]) == {"rank", "score", "typology", "reasons"}  # no identifiers in the artifact
    summary = Artifact.get("run-summary").data
    assert "1 accepted, 1 rejected" in summary and "empty file" in summary
    # a second run with an empty inbox still scores and compares with the previous run
    res2 = batch_scoring_flow(str(inbox), db, str(tmp_path / "out"))
    assert res2["submissions"] == [] and "previous run" in Artifact.get("run-summary").data


@pytest.mark.slow
def test_failed_scoring_fails_the_run_and_is_recorded_with_its_error(prefect_harness, tmp_path, caplog, monkeypatch):
    from detectors.rule_detector import RuleDetector
    from pipelines.flows import batch_scoring_flow

    def broken(self, con, days):  # as a rule whose SQL no longer binds
        raise RuntimeError("rule SE01_AD_PREMIUM failed: Binder Error: Referenced column no_such_column not found")

    monkeypatch.setattr(RuleDetector, "run_rules", broken)
    inbox = _inbox(tmp_path, "valid/BANK_A")
    db = str(tmp_path / "s.duckdb")
    with caplog.at_level("INFO"):
        with pytest.raises(RuntimeError, match="rule SE01_AD_PREMIUM failed"):
            batch_scoring_flow(str(inbox), db, str(tmp_path / "out"))
    con = duckdb.connect(db)
    runs = con.execute("SELECT kind, outcome, error, flow_run_id, rows_in FROM runs ORDER BY kind").fetchall()
    con.close()
    assert [(r[0], r[1]) for r in runs] == [("batch", "failed"), ("score", "failed")] and all(r[3] for r in runs)
    assert all(r[2].startswith("RuntimeError: rule SE01_AD_PREMIUM failed: Binder Error") for r in runs)
    assert runs[0][4] == 3504  # what was ingested before the failure is still counted
    assert (inbox / "processed" / "BANK_A").is_dir()
    # each stage logged its time and counts in the run's log, up to the one that failed
    logged = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("BANK_A validate: ") and "rows read 3,504" in m for m in logged), logged
    assert any(m.startswith("score features: ") and "(accounts " in m for m in logged) and not any(
        m.startswith("score rules:") for m in logged
    )
    assert any(m.startswith("score network: ") for m in logged)


@pytest.mark.slow
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


@pytest.mark.slow
def test_validation_failure_is_not_retried(prefect_harness, tmp_path, monkeypatch):
    import pipelines.flows as flows

    calls = []

    def broken(path, db, **kw):
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
    md = batch.run_summary_markdown(
        [],
        {"run_id": "r2", "alerts": 5, "new": 1, "rule_set_hash": "h", "model_version": "m"},
        {"labour_exploitation": 3, "creditboys": 2},
        {"labour_exploitation": 1},
    )
    assert "| labour_exploitation | 3 | 1 | +2 |" in md and "| creditboys | 2 | - |  |" in md


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(url: str, body: dict | None = None):
    import json

    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
        method="POST" if body is not None else "GET",
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def _scheduled_runs(api: str, deployment_id: str) -> list[dict]:
    return _api(
        f"{api}/flow_runs/filter",
        {"deployments": {"id": {"any_": [deployment_id]}}, "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}},
    )


@contextmanager
def _webhook_listener():
    """A loopback HTTP endpoint standing in for Slack or Teams: collects the bodies POSTed to it."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}/hook", received
    finally:
        httpd.shutdown()


SERVER_LOG_ERRORS = (" | ERROR ", "Traceback", "InvalidRequestError")


@pytest.mark.slow
def test_prefect_deploy_registers_the_schedule(tmp_path):
    """A real `prefect server` on loopback accepts prefect.yaml, its scheduler creates the nightly runs, and a
    process worker runs the on-demand deployment: the README's server steps, as written. The server's log is
    kept and must hold no error (SQLAlchemy 2.1 broke the scheduler with an error logged every minute)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    bindir = Path(sys.executable).parent
    data = tmp_path / "data"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "home"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "GX_ANALYTICS_ENABLED": "false",
        "THB_HOME": str(REPO),
        "THB_DATA": str(data),
        "PREFECT_CLI_PROMPT": "false",
    }
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [str(bindir / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{api}/health", timeout=2)
                break
            except OSError:
                assert server.poll() is None, "prefect server exited:\n" + log_path.read_text(errors="replace")[-3000:]
                assert time.time() < deadline, "prefect server did not start"
                time.sleep(1)
        run = lambda *args, timeout=180: subprocess.run(
            [str(bindir / "prefect"), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
        )
        # the data folder as the README sets it up: an inbox and a loaded store
        (data / "inbox").mkdir(parents=True)
        r = subprocess.run(
            [str(bindir / "thb-signals"), "ingest", str(SAMPLES / "valid" / "BANK_A"), "--db", str(data / "thb.duckdb")],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        r = run("work-pool", "create", "thb-process", "--type", "process")
        assert r.returncode == 0, r.stdout + r.stderr
        r = run("--no-prompt", "deploy", "--all")
        assert r.returncode == 0, r.stdout + r.stderr
        r = run("deployment", "ls")
        assert "score/score-on-demand" in r.stdout and "batch-scoring/nightly-batch" in r.stdout
        # the scheduler creates the nightly runs (at 02:00 Amsterdam time, with the data folder as parameters)
        nightly = _api(f"{api}/deployments/name/batch-scoring/nightly-batch")
        assert [(s["schedule"]["cron"], s["schedule"]["timezone"]) for s in nightly["schedules"]] == [
            ("0 2 * * *", "Europe/Amsterdam")
        ]
        deadline = time.time() + 150
        while not (runs := _scheduled_runs(api, nightly["id"])):
            assert server.poll() is None, "prefect server exited"
            assert time.time() < deadline, (
                "no scheduled run for the nightly deployment:\n" + log_path.read_text(errors="replace")[-3000:]
            )
            time.sleep(3)
        for fr in runs:
            when = datetime.fromisoformat(fr["next_scheduled_start_time"] or fr["expected_start_time"]).astimezone(
                ZoneInfo("Europe/Amsterdam")
            )
            assert (when.hour, when.minute) == (2, 0), when
            assert fr["parameters"]["db"] == str(data / "thb.duckdb") and fr["parameters"]["inbox"] == str(data / "inbox")
        with _webhook_listener() as (hook_url, received):
            # a failed run is notified through a saved notification block and the automation the README sets up
            script = (
                "from prefect.blocks.notifications import CustomWebhookNotificationBlock as B; "
                f"B(name='thb', url='{hook_url}', json_data={{'text': '{{{{subject}}}} {{{{body}}}}'}}, allow_private_urls=True)"
                ".save('thb-failures')"
            )
            r = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stdout + r.stderr
            r = subprocess.run(
                [sys.executable, "-m", "pipelines.notifications", "custom-webhook/thb-failures"],
                env={**env, "PYTHONPATH": str(REPO)},
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert r.returncode == 0 and "automation" in r.stdout, r.stdout + r.stderr
            # and a worker runs the deployments from this checkout: on-demand scoring of the loaded store, and a run
            # whose config is refused (a failed run); one poll of the worker takes both
            r = run("deployment", "run", "score/score-on-demand")
            assert r.returncode == 0, r.stdout + r.stderr
            broken = tmp_path / "broken.yaml"
            broken.write_text("rules:\n  SE01_AD_PREMIUM: {min_eur_per_30d: no_such_column}\n")
            r = run("deployment", "run", "score/score-on-demand", "--param", f"config={broken}")
            assert r.returncode == 0, r.stdout + r.stderr
            # two flow runs in one poll, on a machine the other test process keeps busy
            r = run("worker", "start", "--pool", "thb-process", "--run-once", timeout=360)
            assert r.returncode == 0, r.stdout + r.stderr
            worked = r.stdout + r.stderr
            assert "Finished in state Completed" in worked and "Finished in state Failed" in worked, worked
            assert (data / "out" / "alerts.parquet").exists()
            assert all(fr["state_type"] == "SCHEDULED" for fr in _scheduled_runs(api, nightly["id"]))  # left alone
            deadline = time.time() + 90
            while not received:
                assert time.time() < deadline, "no notification of the failed run"
                time.sleep(1)
            assert "thb-signals: score run failed" in received[0] and "SE01_AD_PREMIUM.min_eur_per_30d" in received[0], received
        con = duckdb.connect(str(data / "thb.duckdb"), read_only=True)
        failed = con.execute("SELECT error FROM runs WHERE outcome = 'failed'").fetchall()
        con.close()
        assert len(failed) == 1 and "SE01_AD_PREMIUM.min_eur_per_30d: expected a number" in failed[0][0]
    finally:
        # what the server logged while it ran: stopping it can log a connection's rollback cancelled mid-way (an
        # asyncio CancelledError from SQLAlchemy's pool), which says nothing about the scheduler
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        server.terminate()
        server.wait(timeout=30)
    errors = [line for line in text.splitlines() if any(e in line for e in SERVER_LOG_ERRORS)]
    assert not errors, "the server logged errors:\n" + "\n".join(errors[:20])
