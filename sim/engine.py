"""The simpy model: requests cross the network, queue at pools and are served.

The hot path is built around events, not around one simpy process per request:

* Arrivals are generated in vectorised windows. One *window* event draws the
  next few thousand arrivals of every class (times, origins, pools, sizes,
  service times) with numpy and schedules, for each request, a single event at
  the moment it reaches its pool: crossing a route is a pure delay (latency plus
  bytes over bandwidth), so it needs no event of its own.
* A FIFO pool with ``c`` servers needs no completion event either. Requests are
  served in the order they reach the pool, so the start of service is the later
  of the arrival and the earliest time a server frees up; the pool keeps those
  free times in a heap (the Kiefer-Wolfowitz recursion). A finite waiting room
  counts the admitted requests whose service has not ended yet.
* The response's way back is again a pure delay, so the request's ledger row is
  complete when it is admitted (or dropped).

A request served by one pool therefore costs one simpy event; a chain of pools
costs one per pool. The engine never prints and never imports the CLI or Ray.

Pools with ``serving`` are built from :mod:`sim.serving`: they are *deferred*
(the engine hands them the visit and they call :meth:`Engine.finish` or
:meth:`Engine.drop` themselves), and a continuous-batching pool adds one event
per batch change. A pool with ``model_delivery`` is wrapped so that its first
visit starts the weights' transfer. Response caches are decided when a window
is drawn: a hit's row is written at once, with no event.
"""

from __future__ import annotations

import gc
import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import simpy
from simpy.core import NORMAL
from simpy.events import Event

from sim.ledger import DROPPED, SERVED, LedgerWriter
from sim.placing import Placing
from sim.schema import LoadedScenario, Outage, RequestClass
from sim.schema import Pool as PoolSpec
from sim.serving import (
    CacheTable,
    ColdStartPool,
    ContinuousBatchingPool,
    Delivery,
    SequentialServingPool,
    artifact_bytes,
    cold_start_s,
    profile_of,
)
from sim.topology import Network
from sim.workload import ClassStream, Draws

__all__ = ["Engine", "EngineStats", "FifoPool"]

ProgressHook = Callable[[float], None]
Visit = tuple[Any, ...]
"""A pool visit: (request, stage, pool, service_s, uplink_s, downlink_s, following).

`request` is the tuple of the request's own ledger fields; `following` is the
next visit of a chain without its request, or None on the last stage.
"""
NAN = float("nan")


class FifoPool:
    """A pool of identical servers with a FIFO queue and an optional size limit.

    Parameters
    ----------
    index
        Position of the pool in the engine's pool list (its ledger code).
    servers
        Number of requests served in parallel.
    queue_capacity
        Waiting places besides the servers; None for an unlimited queue.

    Examples
    --------
    >>> pool = FifoPool(0, servers=1, queue_capacity=0)
    >>> pool.admit(0.0, 2.0), pool.admit(1.0, 2.0), pool.admit(2.0, 2.0)
    (0.0, -1.0, 2.0)
    """

    __slots__ = ("_free_at", "_in_system", "_limit", "index")
    deferred = False
    """FIFO service ends are known on admission, so the engine records them then."""

    def __init__(self, index: int, servers: int, queue_capacity: int | None) -> None:
        self.index = index
        self._free_at = [0.0] * servers
        self._in_system: list[float] = []
        self._limit = servers + queue_capacity if queue_capacity is not None else None

    def admit(self, now_s: float, service_s: float) -> float:
        """Queue a request arriving at `now_s`; its start time, or -1.0 if dropped."""
        in_system = self._in_system
        while in_system and in_system[0] <= now_s:
            heapq.heappop(in_system)
        if self._limit is not None and len(in_system) >= self._limit:
            return -1.0

        free_s = self._free_at[0]
        start_s = free_s if free_s > now_s else now_s
        heapq.heapreplace(self._free_at, start_s + service_s)
        heapq.heappush(in_system, start_s + service_s)
        return start_s

    def up(self, now_s: float) -> bool:
        """Whether the pool admits requests at `now_s` (always, without outages)."""
        return True

    def in_system(self, now_s: float) -> int:
        """Requests queued or in service at `now_s` (call with non-decreasing times)."""
        while self._in_system and self._in_system[0] <= now_s:
            heapq.heappop(self._in_system)
        return len(self._in_system)

    def hold_until(self, ready_s: float) -> None:
        """Start no service before `ready_s` (a cold start); raising keeps the heap."""
        self._free_at = [max(free_s, ready_s) for free_s in self._free_at]


