"""Token-level serving: batching, caches, model delivery and their validation.

The checks come in three kinds:

* exact traces worked out by hand from the profile's step table, for one
  replica and a few requests (`decode_step_s(b)` written ``d_b`` below);
* ``theory`` checks: with batching off a serving pool is a FIFO queue whose
  service time follows from the tokens, so its mean wait must match
  Pollaczek-Khinchine within a 99 % batch-means interval, as in
  test_theory.py; shares drawn per request (cache hits) are checked with a
  99 % binomial interval;
* validation: problems are reported located in the topology or scenario file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from queueing_theory import batch_means, mg1_mean_wait, proportion_ci

from sim.api import RunResult, run
from sim.engine import Engine
from sim.errors import InputError
from sim.ledger import LedgerWriter
from sim.profiles import load_profiles
from sim.schema import load_scenario, with_overrides
from sim.serving import cold_start_s, deliveries_frame, delivery_bytes

Writer = Callable[[Path, dict[str, Any], dict[str, Any]], Path]

H100 = load_profiles().get("llama-3.1-8b", "h100-sxm-80gb")
JETSON = load_profiles().get("llama-3.1-8b", "jetson-agx-orin-64gb")
CONFIDENCE = 0.99
PERCENTILE_ERROR = 1e-4


# --- building scenarios ---------------------------------------------------------------


def _serving(
    hardware: str = "h100-sxm-80gb", batching: str = "continuous", **extra: Any
) -> dict[str, Any]:
    return {
        "model": "llama-3.1-8b",
        "hardware": hardware,
        "batching": batching,
        **extra,
    }


def _topology(
    *pools: dict[str, Any],
    site_cache: dict[str, Any] | None = None,
    cloud_pools: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """device -(0 ms)- site -(20 ms)- cloud, and a CDN 10 ms from the site."""
    site: dict[str, Any] = {"name": "site", "kind": "edge_site", "pools": list(pools)}
    if site_cache is not None:
        site["cache"] = site_cache
    return {
        "name": "serving",
        "nodes": [
            {"name": "device", "kind": "device"},
            site,
            {"name": "cloud", "kind": "cloud", "pools": cloud_pools or []},
            {"name": "cdn", "kind": "cdn"},
        ],
        "links": [
            {"a": "device", "b": "site", "latency_ms": 0, "bandwidth_mbps": 100},
            {"a": "site", "b": "cloud", "latency_ms": 20, "bandwidth_mbps": 1000},
            {"a": "cdn", "b": "site", "latency_ms": 10, "bandwidth_mbps": 1000},
        ],
    }


def _scenario(
    placement: dict[str, Any],
    arrival: dict[str, Any],
    *,
    requests: int,
    input_tokens: Any = 100,
    output_tokens: Any = 20,
    seed: int = 5,
    warmup_s: float = 0.0,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "name": "serving",
        "seed": seed,
        "requests": requests,
        "warmup_s": warmup_s,
        "classes": [
            {
                "name": "chat",
                "origin": "device",
                "arrival": arrival,
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "placement": placement,
                **extra,
            }
        ],
    }


def _burst(interval_ms: float = 0.1) -> dict[str, Any]:
    return {"process": "fixed", "interval_ms": interval_ms, "start_ms": 0}


def _run(
    write_scenario: Writer,
    folder: Path,
    topology: dict[str, Any],
    scenario: dict[str, Any],
) -> RunResult:
    path = write_scenario(folder, topology, scenario)
    return run(path, out_dir=folder / "out")


def _rows(result: RunResult) -> pl.DataFrame:
    return result.requests().sort("request_id", "stage").collect()


def _check(label: str, measured: float, half_width: float, expected: float) -> None:
    print(
        f"{label}: measured {measured:.6g} +- {half_width:.3g} "
        f"(99% CI), expected {expected:.6g}"
    )
    assert abs(measured - expected) <= half_width, label


# --- continuous batching: an exact trace ----------------------------------------------


def _counted_run(path: Path, folder: Path) -> tuple[Engine, int, Any]:
    """Run with the engine's environment counting every simpy event it processes."""
    loaded = load_scenario(path)
    ledger = LedgerWriter(
        folder / "requests.parquet",
        [c.name for c in loaded.scenario.classes],
        [n.name for n in loaded.topology.nodes],
        [p.name for n in loaded.topology.nodes for p in n.pools],
    )
    engine = Engine(loaded, ledger)
    processed = 0
    step = engine.env.step

    def counting_step() -> None:
        nonlocal processed
        step()  # the last call raises EmptySchedule and is not counted
        processed += 1

    engine.env.step = counting_step  # type: ignore[method-assign]
    stats = engine.run()
    ledger.close()
    return engine, processed, stats


