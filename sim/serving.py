"""Token-level serving: prefill and decode on a hardware profile, with batching.

A pool with a ``serving`` block serves requests from their token counts and
the (model, hardware) profile of :mod:`sim.profiles`, not from a service-time
distribution. ``servers`` is the number of replicas; each replica runs its own
batch (a replica of a tensor-parallel profile spans ``devices_per_replica``
devices).

**Continuous batching** (``batching: continuous``). A replica runs decode
steps. At each step boundary, finished requests leave and waiting requests
join, in arrival order, while the batch stays within ``max_batch`` and the KV
reservations (``input + output`` tokens per request) within
``kv_cache_tokens``. The step a request joins prefills its prompt and emits its
first output token; every later step emits one more token. A step with ``b``
running requests, ``n`` of which join in it, takes::

    step_s = decode_step_s(b) + sum over the n joiners of prefill_s(input_i)

where ``prefill_s(x) = x * (1 - prefix_reuse_share) / prefill_tokens_per_s``.
A request with ``o`` output tokens stays ``max(o, 1)`` steps: it starts at the
boundary it joins, its first token is out at the end of that step
(``first_token_s``), and it leaves at the end of its last step;
``tpot_s = (finish - first_token) / (o - 1)`` (NaN when ``o <= 1``).
``queue_wait_s`` runs from reaching the pool to the boundary it joins at, and
``service_s`` from there to its last token.

**No batching** (``batching: none``). Each replica serves one request at a
time, FIFO, for ``prefill_s(input) + max(o, 1) * decode_step_s(1)``: the
queueing is exactly that of a FIFO pool with that service time.

Requests whose KV reservation exceeds ``kv_cache_tokens`` can never run and
are dropped on arrival. ``queue_capacity`` bounds the requests that found no
batch room (the waiting queue), not those already assigned to a batch.

**Events.** A replica keeps its running requests in a heap keyed by the step
at which each finishes, and steps are coalesced: while the batch does not
change, every step takes the same time, so one simpy event is scheduled for the
next step at which the batch changes (a request finishes, or requests that
arrived meanwhile join). The work of a boundary is O(requests leaving or
joining), never O(batch). Each step costs at most one event; an arrival that
brings the next boundary forward leaves the event scheduled before it to fire
as a no-op, so an arrival costs at most one event more.

**Caches and model delivery.** :class:`CacheTable` holds, for each origin and
first pool, the response cache a request meets on its way (see
:class:`sim.schema.ResponseCache`). :class:`ColdStartPool` holds a pool's
requests until its model weights arrive (see :class:`sim.schema.ModelDelivery`);
the time waited is part of ``queue_wait_s``. The deliveries made are listed in
``EngineStats.deliveries`` (:class:`Delivery`); :func:`delivery_bytes` and
:func:`deliveries_frame` give them to the cost model.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import polars as pl
import simpy
from simpy.events import NORMAL, Event

from sim.profiles import Profile, load_profiles
from sim.schema import ModelDelivery, Pool, ResponseCache, Topology

__all__ = [
    "CacheTable",
    "ColdStartPool",
    "ContinuousBatchingPool",
    "Delivery",
    "SequentialServingPool",
    "batch_slots",
    "cold_start_s",
    "deliveries_frame",
    "delivery_bytes",
    "profile_of",
]

NAN = float("nan")
Visit = tuple[Any, ...]
"""A pool visit as the engine builds it; ``visit[0][6:8]`` are its tokens."""
_INPUT_TOKENS, _OUTPUT_TOKENS = 6, 7


class Recorder(Protocol):
    """What a pool needs from the engine: its clock and the two ways a visit ends."""

    env: simpy.Environment

    def finish(
        self,
        visit: Visit,
        pool_arrival_s: float,
        start_s: float,
        service_s: float,
        first_token_s: float = ...,
        tpot_s: float = ...,
    ) -> None:
        """Record a served visit."""

    def drop(self, visit: Visit, pool_arrival_s: float) -> None:
        """Record a visit the pool turned away."""


class FifoAdmission(Protocol):
    """A FIFO pool's admission: start time of a request, or -1.0 if dropped."""

    def admit(self, now_s: float, service_s: float) -> float:
        """Queue a request; its start time, or -1.0 if dropped."""

    def hold_until(self, ready_s: float) -> None:
        """Let no service start before `ready_s`."""


def profile_of(pool: Pool) -> Profile:
    """The serving profile of a pool with a ``serving`` block.

    Examples
    --------
    >>> from sim.schema import Pool
    >>> pool = Pool.model_validate(
    ...     {"name": "g", "serving": {"model": "llama-3.1-8b",
    ...                               "hardware": "h100-sxm-80gb"}})
    >>> profile_of(pool).max_batch
    256
    """
    assert pool.serving is not None
    return load_profiles().get(pool.serving.model, pool.serving.hardware)


def batch_slots(pool: Pool) -> int:
    """Requests one server of `pool` runs at once: its maximum batch, or 1.

    Examples
    --------
    >>> from sim.schema import Pool
    >>> batch_slots(Pool(name="fifo"))
    1
    """
    if pool.serving is None or pool.serving.batching != "continuous":
        return 1
    return profile_of(pool).max_batch


class _Wakeup(Event):
    """An already-triggered event that calls `callback` with `value` when processed."""

    def __init__(
        self, env: simpy.Environment, callback: Callable[[Event], None], value: object
    ) -> None:
        self.env = env
        self.callbacks = [callback]
        self._ok = True
        self._value = value


# --- continuous batching ------------------------------------------------------------


class _Replica:
    """One replica's batch: running requests, joiners and its current run of steps.

    Steps ``k0, k0 + 1, ...`` started at `t0`; the first lasts `first_s`
    (decode plus the joiners' prefill), the others `step_s`, so step ``k``
    ends at ``t0 + first_s + (k - k0) * step_s``.
    """

    __slots__ = (
        "event_step",
        "first_s",
        "finishing",
        "generation",
        "k0",
        "kv_tokens",
        "pending",
        "running",
        "step_s",
        "steps",
        "t0",
    )

    def __init__(self) -> None:
        self.running = 0
        self.kv_tokens = 0
        self.pending: list[tuple[Any, ...]] = []
        self.finishing: list[tuple[Any, ...]] = []
        self.k0 = 0
        self.t0 = 0.0
        self.first_s = 0.0
        self.step_s = 0.0
        self.event_step = -1
        """Step at whose end the live wake-up fires; -1 when the replica is idle."""
        self.generation = 0
        self.steps = 0

    def end_s(self, step: int) -> float:
        return self.t0 + self.first_s + (step - self.k0) * self.step_s

    def next_boundary(self, now_s: float) -> int:
        """The first step ending at or after `now_s`: where an arrival joins."""
        first_end_s = self.t0 + self.first_s
        if now_s <= first_end_s:
            return self.k0
        step = self.k0 + math.ceil((now_s - first_end_s) / self.step_s)
        return step + 1 if self.end_s(step) < now_s else step


class ContinuousBatchingPool:
    """Replicas that decode their requests in continuously refilled batches.

    Parameters
    ----------
    index
        Position of the pool in the engine's pool list.
    profile
        The (model, hardware) profile that times prefill and decode steps.
    replicas
        Replicas, each with its own batch (the pool's ``servers``).
    queue_capacity
        Requests that may wait for batch room; None for no limit.
    prefix_reuse_share
        Share of every prompt whose KV is reused, so not prefilled.
    recorder
        The engine: its clock, and where served and dropped visits go.

    Examples
    --------
    One request of 10 prompt tokens and 3 output tokens on an idle H100:
    >>> import simpy
    >>> class Log:
    ...     env = simpy.Environment()
    ...     def finish(self, visit, arrival_s, start_s, service_s, first_s, tpot_s):
    ...         print(round(service_s, 6), round(first_s, 6), round(tpot_s, 6))
    ...     def drop(self, visit, arrival_s): print("dropped")
    >>> log = Log()
    >>> profile = load_profiles().get("llama-3.1-8b", "h100-sxm-80gb")
    >>> pool = ContinuousBatchingPool(0, profile, 1, None, 0.0, log)
    >>> pool.join(0.0, ((0, 0, 0, 0.0, 0, 0, 10, 3),))
    >>> log.env.run()
    0.0214 0.007314 0.007043
    """

    deferred = True
    """Service ends are decided step by step, so the pool reports them itself."""

    def in_system(self, now_s: float) -> int:
        """Requests waiting for batch room plus those in the replicas' batches."""
        in_batches = sum(r.running + len(r.pending) for r in self._replicas)
        return len(self._waiting) + in_batches

    def up(self, now_s: float) -> bool:
        """Serving pools have no outages."""
        return True

    def __init__(
        self,
        index: int,
        profile: Profile,
        replicas: int,
        queue_capacity: int | None,
        prefix_reuse_share: float,
        recorder: Recorder,
    ) -> None:
        self.index = index
        self.events = 0
        """Wake-ups processed: boundaries, superseded wake-ups and the ready call."""
        self._recorder = recorder
        self._env = recorder.env
        self._step_table_s = profile.step_table_s()
        self._max_batch = profile.max_batch
        self._kv_capacity = profile.kv_cache_tokens
        self._prefill_s_per_token = (
            1.0 - prefix_reuse_share
        ) / profile.prefill_tokens_per_s
        self._replicas = [_Replica() for _ in range(replicas)]
        self._waiting: deque[tuple[Any, ...]] = deque()
        self._queue_capacity = queue_capacity
        self._ready = True
        self._sequence = 0

    @property
    def steps(self) -> int:
        """Decode steps completed by all replicas so far."""
        return sum(r.steps for r in self._replicas)

    def join(self, now_s: float, visit: Visit) -> None:
        """A request reaches the pool: start it, queue it, or drop it."""
        request = visit[0]
        input_tokens, output_tokens = request[_INPUT_TOKENS], request[_OUTPUT_TOKENS]
        kv_tokens = input_tokens + output_tokens
        if kv_tokens > self._kv_capacity:
            self._recorder.drop(visit, now_s)
            return

        entry = (
            visit,
            now_s,
            kv_tokens,
            input_tokens * self._prefill_s_per_token,
            max(output_tokens, 1),
        )
        replica = None if self._waiting or not self._ready else self._room(kv_tokens)
        if replica is None:
            if (
                self._queue_capacity is not None
                and len(self._waiting) >= self._queue_capacity
            ):
                self._recorder.drop(visit, now_s)
            else:
                self._waiting.append(entry)
            return
        self._assign(replica, entry, now_s)

    def hold_until(self, ready_s: float) -> None:
        """Serve nothing before `ready_s`; arrivals wait in the queue until then."""
        self._ready = False
        env = self._env
        delay_s = max(0.0, ready_s - env.now)
        env.schedule(_Wakeup(env, self._on_ready, None), NORMAL, delay_s)

    # --- internals ------------------------------------------------------------------

    def _room(self, kv_tokens: int) -> _Replica | None:
        """The least-occupied replica with a batch slot and KV room, if any."""
        best, best_load = None, self._max_batch
        for replica in self._replicas:
            load = replica.running + len(replica.pending)
            if load < best_load and replica.kv_tokens + kv_tokens <= self._kv_capacity:
                best, best_load = replica, load
        return best

    def _assign(self, replica: _Replica, entry: tuple[Any, ...], now_s: float) -> None:
        """Add a request to a replica's joiners and make sure a boundary comes."""
        replica.pending.append(entry)
        replica.kv_tokens += entry[2]
        if replica.event_step < 0:
            self._start_steps(replica, now_s, replica.k0)
            return
        step = replica.next_boundary(now_s)
        if step < replica.event_step:
            # The wake-up scheduled for a later step is superseded.
            replica.generation += 1
            self._wake_at(replica, step, now_s)

    def _pull(self, replica: _Replica) -> None:
        """Move waiting requests, in order, into the replica while they fit."""
        waiting = self._waiting
        room = self._max_batch - replica.running - len(replica.pending)
        while waiting and room > 0:
            kv_tokens = waiting[0][2]
            if replica.kv_tokens + kv_tokens > self._kv_capacity:
                return
            replica.pending.append(waiting.popleft())
            replica.kv_tokens += kv_tokens
            room -= 1

    def _start_steps(self, replica: _Replica, now_s: float, first_step: int) -> None:
        """Begin a run of steps at `now_s` with the joiners, or go idle."""
        pending = replica.pending
        running = replica.running + len(pending)
        if running == 0:
            replica.event_step = -1
            replica.k0 = first_step
            return

        step_s = self._step_table_s[running]
        first_s = step_s
        if pending:
            first_s += sum(entry[3] for entry in pending)
            first_token_s = now_s + first_s
            heap = replica.finishing
            for visit, arrival_s, kv_tokens, _, steps in pending:
                self._sequence += 1
                heapq.heappush(
                    heap,
                    (
                        first_step + steps - 1,
                        self._sequence,
                        visit,
                        arrival_s,
                        now_s,
                        first_token_s,
                        steps,
                        kv_tokens,
                    ),
                )
            replica.pending = []
        replica.running = running
        replica.k0, replica.t0 = first_step, now_s
        replica.first_s, replica.step_s = first_s, step_s
        self._wake_at(replica, replica.finishing[0][0], now_s)

    def _wake_at(self, replica: _Replica, step: int, now_s: float) -> None:
        replica.event_step = step
        delay_s = max(0.0, replica.end_s(step) - now_s)
        env = self._env
        wakeup = _Wakeup(env, self._on_boundary, (replica, replica.generation))
        env.schedule(wakeup, NORMAL, delay_s)

    def _on_boundary(self, event: Event) -> None:
        self.events += 1
        replica, generation = event._value
        if generation != replica.generation:
            return
        now_s = self._env._now
        step = replica.event_step
        replica.steps += step - replica.k0 + 1

        heap = replica.finishing
        finish = self._recorder.finish
        while heap and heap[0][0] <= step:
            _, _, visit, arrival_s, start_s, first_s, steps, kv_tokens = heapq.heappop(
                heap
            )
            replica.running -= 1
            replica.kv_tokens -= kv_tokens
            tpot_s = (now_s - first_s) / (steps - 1) if steps > 1 else NAN
            finish(visit, arrival_s, start_s, now_s - start_s, first_s, tpot_s)

        self._pull(replica)
        self._start_steps(replica, now_s, step + 1)

    def _on_ready(self, event: Event) -> None:
        self.events += 1
        self._ready = True
        now_s = self._env._now
        for replica in self._replicas:
            self._pull(replica)
            if replica.pending and replica.event_step < 0:
                self._start_steps(replica, now_s, replica.k0)


