"""crontab.example, followup.env.example, deploy/followup-cron and the systemd units, run the
way cron and systemd run them: silent when all is well, a mail when not, never the same
outage every minute, never an empty syslog line, never a healthy pass killed."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from followup_cli.db import CONNECT_TIMEOUT_S
from followup_cli.service.delivery import PassOptions
from followup_cli.service.senders import COMMAND_DEADLINE, WEBHOOK_DEADLINE
from followup_cli.settings import SETTINGS_DOC, load_settings

ROOT = Path(__file__).resolve().parents[2]
CRONTAB = ROOT / "crontab.example"
ENV_EXAMPLE = ROOT / "followup.env.example"
WRAPPER = ROOT / "deploy" / "followup-cron"
UNITS = ROOT / "deploy" / "systemd"
ENTRY = re.compile(r"^(\S+\s+){5}(?P<command>.+)$")
SETTINGS = {name for name, _, _ in SETTINGS_DOC}
# The write-back allowance of docs/cron.md's timeout formula.
WRITE_BACK_S = 10


def parse_crontab() -> tuple[dict[str, str], dict[str, str]]:
    env: dict[str, str] = {}
    commands: dict[str, str] = {}
    for line in CRONTAB.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if re.match(r"^[A-Z_]+=", line):
            key, _, value = line.partition("=")
            env[key] = value
            continue
        match = ENTRY.match(line)
        assert match, f"not a cron entry: {line}"
        command = match["command"]
        assert "%" not in command  # cron would turn it into a newline
        name = re.search(r"followup-cron (?:--log-only )?([a-z-]+)", command)
        assert name, command
        commands[name[1]] = command
    return env, commands


def env_file_by_sh(path: Path) -> dict[str, str]:
    """What a shell (and so cron through followup-cron) gets from the file."""
    done = subprocess.run(["/bin/sh", "-c", 'set -a; . "$1"; set +a; env -0', "sh",
                           str(path)], env={}, capture_output=True, check=True)
    pairs = (item.split("=", 1) for item in done.stdout.decode().split("\0") if "=" in item)
    return {k: v for k, v in pairs if k not in ("PWD", "SHLVL", "_", "OLDPWD")}


def env_file_by_systemd(path: Path) -> dict[str, str]:
    """systemd's EnvironmentFile= reading of plain lines: KEY=value, blank and #/; lines
    skipped, whitespace around the value trimmed, quotes and backslashes would be removed."""
    out: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, sep, value = line.partition("=")
        assert sep, raw
        value = value.strip()
        assert not re.search(r"[\"'\\]", value), f"systemd would unquote {raw!r}"
        out[key.strip()] = value
    return out


# --- the files ----------------------------------------------------------------------------

def test_crontab_runs_every_pass_through_the_wrapper_and_the_env_file() -> None:
    env, commands = parse_crontab()
    assert set(commands) == {"run-due", "scan-inactive", "cleanup", "health"}
    assert all(c.startswith("followup-cron ") for c in commands.values())
    assert commands["health"] == "followup-cron health --quiet"
    assert commands["cleanup"].startswith("followup-cron --log-only cleanup")
    assert "MAILTO" in env and env["ENV_FILE"] == "/etc/followup/followup.env"
    # settings (the webhook secret too) live in the one env file, not in the crontab
    assert not SETTINGS & set(env), SETTINGS & set(env)
    assert env["CRON_TZ"] == env_file_by_systemd(ENV_EXAMPLE)["SCHEDULER_TIMEZONE"]


def test_env_file_reads_the_same_in_sh_and_systemd_and_holds_only_settings() -> None:
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    by_systemd = env_file_by_systemd(ENV_EXAMPLE)
    assert env_file_by_sh(ENV_EXAMPLE) == by_systemd
    safe = re.compile(r"^[A-Z][A-Z0-9_]*=[^\s\"'`$\\;&|<>()*?]*$")
    for line in text.splitlines():
        if line and not line.startswith("#"):
            assert safe.match(line), f"not a plain KEY=value line: {line!r}"
    # every variable named, set or commented out, is a setting
    named = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", text, flags=re.M))
    assert {"DATABASE_URL", "FOLLOWUP_SENDER", "FOLLOWUP_WEBHOOK_SECRET"} <= named
    assert named <= SETTINGS, named - SETTINGS
    load_settings(by_systemd)  # and followup accepts every value in it


def test_timers_use_the_scheduler_zone() -> None:
    zone = env_file_by_systemd(ENV_EXAMPLE)["SCHEDULER_TIMEZONE"]
    for timer in ("followup-scan-inactive.timer", "followup-cleanup.timer"):
        calendar = unit_settings(UNITS / timer)["OnCalendar"]
        assert calendar.endswith(" " + zone), (timer, calendar)


# --- followup-cron, as cron runs it --------------------------------------------------------

@pytest.fixture
def cron(tmp_path: Path):
    """Runs a crontab command the way cron does: /bin/sh -c with the crontab's variables,
    ENV_FILE pointing at a test env file, `logger` stubbed into a file."""
    stub = tmp_path / "bin"
    stub.mkdir()
    syslog = tmp_path / "syslog"
    (stub / "logger").write_text(
        f'#!/bin/sh\nwhile IFS= read -r line; do echo "$2: $line" >> {syslog}; done\n')
    (stub / "logger").chmod(0o755)
    shutil.copy(WRAPPER, stub / "followup-cron")
    env_file = tmp_path / "followup.env"
    env_file.write_text(f"DATABASE_URL=sqlite:///{tmp_path / 'cron.db'}\n"
                        f"FOLLOWUP_SENDER=file:{tmp_path / 'out.jsonl'}\nSCHEDULER_TIMEZONE=UTC\n")
    crontab_env, commands = parse_crontab()
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("FOLLOWUP_", "SCHEDULER_", "REENGAGEMENT_", "JOURNAL_"))
            and k not in ("DATABASE_URL", "STATE_DIRECTORY")}
    base.update(crontab_env)
    base.update({"ENV_FILE": str(env_file), "HOME": str(tmp_path / "home"),
                 "PATH": f"{stub}:{Path(sys.executable).parent}:/usr/bin:/bin"})

    class Cron:
        def __init__(self) -> None:
            self.env = base
            self.env_file = env_file
            self.stub = stub
            self.commands = commands
            self.home = tmp_path / "home"

        def run(self, command: str, **extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["/bin/sh", "-c", self.commands.get(command, command)],
                                  env={**self.env, **extra}, capture_output=True, text=True,
                                  timeout=60, check=False)

        def mail(self, command: str, **extra: str) -> str:
            done = self.run(command, **extra)
            return done.stdout + done.stderr  # cron mails both

        def syslog(self) -> list[str]:
            return syslog.read_text().splitlines() if syslog.exists() else []

    return Cron()


@pytest.mark.slow
def test_entries_are_silent_when_all_is_well(cron) -> None:
    assert cron.mail("run-due") == ""
    assert cron.mail("run-due") == ""
    assert cron.syslog() == []  # idle passes log no empty line
    assert cron.mail("scan-inactive") == ""
    assert cron.mail("health") == ""  # a run-due pass just finished
    assert cron.mail("cleanup") == ""  # --log-only: its counts go to syslog only
    logged = cron.syslog()
    assert logged[0].startswith("followup-cleanup: deleted 0 rows")
    assert all(line.startswith("followup-cleanup: ") for line in logged)
    assert all(line.split(": ", 1)[1].strip() for line in logged)  # no empty lines


@pytest.mark.slow
def test_an_outage_mails_when_it_starts_then_hourly_and_each_change_at_once(cron) -> None:
    good = cron.env_file.read_text()
    cron.env_file.write_text(good + "SCHEDULER_TIMEZONE=Mars/Olympus\n")
    first = cron.mail("run-due")
    assert "SCHEDULER_TIMEZONE" in first
    assert first.rstrip().endswith("followup run-due: exit 2")
    assert cron.mail("run-due") == ""  # the same words a minute later: logged, not mailed
    assert len([x for x in cron.syslog() if "SCHEDULER_TIMEZONE" in x]) == 2
    # an hour later it is said again
    [state] = (cron.home / ".local" / "state" / "followup").glob("cron-run-due-*")
    old = time.time() - 61 * 60
    os.utime(state, (old, old))
    assert "SCHEDULER_TIMEZONE" in cron.mail("run-due")
    assert cron.mail("run-due") == ""
    # a different problem is news at once
    cron.env_file.write_text(good + "FOLLOWUP_MAX_RETRIES=-1\n")
    assert "FOLLOWUP_MAX_RETRIES" in cron.mail("run-due")


@pytest.mark.slow
def test_health_mails_when_alerts_start_and_change(cron) -> None:
    # health only reads: it creates no database at an explicit DATABASE_URL
    assert cron.run('. "$ENV_FILE" && export DATABASE_URL && followup db upgrade').returncode == 0
    first = cron.mail("health")  # no run-due pass ever: the scheduler is down
    assert first.splitlines() == ["followup health: unhealthy (scheduler_down)",
                                  "followup health: exit 1"]
    assert cron.mail("health") == ""


def test_a_missing_env_file_mails(cron) -> None:
    done = cron.run("run-due", ENV_FILE="/nonexistent/followup.env")
    assert done.stdout.strip() == "followup-cron: cannot read ENV_FILE=/nonexistent/followup.env"
    assert done.returncode == 2


def _stub_followup(cron, body: str) -> None:
    script = cron.stub / "followup"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)


def test_sigterm_reaches_followup_which_stops_cleanly(cron, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    _stub_followup(cron, f"trap 'echo TERM >> {marker}; exit 143' TERM\n"
                         f"echo started >> {marker}\nwhile :; do sleep 0.05; done\n")
    wrapper = subprocess.Popen(["/bin/sh", "-c", "exec followup-cron run-due"], env=cron.env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    wrapper.send_signal(signal.SIGTERM)
    out, err = wrapper.communicate(timeout=10)
    assert marker.read_text().split() == ["started", "TERM"]
    assert wrapper.returncode == 143  # systemd's SuccessExitStatus=143: a clean stop
    assert out + err == ""


def test_under_systemd_the_journal_gets_it_and_the_exit_code_asks_for_mail(cron) -> None:
    journal = {"JOURNAL_STREAM": "8:12345", "STATE_DIRECTORY": str(cron.home / "state")}
    _stub_followup(cron, "exit 0\n")
    quiet = cron.run("run-due", **journal)
    assert (quiet.returncode, quiet.stdout) == (0, "")
    _stub_followup(cron, "echo 'failed: f1 after 4 attempts: HTTP 503'\n")
    said = cron.run("run-due", **journal)
    assert said.returncode == 1  # OnFailure= mails it
    assert said.stdout == "failed: f1 after 4 attempts: HTTP 503\n"
    again = cron.run("run-due", **journal)
    assert again.returncode == 0 and again.stdout == said.stdout  # journal yes, mail no
    assert cron.syslog() == []  # under systemd the journal already has stdout


# --- systemd ------------------------------------------------------------------------------

def unit_settings(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), value.strip())
    return out


def seconds(value: str) -> float:
    units = {"": 1, "s": 1, "min": 60, "h": 3600}
    match = re.fullmatch(r"(\d+)(s|min|h|)", value)
    assert match, value
    return int(match[1]) * units[match[2]]


def test_run_due_unit_never_kills_a_healthy_pass() -> None:
    unit = unit_settings(UNITS / "followup-run-due.service")
    longest_send = max(COMMAND_DEADLINE, WEBHOOK_DEADLINE)
    bound = CONNECT_TIMEOUT_S + PassOptions().time_budget + longest_send + WRITE_BACK_S
    assert seconds(unit["TimeoutStartSec"]) >= bound
    # a stop (or the start timeout) asks first: SIGTERM, time to finish sends in flight
    assert unit["KillSignal"] == "SIGTERM"
    assert unit["KillMode"] == "mixed"  # to followup-cron, which passes it on
    assert seconds(unit["TimeoutStopSec"]) >= longest_send + WRITE_BACK_S
    assert "143" in unit["SuccessExitStatus"].split()
    assert unit["ExecStart"].endswith("followup-cron run-due")


def test_every_pass_unit_mails_through_the_wrapper() -> None:
    for path in UNITS.glob("followup-*.service"):
        unit = unit_settings(path)
        if "followup-cron" in unit.get("ExecStart", ""):
            assert unit["OnFailure"] == "followup-failure@%n.service", path.name
            assert unit["EnvironmentFile"] == "/etc/followup/followup.env", path.name
    serve = unit_settings(UNITS / "followup-serve.service")
    assert " serve " in serve["ExecStart"] + " " and serve["KillSignal"] == "SIGTERM"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    followup = Path(sys.executable).parent / "followup"
    for path in [*UNITS.glob("*.service"), *UNITS.glob("*.timer")]:
        text = path.read_text(encoding="utf-8")
        text = text.replace("/usr/local/bin/followup-cron", str(WRAPPER))
        text = text.replace("/opt/followup/.venv/bin/followup", str(followup))
        (tmp_path / path.name).write_text(text, encoding="utf-8")
    done = subprocess.run(["systemd-analyze", "verify", "--man=no",
                           *sorted(str(p) for p in tmp_path.iterdir())],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr
