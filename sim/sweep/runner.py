"""Running a sweep: every point and replication, on Ray or in this process.

Ray is imported only when a sweep runs on it. Each Ray task runs a batch of
units (a point and a replication each) with :func:`sim.sweep.point.run_units`;
at most `max_in_flight` tasks are submitted at once, and results are written
by this process as they arrive (:mod:`sim.sweep.dataset`).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from sim.errors import PlacesimError
from sim.sweep.dataset import (
    Layout,
    parameter_frame,
    prepare,
    read_failures,
    run_rows,
    write_failures,
    write_run,
)
from sim.sweep.point import (
    Outcome,
    Unit,
    describe_error,
    load_sweep,
    locate_problems,
    run_units,
)
from sim.sweep.spec import Base, Sweep

__all__ = ["TASK_RETRIES", "SweepResult", "run_sweep"]

logger = logging.getLogger(__name__)

TASK_RETRIES = 3
"""Times Ray runs a task again when its worker dies (not when a run raises)."""
_CONNECT_TIMEOUT_S = 5.0

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SweepResult:
    """What one call of :func:`run_sweep` did.

    Attributes
    ----------
    out_dir
        The output folder.
    runs
        Points times replications of the whole sweep.
    skipped
        Runs already written before this call (``resume``).
    completed
        Runs written by this call.
    failures
        ``(point, replication, error)`` of the runs that failed in this call.
    elapsed_s
        Wall-clock time of the runs, Ray start-up included.
    executor
        What ran them, in words.
    run_s
        Time spent inside the runs themselves (building, validating,
        simulating and summarising each point), summed over the workers.
    """

    out_dir: Path
    runs: int
    skipped: int
    completed: int
    failures: tuple[tuple[int, int, str], ...]
    elapsed_s: float
    executor: str
    run_s: float = 0.0

    @property
    def remaining(self) -> int:
        """Runs with no results yet: failed, or left out by `limit`."""
        return self.runs - self.skipped - self.completed


def run_sweep(
    sweep: Sweep | str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    max_in_flight: int | None = None,
    batch_size: int = 1,
    resume: bool = False,
    limit: int | None = None,
    keep_ledgers: bool = False,
    serial: bool = False,
    progress: Progress | None = None,
) -> SweepResult:
    """Run every point and replication of a sweep into one Parquet dataset.

    Parameters
    ----------
    sweep
        A sweep file, or a sweep loaded with :func:`sim.sweep.load_sweep`.
    out_dir
        The output folder. Default: ``out/<sweep name>``.
    address
        The Ray cluster to join: ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``.
        Default: ``RAY_ADDRESS`` if set, else the Ray runtime this process has
        already started, else a new Ray on this machine, shut down at the end.
    num_cpus
        CPUs of a new local Ray. Default: all of this machine's.
    max_in_flight
        Ray tasks submitted at once. Default: twice the cluster's CPUs.
    batch_size
        Runs per Ray task; more than 1 for points of a few milliseconds.
    resume
        Keep the runs already written in `out_dir` and run the others only.
    limit
        Run at most this many runs now; the rest later with `resume`.
    keep_ledgers
        Keep each run's ledger under ``out_dir/ledgers`` (the folder must be
        reachable from every node of the cluster).
    serial
        Run in this process, one run after another, without Ray.
    progress
        Called with (runs done in this call, runs to do in this call).

    Returns
    -------
    SweepResult
        Counts, failures and timing.

    Raises
    ------
    sim.errors.InputError
        When the sweep file is invalid; nothing runs.
    sim.errors.PlacesimError
        When `out_dir` holds other results, or Ray cannot be reached.

    Examples
    --------
    >>> result = run_sweep("scenarios/sweep_three_tier.yaml", "out/s")  # doctest: +SKIP
    >>> result.completed, result.failures  # doctest: +SKIP
    (36, ())
    """
    if not isinstance(sweep, Sweep):
        sweep = load_sweep(sweep)
    out = Path(out_dir) if out_dir is not None else Path("out") / sweep.name
    recorder = _Recorder(sweep, prepare(out, sweep, resume=resume), progress)
    units = recorder.pending(limit, keep_ledgers)
    batches = [units[i : i + batch_size] for i in range(0, len(units), batch_size)]
    logger.info("%d runs to do, %d already written", len(units), recorder.skipped)

    started = time.perf_counter()
    if not batches:
        executor = "nothing (every run was already written)"
    elif serial:
        executor = "this process"
        for batch in batches:
            recorder.record_all(run_units(sweep.base, batch))
    else:
        executor = _run_on_ray(
            sweep.base, batches, recorder, address, num_cpus, max_in_flight
        )
    return SweepResult(
        out_dir=out,
        runs=len(sweep.points) * sweep.replications,
        skipped=recorder.skipped,
        completed=recorder.completed,
        failures=tuple(recorder.new_failures),
        elapsed_s=time.perf_counter() - started,
        executor=executor,
        run_s=recorder.run_s,
    )


# --- recording results -----------------------------------------------------------


class _Recorder:
    """Writes each outcome as it arrives and keeps the failures file current."""

    def __init__(self, sweep: Sweep, layout: Layout, progress: Progress | None) -> None:
        self.sweep = sweep
        self.layout = layout
        self.progress = progress
        self.parameters = parameter_frame(
            [p.name for p in sweep.parameters], [pt.values for pt in sweep.points]
        )
        self.done = layout.done()
        self.skipped = len(self.done)
        self.completed = 0
        self.total = 0
        self.run_s = 0.0
        self.new_failures: list[tuple[int, int, str]] = []
        self.failures: dict[tuple[int, int], pl.DataFrame] = {}

    def pending(self, limit: int | None, keep_ledgers: bool) -> list[Unit]:
        """The runs to do now, in point then replication order."""
        units = [
            Unit(
                point.index,
                replication,
                self.sweep.run_seed(point, replication),
                self.sweep.assignments(point),
                self._ledger(point.index, replication, keep_ledgers),
            )
            for point in self.sweep.points
            for replication in range(self.sweep.replications)
            if (point.index, replication) not in self.done
        ]
        units = units[:limit] if limit is not None else units
        self._keep_other_failures({(u.point, u.replication) for u in units})
        self.total = len(units)
        return units

    def _ledger(self, point: int, replication: int, keep: bool) -> str | None:
        return str(self.layout.ledger_dir(point, replication)) if keep else None

    def _keep_other_failures(self, scheduled: set[tuple[int, int]]) -> None:
        """Failures of earlier calls stay recorded unless their run is redone."""
        earlier = read_failures(self.layout.out_dir)
        for row in earlier.iter_rows(named=True):
            key = (row["point"], row["replication"])
            if key not in scheduled and key not in self.done:
                self.failures[key] = pl.DataFrame([row], schema=earlier.schema)
        write_failures(self.layout, self.failures.values())

    def record_all(self, outcomes: Sequence[Outcome]) -> None:
        """Record every outcome of a task."""
        for outcome in outcomes:
            self.record(outcome)

    def record(self, outcome: Outcome) -> None:
        """Write a run's rows, or record its failure."""
        key = (outcome.point, outcome.replication)
        self.run_s += outcome.elapsed_s
        seed = self.sweep.run_seed(
            self.sweep.points[outcome.point], outcome.replication
        )
        parameters = self.parameters.slice(outcome.point, 1)
        if outcome.summary is not None:
            rows = run_rows(outcome.summary, outcome.replication, seed, parameters)
            write_run(self.layout, outcome.point, outcome.replication, rows)
            self.completed += 1
        else:
            error = self._error(outcome)
            self.failures[key] = _failure_row(outcome, seed, error, parameters)
            self.new_failures.append((*key, error))
            write_failures(self.layout, self.failures.values())
            logger.info("point %d replication %d failed: %s", *key, error)
        if self.progress is not None:
            self.progress(self.completed + len(self.new_failures), self.total)

    def _error(self, outcome: Outcome) -> str:
        if outcome.kind != "invalid":
            return outcome.error or "unknown error"
        point = self.sweep.points[outcome.point]
        located = locate_problems(self.sweep, point, outcome.problems)
        return "\n".join(str(problem) for problem in located)