class OutagePool(FifoPool):
    """A FIFO pool that is down, admitting nothing, during its outages.

    Requests already admitted are served as planned; arrivals during an
    outage are dropped, and placement policies see the pool as down.
    """

    __slots__ = ("_outages",)

    def __init__(
        self,
        index: int,
        servers: int,
        queue_capacity: int | None,
        outages: Sequence[Outage],
    ) -> None:
        super().__init__(index, servers, queue_capacity)
        self._outages = [(o.start_s, o.end_s) for o in outages]

    def up(self, now_s: float) -> bool:
        """False inside any outage."""
        return not any(start <= now_s < end for start, end in self._outages)

    def admit(self, now_s: float, service_s: float) -> float:
        """Drop arrivals while down; otherwise as a FIFO pool."""
        if not self.up(now_s):
            return -1.0
        return super().admit(now_s, service_s)


@dataclass(frozen=True)
class EngineStats:
    """What one simulation did, besides the ledger it wrote."""

    requests: int
    ledger_rows: int
    events: int
    """simpy events processed: one per generation window, one per pool visit
    (none for a response-cache hit), and those of serving pools (see
    :mod:`sim.serving`)."""
    arrivals_end_s: float
    end_s: float
    batch_steps: int = 0
    """Decode steps run by continuous-batching pools."""
    deliveries: tuple[Delivery, ...] = ()
    """Model weights delivered on cold starts, one per pool that started."""
    provisioned: tuple[str, ...] = ()
    """Pools some class's placement can send requests to: the ones to pay for."""
    previous_pools: tuple[tuple[str, str, int, str], ...] = ()
    """(class, origin, stage, pool before it) for every stage after the first."""


