"""The `placesim` command: a thin click layer over :mod:`sim`.

Results go to stdout, progress and errors to stderr. Exit codes: 0 success,
1 a problem with the input or the run, 2 a misused command line.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import polars as pl

from sim.errors import InputError, PlacesimError

F = TypeVar("F", bound=Callable[..., Any])

TABLE_COLUMNS = [
    "scope",
    "name",
    "requests",
    "dropped_share",
    "throughput_per_s",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "queue_wait_p95_ms",
    "slo_attainment",
    "utilisation",
]


class ReportedError(click.ClickException):
    """A user-facing error: printed as is, exit code 1, no traceback."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def show(self, file: Any = None) -> None:
        """Print the message, then the hint, on stderr."""
        click.echo(f"Error: {self.format_message()}", err=True)
        if self.hint:
            click.echo(self.hint, err=True)


def _reported(command: str) -> Callable[[F], F]:
    """Turn placesim errors into ReportedError unless --debug was given."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            debug = click.get_current_context().find_root().params.get("debug", False)
            try:
                return func(*args, **kwargs)
            except InputError as err:
                if debug:
                    raise
                hint = f"Try 'placesim {command} --help' for help."
                raise ReportedError(err.format(), hint) from None
            except PlacesimError as err:
                if debug:
                    raise
                raise ReportedError(str(err)) from None

        return wrapper  # type: ignore[return-value]

    return decorate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks instead of short errors.")
@click.version_option(package_name="placesim")
def main(debug: bool) -> None:
    """Simulate where AI inference runs, how fast it is and what it costs."""


@main.command()
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder. Default: out/<scenario name>.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="How the summary is printed.",
)
@click.option("--seed", type=int, help="Override the scenario's seed.")
@click.option("--requests", type=click.IntRange(min=1), help="Stop after N requests.")
@click.option(
    "--duration-s",
    type=click.FloatRange(min=0, min_open=True),
    help="Override the duration.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_reported("run")
def run(
    scenario: Path,
    out_dir: Path | None,
    output_format: str,
    seed: int | None,
    requests: int | None,
    duration_s: float | None,
    quiet: bool,
) -> None:
    """Simulate SCENARIO and print its summary.

    Writes requests.parquet (one row per request and pool visit) and
    summary.parquet into the output folder.
    """
    from sim.api import run as run_scenario
    from sim.schema import load_scenario, with_overrides

    loaded = with_overrides(
        load_scenario(scenario), seed=seed, requests=requests, duration_s=duration_s
    )
    folder = out_dir or Path("out") / loaded.scenario.name
    with _progress_bar(quiet) as progress:
        result = run_scenario(loaded, out_dir=folder, progress=progress)

    if output_format != "table":
        _print_data(result.summary, output_format)
        return
    s = loaded.scenario
    horizon = f"{result.window.horizon_s:g} s"
    click.echo(
        f"run: scenario={s.name} topology={loaded.topology.name} seed={s.seed} "
        f"requests={result.stats.requests} horizon={horizon} warmup={s.warmup_s:g} s"
    )
    click.echo(_table(result.summary))
    click.echo(f"wrote: {result.out_dir / 'summary.parquet'}, {result.requests_path}")


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@_reported("validate")
def validate(files: tuple[Path, ...]) -> None:
    """Check scenario and topology FILES without running them.

    Every problem in every file is listed at once, each with its file, line,
    column and field.
    """
    from sim.schema import check_file

    problems = []
    for path in files:
        try:
            kind = check_file(path)
        except InputError as err:
            problems.extend(err.problems)
            continue
        click.echo(f"ok: {path} ({kind})")
    if problems:
        # A topology given on its own and through its scenario is reported once.
        raise InputError(list(dict.fromkeys(problems)))


def _print_data(summary: pl.DataFrame, output_format: str) -> None:
    if output_format == "csv":
        click.echo(summary.write_csv(), nl=False)
    else:
        click.echo(summary.write_json())


def _table(summary: pl.DataFrame) -> str:
    shown = summary.select(TABLE_COLUMNS).with_columns(
        pl.col("dropped_share", "slo_attainment", "utilisation") * 100.0
    )
    shown = shown.rename(
        {
            "dropped_share": "dropped_%",
            "slo_attainment": "slo_%",
            "utilisation": "util_%",
        }
    )
    with pl.Config(
        tbl_rows=-1,
        tbl_cols=-1,
        tbl_width_chars=200,
        tbl_hide_column_data_types=True,
        tbl_hide_dataframe_shape=False,
        tbl_formatting="NOTHING",
        float_precision=1,
        tbl_cell_numeric_alignment="RIGHT",
    ):
        return str(shown)


class _progress_bar:  # noqa: N801 - used as a context manager, named like one
    """A tqdm bar on stderr, or nothing when quiet or stderr is not a terminal."""

    def __init__(self, quiet: bool) -> None:
        self._bar: Any = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=100, unit="%", file=sys.stderr, leave=False)

    def __enter__(self) -> Callable[[float], None] | None:
        if self._bar is None:
            return None
        return self._update

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()

    def _update(self, share: float) -> None:
        self._bar.n = round(share * 100, 1)
        self._bar.refresh()


if __name__ == "__main__":
    main()
