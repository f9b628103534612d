"""PostgreSQL going away in the middle of a pass, on a private cluster this test starts on
its own port (never the shared server), as its own operating-system user when run as root.

- a restart (a second or two): the pass keeps its outcomes and writes them back when the
  server is back; it finishes (exit 0) and nothing is delivered twice;
- an outage longer than the pass waits (DB_RETRY_SECONDS): exit 4 with one line; once the
  server is back and the lease has run out, the next pass completes and loses nothing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from followup_cli.service.delivery import DB_RETRY_SECONDS
from tests.faults.conftest import (
    Receiver,
    drain,
    followup_env,
    pg_bin,
    run,
    seed_due,
    start,
    statuses,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


class Cluster:
    """A throwaway PostgreSQL cluster: initdb, start, stop, restart."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="followup-pg-"))
        self.data = self.root / "data"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: run the cluster as postgres
            shutil.chown(self.root, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                 "--no-sync", "-E", "UTF8")

    def _pg(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_user, str(pg_bin(tool)), *args], check=True,
                       capture_output=True, timeout=120)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-w", "-l", str(self.root / "log"), "-o",
                 f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                 "-c fsync=off", "start")

    def stop(self) -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-w", "-m", "fast", "stop")

    def remove(self) -> None:
        subprocess.run([*self.as_user, str(pg_bin("pg_ctl")), "-D", str(self.data), "-m",
                        "immediate", "stop"], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    made = Cluster()
    made.start()
    yield made
    made.remove()


def prepare(cluster: Cluster, receiver: Receiver, n: int) -> tuple[list[str], dict[str, str]]:
    env = followup_env(cluster.url, FOLLOWUP_SENDER=f"webhook:{receiver.url}")
    upgraded = run(["db", "upgrade"], env)
    assert upgraded.returncode == 0, upgraded.stderr
    return seed_due(cluster.url, n, prefix="r"), env


def test_a_restart_mid_pass_is_ridden_out(cluster: Cluster, receiver: Receiver) -> None:
    ids, env = prepare(cluster, receiver, 600)
    receiver.delay = 0.01
    proc = start(["run-due", "--concurrency", "2"], env)
    receiver.wait_for(50)
    cluster.stop()
    time.sleep(1.0)
    cluster.start()
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert err == ""  # ridden out: nothing to say under cron
    drain(cluster.url, env)
    assert statuses(cluster.url) == {"executed": len(ids)}
    counts = receiver.counts()
    assert set(counts) == set(ids) and max(counts.values()) == 1  # kept, not re-sent


def test_a_long_outage_is_exit_4_in_one_line_then_the_next_pass_completes(
        cluster: Cluster, receiver: Receiver) -> None:
    ids, env = prepare(cluster, receiver, 600)
    receiver.delay = 0.01
    proc = start(["run-due", "--concurrency", "2"], env)
    receiver.wait_for(50)
    cluster.stop()
    _out, err = proc.communicate(timeout=DB_RETRY_SECONDS + 60)
    assert proc.returncode == 4, err
    [line] = err.splitlines()  # one line, no traceback
    assert line.startswith("followup: error: cannot use the database"), err
    cluster.start()
    time.sleep(10.5)  # the lease of what the failed pass held
    drain(cluster.url, env)
    assert statuses(cluster.url) == {"executed": len(ids)}
    assert set(receiver.counts()) == set(ids)  # nothing lost (its unwritten ones came twice)