def test_continuous_batching_exact_trace_and_one_event_per_batch_change(
    write_scenario: Writer, tmp_path: Path
) -> None:
    # Eight requests (no prompt, 100 output tokens) 0.1 ms apart. The first
    # finds the replica idle and starts step 0 alone (d_1). The other seven
    # arrive during it and join at its end; steps 1..99 run 8 sequences (d_8).
    # The first leaves at the end of step 99, the seven at the end of step
    # 100, run with 7 (d_7): 101 steps. Events of the pool: the boundary after
    # step 0, the wake-up for step 99 scheduled before the joiners came (now
    # superseded, a no-op), and the boundaries after steps 99 and 100.
    topology = _topology({"name": "gpu", "serving": _serving()})
    scenario = _scenario(
        {"pool": "gpu"}, _burst(), requests=8, input_tokens=0, output_tokens=100
    )
    path = write_scenario(tmp_path, topology, scenario)
    engine, processed, stats = _counted_run(path, tmp_path)

    d1, d7, d8 = (H100.decode_step_s(b) for b in (1, 7, 8))
    pool = engine.pools[0]
    assert stats.batch_steps == 101
    assert pool.events == 4
    assert processed == stats.events
    windows = processed - 8 - pool.events
    assert windows == 1

    rows = pl.read_parquet(tmp_path / "requests.parquet").sort("request_id")
    arrival = np.arange(8) * 1e-4
    start = np.r_[0.0, [d1] * 7]
    finish = np.r_[d1 + 99 * d8, [d1 + 99 * d8 + d7] * 7]
    first_token = np.r_[d1, [d1 + d8] * 7]
    tpot = np.r_[d8, [(98 * d8 + d7) / 99] * 7]
    exact = {
        "queue_wait_s": start - arrival,
        "service_s": finish - start,
        "latency_s": finish - arrival,
        "ttft_s": first_token - arrival,
        "tpot_s": tpot,
    }
    for column, expected in exact.items():
        np.testing.assert_allclose(
            rows[column].to_numpy(), expected, rtol=0, atol=1e-12, err_msg=column
        )


def test_a_full_batch_of_256_costs_a_handful_of_events_not_one_per_token(
    write_scenario: Writer, tmp_path: Path
) -> None:
    # 256 requests of 50 tokens arrive within one step: 12,800 tokens in 51
    # steps, and the pool needs no more events than it has batch changes.
    topology = _topology({"name": "gpu", "serving": _serving()})
    scenario = _scenario(
        {"pool": "gpu"},
        _burst(0.001),
        requests=256,
        input_tokens=0,
        output_tokens=50,
    )
    path = write_scenario(tmp_path, topology, scenario)
    engine, processed, stats = _counted_run(path, tmp_path)

    print(f"steps {stats.batch_steps}, pool events {engine.pools[0].events}")
    assert stats.batch_steps == 51
    assert engine.pools[0].events <= 4
    assert processed == stats.events