def _failure_row(
    outcome: Outcome, seed: int | None, error: str, parameters: pl.DataFrame
) -> pl.DataFrame:
    head = pl.DataFrame(
        {
            "point": [outcome.point],
            "replication": [outcome.replication],
            "seed": [seed],
            "kind": [outcome.kind],
            "error": [error],
        },
        schema={
            "point": pl.Int64,
            "replication": pl.Int64,
            "seed": pl.Int64,
            "kind": pl.String,
            "error": pl.String,
        },
    )
    return pl.concat([head, parameters.drop("point")], how="horizontal")


# --- Ray ---------------------------------------------------------------------------


@contextmanager
def _ray_runtime(
    address: str | None, num_cpus: int | None
) -> Iterator[tuple[str, int]]:
    """Join or start Ray; shut down at the end only what was started here."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is not None:
        _check_reachable(address)
    if ray.is_initialized():
        if address is not None:
            msg = (
                "this process already runs Ray; call without an address to use "
                "it, or call ray.shutdown() first"
            )
            raise PlacesimError(msg)
        yield "this process's Ray runtime", _cpus(ray)
        return

    description = _start(ray, address, num_cpus)
    try:
        cpus = _cpus(ray)
        logger.info("ray: %s with %d CPUs", description, cpus)
        yield f"{description} ({cpus} CPUs)", cpus
    finally:
        ray.shutdown()


def _start(ray: Any, address: str | None, num_cpus: int | None) -> str:
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address is None:
        with _ray_notices_hidden():
            ray.init(num_cpus=num_cpus, include_dashboard=False, **quiet)
        return "an embedded Ray"

    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ray.exceptions.RayError) as err:
        msg = (
            f"cannot join the Ray cluster at {address}: {err}. If the cluster "
            "uses token authentication, set RAY_AUTH_MODE=token and the token "
            "(RAY_AUTH_TOKEN, or the file ~/.ray/auth_token)"
        )
        raise PlacesimError(msg) from err
    return f"the Ray cluster at {address}"


@contextmanager
def _ray_notices_hidden() -> Iterator[None]:
    """Hide Ray's start-up notices (token authentication on, and the like).

    A Ray that lives only as long as one sweep needs none of the advice Ray
    gives about a cluster; its errors still show.
    """
    ray_logger = logging.getLogger("ray")
    level = ray_logger.level
    ray_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        ray_logger.setLevel(level)


def _check_reachable(address: str) -> None:
    """Fail fast when nothing listens at HOST:PORT; Ray itself retries for long."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        with socket.create_connection((host, int(port)), timeout=_CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        reason = (err.strerror or str(err)).lower()
        msg = (
            f"no Ray cluster answers at {address} ({reason}); start one with "
            f"`ray start --head --port {port}` or check --address"
        )
        raise PlacesimError(msg) from err


