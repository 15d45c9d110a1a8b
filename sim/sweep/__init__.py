"""Sweeps: many configurations of one scenario, times replications, on Ray.

A sweep file names a base scenario and the values to try. Every point of the
sweep (one combination of values) runs `replications` times, each run a
normal simulation (:func:`sim.api.run`) in a Ray worker, and every run's
summary rows land in one Parquet dataset.

The sweep file
--------------
::

    name: three_tier_rates            # default: the file's stem
    scenario: three_tier.yaml         # the base scenario, relative to this file
    replications: 3                   # runs per point (default 1)
    seed: 11                          # seeds the random block only (default 0)
    set:                              # values every point gets
      duration_s: 120
    grid:                             # every combination (the last key fastest)
      classes[chat].arrival.rate_per_s: [100, 150, 200]
      topology.nodes[cloud].pools[cloud-gpu].servers: [16, 32]
    zip:                              # lists of equal length, taken together
      classes[vision].placement: [{pool: region-east-gpu}, {pool: cloud-gpu}]
      classes[vision].slo_ms: [250, 400]
    random:                           # `samples` rows drawn with `seed`
      samples: 4
      parameters:
        classes[summarise].arrival.rate_per_s: {uniform: [30, 90]}
        warmup_s: {choice: [10, 20]}

The points are the product of the blocks present: every grid combination,
times every zip row, times every random sample, numbered from 0 in that
order (grid outermost). Random draws are ``uniform: [low, high]``,
``loguniform: [low, high]``, ``integers: [low, high]`` (both included) and
``choice: [a, b, ...]``; they come from numpy's PCG64 seeded with `seed`.

Parameter paths
---------------
A path names one field of the base scenario, as it is written in YAML:
dotted keys, and ``[selector]`` to pick an item of a list by its ``name``
(``classes[chat]``) or by its index (``classes[0]``; a selector of digits is
always an index). ``[key]`` also picks a mapping key, for keys with dots
(``placement.split[cloud-gpu]`` is ``placement.split.cloud-gpu``). A path that
starts with ``topology.`` leads into the scenario's topology file:
``topology.nodes[cloud].pools[cloud-gpu].servers``; ``topology`` alone swaps
the topology file (relative to the base scenario), and cannot be combined
with ``topology.*`` paths. Every step but the last must exist in the base
files; the last may be a key the base leaves out (``requests``), which the
scenario's validation then checks. A value may be a whole mapping
(``placement: {split: {...}}``). File names in the base scenario (topology,
catalogue, traces) keep resolving from the base scenario's folder.

Validation
----------
The sweep file, its base scenario and every path are checked before anything
runs, and so is point 0 in full: a mistake every point shares is reported at
once, in the usual shape (``file:line:col: field: expected ...; got ...``).
Every other point is validated by the normal scenario validation when it
runs, in its worker; a point whose values make the scenario invalid (a
combination only, since point 0 passed) is recorded as a failed run whose
error is located at the offending value in the sweep file, and the sweep
goes on. Validating each point where it runs keeps that cost in parallel.

Seeds
-----
Run ``r`` of a point uses the scenario seed ``s + r``, where ``s`` is the
base scenario's `seed` (or the point's, when the sweep sets ``seed``). Every
point therefore sees the same random streams in replication ``r`` (common
random numbers), so points differ by their values rather than by luck; and
replication 0 of a point is exactly ``placesim run`` of that configuration.
Seeds and point order depend on the sweep file only, so results are the same
whatever the number of workers or machines.

Results
-------
See :mod:`sim.sweep.dataset` for the layout: one Parquet file per run under
``OUT/results/point=NNNN/`` (hive-partitioned), each row a summary row
(:data:`sim.summary.SUMMARY_COLUMNS`) with ``point``, ``replication``,
``seed`` and one ``param:<path>`` column per varying parameter. Failed runs
go to ``OUT/failures.parquet`` with their error. A run's file exists only
once it is complete, so ``resume`` runs exactly the runs without one; raising
`replications` and resuming adds runs to a finished sweep.

Known limits: on a cluster of several machines, every node needs placesim
installed and the base scenario's trace and catalogue files at the same
absolute paths (a shared file system), and ``--keep-ledgers`` writes ledgers
from the workers into the output folder, so it too must be shared.
"""

from sim.sweep.dataset import read_failures as read_failures
from sim.sweep.dataset import read_results as read_results
from sim.sweep.point import load_sweep as load_sweep
from sim.sweep.runner import SweepResult as SweepResult
from sim.sweep.runner import run_sweep as run_sweep
from sim.sweep.spec import Sweep as Sweep
from sim.sweep.spec import is_sweep_file as is_sweep_file
from sim.sweep.stats import PointsSummary as PointsSummary
from sim.sweep.stats import summarize_sweep as summarize_sweep

__all__ = [
    "PointsSummary",
    "Sweep",
    "SweepResult",
    "is_sweep_file",
    "load_sweep",
    "read_failures",
    "read_results",
    "run_sweep",
    "summarize_sweep",
]
