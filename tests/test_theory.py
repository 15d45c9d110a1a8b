"""The simulator against queueing theory, within confidence-interval tolerances.

Every stochastic check runs one long, seeded simulation, drops the warm-up
(requests arriving before ``warmup_s``, flagged in the ledger) and compares a
measured figure with the exact value from :mod:`queueing_theory`. The
tolerance is the half-width of a 99 % confidence interval for the measured
figure, built one of two ways, as each test says:

* batch means (:func:`queueing_theory.batch_means`): the requests after the
  warm-up, in arrival order, are cut into 20 contiguous batches and the
  Student-t interval of the 20 batch averages is used. Waits of successive
  requests are strongly correlated, so an interval that assumed independent
  requests would be far too narrow; batches much longer than the queue's
  relaxation time ``tau`` make the batch averages nearly independent. Each
  test states its batch length in units of ``tau``
  (:func:`queueing_theory.mm1_relaxation_time`, or the M/M/1 value at the
  same utilisation with rate ``c mu`` for several servers);
* a binomial interval (:func:`queueing_theory.proportion_ci`) for shares
  drawn independently per request, such as the pool a split chooses.

A correct simulator passes each check with probability about 0.99; with the
fixed seeds below the outcome is deterministic. The units are chosen so that a
service time of 10 ms gives ``mu = 100 /s``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from queueing_theory import (
    batch_means,
    erlang_b,
    erlang_c,
    md1_mean_wait,
    mg1_mean_wait,
    mm1,
    mm1_relaxation_time,
    mmc,
    mmck,
    proportion_ci,
    tandem_mm1,
)

from sim.api import RunResult, run

Writer = Callable[[Path, dict[str, Any], dict[str, Any]], Path]
"""The `write_scenario` fixture of conftest.py."""

pytestmark = pytest.mark.theory

CONFIDENCE = 0.99
N_BATCHES = 20
PERCENTILE_ERROR = 1e-4
"""Relative error of a summary percentile: the log-bucket histogram's width."""


# --- building scenarios ---------------------------------------------------------------


def _pool(name: str, service: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "service_time_ms": service, **extra}


def _exponential(mean_ms: float) -> dict[str, Any]:
    return {"distribution": "exponential", "mean": mean_ms}


def _deterministic(value_ms: float) -> dict[str, Any]:
    return {"distribution": "deterministic", "value": value_ms}


def _one_site(*pools: dict[str, Any]) -> dict[str, Any]:
    """A device linked with no delay to one site holding `pools`."""
    return {
        "name": "one_site",
        "nodes": [
            {"name": "device", "kind": "device"},
            {"name": "site", "kind": "edge_site", "pools": list(pools)},
        ],
        "links": [{"a": "device", "b": "site", "latency_ms": 0, "bandwidth_mbps": 1}],
    }


def _scenario(
    placement: dict[str, Any],
    *,
    rate_per_s: float,
    requests: int,
    warmup_s: float,
    seed: int,
) -> dict[str, Any]:
    """One Poisson class from `device`, with zero-byte messages."""
    return {
        "name": "theory",
        "seed": seed,
        "requests": requests,
        "warmup_s": warmup_s,
        "classes": [
            {
                "name": "jobs",
                "origin": "device",
                "arrival": {"process": "poisson", "rate_per_s": rate_per_s},
                "placement": placement,
            }
        ],
    }


def _simulate(
    write_scenario: Writer,
    folder: Path,
    topology: dict[str, Any],
    scenario: dict[str, Any],
) -> RunResult:
    path = write_scenario(folder, topology, scenario)
    return run(path, out_dir=folder / "out")


def _measured(result: RunResult, *, final: bool = True) -> pl.DataFrame:
    """Rows of requests that arrived after the warm-up, in arrival order."""
    rows = result.requests().filter(~pl.col("warmup"))
    if final:
        rows = rows.filter(pl.col("final"))
    return rows.sort("request_id", "stage").collect()


def _check(label: str, measured: float, half_width: float, expected: float) -> None:
    """Print the comparison, then assert `expected` lies within the interval."""
    print(
        f"{label}: measured {measured:.6g} +- {half_width:.3g} "
        f"(99% CI), theory {expected:.6g}"
    )
    assert abs(measured - expected) <= half_width, label