def test_events_stay_below_steps_under_load(
    write_scenario: Writer, tmp_path: Path
) -> None:
    # Poisson arrivals at 60 % of two replicas' decode capacity: each step
    # costs at most one event and each arrival at most one more (superseded).
    topology = _topology({"name": "gpu", "servers": 2, "serving": _serving()})
    scenario = _scenario(
        {"pool": "gpu"},
        {"process": "poisson", "rate_per_s": 20},
        requests=4000,
        input_tokens={"distribution": "exponential", "mean": 500},
        output_tokens={"distribution": "exponential", "mean": 200},
    )
    path = write_scenario(tmp_path, topology, scenario)
    engine, processed, stats = _counted_run(path, tmp_path)

    pool_events = engine.pools[0].events
    print(f"steps {stats.batch_steps}, pool events {pool_events}, requests 4000")
    assert processed == stats.events
    assert pool_events <= stats.batch_steps + 4000
    assert pool_events < stats.batch_steps


# --- continuous batching at saturation ------------------------------------------------


def test_saturated_throughput_matches_the_profile_at_max_batch(
    write_scenario: Writer, tmp_path: Path
) -> None:
    # One H100 replica offered 1,000 requests/s of 512 output tokens (about 40
    # times its capacity) keeps its batch at max_batch = 256. Output tokens per
    # second over the middle half of the run must be 256 / d_256 within 2 %.
    # A request emits its first token at `first` and the other 511 one per
    # step until `finish`; with the batch full every step takes the same
    # time, so the tokens it emits in the window are its first (if inside)
    # plus 511 times the share of [first, finish] inside. (Counting whole
    # requests finishing in the window would not do: they finish in cohorts.)
    # The 4-token prompts add under 0.3 % of prefill to the steps.
    topology = _topology({"name": "gpu", "serving": _serving()})
    output_tokens = 512
    scenario = _scenario(
        {"pool": "gpu"},
        _burst(1.0),
        requests=4000,
        input_tokens=4,
        output_tokens=output_tokens,
    )
    rows = _rows(_run(write_scenario, tmp_path, topology, scenario))
    finish = rows["finish_s"].to_numpy()
    first = (rows["arrival_s"] + rows["ttft_s"]).to_numpy()
    low, high = np.quantile(finish, [0.25, 0.75])
    inside = np.clip(np.minimum(finish, high) - np.maximum(first, low), 0.0, None)
    tokens = ((first >= low) & (first < high)).sum() + (
        (output_tokens - 1) * inside / (finish - first)
    ).sum()
    measured = tokens / (high - low)

    expected = H100.tokens_per_s_at(H100.max_batch)
    print(f"saturated throughput {measured:.1f} tokens/s, profile {expected:.1f}")
    assert measured == pytest.approx(expected, rel=0.02)


def test_waiting_queue_capacity_and_kv_limit_drop_requests(
    write_scenario: Writer, tmp_path: Path
) -> None:
    # A Jetson batches at most 8. Twenty requests arrive within 0.02 ms: the
    # first 8 take the batch, 5 fill the waiting queue, 7 are dropped. Requests
    # whose prompt alone exceeds the KV cache can never run: all dropped.
    topology = _topology(
        {
            "name": "jetson",
            "queue_capacity": 5,
            "serving": _serving("jetson-agx-orin-64gb"),
        }
    )
    huge = JETSON.kv_cache_tokens + 1
    scenario = _scenario(
        {"pool": "jetson"},
        _burst(0.001),
        requests=20,
        input_tokens={"distribution": "empirical", "file": "tokens.csv", "column": "n"},
        output_tokens=10,
    )
    (tmp_path / "tokens.csv").write_text(f"n\n{huge}\n")
    rows = _rows(_run(write_scenario, tmp_path, topology, scenario))
    assert (rows["outcome"] == "dropped").all()
    assert rows["queue_wait_s"].is_null().all()

    scenario["classes"][0]["input_tokens"] = 10
    rows = _rows(_run(write_scenario, tmp_path / "fits", topology, scenario))
    outcomes = rows["outcome"].cast(pl.String).to_list()
    assert outcomes == ["served"] * 13 + ["dropped"] * 7
    # The queued five start when the first eight leave, after 10 steps.
    waits = rows["queue_wait_s"].to_numpy()
    assert (waits[8:13] > 10 * JETSON.decode_step_s(1)).all()


# --- batching off: FIFO queueing ------------------------------------------------------


