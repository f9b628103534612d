"""The file:, command: and log senders, with real files and real shell scripts."""

from __future__ import annotations

import json
import os
import stat
import threading
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
    send_timeout,
)
from followup_cli.settings import load_settings


def payload(i: int = 1) -> dict[str, object]:
    return {"id": f"f-{i}", "user_id": "u1", "message": "héllo \"quoted\"\nnew line",
            "attempt": 1}


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_file_sender_appends_json_lines(tmp_path: Path) -> None:
    out = tmp_path / "deliveries.jsonl"
    out.write_text('{"id":"earlier"}\n')
    sender = FileSender(str(out))
    sender.send(payload(1))
    sender.send(payload(2))
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
            senders[k].send({"id": f"{k}-{i}", "pad": big})

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
        sender.send(payload())
    assert caught.value.transient


def test_command_sender_exit_zero_gets_json_on_stdin(tmp_path: Path) -> None:
    got = tmp_path / "got.json"
    cmd = script(tmp_path, "deliver.sh", f'cat > "{got}"\nexit 0\n')
    CommandSender(str(cmd)).send(payload(7))
    assert json.loads(got.read_text()) == payload(7)


def test_command_sender_nonzero_exit_is_transient(tmp_path: Path) -> None:
    cmd = script(tmp_path, "fail.sh", 'cat >/dev/null\necho "receiver down" >&2\nexit 1\n')
    with pytest.raises(DeliveryError, match="exited with 1: receiver down") as caught:
        CommandSender(str(cmd)).send(payload())
    assert caught.value.transient


def test_command_sender_uses_no_shell(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    cmd = script(tmp_path, "args.sh", f'cat >/dev/null\nprintf "%s\\n" "$@" > "{tmp_path}/args"\n')
    CommandSender(f'{cmd} "two words" ; touch {marker}').send(payload())
    assert not marker.exists()
    assert (tmp_path / "args").read_text().splitlines() == ["two words", ";", "touch",
                                                            str(marker)]


def test_command_sender_timeout_is_transient(tmp_path: Path) -> None:
    cmd = script(tmp_path, "slow.sh", "exec sleep 5\n")
    with pytest.raises(DeliveryError, match="timed out") as caught:
        CommandSender(str(cmd), timeout=0.3).send(payload())
    assert caught.value.transient


def test_command_sender_missing_program_is_transient(tmp_path: Path) -> None:
    with pytest.raises(DeliveryError, match="cannot run") as caught:
        CommandSender(str(tmp_path / "nope")).send(payload())
    assert caught.value.transient


def test_log_and_memory_senders_collect(tmp_path: Path) -> None:
    log = LogSender()
    log.send(payload(1))
    assert log.payloads == [payload(1)] and log.prints_deliveries
    memory = MemorySender(fail={"f-2": DeliveryError("down", transient=True)})
    memory.send(payload(1))
    with pytest.raises(DeliveryError):
        memory.send(payload(2))
    assert [p["id"] for p in memory.payloads] == ["f-1"]


@pytest.mark.parametrize(("spec", "kind", "timeout"), [
    ("log", LogSender, 0.5),
    ("file:/tmp/x.jsonl", FileSender, 0.5),
    ("command:/bin/true --flag", CommandSender, 30.0),
])
def test_build_sender(spec: str, kind: type, timeout: float) -> None:
    sender = build_sender(load_settings({"DATABASE_URL": "sqlite:///x.db",
                                         "FOLLOWUP_SENDER": spec}))
    assert isinstance(sender, kind)
    assert send_timeout(sender) == timeout


def test_build_sender_refuses_an_unsplittable_command() -> None:
    settings = load_settings({"DATABASE_URL": "sqlite:///x.db",
                              "FOLLOWUP_SENDER": "command:notify 'unclosed"})
    with pytest.raises(SettingsError, match="FOLLOWUP_SENDER"):
        build_sender(settings)


def test_encode_is_compact_utf8() -> None:
    assert encode({"a": "é"}) == '{"a":"é"}'.encode()
    assert os.linesep not in encode(payload()).decode()
