"""`placesim run`: what it prints, what it writes and what it leaves behind.

Every run uses tests/data/tiny.yaml: about 3,000 requests on a four-node line
(clients, edge, region, cloud), which takes well under a second.
"""

from __future__ import annotations

import io
import json
import os
import types
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner, Result
from polars.testing import assert_frame_equal

import cli
import sim.engine
from cli import main
from sim.summary import SUMMARY_COLUMNS

DATA = Path(__file__).resolve().parent / "data"
SCENARIO = str(DATA / "tiny.yaml")
OUTPUT_FILES = [
    "costs.parquet",
    "requests.parquet",
    "showback.parquet",
    "summary.parquet",
]
TABLE_HEADER = [
    "scope",
    "name",
    "requests",
    "dropped_%",
    "throughput_per_s",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "queue_wait_p95_ms",
    "slo_%",
    "util_%",
    "cost_usd",
    "usd_per_1k_req",
]
DECIMALS = {"cost_usd": 2, "cost_per_request_usd": 4}
PERCENT_COLUMNS = ("dropped_share", "slo_attainment", "utilisation")
SCOPES = [
    ("overall", "all"),
    ("class", "chat"),
    ("class", "detect"),
    ("pool", "cloud-gpu"),
    ("pool", "edge-gpu"),
    ("pool", "region-gpu"),
]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), prog_name="placesim")


def run_tiny(out: Path, *args: str) -> Result:
    result = invoke("run", SCENARIO, "--out", str(out), *args)
    assert result.exit_code == 0, result.output
    return result


def summary(out: Path) -> pl.DataFrame:
    return pl.read_parquet(out / "summary.parquet")


def final_rows(out: Path) -> pl.DataFrame:
    return pl.read_parquet(out / "requests.parquet").filter(pl.col("final"))


def shown(value: object, column: str) -> str:
    """A summary value as the table prints it (rounded, thousands separated)."""
    if isinstance(value, float):
        return f"{value:,.{DECIMALS.get(column, 1)}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# --- the table ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def table_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, Path]:
    out = tmp_path_factory.mktemp("table") / "out"
    return run_tiny(out), out


def test_table_run_starts_with_what_ran(table_run: tuple[Result, Path]) -> None:
    result, out = table_run
    generated = pl.read_parquet(out / "requests.parquet")["request_id"].n_unique()

    first = result.stdout.splitlines()[0]

    assert first == (
        f"run: scenario=tiny topology=tiny seed=3 requests={generated} "
        "horizon=20 s warmup=1 s"
    )


def test_table_shows_every_scope_with_the_summary_values(
    table_run: tuple[Result, Path],
) -> None:
    result, out = table_run
    frame = summary(out).with_columns(
        pl.col(*PERCENT_COLUMNS) * 100.0, pl.col("cost_per_request_usd") * 1000.0
    )
    # Blank cells (a class has no utilisation) vanish when a line is split.
    expected_rows = [
        [shown(row[c], c) for c in cli.TABLE_COLUMNS if row[c] is not None]
        for row in frame.iter_rows(named=True)
    ]

    lines = result.stdout.splitlines()

    assert lines[1].split() == TABLE_HEADER
    assert set(lines[2]) == {"─"}
    rows = [line.split() for line in lines[3 : 3 + len(SCOPES)]]
    assert [tuple(row[:2]) for row in rows] == SCOPES
    assert rows == expected_rows
    assert lines[3 + len(SCOPES)].startswith("cost: ")


def test_table_run_ends_with_the_files_written(table_run: tuple[Result, Path]) -> None:
    result, out = table_run

    assert result.stdout.splitlines()[-1] == (
        f"wrote: {out / 'summary.parquet'}, {out / 'costs.parquet'}, "
        f"{out / 'showback.parquet'}, {out / 'requests.parquet'}"
    )
    assert result.stderr == ""


def test_run_writes_the_two_parquet_files_and_nothing_else(
    table_run: tuple[Result, Path],
) -> None:
    _, out = table_run

    assert sorted(os.listdir(out)) == OUTPUT_FILES
    assert list(summary(out).schema.items()) == list(SUMMARY_COLUMNS.items())