def test_no_batching_serves_prefill_then_decode_at_batch_one(
    write_scenario: Writer, tmp_path: Path
) -> None:
    # Three requests 1 ms apart on one replica: each is served for
    # prefill(100) + 20 d_1 and queues behind the previous one.
    topology = _topology({"name": "gpu", "serving": _serving(batching="none")})
    scenario = _scenario({"pool": "gpu"}, _burst(1.0), requests=3)
    rows = _rows(_run(write_scenario, tmp_path, topology, scenario))

    d1, prefill_s = H100.decode_step_s(1), H100.prefill_s(100)
    service_s = prefill_s + 20 * d1
    start = np.arange(3) * service_s
    arrival = np.arange(3) * 1e-3
    exact = {
        "service_s": [service_s] * 3,
        "queue_wait_s": start - arrival,
        "ttft_s": start + prefill_s + d1 - arrival,
        "tpot_s": [d1] * 3,
    }
    for column, expected in exact.items():
        np.testing.assert_allclose(
            rows[column].to_numpy(), expected, rtol=0, atol=1e-12, err_msg=column
        )


def _geometric_like_moments(mean_tokens: float) -> tuple[float, float]:
    """Mean and cv of max(rint(X), 1) for X exponential with `mean_tokens`."""
    k = np.arange(1, 20_000)
    edges = np.exp(-np.r_[0.0, k + 0.5] / mean_tokens)  # P(X > e) at 0, 1.5, 2.5..
    p = edges[:-1] - edges[1:]  # P(K = 1) = P(X < 1.5), then P(K = k)
    mean = float((k * p).sum())
    var = float((k**2 * p).sum()) - mean**2
    return mean, math.sqrt(var) / mean


@pytest.mark.theory
@pytest.mark.parametrize("tokens", ["deterministic", "exponential"])
def test_no_batching_mean_wait_is_pollaczek_khinchine(
    write_scenario: Writer, tmp_path: Path, tokens: str
) -> None:
    # One replica without batching is M/G/1 with S = prefill(100) + K d_1,
    # K the output tokens: fixed at 20 (M/D/1), or the rounded exponential
    # draw of mean 20 (its exact moments below). rho = 0.7. Batch means of
    # the waits at 99 %: 100,000 requests span ~20,000 s, so each of the 20
    # batches is ~1,000 s, about 190 relaxation times of an M/M/1 at the same
    # load (tau = E[S] / (1 - sqrt(0.7))^2 ~ 5.4 s); warm-up ~ 100 tau.
    d1, prefill_s = H100.decode_step_s(1), H100.prefill_s(100)
    if tokens == "deterministic":
        output: Any = 20
        mean_k, cv_k = 20.0, 0.0
    else:
        output = {"distribution": "exponential", "mean": 20}
        mean_k, cv_k = _geometric_like_moments(20.0)
    mean_s = prefill_s + mean_k * d1
    cv_s = cv_k * mean_k * d1 / mean_s
    rate = 0.7 / mean_s
    tau_s = mean_s / (1 - math.sqrt(0.7)) ** 2

    topology = _topology({"name": "gpu", "serving": _serving(batching="none")})
    scenario = _scenario(
        {"pool": "gpu"},
        {"process": "poisson", "rate_per_s": rate},
        requests=100_000,
        output_tokens=output,
        warmup_s=100 * tau_s,
        seed=31,
    )
    result = _run(write_scenario, tmp_path, topology, scenario)
    rows = _rows(result).filter(~pl.col("warmup"))
    mean, half_width = batch_means(rows["queue_wait_s"], 20, CONFIDENCE)
    _check(
        f"no-batching M/G/1 ({tokens}) mean wait s",
        mean,
        half_width,
        mg1_mean_wait(rate, mean_s, cv_s),
    )


# --- prefix reuse ---------------------------------------------------------------------