def _batch_check(label: str, samples: Any, expected: float) -> None:
    mean, half_width = batch_means(samples, N_BATCHES, CONFIDENCE)
    _check(label, mean, half_width, expected)


# --- 1. M/M/1 -------------------------------------------------------------------------

MM1_RATE, MM1_MU = 70.0, 100.0  # rho = 0.7
MM1_REQUESTS = 200_000


@pytest.fixture(scope="module")
def mm1_run(
    write_scenario: Writer, tmp_path_factory: pytest.TempPathFactory
) -> RunResult:
    # tau = 1 / (mu (1 - sqrt(0.7))^2) = 0.37 s: the warm-up is 100 tau, and
    # each of the 20 batches spans about 2,850 s / 20 = 143 s = 380 tau.
    tau_s = mm1_relaxation_time(MM1_RATE, MM1_MU)
    topology = _one_site(_pool("gpu", _exponential(1000 / MM1_MU)))
    scenario = _scenario(
        {"pool": "gpu"},
        rate_per_s=MM1_RATE,
        requests=MM1_REQUESTS,
        warmup_s=100 * tau_s,
        seed=11,
    )
    return _simulate(write_scenario, tmp_path_factory.mktemp("mm1"), topology, scenario)


def test_mm1_mean_wait_and_sojourn(mm1_run: RunResult) -> None:
    # Batch means over the run (20 batches of ~380 tau each), at 99 %.
    rows = _measured(mm1_run)
    theory = mm1(MM1_RATE, MM1_MU)
    _batch_check("M/M/1 mean wait s", rows["queue_wait_s"], theory.mean_wait)
    _batch_check("M/M/1 mean sojourn s", rows["latency_s"], theory.mean_sojourn)


def test_mm1_probability_of_waiting_is_rho(mm1_run: RunResult) -> None:
    # The 0/1 "had to wait" indicators of successive requests are correlated,
    # so the 99 % interval is batch means over the indicator sequence (the
    # proportion interval recommended by queueing_theory.proportion_ci for
    # correlated indicators), not the Wald interval for independent trials.
    rows = _measured(mm1_run)
    waited = (rows["queue_wait_s"] > 0).cast(pl.Float64)
    _batch_check("M/M/1 P(wait > 0)", waited, MM1_RATE / MM1_MU)


