"""Hosts whose clocks disagree (issue 8 problem 9): a pass on a host whose clock ran 60 s
behind wrote leases that a correct host saw as expired at once, and took back rows still
being sent (3 of 8 delivered twice). Leases and due times are now read on the database's
clock, so a host's own clock may be off in either direction.

The wrong clock is libfaketime's (Debian package `faketime`, which CI installs), around a
real `followup run-due` process."""

from __future__ import annotations

import shutil
import time

import pytest

from tests.faults.conftest import Receiver, drain, followup_env, seed_due, start, statuses

pytestmark = [pytest.mark.postgres, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("faketime") is None,
                                 reason="faketime is not installed (apt install faketime)")]


def skewed(seconds: int) -> list[str]:
    # Only the wall clock is wrong; monotonic time stays as it is on a real host.
    return ["faketime", "-f", f"{seconds:+d}s"]


@pytest.mark.parametrize(("first", "second"), [(-60, 0), (0, 60)],
                         ids=["first-host-60s-behind", "second-host-60s-ahead"])
def test_passes_on_hosts_with_skewed_clocks_never_share_a_row(
        pg_url: str, receiver: Receiver, first: int, second: int) -> None:
    receiver.delay = 0.5  # each send takes half a second: the first pass holds its rows
    ids = seed_due(pg_url, 8)
    env = followup_env(pg_url, FOLLOWUP_SENDER=f"webhook:{receiver.url}",
                       DONT_FAKE_MONOTONIC="1")
    a = start(["run-due"], env, prefix=skewed(first))
    receiver.wait_for(1)
    time.sleep(1.0)
    b = start(["run-due"], env, prefix=skewed(second))
    for proc in (a, b):
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    drain(pg_url, env)
    counts = receiver.counts()
    assert set(counts) == set(ids)
    assert max(counts.values()) == 1, counts  # no row was taken from a live pass
    assert statuses(pg_url) == {"executed": 8}