@pytest.mark.parametrize("batching", ["continuous", "none"])
def test_prefix_reuse_removes_its_share_of_prefill(
    write_scenario: Writer, tmp_path: Path, batching: str
) -> None:
    # One request, 1,000 prompt tokens: reusing 40 % of the prefix saves
    # exactly 400 tokens of prefill in its TTFT and its service time.
    scenario = _scenario({"pool": "gpu"}, _burst(), requests=1, input_tokens=1000)
    results = {}
    for share in (0.0, 0.4):
        serving = _serving(batching=batching, prefix_reuse_share=share)
        topology = _topology({"name": "gpu", "serving": serving})
        folder = tmp_path / str(share)
        results[share] = _rows(_run(write_scenario, folder, topology, scenario))

    saved_s = 400 / H100.prefill_tokens_per_s
    for column in ("ttft_s", "service_s", "latency_s"):
        difference = results[0.0][column].item() - results[0.4][column].item()
        assert difference == pytest.approx(saved_s, abs=1e-12), column
    assert results[0.4]["tpot_s"].item() == results[0.0]["tpot_s"].item()


# --- model delivery (cold start) ------------------------------------------------------


@pytest.mark.parametrize(
    ("pool", "artifact_bytes"),
    [
        (
            {
                "name": "gpu",
                "service_time_ms": {"distribution": "deterministic", "value": 10},
                "model_delivery": {"from": "cdn", "artifact_gb": 2},
            },
            2_000_000_000,
        ),
        (
            {
                "name": "gpu",
                "serving": _serving(batching="none"),
                "model_delivery": {"from": "cdn"},
            },
            16_060_000_000,
        ),
    ],
    ids=["fifo-2gb", "serving-profile-weights"],
)
def test_cold_start_waits_for_the_artifact_over_the_route(
    write_scenario: Writer, tmp_path: Path, pool: dict[str, Any], artifact_bytes: int
) -> None:
    # The CDN is one 10 ms, 1,000 Mbit/s link from the site: the first request
    # waits bytes * 8 / 1e9 + 0.010 s exactly; the default artifact is the
    # profile's weights (16.06 GB). Later requests queue behind it as usual.
    scenario = _scenario({"pool": "gpu"}, _burst(1.0), requests=3)
    result = _run(write_scenario, tmp_path, _topology(pool), scenario)
    rows = _rows(result)

    delay_s = artifact_bytes * 8 / 1e9 + 0.010
    assert cold_start_s(0.010, 1000.0, artifact_bytes) == delay_s
    assert rows["queue_wait_s"][0] == pytest.approx(delay_s, abs=1e-12)
    assert delivery_bytes(result.stats.deliveries) == {"gpu": artifact_bytes}
    frame = deliveries_frame(result.stats.deliveries)
    assert frame.row(0) == ("gpu", "cdn", artifact_bytes, 0.0, pytest.approx(delay_s))


def test_cold_start_streams_at_the_bottleneck_of_a_longer_route(
    write_scenario: Writer, tmp_path: Path
) -> None:
    # From the cloud to the site: 20 ms at 1,000 Mbit/s, then the pool's site.
    # Through the CDN: 10 ms + 20 ms with a 100 Mbit/s link on the way; the
    # artifact streams at the slowest link, not store-and-forward per link.
    topology = _topology(
        {
            "name": "gpu",
            "serving": _serving(batching="none"),
            "model_delivery": {"from": "cdn", "artifact_gb": 1},
        }
    )
    topology["links"][2] = {
        "a": "cdn",
        "b": "cloud",
        "latency_ms": 10,
        "bandwidth_mbps": 100,
    }
    scenario = _scenario({"pool": "gpu"}, _burst(1.0), requests=1)
    result = _run(write_scenario, tmp_path, topology, scenario)

    expected_s = 0.030 + 1e9 * 8 / 100e6
    assert _rows(result)["queue_wait_s"][0] == pytest.approx(expected_s, abs=1e-12)


# --- response caches ------------------------------------------------------------------

CACHE = {"kind": "semantic", "hit_ratio": 0.3, "hit_latency_ms": 5}


