"""Arrivals and per-request draws, generated in vectorised batches.

Each request class owns independent random streams, one per purpose (arrivals,
origins, placement, sizes, tokens, service, response-cache hits), all spawned
from the scenario seed and the class's position. Changing one class's placement
or service therefore leaves every other draw unchanged: two placements compared
on the same seed see the same arrivals and request sizes (common random
numbers).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import polars as pl

from sim.schema import (
    Deterministic,
    Empirical,
    Exponential,
    Fixed,
    FromTrace,
    LoadedScenario,
    Lognormal,
    Poisson,
    RequestClass,
    TraceReplay,
    Uniform,
)

__all__ = ["ClassStream", "Draws", "read_trace"]

# New purposes go at the end: spawned seeds depend on position, so the earlier
# streams keep their draws.
_STREAMS = (
    "arrivals",
    "origin",
    "placement",
    "sizes",
    "tokens",
    "service",
    "cache",
    "policy",
)
# New streams go last: spawning more children leaves the earlier ones' draws
# unchanged, so existing seeds keep their results.


@dataclass(frozen=True)
class PolicyPlan:
    """How a class placed by a policy draws its pools.

    Attributes
    ----------
    chains
        For a static policy: the pools (positions) a request from each origin
        (node position) visits in order.
    candidates
        For a dynamic policy: every pool it may choose; the draws then carry
        one column per candidate (with its service time), and the engine picks
        one when the request leaves its origin.
    escalate_share
        For a cascade: the share of requests that go on past the first pool.
    """

    chains: dict[int, list[int]] | None = None
    candidates: list[int] | None = None
    escalate_share: float | None = None


_POISSON_BLOCK = 8192
MISSING_TOKENS = -1
"""Token count recorded when a class has no token model."""


@dataclass
class Draws:
    """Everything drawn for a batch of requests of one class, one row each.

    `pools` and `service_s` have one column per stage of the placement: a pool
    or split placement has one stage, a chain one per pool. A stage a request
    does not visit (a cascade that did not escalate) holds pool -1. For a
    dynamic policy the columns are its candidates instead.
    """

    arrival_s: np.ndarray
    origin: np.ndarray
    pools: np.ndarray
    service_s: np.ndarray
    request_bytes: np.ndarray
    response_bytes: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    cache_u: np.ndarray | None = None
    """One uniform per request deciding response-cache hits (None without caches).

    It is drawn for every request from its own stream, so a request's draw
    does not depend on the cache it meets: runs compared on one seed hit on
    the same requests (common random numbers)."""

    def subset(self, keep: np.ndarray) -> Draws:
        """The draws of the requests where `keep` is true."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return Draws(**{k: v if v is None else v[keep] for k, v in values.items()})


class _Trace:
    """A replayed trace: arrival offsets in seconds and its numeric columns."""

    def __init__(self, path: Path, arrival: TraceReplay) -> None:
        frame = read_trace(path, arrival.timestamp_column)
        self.arrival_s = frame["arrival_s"].to_numpy() / arrival.speedup
        self.columns = {
            name: frame[name].cast(pl.Float64, strict=False).to_numpy()
            for name in frame.columns
            if name != "arrival_s" and frame[name].dtype.is_numeric()
        }


def read_trace(path: Path, timestamp_column: str) -> pl.DataFrame:
    """Read a trace and express its timestamps as seconds after its first row.

    Timestamps may be numbers of seconds or date-time strings. Rows are sorted
    by time, keeping the file's order for equal times.

    Examples
    --------
    >>> read_trace(Path("trace.csv"), "TIMESTAMP")["arrival_s"][0]  # doctest: +SKIP
    0.0
    """
    if path.suffix.lower() == ".parquet":
        frame = pl.read_parquet(path)
    else:
        frame = pl.read_csv(path, infer_schema_length=10_000)

    stamp = frame[timestamp_column]
    if stamp.dtype == pl.String:
        stamp = stamp.str.to_datetime(time_unit="us")
    if stamp.dtype.is_temporal():
        seconds = stamp.dt.epoch("us").cast(pl.Float64) / 1e6
    else:
        seconds = stamp.cast(pl.Float64)

    frame = frame.with_columns((seconds - seconds.min()).alias("arrival_s"))
    return frame.sort("arrival_s", maintain_order=True)


