"""The benchmark harness (bench/): its checks must catch a lost or repeated delivery, its
figures must be what it says, and a failed scenario must fail the run. No timing is
asserted here; `python -m bench --tiny` in CI runs the scenarios themselves."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.context import TINY, Context, Sizes
from bench.measure import (
    BenchFailure,
    compare,
    file_ids,
    require_exactly_once,
    run,
    summarize,
)
from bench.report import END, START, Row, markdown_table, write_readme
from bench.suite import SCENARIOS, parse, run_all


def test_exactly_once_passes_only_when_every_id_arrived_once() -> None:
    ids = ["a", "b", "c"]
    assert require_exactly_once("x", ids, Counter(ids)).exactly_once
    for seen, problem in ((Counter(["a", "b"]), "1 missing"),
                          (Counter(["a", "b", "c", "b"]), "1 duplicated"),
                          (Counter(["a", "b", "c", "z"]), "1 unexpected")):
        with pytest.raises(BenchFailure, match=f"EXACTLY-ONCE VIOLATED in x: .*{problem}"):
            require_exactly_once("x", ids, seen)


def test_compare_counts_each_kind_of_wrong_delivery() -> None:
    found = compare(["a", "b", "c", "d"], Counter({"a": 1, "b": 3, "e": 1}))
    assert (found.missing, found.duplicated, found.unexpected) == (2, 1, 1)
    assert found.received == 5 and not found.exactly_once


def test_file_ids_counts_lines_and_refuses_a_torn_line(tmp_path: Path) -> None:
    out = tmp_path / "d.jsonl"
    out.write_text('{"id": "a"}\n{"id": "b"}\n{"id": "a"}\n')
    assert file_ids(out) == Counter({"a": 2, "b": 1})
    assert file_ids(tmp_path / "missing.jsonl") == Counter()
    out.write_text('{"id": "a"}\n{"id": "b", "mess')
    with pytest.raises(BenchFailure, match=r"d\.jsonl:2: not a whole JSON delivery line"):
        file_ids(out)


def test_summary_median_spread_and_percentiles() -> None:
    three = summarize([3.0, 1.0, 2.0])
    assert (three.median, three.low, three.high) == (2.0, 1.0, 3.0)
    assert three.quartiles() is None  # too few runs: the spread shown is min-max
    many = summarize(float(i) for i in range(1, 101))
    assert many.median == 50.5
    assert many.quartiles() == pytest.approx((25.25, 75.75))
    assert many.percentile(100) == 100.0
    with pytest.raises(ValueError):
        summarize([])


def test_rows_show_the_median_with_its_spread() -> None:
    rate = Row("run-due", "20,000 due", summarize([6000.0, 6350.0, 7000.0]), "rows/s",
               goal="≥ 0.5×", met=False)
    assert (rate.figure(), rate.spread(), rate.runs(), rate.verdict()) == (
        "6,350", "6,000-7,000", "3", "NO")
    ratio = Row("peers", "followup / procrastinate", summarize([61.0]), "×", met=True)
    assert (ratio.figure(), ratio.spread(), ratio.verdict()) == ("61.0×", "", "yes")
    seconds = Row("startup", "help", summarize([0.1534] * 5), "s")
    assert seconds.figure() == "0.153" and seconds.spread().startswith("IQR")
    table = markdown_table([rate, Row("scan", "a | b", None, "s")])
    assert "| run-due | 20,000 due | 6,350 | 6,000-7,000 | 3 | rows/s | ≥ 0.5× | NO |" in table
    assert "a \\| b" in table


def test_readme_block_is_replaced_and_the_text_around_it_kept(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    write_readme(readme, "first")
    assert readme.read_text() == f"{START}\nfirst\n{END}\n"
    readme.write_text(f"# Bench\n\nintro\n\n{START}\nold\n{END}\n\n## Notes\nkept\n")
    write_readme(readme, "new \\1 table")
    assert readme.read_text() == (f"# Bench\n\nintro\n\n{START}\nnew \\1 table\n{END}\n\n"
                                  "## Notes\nkept\n")


def test_run_reports_wall_time_peak_rss_and_failures() -> None:
    proc = run([sys.executable, "-c", "b = bytearray(60 * 2**20); print('{\"ok\": 1}')"],
               {"PATH": "/usr/bin:/bin"})
    assert proc.json() == {"ok": 1}
    assert proc.peak_rss_mib >= 60  # measured by the kernel, not sampled
    assert proc.wall > 0
    with pytest.raises(BenchFailure, match=r"exited 3 .*: boom"):
        run([sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"],
            {})
    assert run([sys.executable, "-c", "raise SystemExit(2)"], {}, check=False).returncode == 2
    with pytest.raises(BenchFailure, match="not one JSON document"):
        run([sys.executable, "-c", "print('hello')"], {}).json()


def make_ctx(tmp_path: Path) -> Context:
    return Context(server=None, followup=None, sizes=TINY, runs=1,  # type: ignore[arg-type]
                   heavy_runs=1, tmp=tmp_path, template="t", tiny=False)


def test_a_failed_scenario_is_reported_and_the_others_still_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ctx = make_ctx(tmp_path)
    ran: list[str] = []

    def runner(name: str) -> Callable[[Context], None]:
        def go(c: Context) -> None:
            ran.append(name)
            if name == "webhook":
                raise BenchFailure("EXACTLY-ONCE VIOLATED in webhook C=64: 1 duplicated")
            c.add(Row(name, "figure", summarize([1.0]), "s", met=True))
        return go

    failures = run_all(ctx, ["run-due", "webhook", "peers"], runner)
    assert ran == ["run-due", "webhook", "peers"]
    assert failures == ["webhook: EXACTLY-ONCE VIOLATED in webhook C=64: 1 duplicated"]
    assert "BENCH FAILURE webhook: EXACTLY-ONCE VIOLATED" in capsys.readouterr().err
    assert [r.what for r in ctx.rows] == ["figure", "FAILED", "figure"]


def test_tiny_runs_judge_no_goal(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    ctx.tiny = True
    ctx.add(Row("scan", "scan", summarize([99.0]), "s", goal="≤ 2 s", met=False))
    assert ctx.rows[0].met is None and ctx.judge(False) is None


def test_options() -> None:
    assert parse(["--tiny", "--only", "peers", "--only", "api"]).only == ["peers", "api"]
    for bad in (["--only", "nope"], ["--runs", "0"], ["--heavy-runs", "0"]):
        with pytest.raises(SystemExit):
            parse(bad)
    assert set(SCENARIOS) == {"run-due", "webhook", "import", "booking", "scan", "startup",
                              "peers", "api"}


def test_tiny_sizes_are_smaller_everywhere() -> None:
    full = Sizes()
    for name, value in vars(TINY).items():
        if isinstance(value, int | float) and name not in ("webhook_delay",
                                                           "scan_messages_per_user"):
            assert value <= getattr(full, name), name


def test_explain_captures_the_statements_the_passes_send() -> None:
    # `python -m bench.explain claim|scan` plan what run-due and scan-inactive really send;
    # a change to how a store function runs its statement must not break the capture.
    from bench.explain import claim_sql, scan_sql

    settings, claim = claim_sql()
    assert settings and all(s.startswith("SET LOCAL ") for s in settings)
    assert "FOR UPDATE SKIP LOCKED" in claim and "%(" not in claim
    scan = scan_sql(30)
    assert "GROUP BY ai_messages.user_id" in scan and "%(" not in scan