# --- no batching --------------------------------------------------------------------


class SequentialServingPool:
    """Replicas that serve one request at a time, FIFO, from its tokens.

    Service is ``prefill_s(input) + max(output, 1) * decode_step_s(1)``; the
    first token comes one decode step after the prefill.

    Parameters
    ----------
    index
        Position of the pool in the engine's pool list.
    profile
        The (model, hardware) profile.
    fifo
        The FIFO admission (servers and queue capacity) that queues requests.
    prefix_reuse_share
        Share of every prompt that is not prefilled.
    recorder
        The engine.
    """

    deferred = True
    """The pool reads tokens from the visit, so the engine hands visits over."""

    def in_system(self, now_s: float) -> int:
        """Requests queued or in service on the underlying FIFO servers."""
        return int(self._fifo.in_system(now_s))

    def up(self, now_s: float) -> bool:
        """As the underlying FIFO pool."""
        return bool(self._fifo.up(now_s))

    def __init__(
        self,
        index: int,
        profile: Profile,
        fifo: FifoAdmission,
        prefix_reuse_share: float,
        recorder: Recorder,
    ) -> None:
        self.index = index
        self._fifo = fifo
        self._recorder = recorder
        self._step_s = profile.decode_step_s(1)
        self._kv_capacity = profile.kv_cache_tokens
        self._prefill_s_per_token = (
            1.0 - prefix_reuse_share
        ) / profile.prefill_tokens_per_s

    def join(self, now_s: float, visit: Visit) -> None:
        """Queue the request FIFO and record its whole visit at once."""
        request = visit[0]
        input_tokens, output_tokens = request[_INPUT_TOKENS], request[_OUTPUT_TOKENS]
        if input_tokens + output_tokens > self._kv_capacity:
            self._recorder.drop(visit, now_s)
            return
        steps = max(output_tokens, 1)
        prefill_s = input_tokens * self._prefill_s_per_token
        service_s = prefill_s + steps * self._step_s
        start_s = self._fifo.admit(now_s, service_s)
        if start_s < 0.0:
            self._recorder.drop(visit, now_s)
            return
        tpot_s = self._step_s if steps > 1 else NAN
        self._recorder.finish(
            visit, now_s, start_s, service_s, start_s + prefill_s + self._step_s, tpot_s
        )

    def hold_until(self, ready_s: float) -> None:
        """Start no service before `ready_s`."""
        self._fifo.hold_until(ready_s)


