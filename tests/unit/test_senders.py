"""The file:, command: and log senders, with real files and real shell scripts."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from followup_cli.errors import DeliveryError, SettingsError
from followup_cli.service.senders import (
    CommandSender,
    FileSender,
    LogSender,
    MemorySender,
    build_sender,
    encode,
)
from followup_cli.settings import load_settings


def payload(i: int = 1) -> dict[str, object]:
    return {"id": f"f-{i}", "user_id": "u1", "message": "héllo \"quoted\"\nnew line",
            "attempt": 1}


def soon(seconds: float = 30.0) -> float:
    return time.monotonic() + seconds


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_file_sender_appends_json_lines(tmp_path: Path) -> None:
    out = tmp_path / "deliveries.jsonl"
    out.write_text('{"id":"earlier"}\n')
    sender = FileSender(str(out))
    sender.send(payload(1), soon())
    sender.send(payload(2), soon())
    sender.close()
    lines = out.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["earlier", "f-1", "f-2"]
    assert json.loads(lines[1])["message"] == payload()["message"]


def test_file_sender_lines_stay_whole_with_many_writers(tmp_path: Path) -> None:
    out = tmp_path / "deliveries.jsonl"
    senders = [FileSender(str(out)) for _ in range(4)]  # like four passes, one fd each
    big = "x" * 3000

    def write(k: int) -> None:
        for i in range(250):
            senders[k].send({"id": f"{k}-{i}", "pad": big}, soon())

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in senders:
        s.close()
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert sorted(ids) == sorted(f"{k}-{i}" for k in range(4) for i in range(250))


def test_file_sender_unwritable_path_is_transient(tmp_path: Path) -> None:
    sender = FileSender(str(tmp_path / "no-such-dir" / "out.jsonl"))
    with pytest.raises(DeliveryError) as caught:
        sender.send(payload(), soon())
    assert caught.value.transient


def test_command_sender_exit_zero_gets_json_on_stdin(tmp_path: Path) -> None:
    got = tmp_path / "got.json"
    cmd = script(tmp_path, "deliver.sh", f'cat > "{got}"\nexit 0\n')
    CommandSender(str(cmd)).send(payload(7), soon())
    assert json.loads(got.read_text()) == payload(7)


def test_command_sender_nonzero_exit_is_transient(tmp_path: Path) -> None:
    cmd = script(tmp_path, "fail.sh", 'cat >/dev/null\necho "receiver down" >&2\nexit 1\n')
    with pytest.raises(DeliveryError, match="exited with 1: receiver down") as caught:
        CommandSender(str(cmd)).send(payload(), soon())
    assert caught.value.transient


def test_command_sender_uses_no_shell(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    cmd = script(tmp_path, "args.sh", f'cat >/dev/null\nprintf "%s\\n" "$@" > "{tmp_path}/args"\n')
    CommandSender(f'{cmd} "two words" ; touch {marker}').send(payload(), soon())
    assert not marker.exists()
    assert (tmp_path / "args").read_text().splitlines() == ["two words", ";", "touch",
                                                            str(marker)]


def test_command_sender_past_its_deadline_is_killed_and_transient(tmp_path: Path) -> None:
    cmd = script(tmp_path, "slow.sh", "exec sleep 5\n")
    began = time.monotonic()
    with pytest.raises(DeliveryError, match="did not finish within") as caught:
        CommandSender(str(cmd), deadline=0.3).send(payload(), soon(0.3))
    assert caught.value.transient
    assert time.monotonic() - began < 4  # killed at the deadline, not after the sleep


def test_command_sender_is_done_when_the_command_exits(tmp_path: Path) -> None:
    """Issue 8 problem 4: a command that delivers, exits 0 and leaves a background child
    used to be recorded as timed out after 30 s (the child held the output pipes), then
    retried and delivered again. Now it is delivered as soon as the command exits."""
    pid_file = tmp_path / "child.pid"
    cmd = script(tmp_path, "bg.sh",
                 f'cat >/dev/null\nsleep 20 &\necho $! > "{pid_file}"\necho queued\nexit 0\n')
    began = time.monotonic()
    try:
        CommandSender(str(cmd), deadline=10).send(payload(), soon(10))
        assert time.monotonic() - began < 5
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), 15)


def test_command_sender_missing_program_is_transient(tmp_path: Path) -> None:
    with pytest.raises(DeliveryError, match="cannot run") as caught:
        CommandSender(str(tmp_path / "nope")).send(payload(), soon())
    assert caught.value.transient


def test_log_and_memory_senders_collect(tmp_path: Path) -> None:
    log = LogSender()
    log.send(payload(1), soon())
    assert log.payloads == [payload(1)]
    out = tmp_path / "stdout"
    with out.open("w") as stream:
        LogSender(stream).send_many([payload(1), payload(2)])
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["f-1", "f-2"]
    memory = MemorySender(fail={"f-2": DeliveryError("down", transient=True)})
    memory.send(payload(1), soon())
    with pytest.raises(DeliveryError):
        memory.send(payload(2), soon())
    assert [p["id"] for p in memory.payloads] == ["f-1"]


@pytest.mark.parametrize(("spec", "kind", "deadline"), [
    ("log", LogSender, 1.0),
    ("file:/tmp/x.jsonl", FileSender, 1.0),
    ("command:/bin/true --flag", CommandSender, 30.0),
])
def test_build_sender(spec: str, kind: type, deadline: float) -> None:
    sender = build_sender(load_settings({"DATABASE_URL": "sqlite:///x.db",
                                         "FOLLOWUP_SENDER": spec}))
    assert isinstance(sender, kind)
    assert sender.deadline == deadline


def test_file_sender_creates_its_file_for_the_owner_only(tmp_path: Path) -> None:
    out = tmp_path / "deliveries.jsonl"
    sender = FileSender(str(out))
    sender.send(payload(), soon())
    sender.close()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


SHORT_WRITE = """
import json, resource, sys
from followup_cli.service.senders import FileSender
path, limit = sys.argv[1], int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # a disk that fills up
sender = FileSender(path)
big = {"id": "big", "pad": "x" * 400}
results = [sender.send_many([{"id": "a"}]), sender.send_many([big, big]),
           sender.send_many([{"id": "b"}])]
print(json.dumps([[None if e is None else str(e) for e in r] for r in results]))
"""


def test_file_sender_keeps_whole_lines_after_a_short_write(tmp_path: Path) -> None:
    """Issue 8 problem 7: on a full disk a short write used to leave a partial line, glued
    onto the next delivery's line. Now the file is truncated back to where the batch
    began, the batch is a retryable failure, and every line stays a whole document."""
    out = tmp_path / "deliveries.jsonl"
    done = subprocess.run([sys.executable, "-c", SHORT_WRITE, str(out), "300"],
                          capture_output=True, text=True, check=True)
    first, second, third = json.loads(done.stdout)
    assert first == [None]
    assert all("short write" in e or "File too large" in e for e in second)
    assert third == [None]
    lines = out.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["a", "b"]


def test_build_sender_refuses_an_unsplittable_command() -> None:
    settings = load_settings({"DATABASE_URL": "sqlite:///x.db",
                              "FOLLOWUP_SENDER": "command:notify 'unclosed"})
    with pytest.raises(SettingsError, match="FOLLOWUP_SENDER"):
        build_sender(settings)


def test_encode_is_compact_utf8() -> None:
    assert encode({"a": "é"}) == '{"a":"é"}'.encode()
    assert os.linesep not in encode(payload()).decode()