def _cpus(ray: Any) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _run_on_ray(
    base: Base,
    batches: Sequence[list[Unit]],
    recorder: _Recorder,
    address: str | None,
    num_cpus: int | None,
    max_in_flight: int | None,
) -> str:
    """Run the batches on Ray; return what ran them, in words."""
    with _ray_runtime(address, num_cpus) as (executor, cpus):
        _submit_and_record(base, batches, recorder, max_in_flight or 2 * cpus)
    return executor


def _submit_and_record(
    base: Base, batches: Sequence[list[Unit]], recorder: _Recorder, in_flight: int
) -> None:
    """Keep at most `in_flight` tasks running; record each as it finishes."""
    import ray

    task = ray.remote(run_units).options(
        name="placesim-sweep",
        num_cpus=1,
        max_retries=TASK_RETRIES,
        retry_exceptions=False,
        # One CPU per task: polars, like the OpenMP libraries Ray already
        # limits, should not start a thread per core in every worker.
        runtime_env={"env_vars": {"POLARS_MAX_THREADS": "1"}},
    )
    base_ref = ray.put(base)
    waiting = iter(batches)
    running: dict[Any, list[Unit]] = {}
    # On an interrupt nothing is cancelled: Ray ends a driver's tasks when the
    # driver disconnects, and cancelling tasks that are finishing can crash it.
    while True:
        while len(running) < in_flight and (batch := next(waiting, None)):
            running[task.remote(base_ref, batch)] = batch
        if not running:
            break
        ready, _ = ray.wait(list(running), num_returns=1)
        for ref in ready:
            recorder.record_all(_collect(ray, ref, running.pop(ref)))


def _collect(ray: Any, ref: Any, batch: list[Unit]) -> list[Outcome]:
    """A task's outcomes; a task that failed as a whole fails each of its runs."""
    try:
        outcomes: list[Outcome] = ray.get(ref)
    except ray.exceptions.RayError as err:
        kind = "error" if isinstance(err, ray.exceptions.RayTaskError) else "lost"
        cause = getattr(err, "cause", None)
        error = (
            describe_error(cause)
            if isinstance(cause, BaseException)
            else f"{type(err).__name__}: {str(err).strip().splitlines()[0]}"
        )
        return [Outcome(u.point, u.replication, kind=kind, error=error) for u in batch]
    return outcomes
