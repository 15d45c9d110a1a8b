"""The `placesim` command: a thin click layer over :mod:`sim`.

Results go to stdout, progress and errors to stderr. Exit codes: 0 success,
1 a problem with the input or the run, 2 a misused command line.
"""

from __future__ import annotations

import functools
import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import polars as pl

from sim.cost import MONTH_S
from sim.errors import InputError, PlacesimError

if TYPE_CHECKING:
    from sim.api import RunResult
    from sim.sweep import PointsSummary, SweepResult

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
    "ttft_p95_ms",
    "tpot_p50_ms",
    "slo_attainment",
    "utilisation",
    "cost_usd",
    "cost_per_request_usd",
]
TOKEN_COLUMNS = ("ttft_p95_ms", "tpot_p50_ms")
"""Shown only when the run served tokens (a pool with `serving`)."""


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


def _format_option(help_text: str) -> Callable[[F], F]:
    """The `--format table|csv|json` option every reporting command takes."""
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(["table", "csv", "json"]),
        default="table",
        show_default=True,
        help=help_text,
    )


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
@_format_option("How the summary is printed.")
@click.option("--seed", type=int, help="Override the scenario's seed.")
@click.option("--requests", type=click.IntRange(min=1), help="Stop after N requests.")
@click.option(
    "--duration-s",
    type=click.FloatRange(min=0, min_open=True),
    help="Override the duration.",
)
@click.option(
    "--focus",
    "focus_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the cost ledger as FOCUS 1.2 rows (.csv or .parquet).",
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
    focus_path: Path | None,
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
    if focus_path is not None:
        from sim.focus import focus_frame, write_focus

        write_focus(focus_frame(result.costs, loaded), focus_path)

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
    click.echo(_cost_table(result))
    files = ", ".join(
        str(result.out_dir / name)
        for name in (
            "summary.parquet",
            "costs.parquet",
            "showback.parquet",
            "requests.parquet",
        )
    )
    click.echo(f"wrote: {files}")


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@_reported("validate")
def validate(files: tuple[Path, ...]) -> None:
    """Check scenario, topology and sweep FILES without running them.

    Every problem in every file is listed at once, each with its file, line,
    column and field.
    """
    from sim.schema import check_file
    from sim.sweep.spec import is_sweep_file

    problems = []
    for path in files:
        try:
            if is_sweep_file(path):
                from sim.sweep import load_sweep

                load_sweep(path)
                kind = "sweep"
            else:
                kind = check_file(path)
        except InputError as err:
            problems.extend(err.problems)
            continue
        click.echo(f"ok: {path} ({kind})")
    if problems:
        # A topology given on its own and through its scenario is reported once.
        raise InputError(list(dict.fromkeys(problems)))


@main.command()
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--placements",
    required=True,
    help="Comma-separated placements: names from the scenario or policy names.",
)
@click.option(
    "--replications",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Seeds per placement; 2 or more add 95% confidence intervals.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder. Default: out/<scenario name>-compare.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw cost against p95 latency and cost by category (PNG).",
)
@_format_option("How the results are printed.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_reported("compare")
def compare(
    scenario: Path,
    placements: str,
    replications: int,
    out_dir: Path | None,
    plot_path: Path | None,
    output_format: str,
    quiet: bool,
) -> None:
    """Run SCENARIO under each placement on the same requests, side by side.

    Every placement sees the same arrivals and sizes (common random numbers).
    A `*` marks the best value of each column; `pareto` marks the placements
    no other beats on both monthly cost and p95 latency.
    """
    from sim.compare import compare as compare_placements
    from sim.schema import load_scenario

    names = [name.strip() for name in placements.split(",") if name.strip()]
    folder = out_dir or Path("out") / f"{load_scenario(scenario).scenario.name}-compare"
    with _progress_bar(quiet) as progress:
        result = compare_placements(
            scenario,
            names,
            replications=replications,
            out_dir=folder,
            progress=progress,
        )
    if plot_path is not None:
        from sim.plots import plot_comparison

        plot_comparison(result.table, plot_path)
    if output_format != "table":
        _print_data(result.table, output_format)
        return

    click.echo(
        f"compare: scenario={scenario} placements={','.join(names)} "
        f"replications={replications}"
    )
    click.echo(_comparison_table(result.table))
    written = [str(folder / "comparison.parquet")]
    if plot_path is not None:
        written.append(str(plot_path))
    click.echo(f"wrote: {', '.join(written)}")


_COMPARED = {
    "latency_p50_ms": ("p50_ms", 1),
    "latency_p95_ms": ("p95_ms", 1),
    "latency_p99_ms": ("p99_ms", 1),
    "ttft_p95_ms": ("ttft_p95_ms", 1),
    "slo_attainment": ("slo_%", 1),
    "dropped_share": ("dropped_%", 2),
    "usd_per_1k_requests": ("usd_per_1k_req", 4),
    "monthly_usd": ("monthly_usd", 0),
}


def _comparison_table(table: pl.DataFrame) -> str:
    """The comparison for people: best values starred, intervals as ±."""
    categories = [
        c
        for c in ("compute", "edge_hardware", "energy", "transfer", "cdn", "storage")
        if f"monthly_{c}_usd" in table.columns and table[f"monthly_{c}_usd"].sum() > 0
    ]
    rows = []
    for row in table.iter_rows(named=True):
        best = set((row["best_in"] or "").split(","))
        cells: dict[str, str] = {"placement": row["placement"]}
        for metric, (label, decimals) in _COMPARED.items():
            value = row.get(metric)
            if value is None:
                continue
            scale = 100.0 if metric in ("slo_attainment", "dropped_share") else 1.0
            text = f"{value * scale:,.{decimals}f}"
            half = row.get(f"{metric}_ci95")
            if half is not None:
                text += f" ±{half * scale:,.{decimals}f}"
            cells[label] = text + (" *" if metric in best else "")
        for category in categories:
            cells[f"{category}_usd"] = f"{row[f'monthly_{category}_usd'] or 0:,.0f}"
        cells["pareto"] = "yes" if row["pareto"] else ""
        rows.append(cells)
    columns = list(dict.fromkeys(key for cells in rows for key in cells))
    frame = pl.DataFrame(
        [[cells.get(c, "") for c in columns] for cells in rows],
        schema=dict.fromkeys(columns, pl.String),
        orient="row",
    )
    return _render(frame) + "\n* best in its column; monthly figures are projections"


@main.command()
@click.option("--section", help="Only this section (instances, transfer, cdn, ...).")
@_format_option("How the results are printed.")
@_reported("catalog")
def catalog(section: str | None, output_format: str) -> None:
    """List the price catalogue: every figure with its source and date."""
    from sim.catalog import load_catalog

    frame = load_catalog().describe()
    if section is not None:
        sections = frame["section"].unique().sort().to_list()
        if section not in sections:
            msg = f"unknown section {section!r}; known: {', '.join(sections)}"
            raise PlacesimError(msg)
        frame = frame.filter(pl.col("section") == section)
    if output_format != "table":
        _print_data(frame, output_format)
        return
    click.echo(_render(frame.drop("source"), {"value": 4}))
    click.echo(f"{frame.height} figures; sources: placesim catalog --format csv")


@main.command()
@click.argument("sweep_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--address",
    envvar="RAY_ADDRESS",
    show_envvar=True,
    help="Ray cluster to join: auto, HOST:PORT or ray://HOST:PORT. "
    "Default: start Ray on this machine for the sweep.",
)
@click.option(
    "--num-cpus",
    type=click.IntRange(min=1),
    help="CPUs of the Ray started on this machine. Default: all.",
)
@click.option(
    "--max-in-flight",
    type=click.IntRange(min=1),
    help="Ray tasks submitted at once. Default: twice the cluster's CPUs.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder. Default: out/<sweep name>.",
)
@click.option("--resume", is_flag=True, help="Run only the runs not yet written.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    help="Run at most N runs now; the rest later with --resume.",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Runs per Ray task; raise it for points of a few milliseconds.",
)
@click.option("--keep-ledgers", is_flag=True, help="Keep every run's requests.parquet.")
@click.option("--serial", is_flag=True, help="Run in this process, without Ray.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_reported("sweep")
def sweep(
    sweep_file: Path,
    address: str | None,
    num_cpus: int | None,
    max_in_flight: int | None,
    out_dir: Path | None,
    resume: bool,
    limit: int | None,
    batch: int,
    keep_ledgers: bool,
    serial: bool,
    quiet: bool,
) -> None:
    """Run every point of SWEEP_FILE, times its replications, on Ray.

    Each run's summary rows go to OUT/results/point=NNNN/ (a Parquet dataset);
    failed runs to OUT/failures.parquet. Summarise with `placesim summarize`.
    """
    from sim.sweep import load_sweep, run_sweep

    if serial and (address or num_cpus):
        msg = "--serial runs without Ray: drop --address and --num-cpus"
        raise click.UsageError(msg)
    loaded = load_sweep(sweep_file)
    folder = out_dir or Path("out") / loaded.name
    click.echo(
        f"sweep: name={loaded.name} scenario={loaded.base.scenario.get('name')} "
        f"points={len(loaded.points)} replications={loaded.replications} "
        f"runs={len(loaded.points) * loaded.replications}"
    )
    try:
        with _runs_bar(quiet) as progress:
            result = run_sweep(
                loaded,
                folder,
                address=address,
                num_cpus=num_cpus,
                max_in_flight=max_in_flight,
                batch_size=batch,
                resume=resume,
                limit=limit,
                keep_ledgers=keep_ledgers,
                serial=serial,
                progress=progress,
            )
    except KeyboardInterrupt:
        _interrupted(sweep_file, folder, len(loaded.points) * loaded.replications)
    _report_sweep(result, sweep_file)


def _report_sweep(result: SweepResult, sweep_file: Path) -> None:
    out = result.out_dir
    click.echo(
        f"ran: {result.completed + len(result.failures)} runs in "
        f"{result.elapsed_s:.1f} s on {result.executor}; "
        f"{len(result.failures)} failed, {result.skipped} already written"
    )
    if result.remaining and not result.failures:
        click.echo(
            f"left: {result.remaining} runs; continue with: "
            f"placesim sweep {sweep_file} --out {out} --resume"
        )
    written = result.skipped + result.completed
    click.echo(
        f"wrote: {out / 'results'} ({written} of {result.runs} runs); "
        f"next: placesim summarize {out}"
    )
    if result.failures:
        for point, replication, error in result.failures[:3]:
            click.echo(f"failed: point {point} replication {replication}:", err=True)
            click.echo("  " + error.replace("\n", "\n  "), err=True)
        msg = (
            f"{len(result.failures)} runs failed; all errors are in "
            f"{out / 'failures.parquet'}; after a fix, rerun them with --resume"
        )
        raise ReportedError(msg)


def _interrupted(sweep_file: Path, out: Path, runs: int) -> None:
    from sim.sweep.dataset import Layout

    written = len(Layout(out, runs).done())
    click.echo(
        f"interrupted: {written} of {runs} runs written in {out}; continue with: "
        f"placesim sweep {sweep_file} --out {out} --resume",
        err=True,
    )
    raise click.exceptions.Exit(130)


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@_format_option("How the per-point figures are printed.")
@_reported("summarize")
def summarize(out_dir: Path, output_format: str) -> None:
    """Per point of the sweep in OUT_DIR: means and 95% confidence intervals.

    Each figure of the overall summary row is averaged over the point's
    replications, with a Student t interval; the points no other point beats
    on both cost and p95 latency are marked (pareto). Writes points.parquet.
    """
    from sim.sweep import summarize_sweep

    summary = summarize_sweep(out_dir)
    if output_format != "table":
        _print_data(summary.points, output_format)
        return
    frame = summary.points
    click.echo(
        f"summarize: sweep={summary.name} points={frame.height} "
        f"replications={summary.replications} runs={frame['runs'].sum()} "
        f"failed={frame['failed'].sum()} confidence=95% (Student t)"
    )
    if summary.cost_column is None:
        click.echo(
            "pareto: skipped, the results have no cost column (a number ending "
            "in _usd)",
            err=True,
        )
    click.echo(_points_table(summary))
    click.echo(f"wrote: {summary.path}")


def _points_table(summary: PointsSummary) -> str:
    """Point, values, runs, then each key figure's mean and interval half-width."""
    from rich.markup import escape

    from sim.sweep.dataset import PARAMETER_PREFIX as prefix
    from sim.sweep.stats import KEY_METRICS

    frame = summary.points
    metrics = [m for m in summary.metrics if m in KEY_METRICS]
    if summary.cost_column is not None:
        metrics.append(summary.cost_column)

    names = [c.removeprefix(prefix) for c in frame.columns if c.startswith(prefix)]
    columns: list[pl.Expr] = [pl.col("point")]
    for name, label in _short_labels(names).items():
        column = pl.col(prefix + name)
        if frame.schema[prefix + name] == pl.String:
            # The table reads "[word]" as markup; values are shown as written.
            column = column.map_elements(escape, return_dtype=pl.String)
        columns.append(column.alias(label))
    columns += [pl.col("runs")]
    if frame["failed"].sum():
        columns += [pl.col("failed")]
    for m in metrics:
        scale = 100.0 if m in ("dropped_share", "slo_attainment") else 1.0
        name, half_name = _POINT_HEADERS.get(m, (m, f"±{m}"))
        half = pl.col(f"{m}_ci_high") - pl.col(f"{m}_mean")
        columns += [
            (pl.col(f"{m}_mean") * scale).alias(name),
            (half * scale).alias(half_name),
        ]
    if "pareto" in frame.columns:
        columns += [
            pl.when(pl.col("pareto"))
            .then(pl.lit("*"))
            .otherwise(pl.lit(""))
            .alias("pareto")
        ]
    decimals = {c: 2 for c in ("cost_usd", "±cost")}
    return _render(frame.select(columns), decimals)


def _short_labels(names: list[str]) -> dict[str, str]:
    """Table headers for parameter paths: the last selector and the last key.

    ``classes[chat].arrival.rate_per_s`` is shown as ``chat.rate_per_s``; a
    label that two paths share falls back to the full paths.
    """
    from sim.sweep.spec import parse_path

    labels = {}
    for name in names:
        parts = parse_path(name)
        items = [text for kind, text in parts if kind == "item"]
        label = ".".join([*items[-1:], parts[-1][1]]) if parts[-1][0] == "key" else name
        labels[name] = label.replace("[", "(").replace("]", ")")
    if len(set(labels.values())) < len(labels):
        return {name: name.replace("[", "(").replace("]", ")") for name in names}
    return labels


_POINT_HEADERS = {
    "latency_p50_ms": ("p50_ms", "±p50"),
    "latency_p95_ms": ("p95_ms", "±p95"),
    "latency_p99_ms": ("p99_ms", "±p99"),
    "slo_attainment": ("slo_%", "±slo"),
    "dropped_share": ("dropped_%", "±dropped"),
    "throughput_per_s": ("per_s", "±per_s"),
    "cost_usd": ("cost_usd", "±cost"),
}
"""Short headers of the summarize table: the mean, then its 95% half-width."""


class _runs_bar:  # noqa: N801 - used as a context manager, named like one
    """A tqdm bar of runs done, with ETA, on stderr when it is a terminal."""

    def __init__(self, quiet: bool) -> None:
        self._show = not quiet and sys.stderr.isatty()
        self._bar: Any = None

    def __enter__(self) -> Callable[[int, int], None] | None:
        return self._update if self._show else None

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()

    def _update(self, done: int, total: int) -> None:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="run", file=sys.stderr, leave=False)
        self._bar.n = done
        self._bar.refresh()


def _print_data(summary: pl.DataFrame, output_format: str) -> None:
    if output_format == "csv":
        click.echo(summary.write_csv(), nl=False)
    else:
        click.echo(summary.write_json())


def _table(summary: pl.DataFrame) -> str:
    columns = [
        c
        for c in TABLE_COLUMNS
        if c not in TOKEN_COLUMNS or summary[c].is_not_null().any()
    ]
    shown = summary.select(columns).with_columns(
        pl.col("dropped_share", "slo_attainment", "utilisation") * 100.0,
        pl.col("cost_per_request_usd") * 1000.0,
    )
    shown = shown.rename(
        {
            "dropped_share": "dropped_%",
            "slo_attainment": "slo_%",
            "utilisation": "util_%",
            "cost_per_request_usd": "usd_per_1k_req",
        }
    )
    return _render(shown, decimals={"cost_usd": 2, "usd_per_1k_req": 4})


def _render(frame: pl.DataFrame, decimals: dict[str, int] | None = None) -> str:
    """A table for people: numbers right-aligned and rounded, nulls left blank."""
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    decimals = decimals or {}
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name, dtype in frame.schema.items():
        justify = "right" if dtype.is_numeric() else "left"
        table.add_column(escape(name), justify=justify)
    for row in frame.iter_rows(named=True):
        table.add_row(
            *(
                escape(_cell(value, decimals.get(name, 1)))
                for name, value in row.items()
            )
        )

    console = Console(width=250, file=io.StringIO(), color_system=None)
    console.print(table)
    return "\n".join(line.rstrip() for line in console.file.getvalue().splitlines())


def _cell(value: object, decimals: int) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.{decimals}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _cost_table(result: RunResult) -> str:
    window_s = result.window.length_s
    total = result.costs.total_usd
    by_category = result.costs.by_category().rename(
        {"cost_usd": "window_usd", "monthly_usd": "monthly_usd_projected"}
    )
    header = (
        f"cost: {total:,.2f} USD for the {window_s:g} s window; "
        f"{total * MONTH_S / window_s:,.0f} USD a month (30 days, projected)"
    )
    table = _render(by_category, {"window_usd": 2, "monthly_usd_projected": 0})
    return f"{header}\n{table}"


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
