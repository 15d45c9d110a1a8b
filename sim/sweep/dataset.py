"""Where a sweep's results live on disk, and how they are written and read.

Layout of an output folder::

    OUT/sweep.json                                   what ran (the manifest)
    OUT/results/point=0007/replication-0002.parquet  one run's summary rows
    OUT/failures.parquet                             runs that failed, and why
    OUT/ledgers/point=0007/replication-0002/         ledgers, with --keep-ledgers
    OUT/points.parquet                               written by `summarize`

``OUT/results`` is a hive-partitioned Parquet dataset: the point number is in
the folder name, not in the files, so ``pl.scan_parquet(OUT/results/**/*.parquet,
hive_partitioning=True)`` (or any hive-aware reader) gives it back as a
column. Every file is written under a temporary name in its folder, then
renamed, so a file that exists is complete: an interrupted sweep leaves at
worst a ``.tmp`` file, which readers skip and the next write replaces.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from sim.api import write_parquet_atomic, write_text_atomic
from sim.errors import PlacesimError
from sim.sweep.spec import Sweep

__all__ = [
    "FAILURES_FILE",
    "MANIFEST_FILE",
    "PARAMETER_PREFIX",
    "POINTS_FILE",
    "Layout",
    "parameter_frame",
    "read_failures",
    "read_manifest",
    "read_results",
]

MANIFEST_FILE = "sweep.json"
RESULTS_FOLDER = "results"
FAILURES_FILE = "failures.parquet"
POINTS_FILE = "points.parquet"
LEDGERS_FOLDER = "ledgers"
PARAMETER_PREFIX = "param:"
"""Parameter columns are named ``param:<path as written in the sweep file>``."""
_FORMAT = 1
_RESULT_NAME = re.compile(r"replication-(\d+)\.parquet")
_POINT_NAME = re.compile(r"point=(\d+)")


@dataclass(frozen=True)
class Layout:
    """The paths of one sweep's output folder.

    Examples
    --------
    >>> Layout(Path("out"), 12).result_file(3, 1).as_posix()
    'out/results/point=0003/replication-0001.parquet'
    """

    out_dir: Path
    point_count: int

    @property
    def width(self) -> int:
        """Digits of a point number in folder names: at least 4."""
        return max(4, len(str(self.point_count - 1)))

    @property
    def results(self) -> Path:
        """The hive-partitioned results dataset."""
        return self.out_dir / RESULTS_FOLDER

    @property
    def failures(self) -> Path:
        """The failed runs."""
        return self.out_dir / FAILURES_FILE

    @property
    def manifest(self) -> Path:
        """What the folder holds results of."""
        return self.out_dir / MANIFEST_FILE

    def point_dir(self, point: int) -> Path:
        """The partition of one point."""
        return self.results / f"point={point:0{self.width}d}"

    def result_file(self, point: int, replication: int) -> Path:
        """The file of one run's summary rows."""
        return self.point_dir(point) / f"replication-{replication:04d}.parquet"

    def ledger_dir(self, point: int, replication: int) -> Path:
        """Where a run keeps its ledger with ``--keep-ledgers``."""
        return (
            self.out_dir
            / LEDGERS_FOLDER
            / f"point={point:0{self.width}d}"
            / f"replication-{replication:04d}"
        )

    def done(self) -> set[tuple[int, int]]:
        """The (point, replication) pairs whose results are written."""
        if not self.results.is_dir():
            return set()
        found = set()
        for folder in os.scandir(self.results):
            point = _POINT_NAME.fullmatch(folder.name)
            if point is None or not folder.is_dir():
                continue
            for entry in os.scandir(folder.path):
                replication = _RESULT_NAME.fullmatch(entry.name)
                if replication is not None:
                    found.add((int(point.group(1)), int(replication.group(1))))
        return found


# --- the manifest ----------------------------------------------------------------


def manifest_of(sweep: Sweep) -> dict[str, Any]:
    """What a sweep's output folder records about the sweep that wrote it."""
    return {
        "format": _FORMAT,
        "name": sweep.name,
        "sweep_file": str(sweep.file.resolve()),
        "scenario": str(sweep.base.scenario_path),
        "fingerprint": fingerprint(sweep),
        "replications": sweep.replications,
        "parameters": [p.name for p in sweep.parameters],
        "points": [list(point.values) for point in sweep.points],
    }