def test_mm1_summary_p95_sojourn_is_the_exact_quantile(mm1_run: RunResult) -> None:
    # The summary's p95 is the sample p95 to within the histogram's 0.01 %
    # (checked against the ledger's exact order statistic). The sample p95
    # itself is random: its 99 % interval comes from batch means of the
    # per-batch sample p95s (each batch holds ~10,000 requests, so the bias of
    # a batch quantile, O(1/n), is far below the interval). The tolerance is
    # that half-width plus the 0.01 % histogram error.
    rows = _measured(mm1_run)
    latency_s = rows["latency_s"].to_numpy()
    summary_s = (
        mm1_run.summary.filter(scope="overall")["latency_p95_ms"].item() / 1000.0
    )
    exact_sample_s = float(np.quantile(latency_s, 0.95, method="inverted_cdf"))
    assert summary_s == pytest.approx(exact_sample_s, rel=PERCENTILE_ERROR)

    batches = np.array_split(
        latency_s[: latency_s.size // N_BATCHES * N_BATCHES], N_BATCHES
    )
    batch_p95 = [float(np.quantile(b, 0.95)) for b in batches]
    _, half_width = batch_means(batch_p95, N_BATCHES, CONFIDENCE)
    expected_s = mm1(MM1_RATE, MM1_MU).sojourn_quantile(0.95)
    _check(
        "M/M/1 summary p95 sojourn s",
        summary_s,
        half_width + PERCENTILE_ERROR * expected_s,
        expected_s,
    )


# --- 2. M/M/c, and 9. Little's law ----------------------------------------------------

MMC_RATE, MMC_MU, MMC_SERVERS = 320.0, 100.0, 4  # rho = 0.8
MMC_REQUESTS = 300_000
MMC_WARMUP_S = 20.0


@pytest.fixture(scope="module")
def mmc_run(
    write_scenario: Writer, tmp_path_factory: pytest.TempPathFactory
) -> RunResult:
    # tau at rho 0.8 with rate c mu = 400 /s: 1 / (400 (1 - sqrt(0.8))^2) = 0.22 s.
    # Warm-up 20 s = 90 tau; each batch spans ~940 s / 20 = 47 s = 210 tau.
    topology = _one_site(_pool("gpu", _exponential(1000 / MMC_MU), servers=MMC_SERVERS))
    scenario = _scenario(
        {"pool": "gpu"},
        rate_per_s=MMC_RATE,
        requests=MMC_REQUESTS,
        warmup_s=MMC_WARMUP_S,
        seed=12,
    )
    return _simulate(write_scenario, tmp_path_factory.mktemp("mmc"), topology, scenario)


def test_mmc_erlang_c_and_mean_wait(mmc_run: RunResult) -> None:
    # Batch means (20 batches of ~210 tau) at 99 % for both figures.
    rows = _measured(mmc_run)
    offered = MMC_RATE / MMC_MU
    waited = (rows["queue_wait_s"] > 0).cast(pl.Float64)
    _batch_check("M/M/4 P(wait > 0)", waited, erlang_c(offered, MMC_SERVERS))
    _batch_check(
        "M/M/4 mean wait s",
        rows["queue_wait_s"],
        mmc(MMC_RATE, MMC_MU, MMC_SERVERS).mean_wait,
    )


def _time_batches(result: RunResult) -> np.ndarray:
    """Edges of 20 equal intervals covering the summary's measurement window."""
    return np.linspace(result.window.warmup_s, result.window.horizon_s, N_BATCHES + 1)


def _busy_per_interval(
    start_s: np.ndarray, end_s: np.ndarray, edges: np.ndarray
) -> np.ndarray:
    """Time each [start, end) interval overlaps each window slice, summed."""
    low, high = edges[:-1, None], edges[1:, None]
    overlap = np.minimum(end_s[None, :], high) - np.maximum(start_s[None, :], low)
    return np.clip(overlap, 0.0, None).sum(axis=1)


def test_mmc_littles_law(mmc_run: RunResult) -> None:
    # L is the time average of the number in the pool, integrated exactly from
    # the ledger (each request is present from pool arrival to end of service)
    # over 20 equal slices of the window, each ~210 tau long. Against theory
    # the tolerance is the 99 % batch-means interval of the 20 slice averages.
    # Against lambda_hat * W_hat on the same sample path (Little's law holds
    # per path) the only gap is edge effects, bounded by the sojourns of the
    # requests present at either end of the window divided by its length.
    ledger = mmc_run.requests().collect()
    arrive_s = ledger["pool_arrival_s"].to_numpy()
    end_s = arrive_s + (ledger["queue_wait_s"] + ledger["service_s"]).to_numpy()
    edges = _time_batches(mmc_run)
    in_system = _busy_per_interval(arrive_s, end_s, edges) / np.diff(edges)
    theory = mmc(MMC_RATE, MMC_MU, MMC_SERVERS)
    _batch_check("M/M/4 L (time average)", in_system, theory.mean_in_system)

    start, stop = edges[0], edges[-1]
    length_s = stop - start
    inside = (ledger["arrival_s"].to_numpy() >= start) & (arrive_s <= stop)
    sojourn_s = end_s - arrive_s
    little = sojourn_s[inside].sum() / length_s
    straddle = ((arrive_s < start) & (end_s > start)) | (inside & (end_s > stop))
    bound = sojourn_s[straddle].sum() / length_s
    print(
        f"M/M/4 L integrated {in_system.mean():.6g}, lambda*W {little:.6g}, "
        f"edge bound {bound:.3g}"
    )
    assert abs(in_system.mean() - little) <= bound


def test_mmc_summary_utilisation_is_rho(mmc_run: RunResult) -> None:
    # The summary's utilisation is the busy server-time inside the window over
    # c times its length; recomputed from the ledger in 20 slices it must agree
    # to rounding, and the slices' 99 % batch-means interval must cover rho.
    ledger = mmc_run.requests().collect()
    start_s = (ledger["pool_arrival_s"] + ledger["queue_wait_s"]).to_numpy()
    end_s = start_s + ledger["service_s"].to_numpy()
    edges = _time_batches(mmc_run)
    busy = _busy_per_interval(start_s, end_s, edges) / (MMC_SERVERS * np.diff(edges))
    summary = mmc_run.summary.filter(scope="pool", name="gpu")["utilisation"].item()
    assert summary == pytest.approx(busy.mean(), rel=1e-9)
    _batch_check("M/M/4 utilisation", busy, MMC_RATE / (MMC_SERVERS * MMC_MU))


# --- 3. M/D/1 and M/G/1 (Pollaczek-Khinchine) -----------------------------------------

MG1_RATE = 60.0
MG1_MEAN_MS = 10.0  # rho = 0.6


@pytest.mark.parametrize(
    ("service", "cv", "requests", "seed"),
    [
        pytest.param(_deterministic(MG1_MEAN_MS), 0.0, 200_000, 13, id="M/D/1"),
        pytest.param(
            {"distribution": "lognormal", "mean": MG1_MEAN_MS, "cv": 2.0},
            2.0,
            400_000,
            14,
            id="M/G/1-lognormal-cv2",
        ),
    ],
)
def test_pollaczek_khinchine_mean_wait(
    write_scenario: Writer,
    tmp_path: Path,
    service: dict[str, Any],
    cv: float,
    requests: int,
    seed: int,
) -> None:
    # Batch means at 99 %. The M/M/1 relaxation time at rho 0.6 is 0.21 s; the
    # heavier lognormal service (cv 2, E[S^2] 5 times E[S]^2) slows mixing by a
    # comparable factor, and the batches span ~3,300 s / 20 = 165 s (M/D/1) and
    # ~6,700 s / 20 = 330 s (M/G/1), hundreds of times either scale. A pilot
    # run showed lag-1 autocorrelation of the batch means near zero.
    scenario = _scenario(
        {"pool": "gpu"},
        rate_per_s=MG1_RATE,
        requests=requests,
        warmup_s=50,
        seed=seed,
    )
    result = _simulate(
        write_scenario, tmp_path, _one_site(_pool("gpu", service)), scenario
    )
    rows = _measured(result)
    expected = mg1_mean_wait(MG1_RATE, MG1_MEAN_MS / 1000, cv)
    if cv == 0.0:
        assert expected == md1_mean_wait(MG1_RATE, MG1_MEAN_MS / 1000)
    _batch_check(f"M/G/1 cv={cv} mean wait s", rows["queue_wait_s"], expected)


# --- 4. Erlang B and 5. M/M/c/K -------------------------------------------------------


@pytest.fixture(scope="module")
def erlang_b_run(
    write_scenario: Writer, tmp_path_factory: pytest.TempPathFactory
) -> RunResult:
    # 5 servers, no waiting room, offered load 4 Erlang (rate 400 /s, 10 ms).
    topology = _one_site(_pool("gpu", _exponential(10.0), servers=5, queue_capacity=0))
    scenario = _scenario(
        {"pool": "gpu"}, rate_per_s=400.0, requests=200_000, warmup_s=5, seed=15
    )
    return _simulate(
        write_scenario, tmp_path_factory.mktemp("erlang_b"), topology, scenario
    )


def test_erlang_b_blocking(erlang_b_run: RunResult) -> None:
    # Blocking of successive requests is correlated (they see nearly the same
    # state), so the 99 % interval is batch means over the 0/1 dropped
    # indicator: batches of ~25 s, while the loss system forgets its state in
    # a few service times (10 ms).
    rows = _measured(erlang_b_run)
    dropped = (rows["outcome"] == "dropped").cast(pl.Float64)
    _batch_check("Erlang B blocking (A=4, c=5)", dropped, erlang_b(4.0, 5))
    served = rows.filter(pl.col("outcome") == "served")
    assert (served["queue_wait_s"] == 0).all()


MMCK = {"rate": 180.0, "mu": 100.0, "servers": 2, "queue": 3}


@pytest.fixture(scope="module")
def mmck_run(
    write_scenario: Writer, tmp_path_factory: pytest.TempPathFactory
) -> RunResult:
    # c = 2, K = 2 + 3 waiting places = 5, offered load 1.8 Erlang (rho 0.9).
    pool = _pool(
        "gpu",
        _exponential(1000 / MMCK["mu"]),
        servers=MMCK["servers"],
        queue_capacity=MMCK["queue"],
    )
    scenario = _scenario(
        {"pool": "gpu"},
        rate_per_s=MMCK["rate"],
        requests=200_000,
        warmup_s=5,
        seed=16,
    )
    return _simulate(
        write_scenario, tmp_path_factory.mktemp("mmck"), _one_site(pool), scenario
    )


def test_mmck_blocking_and_admitted_wait(mmck_run: RunResult) -> None:
    # Batch means at 99 %: batches of ~55 s while a 6-state chain with rates
    # of 100-200 /s mixes in tens of milliseconds. The mean wait is over
    # admitted requests only, as in queueing_theory.mmck.
    rows = _measured(mmck_run)
    theory = mmck(
        MMCK["rate"], MMCK["mu"], MMCK["servers"], MMCK["servers"] + MMCK["queue"]
    )
    dropped = (rows["outcome"] == "dropped").cast(pl.Float64)
    _batch_check("M/M/2/5 blocking", dropped, theory.prob_block)
    served = rows.filter(pl.col("outcome") == "served")
    _batch_check(
        "M/M/2/5 admitted mean wait s", served["queue_wait_s"], theory.mean_wait
    )


# --- 6. Tandem edge -> cloud (Jackson) ------------------------------------------------

TANDEM_RATE = 70.0
TANDEM_MU = (100.0, 125.0)  # rho 0.7 at the edge, 0.56 in the cloud
TANDEM_LATENCY_MS = {"access": 5.0, "backbone": 20.0}


@pytest.fixture(scope="module")
def tandem_run(
    write_scenario: Writer, tmp_path_factory: pytest.TempPathFactory
) -> RunResult:
    topology = {
        "name": "tandem",
        "nodes": [
            {"name": "device", "kind": "device"},
            {
                "name": "edge",
                "kind": "edge_site",
                "pools": [_pool("edge-pool", _exponential(1000 / TANDEM_MU[0]))],
            },
            {
                "name": "cloud",
                "kind": "cloud",
                "pools": [_pool("cloud-pool", _exponential(1000 / TANDEM_MU[1]))],
            },
        ],
        "links": [
            {
                "a": "device",
                "b": "edge",
                "bandwidth_mbps": 10,
                "latency_ms": TANDEM_LATENCY_MS["access"],
            },
            {
                "a": "edge",
                "b": "cloud",
                "bandwidth_mbps": 10,
                "latency_ms": TANDEM_LATENCY_MS["backbone"],
            },
        ],
    }
    scenario = _scenario(
        {"chain": ["edge-pool", "cloud-pool"]},
        rate_per_s=TANDEM_RATE,
        requests=200_000,
        warmup_s=50,
        seed=17,
    )
    return _simulate(
        write_scenario, tmp_path_factory.mktemp("tandem"), topology, scenario
    )


def test_tandem_mean_latency_is_jackson_plus_links(tandem_run: RunResult) -> None:
    # A constant delay between the pools keeps the edge's Poisson departures
    # (Burke) Poisson, so the cloud pool is M/M/1 at the same rate and the mean
    # end-to-end latency is the sum of the two M/M/1 sojourns plus the three
    # fixed crossings: device->edge 5 ms, edge->cloud 20 ms, and the response
    # cloud->edge->device 25 ms (zero bytes, so no transmission time). Batch
    # means at 99 %: batches of ~140 s, 380 tau of the busier (edge) station.
    access_s = TANDEM_LATENCY_MS["access"] / 1000
    backbone_s = TANDEM_LATENCY_MS["backbone"] / 1000
    links_s = [access_s, backbone_s, access_s + backbone_s]
    rows = _measured(tandem_run, final=False)
    final = rows.filter(pl.col("final"))
    assert final["stage"].unique().to_list() == [1]

    # The fixed parts are exact on every row.
    uplink = (
        rows.group_by("stage")
        .agg(pl.col("uplink_s").min(), pl.col("uplink_s").max().alias("max"))
        .sort("stage")
    )
    assert uplink["uplink_s"].to_list() == pytest.approx([access_s, backbone_s])
    assert uplink["max"].to_list() == pytest.approx([access_s, backbone_s])
    assert final["downlink_s"].to_numpy() == pytest.approx(links_s[2])

    expected = tandem_mm1(TANDEM_RATE, TANDEM_MU, links_s)
    _batch_check("tandem mean end-to-end latency s", final["latency_s"], expected)


# --- 7. Probabilistic split (Poisson thinning) ----------------------------------------

SPLIT_RATE = 100.0
SPLIT = {"a": 0.3, "b": 0.7}
SPLIT_MU = {"a": 50.0, "b": 100.0}  # rho 0.6 and 0.7


@pytest.fixture(scope="module")
def split_run(
    write_scenario: Writer, tmp_path_factory: pytest.TempPathFactory
) -> RunResult:
    topology = _one_site(
        *(_pool(name, _exponential(1000 / mu)) for name, mu in SPLIT_MU.items())
    )
    scenario = _scenario(
        {"split": SPLIT},
        rate_per_s=SPLIT_RATE,
        requests=300_000,
        warmup_s=50,
        seed=21,
    )
    return _simulate(
        write_scenario, tmp_path_factory.mktemp("split"), topology, scenario
    )


def test_split_shares_and_thinned_mm1_waits(split_run: RunResult) -> None:
    # Each request picks its pool independently, so the count routed to `a` is
    # binomial: the 99 % Wald interval (n p ~ 90,000, far above 10) applies.
    # Each pool then sees a Poisson stream thinned to p * lambda, hence M/M/1
    # at that rate; its mean wait is checked with batch means at 99 % (batches
    # of ~150 s, over 400 tau of either pool).
    rows = _measured(split_run)
    n = rows.height
    for name, weight in SPLIT.items():
        share, half_width = proportion_ci(
            int((rows["pool"] == name).sum()), n, CONFIDENCE
        )
        _check(f"split share of {name}", share, half_width, weight)

    for name, weight in SPLIT.items():
        waits = rows.filter(pl.col("pool") == name)["queue_wait_s"]
        theory = mm1(weight * SPLIT_RATE, SPLIT_MU[name])
        _batch_check(f"split pool {name} mean wait s", waits, theory.mean_wait)


# --- summary rows against the ledger --------------------------------------------------


def _assert_percentiles(row: dict[str, Any], prefix: str, values: np.ndarray) -> None:
    """The row's p50/p95/p99 of `values` in ms, or nulls when there are none."""
    reported_ms = [row[f"{prefix}_p{q}_ms"] for q in (50, 95, 99)]
    if values.size == 0:
        assert reported_ms == [None, None, None]
        return
    exact_ms = np.quantile(values, [0.5, 0.95, 0.99], method="inverted_cdf") * 1000
    assert reported_ms == pytest.approx(exact_ms, rel=PERCENTILE_ERROR, abs=1e-9)


@pytest.mark.parametrize("run_name", ["mmck_run", "split_run", "tandem_run"])
def test_summary_rows_match_the_ledger(
    request: pytest.FixtureRequest, run_name: str
) -> None:
    # Counts are exact. Throughput: the window ends at the last arrival, so it
    # spans the N measured Poisson gaps and N / window estimates lambda with
    # relative standard error 1 / sqrt(N); the tolerance is z_0.995 of that.
    result: RunResult = request.getfixturevalue(run_name)
    summary = result.summary
    visits = _measured(result, final=False)
    final = visits.filter(pl.col("final"))
    pools = sorted(p.name for n in result.loaded.topology.nodes for p in n.pools)
    assert summary.select("scope", "name").rows() == [
        ("overall", "all"),
        ("class", "jobs"),
        *(("pool", p) for p in pools),
    ]

    for scope, name, rows in [
        ("overall", "all", final),
        ("class", "jobs", final),
        *(("pool", p, visits.filter(pl.col("pool") == p)) for p in pools),
    ]:
        row = summary.filter(scope=scope, name=name).row(0, named=True)
        served = int((rows["outcome"] == "served").sum())
        assert (row["requests"], row["served"], row["dropped"]) == (
            rows.height,
            served,
            rows.height - served,
        ), (scope, name)
        assert row["queue_wait_mean_ms"] == pytest.approx(
            rows["queue_wait_s"].mean() * 1000
        )
        assert row["throughput_per_s"] == pytest.approx(served / result.window.length_s)

    # Summary percentiles are the ledger's order statistics to within 0.01 %.
    for scope, name, rows in [
        ("overall", "all", final),
        *(("pool", p, visits.filter(pl.col("pool") == p)) for p in pools),
    ]:
        row = summary.filter(scope=scope, name=name).row(0, named=True)
        served = rows.filter(pl.col("outcome") == "served")
        for column, values in [
            ("latency", served.filter(pl.col("final"))["latency_s"]),
            ("queue_wait", served["queue_wait_s"]),
        ]:
            _assert_percentiles(row, column, values.to_numpy())

    rate_per_s = result.loaded.scenario.classes[0].arrival.rate_per_s
    offered_per_s = final.height / result.window.length_s
    z = 2.5758293035489004
    _check(
        f"{run_name} offered rate /s",
        offered_per_s,
        z * offered_per_s / math.sqrt(final.height),
        rate_per_s,
    )


# --- 8. Deterministic exact timings ---------------------------------------------------

MBIT = 1e6
REQUEST_BYTES, RESPONSE_BYTES = 50_000, 2_000
# Links: device-edge 2 ms at 100 Mbit/s, edge-region 10 ms at 1000 Mbit/s,
# region-cloud 30 ms at 10000 Mbit/s, and a direct device-cloud link of 50 ms
# that the latency-shortest route (42 ms over three links) must avoid.
DEVICE_TO_EDGE_UP_S = 2 / 1000 + REQUEST_BYTES * 8 / (100 * MBIT)
EDGE_TO_CLOUD_UP_S = (
    10 / 1000
    + REQUEST_BYTES * 8 / (1000 * MBIT)
    + 30 / 1000
    + REQUEST_BYTES * 8 / (10_000 * MBIT)
)
DEVICE_TO_CLOUD_UP_S = DEVICE_TO_EDGE_UP_S + EDGE_TO_CLOUD_UP_S  # 46.44 ms
CLOUD_TO_DEVICE_DOWN_S = (
    30 / 1000
    + RESPONSE_BYTES * 8 / (10_000 * MBIT)
    + 10 / 1000
    + RESPONSE_BYTES * 8 / (1000 * MBIT)
    + 2 / 1000
    + RESPONSE_BYTES * 8 / (100 * MBIT)
)  # 42.1776 ms
INTERVAL_S, START_S, N_EXACT = 0.010, 0.005, 24
EDGE_SERVICE_S, CLOUD_SERVICE_S = 0.004, 0.025


def _exact_topology(cloud_servers: int) -> dict[str, Any]:
    return {
        "name": "exact",
        "nodes": [
            {"name": "device", "kind": "device"},
            {
                "name": "edge",
                "kind": "edge_site",
                "pools": [_pool("edge-pool", _deterministic(EDGE_SERVICE_S * 1000))],
            },
            {"name": "region", "kind": "region"},
            {
                "name": "cloud",
                "kind": "cloud",
                "pools": [
                    _pool(
                        "cloud-pool",
                        _deterministic(CLOUD_SERVICE_S * 1000),
                        servers=cloud_servers,
                    )
                ],
            },
        ],
        "links": [
            {"a": "device", "b": "edge", "latency_ms": 2, "bandwidth_mbps": 100},
            {"a": "edge", "b": "region", "latency_ms": 10, "bandwidth_mbps": 1000},
            {"a": "region", "b": "cloud", "latency_ms": 30, "bandwidth_mbps": 10_000},
            {"a": "device", "b": "cloud", "latency_ms": 50, "bandwidth_mbps": 10_000},
        ],
    }


def _cloud_wait_s(k: int, servers: int) -> float:
    """Wait of the k-th request at the cloud pool, worked out by hand.

    Requests reach the pool every 10 ms and each holds a server for 25 ms. One
    server: the k-th starts at 25 k ms after the first, so waits 15 k ms. Two
    servers alternate: the pair (2j, 2j+1) starts at 25 j ms and 25 j + 10 ms.
    """
    if servers == 1:
        start_s = k * CLOUD_SERVICE_S
    else:
        start_s = (k // 2) * CLOUD_SERVICE_S + (k % 2) * INTERVAL_S
    return start_s - k * INTERVAL_S


def _exact_run(
    write_scenario: Writer, folder: Path, placement: dict[str, Any], cloud_servers: int
) -> pl.DataFrame:
    scenario = {
        "name": "exact",
        "seed": 0,
        "requests": N_EXACT,
        "classes": [
            {
                "name": "jobs",
                "origin": "device",
                "arrival": {
                    "process": "fixed",
                    "interval_ms": INTERVAL_S * 1000,
                    "start_ms": START_S * 1000,
                },
                "request_bytes": REQUEST_BYTES,
                "response_bytes": RESPONSE_BYTES,
                "placement": placement,
            }
        ],
    }
    result = _simulate(write_scenario, folder, _exact_topology(cloud_servers), scenario)
    return result.requests().sort("request_id", "stage").collect()


def _assert_columns(rows: pl.DataFrame, expected: dict[str, list[float]]) -> None:
    for column, values in expected.items():
        np.testing.assert_allclose(
            rows[column].to_numpy(), values, rtol=0, atol=1e-6, err_msg=column
        )


@pytest.mark.parametrize("servers", [1, 2])
def test_exact_timings_single_pool(
    write_scenario: Writer, tmp_path: Path, servers: int
) -> None:
    rows = _exact_run(write_scenario, tmp_path, {"pool": "cloud-pool"}, servers)
    k = range(N_EXACT)
    arrival = [START_S + i * INTERVAL_S for i in k]
    pool_arrival = [a + DEVICE_TO_CLOUD_UP_S for a in arrival]
    wait = [_cloud_wait_s(i, servers) for i in k]
    assert max(wait) > CLOUD_SERVICE_S  # requests queue behind each other
    assert rows["request_id"].to_list() == list(k)
    assert (rows["outcome"] == "served").all()
    assert rows["final"].all()
    _assert_columns(
        rows,
        {
            "arrival_s": arrival,
            "uplink_s": [DEVICE_TO_CLOUD_UP_S] * N_EXACT,
            "pool_arrival_s": pool_arrival,
            "queue_wait_s": wait,
            "service_s": [CLOUD_SERVICE_S] * N_EXACT,
            "downlink_s": [CLOUD_TO_DEVICE_DOWN_S] * N_EXACT,
            "latency_s": [
                DEVICE_TO_CLOUD_UP_S + w + CLOUD_SERVICE_S + CLOUD_TO_DEVICE_DOWN_S
                for w in wait
            ],
        },
    )


def test_exact_timings_chain(write_scenario: Writer, tmp_path: Path) -> None:
    # Edge first (4 ms, never queues at 10 ms spacing), then the request bytes
    # cross edge->region->cloud, and the cloud (one 25 ms server) queues.
    rows = _exact_run(
        write_scenario, tmp_path, {"chain": ["edge-pool", "cloud-pool"]}, 1
    )
    k = range(N_EXACT)
    arrival = [START_S + i * INTERVAL_S for i in k]
    edge, cloud = rows.filter(stage=0), rows.filter(stage=1)
    assert edge["pool"].cast(pl.String).unique().to_list() == ["edge-pool"]
    assert not edge["final"].any()
    assert cloud["final"].all()

    edge_arrival = [a + DEVICE_TO_EDGE_UP_S for a in arrival]
    _assert_columns(
        edge,
        {
            "arrival_s": arrival,
            "uplink_s": [DEVICE_TO_EDGE_UP_S] * N_EXACT,
            "pool_arrival_s": edge_arrival,
            "queue_wait_s": [0.0] * N_EXACT,
            "service_s": [EDGE_SERVICE_S] * N_EXACT,
            "downlink_s": [0.0] * N_EXACT,
            "finish_s": [a + EDGE_SERVICE_S for a in edge_arrival],
        },
    )
    cloud_arrival = [a + EDGE_SERVICE_S + EDGE_TO_CLOUD_UP_S for a in edge_arrival]
    wait = [_cloud_wait_s(i, 1) for i in k]
    _assert_columns(
        cloud,
        {
            "arrival_s": arrival,
            "uplink_s": [EDGE_TO_CLOUD_UP_S] * N_EXACT,
            "pool_arrival_s": cloud_arrival,
            "queue_wait_s": wait,
            "service_s": [CLOUD_SERVICE_S] * N_EXACT,
            "downlink_s": [CLOUD_TO_DEVICE_DOWN_S] * N_EXACT,
            "latency_s": [
                c + w + CLOUD_SERVICE_S + CLOUD_TO_DEVICE_DOWN_S - a
                for a, c, w in zip(arrival, cloud_arrival, wait, strict=True)
            ],
        },
    )