def test_pool_cache_hit_share_is_within_its_binomial_interval(
    write_scenario: Writer, tmp_path: Path
) -> None:
    # Each request draws its hit independently with p = 0.3: the hit count is
    # binomial, and the 99 % Wald interval applies (n p = 6,000).
    topology = _topology(
        {"name": "gpu", "servers": 4, "serving": _serving(), "cache": CACHE}
    )
    scenario = _scenario(
        {"pool": "gpu"}, {"process": "poisson", "rate_per_s": 50}, requests=20_000
    )
    result = _run(write_scenario, tmp_path, topology, scenario)
    rows = _rows(result)
    hits = rows.filter(pl.col("cache_hit"))
    share, half_width = proportion_ci(hits.height, rows.height, CONFIDENCE)
    _check("pool cache hit share", share, half_width, CACHE["hit_ratio"])

    # Hits are served by the cache alone, after its latency.
    assert (hits["outcome"] == "served").all()
    assert hits["service_s"].to_numpy() == pytest.approx(0.005)
    assert (hits["queue_wait_s"] == 0.0).all()
    overall = result.summary.filter(scope="overall").row(0, named=True)
    assert overall["cache_hit_share"] == pytest.approx(share)
    assert overall["served"] == rows.height


def test_node_cache_answers_on_the_way_with_exact_latency(
    write_scenario: Writer, tmp_path: Path
) -> None:
    # The cache sits at the site, 0 ms and 100 Mbit/s from the device, on the
    # way to a cloud pool 20 ms further. A hit crosses to the site and back
    # with its bytes and takes 5 ms there; a miss goes on to the cloud, 2 ms
    # later (the semantic lookup), and is served there.
    cache = {**CACHE, "miss_latency_ms": 2}
    cloud_pool = {
        "name": "cloud-gpu",
        "service_time_ms": {"distribution": "deterministic", "value": 50},
        "servers": 64,
    }
    topology = _topology(site_cache=cache, cloud_pools=[cloud_pool])
    scenario = _scenario(
        {"pool": "cloud-gpu"},
        {"process": "poisson", "rate_per_s": 100},
        requests=2000,
        request_bytes=10_000,
        response_bytes=2_000,
    )
    rows = _rows(_run(write_scenario, tmp_path, topology, scenario))
    hits, misses = rows.filter(pl.col("cache_hit")), rows.filter(~pl.col("cache_hit"))
    assert hits.height > 0
    assert misses.height > 0
    assert (rows["pool"] == "cloud-gpu").all()

    up_s, down_s = 10_000 * 8 / 100e6, 2_000 * 8 / 100e6
    assert hits["uplink_s"].to_numpy() == pytest.approx(up_s, abs=1e-12)
    assert hits["downlink_s"].to_numpy() == pytest.approx(down_s, abs=1e-12)
    assert hits["latency_s"].to_numpy() == pytest.approx(up_s + 0.005 + down_s)
    miss_up_s = up_s + 0.020 + 10_000 * 8 / 1000e6 + 0.002
    assert misses["uplink_s"].to_numpy() == pytest.approx(miss_up_s, abs=1e-12)
    assert (misses["service_s"] == 0.05).all()


def test_cache_hits_use_common_random_numbers_across_hit_ratios(
    write_scenario: Writer, tmp_path: Path
) -> None:
    # One uniform per request from its own stream: raising the hit ratio
    # from 0.3 to 0.5 keeps every earlier hit a hit, and arrivals and tokens
    # are unchanged.
    scenario = _scenario(
        {"pool": "gpu"},
        {"process": "poisson", "rate_per_s": 20},
        requests=3000,
        output_tokens={"distribution": "exponential", "mean": 50},
    )
    hit_ids = {}
    frames = {}
    for ratio in (0.3, 0.5):
        cache = {**CACHE, "hit_ratio": ratio}
        topology = _topology({"name": "gpu", "serving": _serving(), "cache": cache})
        rows = _rows(_run(write_scenario, tmp_path / str(ratio), topology, scenario))
        hit_ids[ratio] = set(rows.filter(pl.col("cache_hit"))["request_id"])
        frames[ratio] = rows.select("request_id", "arrival_s", "output_tokens")
    assert hit_ids[0.3] < hit_ids[0.5]
    assert frames[0.3].equals(frames[0.5])