def fingerprint(sweep: Sweep) -> str:
    """A digest of everything that decides a run's result but the replication.

    The base scenario and topology, the fixed values and every point's values
    are in it; the number of replications is not, so a sweep can be resumed
    with more of them.
    """
    content = {
        "scenario": sweep.base.scenario,
        "topology": sweep.base.topology,
        "fixed": [(p.name, value) for p, value in sweep.fixed],
        "parameters": [p.name for p in sweep.parameters],
        "points": [list(point.values) for point in sweep.points],
    }
    text = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def read_manifest(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read the manifest of a sweep's output folder.

    Raises
    ------
    sim.errors.PlacesimError
        When the folder holds no sweep.

    Examples
    --------
    >>> read_manifest("out/three_tier_sweep")["replications"]  # doctest: +SKIP
    3
    """
    path = Path(out_dir) / MANIFEST_FILE
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        msg = f"{out_dir} holds no sweep results (no {MANIFEST_FILE})"
        raise PlacesimError(msg) from None
    return manifest


def prepare(out_dir: Path, sweep: Sweep, *, resume: bool) -> Layout:
    """Check that `out_dir` may receive this sweep's results, and record it there.

    Raises
    ------
    sim.errors.PlacesimError
        When the folder holds another sweep's results, or this sweep's results
        without `resume`.
    """
    layout = Layout(out_dir, len(sweep.points))
    manifest = manifest_of(sweep)
    if layout.manifest.is_file():
        previous = read_manifest(out_dir)
        changed = previous.get("fingerprint") != manifest["fingerprint"]
        if changed and layout.done():
            msg = (
                f"{out_dir} holds the results of another sweep (the sweep file or "
                "its base scenario changed since); choose another --out"
            )
            raise PlacesimError(msg)
        if not changed and layout.done() and not resume:
            msg = (
                f"{out_dir} already holds results of this sweep; add --resume to "
                "run the rest, or choose another --out"
            )
            raise PlacesimError(msg)
    elif layout.results.exists():
        msg = f"{out_dir} holds a results folder but no {MANIFEST_FILE}"
        raise PlacesimError(msg)

    layout.results.mkdir(parents=True, exist_ok=True)
    write_text_atomic(json.dumps(manifest, indent=1, default=str), layout.manifest)
    return layout


# --- rows --------------------------------------------------------------------------


def parameter_frame(
    names: Sequence[str], points: Sequence[Sequence[Any]]
) -> pl.DataFrame:
    """One row per point: its number and one column per parameter.

    Numbers stay numbers (integers become floats when a column mixes both);
    a column holding anything else is written as text, mappings and lists
    as JSON.

    Examples
    --------
    >>> parameter_frame(["servers"], [[4], [8]]).columns
    ['point', 'param:servers']
    """
    columns = [pl.Series("point", range(len(points)), dtype=pl.Int64)]
    for i, name in enumerate(names):
        columns.append(_column(PARAMETER_PREFIX + name, [row[i] for row in points]))
    return pl.DataFrame(columns)


def _column(name: str, values: list[Any]) -> pl.Series:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pl.Series(name, values, dtype=pl.Boolean)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pl.Series(name, values, dtype=pl.Int64)
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pl.Series(name, [None if v is None else float(v) for v in values])
    return pl.Series(name, [_text(v) for v in values], dtype=pl.String)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def run_rows(
    summary: pl.DataFrame, replication: int, seed: int | None, parameters: pl.DataFrame
) -> pl.DataFrame:
    """One run's summary rows, each with the run's replication, seed and values.

    `parameters` is the point's row of :func:`parameter_frame`.
    """
    head = pl.DataFrame(
        {"replication": [replication], "seed": [seed]},
        schema={"replication": pl.Int64, "seed": pl.Int64},
    )
    head = pl.concat([head, parameters.drop("point")], how="horizontal")
    return head.join(summary, how="cross")


def write_run(layout: Layout, point: int, replication: int, rows: pl.DataFrame) -> None:
    """Write one run's rows into its partition, atomically."""
    folder = layout.point_dir(point)
    folder.mkdir(parents=True, exist_ok=True)
    write_parquet_atomic(rows, layout.result_file(point, replication))


def write_failures(layout: Layout, failures: Iterable[pl.DataFrame]) -> None:
    """Replace the failures file with these rows, or remove it if there are none."""
    frames = list(failures)
    if not frames:
        layout.failures.unlink(missing_ok=True)
        return
    write_parquet_atomic(pl.concat(frames, how="diagonal_relaxed"), layout.failures)


# --- reading ---------------------------------------------------------------------


def read_results(out_dir: str | os.PathLike[str]) -> pl.DataFrame:
    """Every summary row a sweep wrote, by point and replication.

    Parameters
    ----------
    out_dir
        The sweep's output folder.

    Returns
    -------
    polars.DataFrame
        ``point``, ``replication``, ``seed``, one ``param:<path>`` column per
        parameter, then the summary columns (:data:`sim.summary.SUMMARY_COLUMNS`).
        Empty when no run has finished yet.

    Examples
    --------
    >>> rows = read_results("out/three_tier_sweep")  # doctest: +SKIP
    >>> rows.filter(scope="overall").group_by("point").len()  # doctest: +SKIP
    """
    pattern = Path(out_dir) / RESULTS_FOLDER / "**" / "*.parquet"
    if not Layout(Path(out_dir), 1).done():
        return pl.DataFrame(schema={"point": pl.Int64, "replication": pl.Int64})
    frame = pl.read_parquet(
        pattern, hive_partitioning=True, hive_schema={"point": pl.Int64}
    )
    frame = frame.select("point", pl.exclude("point"))
    return frame.sort("point", "replication", maintain_order=True)


def read_failures(out_dir: str | os.PathLike[str]) -> pl.DataFrame:
    """The failed runs of a sweep: point, replication, seed, kind, error, values.

    Examples
    --------
    >>> read_failures("out/three_tier_sweep").height  # doctest: +SKIP
    0
    """
    path = Path(out_dir) / FAILURES_FILE
    if not path.is_file():
        return pl.DataFrame(
            schema={"point": pl.Int64, "replication": pl.Int64, "error": pl.String}
        )
    return pl.read_parquet(path).sort("point", "replication")