class ClassStream:
    """The arrivals and draws of one request class.

    Parameters
    ----------
    cls
        The request class.
    seed_sequence
        The class's own seed sequence; its children feed each purpose.
    loaded
        The scenario, for pool defaults and file paths.
    pool_index
        Position of each pool name in the engine's pool list.
    node_index
        Position of each node name in the engine's node list.
    """

    def __init__(
        self,
        cls: RequestClass,
        seed_sequence: np.random.SeedSequence,
        loaded: LoadedScenario,
        pool_index: dict[str, int],
        node_index: dict[str, int],
    ) -> None:
        self.cls = cls
        self.plan: PolicyPlan | None = None
        """Set by the engine when the class is placed by a policy."""
        self._rng = {
            name: np.random.default_rng(child)
            for name, child in zip(
                _STREAMS, seed_sequence.spawn(len(_STREAMS)), strict=True
            )
        }
        self._loaded = loaded
        self._trace = (
            _Trace(loaded.resolve(cls.arrival.file), cls.arrival)
            if isinstance(cls.arrival, TraceReplay)
            else None
        )
        self._trace_next = 0
        self._pending = np.empty(0)
        self._last_s = 0.0
        self._fixed_next = 0

        origins = cls.origins()
        self._origin_ids = np.array([node_index[o] for o in origins])
        weights = np.array(list(origins.values()), dtype=float)
        self._origin_p = weights / weights.sum()
        self._stage_pools = _stage_pools(cls)
        self._pool_ids = (
            dict(pool_index)
            if cls.placement.policy is not None
            else {name: pool_index[name] for name in cls.placement.pools()}
        )
        self._empirical: dict[str, np.ndarray] = {}
        self._draws_cache = any(
            n.cache is not None or any(p.cache is not None for p in n.pools)
            for n in loaded.topology.nodes
        )

    # --- arrivals ---------------------------------------------------------------

    def mean_rate_per_s(self) -> float:
        """Long-run arrival rate, used to size generation windows."""
        arrival = self.cls.arrival
        if isinstance(arrival, Poisson):
            return arrival.rate_per_s
        if isinstance(arrival, Fixed):
            return 1000.0 / arrival.interval_ms
        assert self._trace is not None
        span_s = float(self._trace.arrival_s[-1]) if len(self._trace.arrival_s) else 0.0
        return len(self._trace.arrival_s) / max(span_s, 1e-9)

    def exhausted(self) -> bool:
        """True once a finite arrival process has nothing left."""
        return self._trace is not None and self._trace_next >= len(
            self._trace.arrival_s
        )

    def share_consumed(self) -> float:
        """Share of a replayed trace generated so far; -1.0 for open-ended arrivals."""
        if self._trace is None:
            return -1.0
        return self._trace_next / max(len(self._trace.arrival_s), 1)

    def arrivals_before(self, end_s: float) -> np.ndarray:
        """Arrival times from the last call up to, not including, `end_s`."""
        arrival = self.cls.arrival
        if isinstance(arrival, Poisson):
            return self._poisson_before(end_s, arrival.rate_per_s)
        if isinstance(arrival, Fixed):
            return self._fixed_before(end_s, arrival)
        return self._trace_before(end_s)

    def _poisson_before(self, end_s: float, rate_per_s: float) -> np.ndarray:
        parts = []
        while True:
            if self._pending.size == 0:
                gaps = self._rng["arrivals"].exponential(
                    1.0 / rate_per_s, _POISSON_BLOCK
                )
                self._pending = self._last_s + np.cumsum(gaps)
                self._last_s = float(self._pending[-1])
            cut = int(np.searchsorted(self._pending, end_s, side="left"))
            parts.append(self._pending[:cut])
            self._pending = self._pending[cut:]
            if self._pending.size:
                return np.concatenate(parts)

    def _fixed_before(self, end_s: float, arrival: Fixed) -> np.ndarray:
        interval_s = arrival.interval_ms / 1000.0
        start_s = arrival.start_ms / 1000.0
        last = int(np.ceil((end_s - start_s) / interval_s))
        first = self._fixed_next
        self._fixed_next = max(first, last)
        return start_s + np.arange(first, self._fixed_next) * interval_s

    def _trace_before(self, end_s: float) -> np.ndarray:
        assert self._trace is not None
        times = self._trace.arrival_s
        cut = int(np.searchsorted(times, end_s, side="left"))
        first, self._trace_next = self._trace_next, max(self._trace_next, cut)
        self._trace_rows = np.arange(first, self._trace_next)
        return times[first : self._trace_next]

    # --- per-request draws ---------------------------------------------------------

    def draw(self, arrival_s: np.ndarray, kept: np.ndarray | None = None) -> Draws:
        """Origins, pools, service times, sizes and tokens for these arrivals.

        `kept` marks which of the arrivals last returned by `arrivals_before`
        these are, when a request cap cut some: a replayed trace's own columns
        are then read for those rows only.
        """
        if kept is not None and self._trace is not None:
            self._trace_rows = self._trace_rows[kept]
        n = arrival_s.size
        origin = (
            self._origin_ids[
                self._rng["origin"].choice(len(self._origin_ids), n, p=self._origin_p)
            ]
            if len(self._origin_ids) > 1
            else np.full(n, self._origin_ids[0])
        )

        pools = self._draw_pools(n) if self.plan is None else self._plan_pools(origin)
        service_s = self._draw_service(pools)
        sizes = self._rng["sizes"]
        tokens = self._rng["tokens"]
        return Draws(
            arrival_s=arrival_s,
            origin=origin,
            pools=pools,
            service_s=service_s,
            request_bytes=self._draw_count(self.cls.request_bytes, n, sizes, 0),
            response_bytes=self._draw_count(self.cls.response_bytes, n, sizes, 0),
            input_tokens=self._draw_count(self.cls.input_tokens, n, tokens, 1),
            output_tokens=self._draw_count(self.cls.output_tokens, n, tokens, 2),
            cache_u=self._rng["cache"].random(n) if self._draws_cache else None,
        )

    def _draw_pools(self, n: int) -> np.ndarray:
        split = self.cls.placement.split
        if split is not None:
            names = list(split)
            weights = np.array([split[k] for k in names], dtype=float)
            ids = np.array([self._pool_ids[k] for k in names])
            chosen = self._rng["placement"].choice(
                len(ids), n, p=weights / weights.sum()
            )
            return ids[chosen].reshape(n, 1)
        ids = np.array([self._pool_ids[name] for name in self._stage_pools])
        return np.broadcast_to(ids, (n, len(ids)))

    def _plan_pools(self, origin: np.ndarray) -> np.ndarray:
        """Pools of a policy-placed class: per-origin chains, or the candidates."""
        plan = self.plan
        assert plan is not None
        n = origin.size
        if plan.candidates is not None:
            return np.broadcast_to(np.array(plan.candidates), (n, len(plan.candidates)))

        assert plan.chains is not None
        stages = max(len(chain) for chain in plan.chains.values())
        table = np.full((max(plan.chains) + 1, stages), -1, dtype=np.int64)
        for node, chain in plan.chains.items():
            table[node, : len(chain)] = chain
        pools = table[origin]
        if plan.escalate_share is not None:
            stays = self._rng["policy"].random(n) >= plan.escalate_share
            pools[stays, 1:] = -1
        return pools

    def _draw_service(self, pools: np.ndarray) -> np.ndarray:
        pool_names = {index: name for name, index in self._pool_ids.items()}
        service_s = np.full(pools.shape, np.nan)
        rng = self._rng["service"]
        for stage in range(pools.shape[1]):
            column = pools[:, stage]
            for pool_id in np.unique(column[column >= 0]):
                mask = column == pool_id
                dist = self.cls.service_time_ms or self._pool_service(
                    pool_names[pool_id]
                )
                if dist is None:
                    # A serving pool: its service follows from the tokens.
                    service_s[mask, stage] = np.nan
                    continue
                service_s[mask, stage] = (
                    self._sample(dist, int(mask.sum()), rng) / 1000.0
                )
        return service_s

    def _pool_service(self, pool: str) -> object:
        for node in self._loaded.topology.nodes:
            for candidate in node.pools:
                if candidate.name == pool:
                    return candidate.service_time_ms
        raise KeyError(pool)

    def _draw_count(
        self, spec: object, n: int, rng: np.random.Generator, which: int
    ) -> np.ndarray:
        trace_column = self._trace_token_column(which)
        if spec is None and trace_column is not None:
            return self._trace_values(trace_column).astype(np.int64)
        if spec is None:
            return np.full(n, MISSING_TOKENS, dtype=np.int64)
        if isinstance(spec, int):
            return np.full(n, spec, dtype=np.int64)
        return np.maximum(np.rint(self._sample(spec, n, rng)), 0).astype(np.int64)

    def _trace_token_column(self, which: int) -> str | None:
        arrival = self.cls.arrival
        if not isinstance(arrival, TraceReplay):
            return None
        return {1: arrival.input_tokens_column, 2: arrival.output_tokens_column}.get(
            which
        )

    def _trace_values(self, column: str) -> np.ndarray:
        assert self._trace is not None
        return self._trace.columns[column][self._trace_rows]

    def _sample(self, dist: object, n: int, rng: np.random.Generator) -> np.ndarray:
        if isinstance(dist, Exponential):
            return rng.exponential(dist.mean, n)
        if isinstance(dist, Deterministic):
            return np.full(n, dist.value)
        if isinstance(dist, Lognormal):
            sigma2 = np.log1p(dist.cv**2)
            return rng.lognormal(np.log(dist.mean) - sigma2 / 2, np.sqrt(sigma2), n)
        if isinstance(dist, Uniform):
            return rng.uniform(dist.low, dist.high, n)
        if isinstance(dist, Empirical):
            return rng.choice(self._empirical_values(dist), n) * dist.scale
        if isinstance(dist, FromTrace):
            return dist.offset + dist.scale * self._trace_values(dist.column)
        msg = f"unknown distribution {dist!r}"
        raise TypeError(msg)

    def _empirical_values(self, dist: Empirical) -> np.ndarray:
        key = f"{dist.file}:{dist.column}"
        if key not in self._empirical:
            path = self._loaded.resolve(dist.file)
            frame = (
                pl.read_parquet(path, columns=[dist.column])
                if path.suffix.lower() == ".parquet"
                else pl.read_csv(path, columns=[dist.column])
            )
            values = frame[dist.column].cast(pl.Float64).drop_nulls().to_numpy()
            self._empirical[key] = values
        return self._empirical[key]


def _stage_pools(cls: RequestClass) -> list[str]:
    placement = cls.placement
    if placement.chain is not None:
        return list(placement.chain)
    if placement.pool is not None:
        return [placement.pool]
    return []
