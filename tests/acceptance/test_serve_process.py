"""`followup serve` as a process, the way systemd runs it: one JSON line when it listens,
real HTTP, the same metrics as `stats --format prometheus`, a clean stop on SIGTERM/SIGINT."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.acceptance.test_run_due_concurrent import clean_env, followup_argv


def series(text: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {(s.name, tuple(sorted(s.labels.items())))
            for f in text_string_to_metric_families(text) for s in f.samples}


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_serves_and_stops_cleanly(db_url: str, stop: signal.Signals) -> None:
    env = clean_env(db_url, FOLLOWUP_SENDER="log")
    subprocess.run([*followup_argv(), "run-due"], env=env, check=True, capture_output=True)
    server = subprocess.Popen([*followup_argv(), "serve", "--bind", "127.0.0.1:0", "--json"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        assert server.stdout is not None
        started = json.loads(server.stdout.readline())
        base = started["listening"]
        assert started["health"] == base + "/api/scheduler/health"
        assert started["host"] == "127.0.0.1" and started["port"] > 0
        health = httpx.get(started["health"], timeout=10)
        assert health.status_code == 200, health.text
        assert health.json()["status"] == "healthy"
        metrics = httpx.get(started["metrics"], timeout=10)
        assert metrics.status_code == 200
        stats = subprocess.run([*followup_argv(), "stats", "--format", "prometheus"],
                               env=env, capture_output=True, text=True, check=True)
        assert series(metrics.text) == series(stats.stdout)  # the same series, one name each
        assert httpx.post(started["health"], timeout=10).status_code == 405
        time.sleep(0.3)
        server.send_signal(stop)
        out, err = server.communicate(timeout=15)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0, err
    assert out == ""  # the one JSON line was all of stdout
    assert "Traceback" not in err


def test_a_bad_bind_is_exit_2(sqlite_url: str) -> None:
    done = subprocess.run([*followup_argv(), "serve", "--bind", "nowhere"],
                          env=clean_env(sqlite_url), capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "followup: error: --bind: 'nowhere' is not HOST:PORT (e.g. 127.0.0.1:8000 or "
        "[::1]:8000)"]


def test_a_missing_sqlite_file_is_exit_4_and_not_created(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'missing' / 'x.db'}"
    done = subprocess.run([*followup_argv(), "serve", "--json"], env=clean_env(url),
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 4
    assert json.loads(done.stdout)["error"]["exit_code"] == 4
    assert not (tmp_path / "missing").exists()