# --- the summary ----------------------------------------------------------------------


def test_summary_ttft_and_tpot_percentiles_are_the_ledger_order_statistics(
    write_scenario: Writer, tmp_path: Path
) -> None:
    topology = _topology(
        {"name": "gpu", "servers": 2, "serving": _serving()},
        {"name": "seq", "serving": _serving(batching="none")},
    )
    scenario = _scenario(
        {"split": {"gpu": 0.8, "seq": 0.2}},
        {"process": "poisson", "rate_per_s": 20},
        requests=5000,
        input_tokens={"distribution": "lognormal", "mean": 800, "cv": 1},
        output_tokens={"distribution": "lognormal", "mean": 100, "cv": 1},
        warmup_s=10,
    )
    result = _run(write_scenario, tmp_path, topology, scenario)
    rows = _rows(result).filter(~pl.col("warmup") & (pl.col("outcome") == "served"))
    for scope, name, part in [
        ("overall", "all", rows),
        ("pool", "gpu", rows.filter(pl.col("pool") == "gpu")),
        ("pool", "seq", rows.filter(pl.col("pool") == "seq")),
    ]:
        row = result.summary.filter(scope=scope, name=name).row(0, named=True)
        for prefix in ("ttft", "tpot"):
            values = part[f"{prefix}_s"].drop_nulls().to_numpy()
            exact_ms = np.quantile(values, [0.5, 0.95, 0.99], method="inverted_cdf")
            reported = [row[f"{prefix}_p{q}_ms"] for q in (50, 95, 99)]
            assert reported == pytest.approx(exact_ms * 1000, rel=PERCENTILE_ERROR)


def test_summary_of_a_fifo_run_has_no_token_figures(
    write_scenario: Writer, tmp_path: Path
) -> None:
    pool = {
        "name": "gpu",
        "service_time_ms": {"distribution": "exponential", "mean": 10},
    }
    scenario = _scenario(
        {"pool": "gpu"}, {"process": "poisson", "rate_per_s": 50}, requests=500
    )
    summary = _run(write_scenario, tmp_path, _topology(pool), scenario).summary
    token_columns = [c for c in summary.columns if c.startswith(("ttft", "tpot"))]
    assert len(token_columns) == 6
    assert summary.select(token_columns).null_count().row(0) == (3,) * 6
    assert summary["cache_hit_share"].to_list() == [0.0] * 3


# --- validation -----------------------------------------------------------------------


def _problems(
    write_scenario: Writer, folder: Path, topology: dict[str, Any], scenario: Any
) -> list[str]:
    path = write_scenario(folder, topology, scenario)
    with pytest.raises(InputError) as caught:
        load_scenario(path)
    return [str(p).split(": ", 1)[1] for p in caught.value.problems]


def test_a_model_that_does_not_fit_the_device_is_a_located_problem(
    write_scenario: Writer, tmp_path: Path
) -> None:
    serving = {"model": "llama-3.1-70b", "hardware": "l4-24gb"}
    topology = _topology({"name": "gpu", "serving": serving})
    scenario = _scenario({"pool": "gpu"}, _burst(), requests=1)
    path = write_scenario(tmp_path, topology, scenario)
    with pytest.raises(InputError) as caught:
        load_scenario(path)
    [problem] = caught.value.problems
    assert problem.file.endswith("topology.yaml")
    assert problem.line is not None
    assert str(problem).split(": ", 1)[1] == (
        "nodes[1].pools[0].serving.hardware: expected hardware that can hold "
        "llama-3.1-70b (141.1 GB of bf16 weights; profiled on h100-sxm-80gb, "
        "a100-sxm-80gb); got 'l4-24gb' with 24 GB: the model does not fit"
    )


