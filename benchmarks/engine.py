"""Engine speed and memory, measured against a bare simpy loop in the same run.

Usage::

    python benchmarks/engine.py            # 1,000,000 requests; memory at 0.5M and 5M
    python benchmarks/engine.py --quick    # 100,000 requests; memory at 50k and 500k

Speed. Two workloads run one after the other in this process:

(a) the *reference*: a bare simpy model where each request is a generator
    process that waits a fixed 20 ms, takes one of 4 slots of a
    ``simpy.Resource``, holds an exponential service time and releases the slot;
(b) placesim on the shipped ``scenarios/three_tier.yaml`` (20 edge sites,
    2 regions, 1 cloud; requests cross 2 or 3 links), the whole ``sim.run``:
    simulation, the full ledger written to Parquet, and the summary.

It prints requests per second for each and placesim's ratio to the reference.
Target: ratio >= 1.0.

Token level. (c) The Azure conversation trace (19,366 requests) replayed ten
times faster (``speedup: 10``) on one pool of 8 servers, each an H100 running
Llama 3.1 8B with continuous batching, the whole ``sim.run``. It prints
simulated requests per second, simpy events per request and decode steps per
event (steps are coalesced while a batch does not change; see sim/serving.py).
No target: it tracks the cost of token-level service.

Memory. ``placesim run`` is started as a child process at two sizes, ten times
apart, and its peak resident set size is read from the operating system.
Target: the larger run's peak at most 1.2 times the smaller one's.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import simpy
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "three_tier.yaml"
CONVERSATION_TRACE = ROOT / "scenarios" / "traces" / "azure-llm-2023-conv.csv"
SPEED_TARGET = 1.0
MEMORY_TARGET = 1.2


def bare_simpy_requests_per_s(n_requests: int, seed: int = 1) -> float:
    """Run the reference model and return requests per wall-clock second."""
    env = simpy.Environment()
    slots = simpy.Resource(env, capacity=4)
    rng = random.Random(seed)
    rate_per_s, service_mean_s = 150.0, 0.02

    def request(env: simpy.Environment):
        yield env.timeout(0.020)
        with slots.request() as slot:
            yield slot
            yield env.timeout(rng.expovariate(1.0 / service_mean_s))

    def source(env: simpy.Environment):
        for _ in range(n_requests):
            env.process(request(env))
            yield env.timeout(rng.expovariate(rate_per_s))

    env.process(source(env))
    started = time.perf_counter()
    env.run()
    return n_requests / (time.perf_counter() - started)


def placesim_requests_per_s(n_requests: int) -> tuple[float, float]:
    """Run the three-tier scenario; return requests/s and simpy events per request."""
    from sim.api import run
    from sim.schema import load_scenario, with_overrides

    loaded = with_overrides(load_scenario(SCENARIO), requests=n_requests)
    with tempfile.TemporaryDirectory() as out_dir:
        started = time.perf_counter()
        result = run(loaded, out_dir=out_dir)
        elapsed = time.perf_counter() - started
    return result.stats.requests / elapsed, result.stats.events / result.stats.requests


def token_level_requests_per_s() -> tuple[int, float, float, float]:
    """Replay the conversation trace at 10x on 8 H100s with continuous batching.

    Returns requests, requests per wall-clock second, simpy events per request
    and decode steps per simpy event.
    """
    from sim.api import run

    topology = {
        "name": "gpu8",
        "nodes": [
            {"name": "users", "kind": "device"},
            {
                "name": "cloud",
                "kind": "cloud",
                "pools": [
                    {
                        "name": "h100x8",
                        "servers": 8,
                        "serving": {
                            "model": "llama-3.1-8b",
                            "hardware": "h100-sxm-80gb",
                            "batching": "continuous",
                        },
                    }
                ],
            },
        ],
        "links": [
            {"a": "users", "b": "cloud", "latency_ms": 20, "bandwidth_mbps": 1000}
        ],
    }
    scenario = {
        "name": "conversation_x10",
        "topology": "topology.yaml",
        "seed": 1,
        "classes": [
            {
                "name": "conversation",
                "origin": "users",
                "arrival": {
                    "process": "trace",
                    "file": str(CONVERSATION_TRACE),
                    "input_tokens_column": "ContextTokens",
                    "output_tokens_column": "GeneratedTokens",
                    "speedup": 10,
                },
                "placement": {"pool": "h100x8"},
            }
        ],
    }
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "topology.yaml").write_text(yaml.safe_dump(topology))
        path = Path(folder) / "scenario.yaml"
        path.write_text(yaml.safe_dump(scenario))
        started = time.perf_counter()
        result = run(path, out_dir=Path(folder) / "out")
        elapsed = time.perf_counter() - started
    stats = result.stats
    return (
        stats.requests,
        stats.requests / elapsed,
        stats.events / stats.requests,
        stats.batch_steps / stats.events,
    )


def peak_rss_mb(n_requests: int) -> float:
    """Peak RSS of a `placesim run` child process, in MiB."""
    probe = (
        "import resource, subprocess, sys\n"
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    with tempfile.TemporaryDirectory() as out_dir:
        command = [
            sys.executable, "-c", probe,
            sys.executable, str(ROOT / "cli.py"), "run", str(SCENARIO),
            "--requests", str(n_requests), "--out", out_dir, "--quiet",
        ]  # fmt: skip
        printed = subprocess.run(command, check=True, capture_output=True, text=True)
    return int(printed.stdout.strip()) / 1024.0


def main() -> int:
    """Measure, print, and return 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args()
    n_speed = 100_000 if args.quick else 1_000_000
    n_small, n_large = (50_000, 500_000) if args.quick else (500_000, 5_000_000)

    reference = bare_simpy_requests_per_s(n_speed)
    ours, events = placesim_requests_per_s(n_speed)
    ratio = ours / reference
    print(f"requests: {n_speed:,}")
    print(f"bare simpy reference: {reference:,.0f} requests/s")
    print(f"placesim three_tier:  {ours:,.0f} requests/s ({events:.2f} events/request)")
    print(f"speed ratio: {ratio:.2f} (target >= {SPEED_TARGET})")

    n_tokens, token_rate, token_events, steps_per_event = token_level_requests_per_s()
    print(f"placesim token level (conversation trace x10, 8 H100, continuous): "
          f"{token_rate:,.0f} requests/s over {n_tokens:,} requests "
          f"({token_events:.2f} events/request, "
          f"{steps_per_event:.1f} decode steps/event)")  # fmt: skip

    small, large = peak_rss_mb(n_small), peak_rss_mb(n_large)
    growth = large / small
    print(f"peak RSS placesim run: {small:,.0f} MiB at {n_small:,} requests, "
          f"{large:,.0f} MiB at {n_large:,}")  # fmt: skip
    print(f"memory ratio: {growth:.2f} (target <= {MEMORY_TARGET})")
    return 0 if ratio >= SPEED_TARGET and growth <= MEMORY_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