class Engine:
    """One scenario's simulation.

    Parameters
    ----------
    loaded
        A validated scenario.
    ledger
        Where rows go; the engine appends and flushes, the caller closes.
    progress
        Called between windows with the share of the run done (0 to 1).
    window_requests
        About how many arrivals each generation window draws.
    """

    def __init__(
        self,
        loaded: LoadedScenario,
        ledger: LedgerWriter,
        *,
        progress: ProgressHook | None = None,
        window_requests: int = 16_384,
    ) -> None:
        self.env = simpy.Environment()
        self.loaded = loaded
        self.network = Network(loaded.topology)
        self.node_names = [n.name for n in loaded.topology.nodes]
        self.pool_names = list(self.network.pools)
        self.class_names = [c.name for c in loaded.scenario.classes]
        self.pools = [
            self._make_pool(i, p) for i, p in enumerate(self.network.pools.values())
        ]
        self._ledger = ledger
        self._progress = progress
        self._routes = _RouteTable(self.network, self.node_names, self.pool_names)
        self._routes.prepare(loaded)
        self._streams = _class_streams(loaded, self.pool_names, self.node_names)
        self._placing = Placing(self)
        for k, plan in self._placing.plans.items():
            self._streams[k].plan = plan
        self._caches = (
            CacheTable(
                loaded.topology,
                self._routes.first_routes,
                self.node_names,
                self.pool_names,
            )
            if CacheTable.present(loaded.topology)
            else None
        )
        self._cache_hits = 0

        rate_per_s = sum(s.mean_rate_per_s() for s in self._streams)
        self._window_s = window_requests / rate_per_s
        self._generated = 0
        self._events = 0
        self._last_arrival_s = 0.0

    def run(self) -> EngineStats:
        """Simulate until every request has finished; return the run's counts."""
        self._schedule(self._on_window, None, 0.0)
        # The per-request objects hold no reference cycles, so reference counting
        # frees them all; pausing the cyclic collector, which would otherwise
        # rescan every pending event again and again, makes a run about 1.6 times
        # faster.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self.env.run()
        finally:
            if collecting:
                gc.enable()
        self._ledger.flush()
        scenario = self.loaded.scenario
        arrivals_end_s = (
            scenario.duration_s
            if scenario.duration_s is not None and scenario.requests is None
            else self._last_arrival_s
        )
        pool_events = sum(getattr(pool, "events", 0) for pool in self.pools)
        visits = self._ledger.rows_written - self._cache_hits
        return EngineStats(
            requests=self._generated,
            ledger_rows=self._ledger.rows_written,
            events=self._events + visits + pool_events,
            arrivals_end_s=float(arrivals_end_s),
            end_s=float(self.env.now),
            batch_steps=sum(getattr(pool, "steps", 0) for pool in self.pools),
            deliveries=tuple(
                pool.delivery
                for pool in self.pools
                if isinstance(pool, ColdStartPool) and pool.delivery is not None
            ),
            provisioned=self._placing.provisioned(),
            previous_pools=self._placing.previous_pools(),
        )

    def _make_pool(self, index: int, spec: PoolSpec) -> Any:
        """A FIFO pool, or a serving pool; wrapped for its cold start if it has one."""
        capacity = None if spec.queue_capacity == "unlimited" else spec.queue_capacity
        pool: Any = (
            OutagePool(index, spec.servers, capacity, spec.outages)
            if spec.outages
            else FifoPool(index, spec.servers, capacity)
        )
        serving = spec.serving
        if serving is not None:
            share = serving.prefix_reuse_share
            if serving.batching == "continuous":
                profile = profile_of(spec)
                pool = ContinuousBatchingPool(
                    index, profile, spec.servers, capacity, share, self
                )
            else:
                pool = SequentialServingPool(index, profile_of(spec), pool, share, self)
        delivery = spec.model_delivery
        if delivery is None:
            return pool
        route = self.network.route(delivery.from_, self.network.pool_node[spec.name])
        size_bytes = artifact_bytes(delivery, spec)
        bottleneck_mbps = min(
            (link.bandwidth_mbps for link in route.links), default=math.inf
        )
        delay_s = cold_start_s(
            route.latency_s, bottleneck_mbps, size_bytes, delivery.load_s
        )
        return ColdStartPool(pool, delay_s, spec.name, delivery.from_, size_bytes, self)

    # --- arrivals ---------------------------------------------------------------

    def _on_window(self, event: Event) -> None:
        self._events += 1
        start_s = self.env.now
        end_s = start_s + self._window_s
        duration_s = self.loaded.scenario.duration_s
        if duration_s is not None:
            end_s = min(end_s, duration_s)

        batches = [stream.arrivals_before(end_s) for stream in self._streams]
        ids = self._assign_ids(batches)
        for k, (stream, times) in enumerate(zip(self._streams, batches, strict=True)):
            keep = ids[k] >= 0
            if keep.any():
                draws = stream.draw(times[keep], keep)
                self._schedule_requests(k, draws, ids[k][keep])

        self._ledger.flush_if_full()
        if self._progress is not None:
            self._progress(self._share_done(end_s))
        if not self._finished(end_s):
            self._schedule(self._on_window, None, end_s - start_s)

    def _assign_ids(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        """Number the window's arrivals in time order; -1 past the request cap."""
        sizes = [b.size for b in batches]
        times = np.concatenate(batches) if batches else np.empty(0)
        order = np.argsort(times, kind="stable")
        ids = np.empty(times.size, dtype=np.int64)
        ids[order] = self._generated + np.arange(times.size)

        cap = self.loaded.scenario.requests
        if cap is not None:
            ids[ids >= cap] = -1
        kept = int((ids >= 0).sum())
        if kept:
            self._last_arrival_s = max(
                self._last_arrival_s, float(times[ids >= 0].max())
            )
        self._generated += kept
        return np.split(ids, np.cumsum(sizes)[:-1])

    def _finished(self, end_s: float) -> bool:
        scenario = self.loaded.scenario
        if scenario.requests is not None and self._generated >= scenario.requests:
            return True
        if scenario.duration_s is not None and end_s >= scenario.duration_s:
            return True
        return all(stream.exhausted() for stream in self._streams)

    def _share_done(self, end_s: float) -> float:
        scenario = self.loaded.scenario
        shares = []
        if scenario.requests is not None:
            shares.append(self._generated / scenario.requests)
        if scenario.duration_s is not None:
            shares.append(end_s / scenario.duration_s)
        shares += [s.share_consumed() for s in self._streams if s.share_consumed() >= 0]
        return min(1.0, max(shares, default=0.0))

    def _schedule_requests(
        self, class_index: int, draws: Draws, ids: np.ndarray
    ) -> None:
        if class_index in self._placing.dynamic:
            self._schedule_decisions(class_index, draws, ids)
            return
        miss_s = None
        if self._caches is not None:
            draws, ids, miss_s = self._answer_from_caches(class_index, draws, ids)
            if ids.size == 0:
                return
        routes = self._routes
        first_pool = draws.pools[:, 0]
        uplink_s = routes.delay_s(draws.origin, first_pool, draws.request_bytes)
        uplink_s = uplink_s + self._placing.data_delay_s(class_index, first_pool)
        if miss_s is not None:
            uplink_s = uplink_s + miss_s
        last_pool = _last_visited(draws.pools)
        downlink_s = routes.delay_s(draws.origin, last_pool, draws.response_bytes)
        pool_arrival_s = draws.arrival_s + uplink_s

        requests = zip(*_request_columns(ids, draws), strict=True)
        if draws.pools.shape[1] == 1:
            visits = zip(
                first_pool.tolist(),
                draws.service_s[:, 0].tolist(),
                uplink_s.tolist(),
                downlink_s.tolist(),
                pool_arrival_s.tolist(),
                strict=True,
            )
            self._schedule_single(class_index, requests, visits)
        else:
            self._schedule_chains(class_index, requests, draws, uplink_s, downlink_s)

    def _answer_from_caches(
        self, class_index: int, draws: Draws, ids: np.ndarray
    ) -> tuple[Draws, np.ndarray, np.ndarray]:
        """Record the requests a response cache answers; return the others.

        A hit's row is complete at once: it crosses to the cache, waits
        `hit_latency_ms` and comes back, with no event and no pool visit; it is
        recorded under the pool it was headed for, flagged ``cache_hit``. The
        misses are returned with the lookup time they lose on the way.
        """
        caches = self._caches
        assert caches is not None
        assert draws.cache_u is not None
        origin, pool = draws.origin, draws.pools[:, 0]
        hit = draws.cache_u < caches.hit_ratio[origin, pool]
        if hit.any():
            self._cache_hits += int(hit.sum())
            o, p = origin[hit], pool[hit]
            arrival_s = draws.arrival_s[hit]
            s_per_byte = caches.s_per_byte[o, p]
            uplink_s = caches.latency_s[o, p] + draws.request_bytes[hit] * s_per_byte
            downlink_s = caches.latency_s[o, p] + draws.response_bytes[hit] * s_per_byte
            reached_s = arrival_s + uplink_s
            hit_s = caches.hit_s[o, p]
            first_token_s = np.where(caches.serving_pool[p], reached_s + hit_s, NAN)
            n = int(hit.sum())
            self._ledger.cache_rows.extend(
                zip(
                    ids[hit].tolist(),
                    [class_index] * n,
                    o.tolist(),
                    arrival_s.tolist(),
                    draws.request_bytes[hit].tolist(),
                    draws.response_bytes[hit].tolist(),
                    draws.input_tokens[hit].tolist(),
                    draws.output_tokens[hit].tolist(),
                    [0] * n,
                    p.tolist(),
                    uplink_s.tolist(),
                    reached_s.tolist(),
                    [0.0] * n,
                    hit_s.tolist(),
                    downlink_s.tolist(),
                    [SERVED] * n,
                    [True] * n,
                    first_token_s.tolist(),
                    [NAN] * n,
                    strict=True,
                )
            )
        miss = ~hit
        draws = draws.subset(miss)
        return draws, ids[miss], caches.miss_s[draws.origin, draws.pools[:, 0]]

    def _schedule_single(self, class_index: int, requests: zip, visits: zip) -> None:
        env = self.env
        schedule = env.schedule
        now_s = env.now
        pools = self.pools
        arrive = self._arrive
        for (rid, origin, t, req_b, resp_b, in_tok, out_tok), visit in zip(
            requests, visits, strict=True
        ):
            pool, service_s, uplink_s, downlink_s, at_s = visit
            value = (
                (rid, class_index, origin, t, req_b, resp_b, in_tok, out_tok),
                0,
                pools[pool],
                service_s,
                uplink_s,
                downlink_s,
                None,
            )
            schedule(_Callback(env, arrive, value), NORMAL, at_s - now_s)

    def _schedule_chains(
        self,
        class_index: int,
        requests: zip,
        draws: Draws,
        uplink_s: np.ndarray,
        downlink_s: np.ndarray,
    ) -> None:
        pools = draws.pools
        n_stages = pools.shape[1]
        # Stages a request skips (-1, a cascade that stops early) cost nothing.
        hops_s = [
            np.where(
                pools[:, k] >= 0,
                self._routes.hop_s(
                    pools[:, k - 1], np.maximum(pools[:, k], 0), draws.request_bytes
                ),
                0.0,
            )
            for k in range(1, n_stages)
        ]
        stages = (pools >= 0).sum(axis=1)
        for i, request in enumerate(requests):
            rid, origin, t, req_b, resp_b, in_tok, out_tok = request
            last = int(stages[i]) - 1
            following = None
            for k in range(last, 0, -1):
                following = (
                    k,
                    self.pools[int(pools[i, k])],
                    float(draws.service_s[i, k]),
                    float(hops_s[k - 1][i]),
                    float(downlink_s[i]) if k == last else 0.0,
                    following,
                )
            value = (
                (rid, class_index, origin, t, req_b, resp_b, in_tok, out_tok),
                0,
                self.pools[int(pools[i, 0])],
                float(draws.service_s[i, 0]),
                float(uplink_s[i]),
                float(downlink_s[i]) if last == 0 else 0.0,
                following,
            )
            self._schedule(self._arrive, value, t + float(uplink_s[i]) - self.env.now)

    def _schedule_decisions(
        self, class_index: int, draws: Draws, ids: np.ndarray
    ) -> None:
        """One event per request when it leaves its origin, for a dynamic policy."""
        decide = self._decide
        now_s = self.env.now
        candidates = draws.pools[0].tolist() if len(draws.pools) else []
        rows = zip(*_request_columns(ids, draws), draws.service_s.tolist(), strict=True)
        for rid, origin, t, req_b, resp_b, in_tok, out_tok, service in rows:
            request = (rid, class_index, origin, t, req_b, resp_b, in_tok, out_tok)
            value = (request, dict(zip(candidates, service, strict=True)))
            self._schedule(decide, value, t - now_s)

    def _decide(self, event: Event) -> None:
        """Ask the class's policy for a pool, then send the request there."""
        self._events += 1
        request, service_by_pool = event._value
        _, class_index, origin, _, req_b, resp_b, _, _ = request
        pool = self._placing.choose(class_index, self.env._now, origin, req_b, resp_b)
        routes = self._routes
        uplink_s = routes.delay_one_s(origin, pool, req_b)
        downlink_s = routes.delay_one_s(origin, pool, resp_b)
        value = (
            request,
            0,
            self.pools[pool],
            service_by_pool[pool],
            uplink_s,
            downlink_s,
            None,
        )
        self._schedule(self._arrive, value, uplink_s)

    # --- pools ------------------------------------------------------------------

    def _arrive(self, event: Event) -> None:
        """A request reaches a pool: admit or drop it, or hand it to the pool."""
        visit = event._value
        pool = visit[2]
        now_s = self.env._now
        if pool.deferred:
            pool.join(now_s, visit)
            return
        start_s = pool.admit(now_s, visit[3])
        if start_s < 0.0:
            self.drop(visit, now_s)
        else:
            self.finish(visit, now_s, start_s, visit[3])

    def drop(self, visit: Visit, pool_arrival_s: float) -> None:
        """Record a visit whose pool turned it away; the request ends there."""
        request, stage, pool, _, uplink_s, _, _ = visit
        self._ledger.rows.append(
            (*request, stage, pool.index, uplink_s, pool_arrival_s)
            + (0.0, 0.0, 0.0, DROPPED, True, NAN, NAN)
        )

    def finish(
        self,
        visit: Visit,
        pool_arrival_s: float,
        start_s: float,
        service_s: float,
        first_token_s: float = NAN,
        tpot_s: float = NAN,
    ) -> None:
        """Record a served visit and send the request on to its next pool, if any.

        Pools that decide service times as they go (``deferred`` pools, such as
        continuous batching) call this when a request's service ends; FIFO pools
        are recorded as soon as they admit a request, since its start and end
        are then known.

        Parameters
        ----------
        visit
            The value of the arrival event, as built by the engine.
        pool_arrival_s, start_s
            When the request reached the pool and when its service began.
        service_s
            Time from the start of service to its end.
        first_token_s
            When the pool produced the request's first output token; NaN when
            tokens are not modelled.
        tpot_s
            Mean time per output token after the first; NaN when not modelled.
        """
        request, stage, pool, _, uplink_s, downlink_s, following = visit
        wait_s = start_s - pool_arrival_s
        if following is None:
            self._ledger.rows.append(
                (*request, stage, pool.index, uplink_s, pool_arrival_s, wait_s)
                + (service_s, downlink_s, SERVED, True, first_token_s, tpot_s)
            )
            return

        self._ledger.rows.append(
            (*request, stage, pool.index, uplink_s, pool_arrival_s, wait_s)
            + (service_s, 0.0, SERVED, False, first_token_s, tpot_s)
        )
        next_stage, next_pool, next_service_s, hop_s, next_downlink_s, rest = following
        value = (
            request,
            next_stage,
            next_pool,
            next_service_s,
            hop_s,
            next_downlink_s,
            rest,
        )
        end_s = start_s + service_s
        self._schedule(self._arrive, value, end_s + hop_s - self.env._now)

    def _schedule(
        self, callback: Callable[[Event], None], value: object, delay_s: float
    ) -> None:
        self.env.schedule(_Callback(self.env, callback, value), NORMAL, delay_s)


def _request_columns(ids: np.ndarray, draws: Draws) -> list[list[Any]]:
    """A request's own ledger fields, column by column, as Python lists."""
    return [
        ids.tolist(),
        draws.origin.tolist(),
        draws.arrival_s.tolist(),
        draws.request_bytes.tolist(),
        draws.response_bytes.tolist(),
        draws.input_tokens.tolist(),
        draws.output_tokens.tolist(),
    ]


def _last_visited(pools: np.ndarray) -> np.ndarray:
    """Each request's last pool: the last column not marked -1."""
    stages = (pools >= 0).sum(axis=1)
    return pools[np.arange(len(pools)), np.maximum(stages - 1, 0)]


class _Callback(Event):
    """An event already triggered with `value` that calls `callback` when processed.

    It is built in one step, without the generic event's extra calls, because
    the engine creates one for every pool visit.
    """

    def __init__(
        self, env: simpy.Environment, callback: Callable[[Event], None], value: object
    ) -> None:
        self.env = env
        self.callbacks = [callback]
        self._ok = True
        self._value = value


class _RouteTable:
    """Route delay terms for every node-to-pool pair a run uses, as arrays."""

    def __init__(self, network: Network, node_names: list[str], pool_names: list[str]):
        n_nodes, n_pools = len(node_names), len(pool_names)
        self._latency_s = np.full((n_nodes, n_pools), np.nan)
        self._s_per_byte = np.full((n_nodes, n_pools), np.nan)
        self._network = network
        self._node_names = node_names
        self._pool_names = pool_names
        self._pool_node_index = np.array(
            [node_names.index(network.pool_node[p]) for p in pool_names], dtype=np.int64
        )
        self.first_routes: dict[tuple[int, int], tuple[tuple[str, ...], Any]] = {}
        """Nodes and links from each origin to each first pool, by their positions."""

    def delay_s(
        self, nodes: np.ndarray, pools: np.ndarray, size_bytes: np.ndarray
    ) -> np.ndarray:
        """Route delay from each node to each pool's node for each message size."""
        return (
            self._latency_s[nodes, pools] + size_bytes * self._s_per_byte[nodes, pools]
        )

    def hop_s(
        self, from_pools: np.ndarray, to_pools: np.ndarray, size_bytes: np.ndarray
    ) -> np.ndarray:
        """Route delay between the nodes of two pools for each message size."""
        return self.delay_s(self._pool_node_index[from_pools], to_pools, size_bytes)

    def prepare(self, loaded: LoadedScenario) -> None:
        """Compute the routes of every origin-to-pool and pool-to-pool hop used."""
        pool_index = {name: i for i, name in enumerate(self._pool_names)}
        pairs: set[tuple[str, str]] = set()
        for cls in loaded.scenario.classes:
            if cls.placement.policy is not None:
                pairs |= self._policy_pairs(cls)
                continue
            pools = cls.placement.pools()
            if cls.placement.chain is not None:
                # Up to the first pool, between consecutive pools, back from the last.
                hops = zip(pools, pools[1:], strict=False)
                pairs |= {(self._network.pool_node[a], b) for a, b in hops}
                pools = [pools[0], pools[-1]]
            pairs |= {(origin, pool) for origin in cls.origins() for pool in pools}
        for node, pool in sorted(pairs):
            route = self._network.route_to_pool(node, pool)
            at = (self._node_names.index(node), pool_index[pool])
            self._latency_s[at] = route.latency_s
            self._s_per_byte[at] = route.s_per_byte

        for cls in loaded.scenario.classes:
            pools = cls.placement.pools()
            if cls.placement.policy is not None:
                pools = self.reachable_pools(list(cls.origins()))
            firsts = pools[:1] if cls.placement.chain is not None else pools
            for origin in cls.origins():
                for pool in firsts:
                    route = self._network.route_to_pool(origin, pool)
                    at = (self._node_names.index(origin), pool_index[pool])
                    self.first_routes[at] = (route.nodes, route.links)

    def reachable_pools(self, origins: list[str]) -> list[str]:
        """Pools every one of `origins` can reach over the links."""
        graph = self._network.graph
        reach = set.intersection(
            *(set(nx.node_connected_component(graph, o)) for o in origins)
        )
        return [p for p in self._pool_names if self._network.pool_node[p] in reach]

    def _policy_pairs(self, cls: RequestClass) -> set[tuple[str, str]]:
        """Every hop a policy-placed class may take: to, between and from pools."""
        origins = list(cls.origins())
        pools = self.reachable_pools(origins)
        pool_node = self._network.pool_node
        pairs = {(origin, pool) for origin in origins for pool in pools}
        pairs |= {(pool_node[a], b) for a in pools for b in pools}
        data_node = cls.placement.data_node
        if data_node is not None:
            pairs |= {(data_node, p) for p in self.reachable_pools([data_node])}
        return pairs

    def delay_one_s(self, node: int, pool: int, size_bytes: float) -> float:
        """Route delay from one node to one pool for one message size."""
        return float(
            self._latency_s[node, pool] + size_bytes * self._s_per_byte[node, pool]
        )


def _class_streams(
    loaded: LoadedScenario, pool_names: list[str], node_names: list[str]
) -> list[ClassStream]:
    pool_index = {name: i for i, name in enumerate(pool_names)}
    node_index = {name: i for i, name in enumerate(node_names)}
    root = np.random.SeedSequence(loaded.scenario.seed)
    children = root.spawn(len(loaded.scenario.classes))
    return [
        ClassStream(cls, child, loaded, pool_index, node_index)
        for cls, child in zip(loaded.scenario.classes, children, strict=True)
    ]
