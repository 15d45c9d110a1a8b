"""The run function that the CLI, notebooks and sweep workers all call."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from sim.cost import CostReport, cost_report
from sim.engine import Engine, EngineStats
from sim.errors import PlacesimError
from sim.ledger import LedgerWriter
from sim.schema import LoadedScenario, load_scenario
from sim.summary import Window, summarize

__all__ = ["RunResult", "run"]

REQUESTS_FILE = "requests.parquet"
SUMMARY_FILE = "summary.parquet"
COSTS_FILE = "costs.parquet"
SHOWBACK_FILE = "showback.parquet"
"""Cost per tag key and value, the classes' exact shares (see CostReport.by_tag)."""


@dataclass(frozen=True)
class RunResult:
    """What a run produced.

    Attributes
    ----------
    loaded
        The scenario as validated.
    summary
        Per overall, class and pool figures (see :data:`sim.summary.SUMMARY_COLUMNS`).
    out_dir
        Folder holding ``requests.parquet`` and ``summary.parquet``.
    stats
        Counts from the engine: requests, ledger rows, events, end times.
    window
        The measurement window the summary covers.
    costs
        Cost lines of the window and their allocation to classes.
    """

    loaded: LoadedScenario
    summary: pl.DataFrame
    out_dir: Path
    stats: EngineStats
    window: Window
    costs: CostReport

    @property
    def requests_path(self) -> Path:
        """Path of the per-request ledger."""
        return self.out_dir / REQUESTS_FILE

    def requests(self) -> pl.LazyFrame:
        """The ledger, lazily, for further analysis with polars."""
        return pl.scan_parquet(self.requests_path)


def run(
    scenario: str | os.PathLike[str] | LoadedScenario,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[float], None] | None = None,
) -> RunResult:
    """Simulate a scenario, write its ledger and summary, and return both.

    Parameters
    ----------
    scenario
        A scenario file, or a scenario already loaded with
        :func:`sim.schema.load_scenario`.
    out_dir
        Folder for ``requests.parquet`` and ``summary.parquet``; created if
        missing. Default: a new temporary folder.
    progress
        Called now and then with the share of the run done, from 0 to 1.

    Returns
    -------
    RunResult
        The summary frame, the output folder and the engine's counts.

    Raises
    ------
    sim.errors.InputError
        When the scenario or its topology is invalid; nothing is written.

    Examples
    --------
    >>> result = run("scenarios/three_tier.yaml", out_dir="out/t")  # doctest: +SKIP
    >>> result.summary.filter(scope="overall")["latency_p95_ms"][0]  # doctest: +SKIP
    """
    loaded = (
        scenario if isinstance(scenario, LoadedScenario) else load_scenario(scenario)
    )
    folder = (
        Path(out_dir)
        if out_dir is not None
        else Path(tempfile.mkdtemp(prefix="placesim-"))
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        msg = f"cannot create the output folder {folder}: {err.strerror.lower()}"
        raise PlacesimError(msg) from err

    stats = _simulate(loaded, folder / REQUESTS_FILE, progress)
    window = Window(loaded.scenario.warmup_s, stats.arrivals_end_s)
    costs = cost_report(
        folder / REQUESTS_FILE,
        loaded,
        window,
        provisioned=stats.provisioned,
        previous_pools=stats.previous_pools,
    )
    summary = summarize(folder / REQUESTS_FILE, loaded, window, costs)
    write_parquet_atomic(costs.lines, folder / COSTS_FILE)
    write_parquet_atomic(costs.by_tag(loaded), folder / SHOWBACK_FILE)
    write_parquet_atomic(summary, folder / SUMMARY_FILE)
    return RunResult(loaded, summary, folder, stats, window, costs)


def _simulate(
    loaded: LoadedScenario, ledger_path: Path, progress: Callable[[float], None] | None
) -> EngineStats:
    ledger = LedgerWriter(
        ledger_path,
        [c.name for c in loaded.scenario.classes],
        [n.name for n in loaded.topology.nodes],
        [p.name for n in loaded.topology.nodes for p in n.pools],
        warmup_s=loaded.scenario.warmup_s,
    )
    try:
        stats = Engine(loaded, ledger, progress=progress).run()
    except BaseException:
        ledger.abort()
        raise
    ledger.close()
    return stats


def write_parquet_atomic(frame: pl.DataFrame, path: Path) -> None:
    """Write a frame under a temporary name in the same folder, then rename it."""
    handle, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    os.close(handle)
    try:
        frame.write_parquet(tmp_name)
        _make_readable(tmp_name)
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def write_text_atomic(text: str, path: Path) -> None:
    """Write text under a temporary name in the same folder, then rename it."""
    handle, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    _make_readable(tmp_name)
    shutil.move(tmp_name, path)


def _make_readable(name: str) -> None:
    """Give a temporary file the mode a newly created file would have.

    ``mkstemp`` creates files readable by their owner alone; outputs should
    follow the user's umask like any other file they write.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)