def test_both_output_files_get_the_same_permissions(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        run_tiny(tmp_path)
    finally:
        os.umask(previous)

    modes = {name: (tmp_path / name).stat().st_mode & 0o777 for name in OUTPUT_FILES}

    assert modes == dict.fromkeys(OUTPUT_FILES, 0o644)


# --- csv and json ---------------------------------------------------------------------


def test_csv_prints_only_the_summary_as_csv(tmp_path: Path) -> None:
    result = run_tiny(tmp_path, "--format", "csv")

    assert result.stdout.splitlines()[0] == ",".join(SUMMARY_COLUMNS)
    printed = pl.read_csv(io.StringIO(result.stdout), schema=SUMMARY_COLUMNS)
    assert_frame_equal(printed, summary(tmp_path))
    assert result.stderr == ""
    assert sorted(os.listdir(tmp_path)) == OUTPUT_FILES


def test_json_prints_one_record_per_summary_row(tmp_path: Path) -> None:
    result = run_tiny(tmp_path, "--format", "json")

    records = json.loads(result.stdout)

    assert records == summary(tmp_path).to_dicts()
    assert [(r["scope"], r["name"]) for r in records] == SCOPES
    assert [list(r) for r in records] == [list(SUMMARY_COLUMNS)] * len(SCOPES)
    assert result.stderr == ""


# --- overrides ------------------------------------------------------------------------


def test_same_seed_reproduces_the_run_and_another_seed_changes_it(
    tmp_path: Path,
) -> None:
    first, again, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"

    run_tiny(first, "--seed", "11")
    run_tiny(again, "--seed", "11")
    result = run_tiny(other, "--seed", "12")

    assert_frame_equal(summary(first), summary(again))
    assert_frame_equal(
        pl.read_parquet(first / "requests.parquet"),
        pl.read_parquet(again / "requests.parquet"),
    )
    assert " seed=12 " in result.stdout.splitlines()[0]
    latency = "latency_p95_ms"
    assert summary(first)[latency][0] != summary(other)[latency][0]
    assert final_rows(first).height != final_rows(other).height


def test_seed_override_differs_from_the_scenario_seed(tmp_path: Path) -> None:
    run_tiny(tmp_path / "own")
    run_tiny(tmp_path / "seeded", "--seed", "4")

    own, seeded = summary(tmp_path / "own"), summary(tmp_path / "seeded")

    assert own["latency_p50_ms"].to_list() != seeded["latency_p50_ms"].to_list()


@pytest.mark.parametrize("count", [1, 500, 2000])
def test_requests_stops_after_exactly_that_many_requests(
    tmp_path: Path, count: int
) -> None:
    result = run_tiny(tmp_path, "--requests", str(count))

    finals = final_rows(tmp_path)
    assert finals.height == count
    assert finals["request_id"].sort().to_list() == list(range(count))
    assert f" requests={count} " in result.stdout.splitlines()[0]


def test_default_out_folder_is_named_after_the_scenario(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    result = invoke("run", SCENARIO, "--requests", "200")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == (
        "wrote: out/tiny/summary.parquet, out/tiny/costs.parquet, "
        "out/tiny/showback.parquet, out/tiny/requests.parquet"
    )
    assert sorted(os.listdir(tmp_path)) == ["out"]
    assert sorted(os.listdir(tmp_path / "out")) == ["tiny"]
    assert sorted(os.listdir(tmp_path / "out" / "tiny")) == OUTPUT_FILES


# --- progress -------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> _Terminal:
    """Make the CLI believe its stderr is a terminal, and capture what it draws."""
    screen = _Terminal()
    monkeypatch.setattr(cli, "sys", types.SimpleNamespace(stderr=screen))
    return screen


def test_a_terminal_gets_a_progress_bar(tmp_path: Path, terminal: _Terminal) -> None:
    run_tiny(tmp_path)

    assert "100%" in terminal.getvalue()


def test_quiet_draws_no_progress_bar_on_a_terminal(
    tmp_path: Path, terminal: _Terminal
) -> None:
    result = run_tiny(tmp_path, "--quiet")

    assert terminal.getvalue() == ""
    assert result.stderr == ""


@pytest.mark.parametrize("flags", [(), ("--quiet",)])
def test_no_progress_bar_when_stderr_is_not_a_terminal(
    tmp_path: Path, flags: tuple[str, ...]
) -> None:
    result = run_tiny(tmp_path, *flags)

    assert result.stderr == ""


# --- failures -------------------------------------------------------------------------


def test_a_failure_mid_run_leaves_no_ledger_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original_run = sim.engine.Engine.run
    seen_during_run: list[str] = []

    def crash_after_writing_rows(self: sim.engine.Engine) -> sim.engine.EngineStats:
        original_run(self)  # every row is now in the ledger's temporary file
        seen_during_run.extend(os.listdir(tmp_path))
        msg = "disk full"
        raise OSError(msg)

    monkeypatch.setattr(sim.engine.Engine, "run", crash_after_writing_rows)

    result = invoke("run", SCENARIO, "--out", str(tmp_path))

    assert isinstance(result.exception, OSError)
    assert result.exit_code == 1
    assert len(seen_during_run) == 1
    assert seen_during_run[0].startswith(".requests.parquet.")
    assert seen_during_run[0].endswith(".tmp")
    assert os.listdir(tmp_path) == []
    assert result.stdout == ""


def test_an_out_folder_that_cannot_be_created_is_a_short_error(
    tmp_path: Path,
) -> None:
    (tmp_path / "afile").write_text("")
    out = tmp_path / "afile" / "sub"

    result = invoke("run", SCENARIO, "--out", str(out))

    assert result.stderr == (
        f"Error: cannot create the output folder {out}: not a directory\n"
    )
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)


# --- the command line itself ----------------------------------------------------------


def test_help_lists_run_and_validate() -> None:
    result = invoke("--help")

    commands = result.stdout.split("Commands:\n", 1)[1].splitlines()
    names = [line.split()[0] for line in commands if line.strip()]
    assert {"run", "validate"} <= set(names)
    run_line = next(line for line in commands if line.split()[:1] == ["run"])
    assert run_line.split(None, 1)[1] == "Simulate SCENARIO and print its summary."
    assert result.exit_code == 0


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--sed", "3"], "Error: No such option '--sed'. Did you mean '--seed'?"),
        (
            ["--requests", "0"],
            "Error: Invalid value for '--requests': 0 is not in the range x>=1.",
        ),
        (
            ["--format", "xml"],
            "Error: Invalid value for '--format': 'xml' is not one of 'table', "
            "'csv', 'json'.",
        ),
    ],
)
def test_a_misused_option_is_a_usage_error_with_exit_code_2(
    args: list[str], error: str, tmp_path: Path
) -> None:
    result = invoke("run", SCENARIO, "--out", str(tmp_path / "out"), *args)

    assert result.stderr == (
        "Usage: placesim run [OPTIONS] SCENARIO\n"
        "Try 'placesim run --help' for help.\n"
        f"\n{error}\n"
    )
    assert result.exit_code == 2
    assert not (tmp_path / "out").exists()


def test_run_without_a_scenario_is_a_usage_error() -> None:
    result = invoke("run")

    assert result.exit_code == 2
    assert result.stderr.endswith("Error: Missing argument 'SCENARIO'.\n")
