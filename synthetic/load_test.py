"""Load test: investigators working the review page while the batch ingests and scores, on loopback only.

A generated two-bank extract: bank A is loaded and scored first (the queue the investigators work), bank B waits in
the batch's inbox. The review page runs as its own process (`thb-signals serve`, uvicorn) and the batch as another
(`thb-signals batch`); N investigator threads log in over real HTTP (httpx) as users of bank A and read the queue
and alert pages and post decisions until the batch has finished (bounded in requests and time). Afterwards every
decision the page confirmed must be in the casework database, no request may have failed, and the batch must
have succeeded. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import polars as pl
import yaml

PASSWORD = "load-test-secret"
ACTIONS_BY_STATUS = {"open": ("request_info",), "info_requested": ("escalate", "reopen")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", *args]


def _env() -> dict:
    root = str(Path(__file__).resolve().parent.parent)
    return {
        **os.environ,
        "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "CI": "true",
        # the batch's in-process Prefect starts a temporary API server; on a busy 2-core machine that takes a while
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": os.environ.get(
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180"
        ),
    }


class Investigator(threading.Thread):
    """One investigator: log in, then queue -> alert -> decision rounds until told to stop (or out of budget)."""

    def __init__(self, base: str, name: str, index: int, stop: threading.Event, max_requests: int, deadline: float):
        super().__init__(daemon=True)
        self.base, self.name, self.index, self.stop = base, name, index, stop
        self.max_requests, self.deadline = max_requests, deadline
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.decisions: list[tuple[str, str]] = []  # (alert_id, action) the page confirmed
        self.refused = 0  # another investigator got there first: a correct answer, not a failure

    def _call(self, c: httpx.Client, method: str, url: str, ok: tuple[int, ...] = (200,), **kw) -> httpx.Response | None:
        t = time.perf_counter()
        try:
            r = c.request(method, url, **kw)
        except httpx.HTTPError as e:
            self.failures.append(f"{method} {url}: {type(e).__name__}")
            return None
        finally:
            self.latencies.append(time.perf_counter() - t)
        if r.status_code not in ok:
            self.failures.append(f"{method} {url}: HTTP {r.status_code}")
            return None
        return r

    def login(self, c: httpx.Client) -> bool:
        page = self._call(c, "GET", "/login")
        if page is None:
            return False
        token = re.search(r'name="token" value="([^"]+)"', page.text).group(1)
        r = self._call(
            c, "POST", "/login", ok=(303,), data={"username": self.name, "password": PASSWORD, "token": token, "next": "/queue"}
        )
        return r is not None

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=60, follow_redirects=False) as c:
            if not self.login(c):
                return
            turn = 0
            while len(self.latencies) < self.max_requests and time.monotonic() < self.deadline:
                if self.stop.is_set() and turn >= 2:
                    break
                turn += 1
                q = self._call(c, "GET", "/queue?status=all")
                if q is None:
                    continue
                ids = list(dict.fromkeys(re.findall(r'href="/alerts/([^"?/.]+)"', q.text)))
                if not ids:
                    continue
                aid = ids[(self.index + turn * 7) % len(ids)]
                page = self._call(c, "GET", f"/alerts/{aid}")
                if page is None:
                    continue
                status = re.search(r'id="status">([a-z_]+)<', page.text).group(1)
                choices = ACTIONS_BY_STATUS.get(status)
                if not choices:
                    continue
                action = choices[turn % len(choices)]
                csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
                r = self._call(
                    c,
                    "POST",
                    f"/alerts/{aid}/disposition",
                    ok=(303,),
                    data={"csrf": csrf, "action": action, "note": f"load {self.name}"},
                )
                if r is None:
                    continue
                if "msg=recorded-" in r.headers.get("location", ""):
                    self.decisions.append((aid, action))
                else:
                    self.refused += 1


def prepare(work: Path, accounts: int, days: int, seed: int, investigators: int) -> dict:
    """The store with bank A scored, bank B waiting in the inbox, and the users file."""
    from casework.review.auth import hash_password
    from pipelines.ingest import ingest
    from pipelines.snapshot import score_and_publish
    from synthetic.generate import generate

    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    generate(work / "gen", accounts=accounts, days=days, banks=2, seed=seed)
    db = work / "s.duckdb"
    if ingest(work / "gen" / "BANK_A", db).outcome != "loaded":
        raise RuntimeError("the generated BANK_A submission did not load")
    first = score_and_publish(db, work / "out0", models_dir=work / "models")
    inbox = work / "inbox"
    inbox.mkdir()
    shutil.copytree(work / "gen" / "BANK_B", inbox / "BANK_B")
    hashed = hash_password(PASSWORD)
    users = {f"inv{i:02d}": {"password": hashed, "role": "investigator", "bank": "BANK_A"} for i in range(investigators)}
    (work / "users.yaml").write_text(yaml.safe_dump({"users": users}))
    return {"db": db, "inbox": inbox, "users": work / "users.yaml", "alerts_before": first.alerts.height}


def _wait_for_port(port: int, proc: subprocess.Popen, seconds: float = 60) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the review page exited early: {proc.stderr.read()[-500:] if proc.stderr else ''}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError("the review page did not start listening")


def run_load_test(
    work: str | Path,
    investigators: int = 20,
    accounts: int = 4000,
    days: int = 60,
    seed: int = 5,
    max_requests: int = 400,
    max_seconds: float = 900,
) -> dict:
    """Run it; returns the figures (requests, failures, latency percentiles, decisions, lost, batch outcome)."""
    from pipelines.casework_db import open_casework

    work = Path(work)
    t0 = time.monotonic()
    prep = prepare(work, accounts, days, seed, investigators)
    port = _free_port()
    serve = subprocess.Popen(
        _cli("serve", "--db", str(prep["db"]), "--users", str(prep["users"]), "--host", "127.0.0.1", "--port", str(port)),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    batch = None
    try:
        _wait_for_port(port, serve)
        stop = threading.Event()
        deadline = time.monotonic() + max_seconds
        crowd = [
            Investigator(f"http://127.0.0.1:{port}", f"inv{i:02d}", i, stop, max_requests, deadline) for i in range(investigators)
        ]
        for inv in crowd:
            inv.start()
        time.sleep(1.0)  # the investigators are at work before the batch starts
        started = time.monotonic()
        batch = subprocess.Popen(
            _cli("batch", str(prep["inbox"]), "--db", str(prep["db"]), "--out", str(work / "out1")),
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            batch_out, _ = batch.communicate(timeout=max_seconds)
        except subprocess.TimeoutExpired:
            batch.kill()
            batch_out, _ = batch.communicate()
        batch_seconds = time.monotonic() - started
        stop.set()
        for inv in crowd:
            inv.join(timeout=max_seconds)
    finally:
        serve.terminate()
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            serve.kill()
        if batch is not None and batch.poll() is None:
            batch.kill()
    lat = pl.Series([x for inv in crowd for x in inv.latencies], dtype=pl.Float64) * 1000
    posted = [(aid, action, inv.name) for inv in crowd for aid, action in inv.decisions]
    log = open_casework(prep["db"]).audit_rows()
    logged = set(zip(log["alert_id"], log["action"], log["user_name"]))
    lost = [p for p in posted if p not in logged]
    from pipelines import store

    con = store.peek(prep["db"])
    try:
        batch_run = con.execute("SELECT outcome FROM runs WHERE kind = 'batch' ORDER BY started_at DESC LIMIT 1").fetchall()
    finally:
        con.close()
    return {
        "investigators": investigators,
        "accounts": accounts,
        "days": days,
        "requests": int(lat.len()),
        "failed": sum(len(inv.failures) for inv in crowd),
        "failures": [f for inv in crowd for f in inv.failures][:10],
        "p50_ms": round(float(lat.quantile(0.5)), 1) if lat.len() else None,
        "p95_ms": round(float(lat.quantile(0.95)), 1) if lat.len() else None,
        "max_ms": round(float(lat.max()), 1) if lat.len() else None,
        "decisions": len(posted),
        "refused_as_taken": sum(inv.refused for inv in crowd),
        "lost_decisions": len(lost),
        "batch_exit": batch.returncode if batch else None,
        "batch_outcome": batch_run[0][0] if batch_run else None,
        "batch_seconds": round(batch_seconds, 1),
        "batch_tail": (batch_out or "")[-400:] if batch and batch.returncode else "",
        "total_seconds": round(time.monotonic() - t0, 1),
    }


def passed(r: dict) -> bool:
    return (
        r["failed"] == 0
        and r["lost_decisions"] == 0
        and r["batch_exit"] == 0
        and r["batch_outcome"] == "ok"
        and r["decisions"] > 0
    )


def summary(r: dict) -> str:
    return (
        f"{r['investigators']} investigators, {r['requests']} requests, {r['failed']} failed; latency p50 {r['p50_ms']} ms, "
        f"p95 {r['p95_ms']} ms, max {r['max_ms']} ms; {r['decisions']} decisions posted, {r['lost_decisions']} lost "
        f"({r['refused_as_taken']} refused as already taken); batch exit {r['batch_exit']} ({r['batch_outcome']}) "
        f"in {r['batch_seconds']} s"
    )


def main_json(r: dict) -> str:
    return json.dumps(r, indent=2)