# --- model delivery (cold start) -------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """Model weights sent to a pool on its cold start.

    Attributes
    ----------
    pool
        The pool that received them.
    source
        The node they came from.
    artifact_bytes
        Bytes moved over the route from `source` to the pool's node.
    requested_s
        When the first request reached the pool and the transfer began.
    ready_s
        When the pool could start serving.
    """

    pool: str
    source: str
    artifact_bytes: int
    requested_s: float
    ready_s: float


def cold_start_s(
    latency_s: float, bottleneck_mbps: float, artifact_bytes: int, load_s: float = 0.0
) -> float:
    """Time from a pool's first request until it can serve.

    The artifact streams over the route, so it takes the route's latency plus
    its size over the slowest link's bandwidth (not the per-message
    store-and-forward sum used for requests), then `load_s` to load.

    Examples
    --------
    >>> cold_start_s(0.010, 1000.0, 2_000_000_000)
    16.01
    """
    return latency_s + artifact_bytes * 8.0 / (bottleneck_mbps * 1e6) + load_s


class ColdStartPool:
    """A pool whose first request triggers the delivery of its model weights.

    Every visit waits until the weights are in (:meth:`join` of the wrapped
    pool is called at once, but the pool starts nothing before then), so the
    cold start is part of those requests' ``queue_wait_s``.

    Parameters
    ----------
    pool
        The pool to wrap: a FIFO or serving pool with ``hold_until``.
    delivery_s
        Cold-start time (:func:`cold_start_s`).
    name, source, artifact_bytes
        For the :class:`Delivery` record.
    recorder
        The engine, for the visits of a wrapped FIFO pool.
    """

    deferred = True
    """Visits go through the wrapper, which notes the first one."""

    def in_system(self, now_s: float) -> int:
        """As the wrapped pool."""
        return int(self.pool.in_system(now_s))

    def up(self, now_s: float) -> bool:
        """As the wrapped pool."""
        return bool(self.pool.up(now_s))

    def __init__(
        self,
        pool: Any,
        delivery_s: float,
        name: str,
        source: str,
        artifact_bytes: int,
        recorder: Recorder,
    ) -> None:
        self.index = pool.index
        self.pool = pool
        self.delivery: Delivery | None = None
        self._delivery_s = delivery_s
        self._name, self._source, self._bytes = name, source, artifact_bytes
        self._recorder = recorder

    @property
    def events(self) -> int:
        """Events processed by the wrapped pool."""
        return int(getattr(self.pool, "events", 0))

    @property
    def steps(self) -> int:
        """Decode steps of the wrapped pool."""
        return int(getattr(self.pool, "steps", 0))

    def join(self, now_s: float, visit: Visit) -> None:
        """Pass the visit on, starting the delivery on the first one."""
        if self.delivery is None:
            ready_s = now_s + self._delivery_s
            self.delivery = Delivery(
                self._name, self._source, self._bytes, now_s, ready_s
            )
            self.pool.hold_until(ready_s)
        pool = self.pool
        if pool.deferred:
            pool.join(now_s, visit)
            return
        start_s = pool.admit(now_s, visit[3])
        if start_s < 0.0:
            self._recorder.drop(visit, now_s)
        else:
            self._recorder.finish(visit, now_s, start_s, visit[3])


def artifact_bytes(delivery: ModelDelivery, pool: Pool) -> int:
    """Bytes of a pool's model artifact: as written, or the profile's weights."""
    if delivery.artifact_gb is not None:
        return round(delivery.artifact_gb * 1e9)
    return round(profile_of(pool).model_memory_gb * 1e9)


def delivery_bytes(deliveries: Iterable[Delivery]) -> dict[str, int]:
    """Bytes of model weights delivered to each pool (pools never started: absent).

    Examples
    --------
    >>> delivery_bytes([Delivery("edge", "cdn", 4_520_000_000, 1.0, 40.0)])
    {'edge': 4520000000}
    """
    moved: dict[str, int] = {}
    for delivery in deliveries:
        moved[delivery.pool] = moved.get(delivery.pool, 0) + delivery.artifact_bytes
    return moved


def deliveries_frame(deliveries: Iterable[Delivery]) -> pl.DataFrame:
    """The deliveries as a frame: pool, source, bytes, requested_s, ready_s.

    This is the table the cost model reads for ``model_delivery_bytes``.

    Examples
    --------
    >>> deliveries_frame([]).columns
    ['pool', 'source', 'model_delivery_bytes', 'requested_s', 'ready_s']
    """
    rows = [
        (d.pool, d.source, d.artifact_bytes, d.requested_s, d.ready_s)
        for d in deliveries
    ]
    return pl.DataFrame(
        rows,
        schema={
            "pool": pl.String,
            "source": pl.String,
            "model_delivery_bytes": pl.Int64,
            "requested_s": pl.Float64,
            "ready_s": pl.Float64,
        },
        orient="row",
    )


# --- response caches ----------------------------------------------------------------


class CacheTable:
    """The response cache each (origin node, first pool) pair meets, as arrays.

    A request's way to its first pool passes caches at nodes of its route
    (from the origin on) and then the pool's own cache; the first one met is
    the only one consulted. A hit is answered there after ``hit_latency_ms``
    and never reaches the pool; a miss goes on, ``miss_latency_ms`` later.

    Parameters
    ----------
    topology
        The topology holding node and pool caches.
    routes
        The route (node names and links) of each (origin, first pool) pair
        used, keyed by the pair's node and pool positions.
    node_names, pool_names
        Names in the engine's order.
    """

    def __init__(
        self,
        topology: Topology,
        routes: dict[tuple[int, int], tuple[tuple[str, ...], tuple[Any, ...]]],
        node_names: list[str],
        pool_names: list[str],
    ) -> None:
        shape = (len(node_names), len(pool_names))
        self.hit_ratio = np.zeros(shape)
        self.hit_s = np.zeros(shape)
        self.miss_s = np.zeros(shape)
        self.latency_s = np.zeros(shape)
        self.s_per_byte = np.zeros(shape)
        node_caches = {n.name: n.cache for n in topology.nodes if n.cache is not None}
        pools = {p.name: p for n in topology.nodes for p in n.pools}
        self.serving_pool = np.array(
            [pools[name].serving is not None for name in pool_names]
        )
        for (origin, pool), (nodes, links) in routes.items():
            found = _first_cache(nodes, links, node_caches, pools[pool_names[pool]])
            if found is None:
                continue
            cache, crossed = found
            at = (origin, pool)
            self.hit_ratio[at] = cache.hit_ratio
            self.hit_s[at] = cache.hit_latency_ms / 1000.0
            self.miss_s[at] = cache.miss_latency_ms / 1000.0
            self.latency_s[at] = sum(link.latency_ms for link in crossed) / 1000.0
            self.s_per_byte[at] = sum(
                8.0 / (link.bandwidth_mbps * 1e6) for link in crossed
            )

    @staticmethod
    def present(topology: Topology) -> bool:
        """True when any node or pool of the topology has a response cache."""
        return any(
            n.cache is not None or any(p.cache is not None for p in n.pools)
            for n in topology.nodes
        )


def _first_cache(
    nodes: tuple[str, ...],
    links: tuple[Any, ...],
    node_caches: dict[str, ResponseCache],
    pool: Pool,
) -> tuple[ResponseCache, tuple[Any, ...]] | None:
    """The first cache on a route and the links crossed to reach it."""
    for i, node in enumerate(nodes):
        if node in node_caches:
            return node_caches[node], links[:i]
    if pool.cache is not None:
        return pool.cache, links
    return None
