"""The per-request ledger, buffered in memory and streamed to Parquet in chunks.

One row is written for each visit of a request to a pool: one row per request
for a single pool or a split, one per pool for a chain. The row that ends a
request (the last visit, or the visit where it was dropped) has ``final`` set
and carries the end-to-end figures.

Columns (times in seconds from the start of the simulation):

============== ======= ==========================================================
request_id     int64   position of the request in arrival order
stage          int16   0 for the first pool visited, 1 for the next, ...
class          string  request class name
origin         string  node the request came from
pool           string  pool of this visit
arrival_s      float64 when the request left its origin
uplink_s       float64 network time to reach this pool (from the origin on stage
                       0, from the previous pool after)
pool_arrival_s float64 when it reached the pool
queue_wait_s   float64 time queued before service (null if dropped)
service_s      float64 service time (null if dropped)
downlink_s     float64 response time back to the origin (0 before the last
                       stage, null if dropped)
finish_s       float64 when the response reached the origin (final rows) or
                       service ended (earlier stages); null if dropped
latency_s      float64 end-to-end latency, on final served rows only
request_bytes  int64   bytes sent towards the pool
response_bytes int64   bytes of the response
input_tokens   int64   prompt tokens, null when not modelled
output_tokens  int64   generated tokens, null when not modelled
outcome        string  'served' or 'dropped'
final          bool    the last row of its request
warmup         bool    the request arrived during the warm-up
ttft_s         float64 time to first token, from leaving the origin to the first
                       output token produced, plus the way back (final rows of
                       token-level pools only)
tpot_s         float64 mean time per output token after the first (token-level
                       pools only)
cache_hit      bool    answered by a response cache on the way to `pool`, which
                       it never reached: `uplink_s` and `downlink_s` are to and
                       from the cache, `service_s` its hit latency
============== ======= ==========================================================

A pool's cold start (waiting for its model weights) is part of `queue_wait_s`
of the requests that waited for it; see :mod:`sim.serving`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["LEDGER_SCHEMA", "OUTCOMES", "LedgerWriter", "Window"]

OUTCOMES = ("served", "dropped")
SERVED = 0
DROPPED = 1

_DICT = pa.dictionary(pa.int32(), pa.string())
LEDGER_SCHEMA = pa.schema(
    [
        ("request_id", pa.int64()),
        ("stage", pa.int16()),
        ("class", _DICT),
        ("origin", _DICT),
        ("pool", _DICT),
        ("arrival_s", pa.float64()),
        ("uplink_s", pa.float64()),
        ("pool_arrival_s", pa.float64()),
        ("queue_wait_s", pa.float64()),
        ("service_s", pa.float64()),
        ("downlink_s", pa.float64()),
        ("finish_s", pa.float64()),
        ("latency_s", pa.float64()),
        ("request_bytes", pa.int64()),
        ("response_bytes", pa.int64()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("outcome", _DICT),
        ("final", pa.bool_()),
        ("warmup", pa.bool_()),
        ("ttft_s", pa.float64()),
        ("tpot_s", pa.float64()),
        ("cache_hit", pa.bool_()),
    ]
)

# Position of each field in the row tuples the engine appends.
ROW_FIELDS = (
    "request_id",
    "class",
    "origin",
    "arrival_s",
    "request_bytes",
    "response_bytes",
    "input_tokens",
    "output_tokens",
    "stage",
    "pool",
    "uplink_s",
    "pool_arrival_s",
    "queue_wait_s",
    "service_s",
    "downlink_s",
    "outcome",
    "final",
    "first_token_s",
    "tpot_s",
)


@dataclass(frozen=True)
class Window:
    """The measurement window of a run, in simulated seconds.

    Requests arriving in ``[warmup_s, horizon_s)`` are measured; `horizon_s` is
    the end of arrivals (the duration, or the last arrival).
    """

    warmup_s: float
    horizon_s: float

    @property
    def length_s(self) -> float:
        """Length of the window; at least a nanosecond so rates stay finite."""
        return max(self.horizon_s - self.warmup_s, 1e-9)


class LedgerWriter:
    """Collects row tuples and writes them to a Parquet file chunk by chunk.

    The engine appends tuples in the order of :data:`ROW_FIELDS` to
    :attr:`rows` (a plain list, so the hot path pays one ``append``) and calls
    :meth:`flush_if_full` between batches. The file is written under a
    temporary name and renamed by :meth:`close`, so an interrupted run never
    leaves a partial ledger behind.

    Parameters
    ----------
    path
        Final path of the Parquet file.
    class_names, node_names, pool_names
        Names that the integer codes in the rows stand for.
    warmup_s
        Requests arriving before this time are flagged ``warmup``.
    chunk_rows
        Rows buffered before a chunk is written.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        class_names: Sequence[str],
        node_names: Sequence[str],
        pool_names: Sequence[str],
        *,
        warmup_s: float = 0.0,
        chunk_rows: int = 65_536,
    ) -> None:
        self.path = Path(path)
        self.rows: list[tuple[object, ...]] = []
        self.cache_rows: list[tuple[object, ...]] = []
        """Rows of response-cache hits, in the same layout; flagged `cache_hit`."""
        self.rows_written = 0
        self.chunk_rows = chunk_rows
        self._names = {
            "class": pa.array(list(class_names), pa.string()),
            "origin": pa.array(list(node_names), pa.string()),
            "pool": pa.array(list(pool_names), pa.string()),
            "outcome": pa.array(list(OUTCOMES), pa.string()),
        }
        self._warmup_s = warmup_s
        self._tmp_path = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._writer = pq.ParquetWriter(self._tmp_path, LEDGER_SCHEMA)

    def flush_if_full(self) -> None:
        """Write the buffered rows when there are at least `chunk_rows`."""
        if len(self.rows) + len(self.cache_rows) >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        """Write every buffered row as one chunk."""
        if not self.rows and not self.cache_rows:
            return
        table = self._table(self.rows, self.cache_rows)
        self._writer.write_table(table)
        self.rows_written += table.num_rows
        self.rows = []
        self.cache_rows = []

    def close(self) -> Path:
        """Write what is left, finish the file and move it to its final name."""
        self.flush()
        self._writer.close()
        os.replace(self._tmp_path, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial file after a failure."""
        self._writer.close()
        self._tmp_path.unlink(missing_ok=True)

    def _table(
        self, rows: list[tuple[object, ...]], cache_rows: list[tuple[object, ...]]
    ) -> pa.Table:
        # Every field is a number, and float64 holds the integer ones exactly
        # (below 2**53), so one conversion builds all columns at once.
        cache_hit = np.zeros(len(rows) + len(cache_rows), dtype=bool)
        if cache_rows:
            cache_hit[len(rows) :] = True
            rows = rows + cache_rows
        matrix = np.array(rows, dtype=np.float64)
        cols = {name: matrix[:, i] for i, name in enumerate(ROW_FIELDS)}
        dropped = cols["outcome"] == DROPPED
        final = cols["final"] != 0
        arrival_s = cols["arrival_s"]
        pool_arrival_s = cols["pool_arrival_s"]
        wait_s = cols["queue_wait_s"]
        service_s = cols["service_s"]
        downlink_s = cols["downlink_s"]
        finish_s = pool_arrival_s + wait_s + service_s + downlink_s
        # Time to first token as the client sees it: on the final visit, from
        # leaving the origin to the first token produced, plus the way back.
        ttft_s = np.where(final, cols["first_token_s"] - arrival_s + downlink_s, np.nan)

        arrays = {
            "request_id": pa.array(np.asarray(cols["request_id"], dtype=np.int64)),
            "stage": pa.array(np.asarray(cols["stage"], dtype=np.int16)),
            "class": self._coded("class", cols["class"]),
            "origin": self._coded("origin", cols["origin"]),
            "pool": self._coded("pool", cols["pool"]),
            "arrival_s": pa.array(arrival_s),
            "uplink_s": pa.array(np.asarray(cols["uplink_s"], dtype=np.float64)),
            "pool_arrival_s": pa.array(pool_arrival_s),
            "queue_wait_s": pa.array(wait_s, mask=dropped),
            "service_s": pa.array(service_s, mask=dropped),
            "downlink_s": pa.array(downlink_s, mask=dropped),
            "finish_s": pa.array(finish_s, mask=dropped),
            "latency_s": pa.array(finish_s - arrival_s, mask=dropped | ~final),
            "request_bytes": pa.array(np.asarray(cols["request_bytes"], np.int64)),
            "response_bytes": pa.array(np.asarray(cols["response_bytes"], np.int64)),
            "input_tokens": _tokens(cols["input_tokens"]),
            "output_tokens": _tokens(cols["output_tokens"]),
            "outcome": self._coded("outcome", cols["outcome"]),
            "final": pa.array(final),
            "warmup": pa.array(arrival_s < self._warmup_s),
            "ttft_s": pa.array(ttft_s, mask=np.isnan(ttft_s)),
            "tpot_s": pa.array(cols["tpot_s"], mask=np.isnan(cols["tpot_s"])),
            "cache_hit": pa.array(cache_hit),
        }
        return pa.Table.from_pydict(arrays, schema=LEDGER_SCHEMA)

    def _coded(self, field: str, codes: Sequence[object]) -> pa.DictionaryArray:
        indices = pa.array(np.asarray(codes, dtype=np.int32))
        return pa.DictionaryArray.from_arrays(indices, self._names[field])


def _tokens(values: Sequence[object]) -> pa.Array:
    array = np.asarray(values, dtype=np.int64)
    return pa.array(array, mask=array < 0)