def test_serving_problems_are_all_reported_with_their_place(
    write_scenario: Writer, tmp_path: Path
) -> None:
    topology = _topology(
        {"name": "a", "serving": {"model": "llama-3.1-8", "hardware": "l4-24gb"}},
        {
            "name": "b",
            "serving": _serving(),
            "service_time_ms": {"distribution": "deterministic", "value": 5},
            "model_delivery": {"from": "cnd"},
        },
        {
            "name": "c",
            "service_time_ms": {"distribution": "deterministic", "value": 5},
            "model_delivery": {"from": "cdn"},
        },
    )
    scenario = _scenario({"pool": "b"}, _burst(), requests=1)
    del scenario["classes"][0]["output_tokens"]
    assert _problems(write_scenario, tmp_path, topology, scenario) == [
        "classes[0]: expected `input_tokens` and `output_tokens` (numbers, "
        "distributions or trace columns) on a class served by serving pool 'b'; "
        "got no `output_tokens`",
        "nodes[1].pools[0].serving.model: expected a known model (llama-3.1-70b, "
        "llama-3.1-8b); got model 'llama-3.1-8', which is not defined. "
        "Did you mean 'llama-3.1-8b'?",
        "nodes[1].pools[1].service_time_ms: expected no `service_time_ms` on a "
        "pool with `serving`, whose service follows from each request's tokens; "
        "got a service time",
        "nodes[1].pools[1].model_delivery.from: expected a known node (cdn, "
        "cloud, device, site); got node 'cnd', which is not defined. "
        "Did you mean 'cdn'?",
        "nodes[1].pools[2].model_delivery: expected an `artifact_gb`, or a "
        "`serving` block on the pool whose profile gives the size of the "
        "weights; got neither",
    ]


def test_a_trace_with_token_columns_is_enough_for_a_serving_pool(
    write_scenario: Writer, tmp_path: Path
) -> None:
    (tmp_path / "trace.csv").write_text("t,in,out\n0,10,5\n0.5,20,7\n")
    topology = _topology({"name": "gpu", "serving": _serving()})
    scenario = _scenario(
        {"pool": "gpu"},
        {
            "process": "trace",
            "file": "trace.csv",
            "timestamp_column": "t",
            "input_tokens_column": "in",
            "output_tokens_column": "out",
        },
        requests=2,
    )
    del scenario["classes"][0]["input_tokens"], scenario["classes"][0]["output_tokens"]
    rows = _rows(_run(write_scenario, tmp_path, topology, scenario))
    assert rows["output_tokens"].to_list() == [5, 7]
    assert rows["tpot_s"].is_not_null().all()


# --- the shipped scenario -------------------------------------------------------------


def test_shipped_edge_vs_cloud_scenario_differs_as_the_profiles_predict(
    tmp_path: Path,
) -> None:
    # The same trace requests on four Jetsons and on one H100 (first 4,000
    # requests of the two classes). Median TTFT is mostly prefill: a Jetson
    # prefills ~75 times slower than an H100, and the cloud adds 70 ms of
    # network. Median TPOT lies between the decode steps at batch 1 and the
    # largest batch, plus prefill stalls: 27.7-33.1 ms against 7.0 ms+.
    root = Path(__file__).resolve().parent.parent
    loaded = with_overrides(
        load_scenario(root / "scenarios" / "edge_vs_cloud_llm.yaml"), requests=4000
    )
    summary = run(loaded, out_dir=tmp_path).summary
    edge = summary.filter(scope="class", name="edge").row(0, named=True)
    cloud = summary.filter(scope="class", name="cloud").row(0, named=True)
    jetson_steps_ms = [JETSON.decode_step_s(b) * 1000 for b in (1, JETSON.max_batch)]
    print(
        f"TTFT p50 edge {edge['ttft_p50_ms']:.1f} ms, cloud {cloud['ttft_p50_ms']:.1f}"
        f" ms; TPOT p50 edge {edge['tpot_p50_ms']:.2f} ms,"
        f" cloud {cloud['tpot_p50_ms']:.2f} ms"
    )
    assert edge["ttft_p50_ms"] > 10 * cloud["ttft_p50_ms"]
    assert jetson_steps_ms[0] < edge["tpot_p50_ms"] < 1.2 * jetson_steps_ms[1]
    assert H100.decode_step_s(1) * 1000 <= cloud["tpot_p50_ms"] < 8.0
