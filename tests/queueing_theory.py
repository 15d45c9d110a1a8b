"""Exact queueing-theory reference values and confidence-interval helpers.

The simulator's theory tests compare measured statistics against the closed
forms in this module.  Everything here is derived from textbook formulas
(Erlang B/C, Pollaczek-Khinchine, birth-death balance for M/M/c/K, Jackson
networks in series) and uses only the standard library, numpy and scipy.

Notation: ``lambda`` is the arrival rate, ``mu`` the per-server service rate,
``c`` the number of servers, ``A = lambda / mu`` the offered load in Erlangs
and ``rho = A / c`` the per-server utilisation.  Waits are times in queue
(before service starts); sojourns are waits plus service.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt
from scipy import stats

__all__ = [
    "FiniteQueueMetrics",
    "QueueMetrics",
    "batch_means",
    "erlang_b",
    "erlang_c",
    "md1_mean_wait",
    "mg1_mean_wait",
    "mm1",
    "mm1_relaxation_time",
    "mmc",
    "mmck",
    "proportion_ci",
    "replication_ci",
    "tandem_mm1",
]


# ---------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------


def _require_positive(name: str, value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        msg = f"{name} must be positive and finite, got {value!r}"
        raise ValueError(msg)


def _require_servers(servers: int) -> None:
    if isinstance(servers, bool) or not isinstance(servers, int) or servers < 1:
        msg = f"servers must be an integer >= 1, got {servers!r}"
        raise ValueError(msg)


def _require_stable(arrival_rate: float, capacity_rate: float) -> None:
    if arrival_rate >= capacity_rate:
        msg = (
            f"unstable queue: arrival rate {arrival_rate} >= total service "
            f"rate {capacity_rate}"
        )
        raise ValueError(msg)


def _require_probability(name: str, q: float) -> None:
    if not 0.0 <= q < 1.0:
        msg = f"{name} must be in [0, 1), got {q!r}"
        raise ValueError(msg)


def _require_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        msg = f"confidence must be in (0, 1), got {confidence!r}"
        raise ValueError(msg)


# ---------------------------------------------------------------------------
# Erlang formulas
# ---------------------------------------------------------------------------


def erlang_b(offered_load: float, servers: int) -> float:
    """Blocking probability of an M/M/c/c loss system (Erlang B).

    Uses the recursion ``B(0) = 1``,
    ``B(k) = A B(k-1) / (k + A B(k-1))``, which stays in ``[0, 1]`` and
    never forms ``A**c`` or ``c!``, so it is stable for large ``c``.

    Parameters
    ----------
    offered_load : float
        Offered load ``A = lambda / mu`` in Erlangs, ``>= 0``.
    servers : int
        Number of servers ``c >= 1``.

    Returns
    -------
    float
        Probability that an arriving customer finds all servers busy.
    """
    _require_servers(servers)
    if not (offered_load >= 0 and math.isfinite(offered_load)):
        msg = f"offered_load must be finite and >= 0, got {offered_load!r}"
        raise ValueError(msg)
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered_load * blocking / (k + offered_load * blocking)
    return blocking


def erlang_c(offered_load: float, servers: int) -> float:
    """Probability of waiting in an M/M/c queue (Erlang C).

    Computed from Erlang B as ``C = c B / (c - A (1 - B))``, which inherits
    the numerical stability of the Erlang B recursion.

    Parameters
    ----------
    offered_load : float
        Offered load ``A = lambda / mu`` in Erlangs, ``0 <= A < c``.
    servers : int
        Number of servers ``c >= 1``.

    Returns
    -------
    float
        Probability that an arriving customer has to queue.

    Raises
    ------
    ValueError
        If ``A >= c`` (no steady state exists).
    """
    blocking = erlang_b(offered_load, servers)
    _require_stable(offered_load, servers)
    return servers * blocking / (servers - offered_load * (1.0 - blocking))


# ---------------------------------------------------------------------------
# M/M/c
# ---------------------------------------------------------------------------


def _hypoexp_tail(rate_a: float, rate_b: float, t: float) -> float:
    """Return ``P(X + Y > t)`` for independent ``X ~ Exp(a)``, ``Y ~ Exp(b)``.

    The textbook form ``(b e^{-at} - a e^{-bt}) / (b - a)`` cancels badly
    when ``a ~ b``; with ``a <= b`` it is rewritten as
    ``e^{-at} (1 - a expm1(-(b-a)t) / (b-a))``, whose limit at ``a = b`` is
    ``e^{-at} (1 + a t)``.
    """
    low, high = sorted((rate_a, rate_b))
    gap = high - low
    ratio = -t if gap == 0.0 else math.expm1(-gap * t) / gap
    return math.exp(-low * t) * (1.0 - low * ratio)


def _invert_decreasing(tail: Callable[[float], float], target: float) -> float:
    """Smallest ``t >= 0`` with ``tail(t) <= target`` for a decreasing tail."""
    high = 1.0
    while tail(high) > target:
        high *= 2.0
    low = 0.0
    for _ in range(200):
        mid = 0.5 * (low + high)
        if tail(mid) > target:
            low = mid
        else:
            high = mid
        if high - low <= 1e-15 * high:
            break
    return high


@dataclass(frozen=True, slots=True)
class QueueMetrics:
    """Steady-state metrics of an M/M/c queue (infinite waiting room, FCFS).

    Attributes
    ----------
    arrival_rate, service_rate : float
        ``lambda`` and per-server ``mu``.
    servers : int
        Number of servers ``c``.
    utilisation : float
        ``rho = lambda / (c mu)``.
    prob_wait : float
        Erlang C, ``P(W > 0)``.
    mean_wait : float
        Mean time in queue ``W_q = C / (c mu - lambda)``.
    mean_sojourn : float
        Mean time in system ``W_q + 1 / mu``.
    mean_in_queue : float
        ``L_q = lambda W_q`` (Little).
    mean_in_system : float
        ``L = lambda W`` (Little).
    """

    arrival_rate: float
    service_rate: float
    servers: int
    utilisation: float
    prob_wait: float
    mean_wait: float
    mean_sojourn: float
    mean_in_queue: float
    mean_in_system: float

    @property
    def _drain_rate(self) -> float:
        """Rate ``c mu - lambda`` of the exponential part of the wait."""
        return self.servers * self.service_rate - self.arrival_rate

    def wait_tail(self, t: float) -> float:
        """Return ``P(W > t) = C exp(-(c mu - lambda) t)`` for ``t >= 0``."""
        return self.prob_wait * math.exp(-self._drain_rate * t)

    def wait_quantile(self, q: float) -> float:
        """Return the ``q``-quantile of the FCFS waiting time.

        The wait is 0 with probability ``1 - C`` and otherwise exponential
        with rate ``c mu - lambda``, so the quantile is 0 for
        ``q <= 1 - C`` and ``ln(C / (1 - q)) / (c mu - lambda)`` above.

        Parameters
        ----------
        q : float
            Probability level in ``[0, 1)``.
        """
        _require_probability("q", q)
        if 1.0 - q >= self.prob_wait:
            return 0.0
        return math.log(self.prob_wait / (1.0 - q)) / self._drain_rate

    def sojourn_tail(self, t: float) -> float:
        """Return ``P(T > t)`` for the FCFS sojourn ``T = W + S``.

        ``T`` is ``Exp(mu)`` with probability ``1 - C`` and the sum of
        ``Exp(c mu - lambda)`` and ``Exp(mu)`` with probability ``C``.  For
        ``c = 1`` this collapses to ``exp(-(mu - lambda) t)``.
        """
        no_wait = math.exp(-self.service_rate * t)
        waited = _hypoexp_tail(self._drain_rate, self.service_rate, t)
        return (1.0 - self.prob_wait) * no_wait + self.prob_wait * waited

    def sojourn_quantile(self, q: float) -> float:
        """Return the ``q``-quantile of the FCFS sojourn time.

        For M/M/1 this is the exponential quantile
        ``-ln(1 - q) / (mu - lambda)``; for ``c > 1`` the tail
        :meth:`sojourn_tail` is inverted numerically (bisection to about
        1e-15 relative).

        Parameters
        ----------
        q : float
            Probability level in ``[0, 1)``.
        """
        _require_probability("q", q)
        if self.servers == 1:
            return -math.log1p(-q) / self._drain_rate
        return _invert_decreasing(self.sojourn_tail, 1.0 - q)


def mmc(arrival_rate: float, service_rate: float, servers: int) -> QueueMetrics:
    """Steady-state metrics of the M/M/c queue.

    Parameters
    ----------
    arrival_rate : float
        Poisson arrival rate ``lambda > 0``.
    service_rate : float
        Exponential service rate per server ``mu > 0``.
    servers : int
        Number of servers ``c >= 1``.

    Returns
    -------
    QueueMetrics
        Utilisation, Erlang C and mean waits/sojourns/queue lengths.

    Raises
    ------
    ValueError
        If ``lambda >= c mu`` or a parameter is out of range.
    """
    _require_positive("arrival_rate", arrival_rate)
    _require_positive("service_rate", service_rate)
    _require_servers(servers)
    _require_stable(arrival_rate, servers * service_rate)
    prob_wait = erlang_c(arrival_rate / service_rate, servers)
    mean_wait = prob_wait / (servers * service_rate - arrival_rate)
    mean_sojourn = mean_wait + 1.0 / service_rate
    return QueueMetrics(
        arrival_rate=arrival_rate,
        service_rate=service_rate,
        servers=servers,
        utilisation=arrival_rate / (servers * service_rate),
        prob_wait=prob_wait,
        mean_wait=mean_wait,
        mean_sojourn=mean_sojourn,
        mean_in_queue=arrival_rate * mean_wait,
        mean_in_system=arrival_rate * mean_sojourn,
    )


def mm1(arrival_rate: float, service_rate: float) -> QueueMetrics:
    """Steady-state metrics of the M/M/1 queue (``mmc`` with one server).

    ``W_q = rho / (mu - lambda)``, ``W = 1 / (mu - lambda)``; the sojourn is
    exponential with rate ``mu - lambda``.  This is the ``cv = 1`` case of
    :func:`mg1_mean_wait`.
    """
    return mmc(arrival_rate, service_rate, 1)


def mm1_relaxation_time(arrival_rate: float, service_rate: float) -> float:
    """Relaxation time ``tau = 1 / (mu (1 - sqrt(rho))**2)`` of M/M/1.

    This is the time scale on which M/M/1 correlations decay (the spectral
    gap of the birth-death chain).  It is much longer than the mean sojourn
    ``1 / (mu - lambda)``: the ratio is ``(1 + sqrt(rho)) / (1 - sqrt(rho))``,
    about 18 at ``rho = 0.8`` and 38 at ``rho = 0.9``.  For ``rho -> 1``,
    ``tau ~ 4 / (mu (1 - rho)**2)``.  Use it to size batches for
    :func:`batch_means`.
    """
    _require_positive("arrival_rate", arrival_rate)
    _require_positive("service_rate", service_rate)
    _require_stable(arrival_rate, service_rate)
    rho = arrival_rate / service_rate
    return 1.0 / (service_rate * (1.0 - math.sqrt(rho)) ** 2)


# ---------------------------------------------------------------------------
# M/G/1
# ---------------------------------------------------------------------------


def mg1_mean_wait(arrival_rate: float, mean_service: float, service_cv: float) -> float:
    """Mean FCFS wait in queue of M/G/1 (Pollaczek-Khinchine).

    ``W_q = lambda E[S^2] / (2 (1 - rho)) = rho E[S] (1 + cv^2) / (2 (1 - rho))``
    with ``rho = lambda E[S]``.  ``cv = 0`` gives M/D/1 and ``cv = 1`` gives
    M/M/1.

    Parameters
    ----------
    arrival_rate : float
        Poisson arrival rate ``lambda > 0``.
    mean_service : float
        Mean service time ``E[S] > 0``.
    service_cv : float
        Coefficient of variation of the service time, ``>= 0``.

    Raises
    ------
    ValueError
        If ``rho >= 1`` or a parameter is out of range.
    """
    _require_positive("arrival_rate", arrival_rate)
    _require_positive("mean_service", mean_service)
    if not (service_cv >= 0 and math.isfinite(service_cv)):
        msg = f"service_cv must be finite and >= 0, got {service_cv!r}"
        raise ValueError(msg)
    rho = arrival_rate * mean_service
    _require_stable(rho, 1.0)
    return rho * mean_service * (1.0 + service_cv**2) / (2.0 * (1.0 - rho))


def md1_mean_wait(arrival_rate: float, service_time: float) -> float:
    """Mean wait in queue of M/D/1: ``rho D / (2 (1 - rho))`` (P-K, cv = 0)."""
    return mg1_mean_wait(arrival_rate, service_time, 0.0)


# ---------------------------------------------------------------------------
# M/M/c/K
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FiniteQueueMetrics:
    """Steady-state metrics of an M/M/c/K queue.

    Attributes
    ----------
    servers, capacity : int
        ``c`` and ``K`` (maximum number in system, servers included).
    state_probs : tuple of float
        ``p_0 .. p_K``.
    prob_block : float
        ``p_K``: fraction of arrivals lost (PASTA).
    throughput : float
        Admitted rate ``lambda (1 - p_K)``.
    utilisation : float
        Mean fraction of servers busy, ``throughput / (c mu)``.
    mean_in_system, mean_in_queue : float
        ``L`` and ``L_q``.
    mean_wait, mean_sojourn : float
        Mean queue and system times of admitted customers,
        ``L_q / throughput`` and ``L / throughput`` (Little).
    """

    servers: int
    capacity: int
    state_probs: tuple[float, ...]
    prob_block: float
    throughput: float
    utilisation: float
    mean_in_system: float
    mean_in_queue: float
    mean_wait: float
    mean_sojourn: float


def _mmck_state_probs(
    offered_load: float, servers: int, capacity: int
) -> tuple[float, ...]:
    """Birth-death stationary law of M/M/c/K, computed in log space."""
    log_terms = [0.0]
    for n in range(1, capacity + 1):
        log_terms.append(log_terms[-1] + math.log(offered_load / min(n, servers)))
    peak = max(log_terms)
    weights = [math.exp(term - peak) for term in log_terms]
    total = math.fsum(weights)
    return tuple(weight / total for weight in weights)


def mmck(
    arrival_rate: float, service_rate: float, servers: int, capacity: int
) -> FiniteQueueMetrics:
    """Steady-state metrics of M/M/c/K (finite system capacity ``K``).

    ``p_n`` is proportional to ``A^n / n!`` for ``n <= c`` and to
    ``A^c / c! * rho^(n-c)`` for ``c < n <= K``.  Any load is allowed since
    the state space is finite.  With ``K = c`` the blocking probability is
    Erlang B; as ``K -> infinity`` (and ``rho < 1``) the metrics tend to
    :func:`mmc`.

    Parameters
    ----------
    arrival_rate : float
        Poisson arrival rate ``lambda > 0`` (offered, before blocking).
    service_rate : float
        Per-server rate ``mu > 0``.
    servers : int
        ``c >= 1``.
    capacity : int
        ``K >= c``: servers plus waiting places.

    Returns
    -------
    FiniteQueueMetrics
    """
    _require_positive("arrival_rate", arrival_rate)
    _require_positive("service_rate", service_rate)
    _require_servers(servers)
    if isinstance(capacity, bool) or not isinstance(capacity, int):
        msg = f"capacity must be an integer, got {capacity!r}"
        raise ValueError(msg)
    if capacity < servers:
        msg = f"capacity {capacity} must be >= servers {servers}"
        raise ValueError(msg)
    probs = _mmck_state_probs(arrival_rate / service_rate, servers, capacity)
    throughput = arrival_rate * (1.0 - probs[-1])
    in_system = math.fsum(n * p for n, p in enumerate(probs))
    in_queue = math.fsum(max(n - servers, 0) * p for n, p in enumerate(probs))
    return FiniteQueueMetrics(
        servers=servers,
        capacity=capacity,
        state_probs=probs,
        prob_block=probs[-1],
        throughput=throughput,
        utilisation=throughput / (servers * service_rate),
        mean_in_system=in_system,
        mean_in_queue=in_queue,
        mean_wait=in_queue / throughput,
        mean_sojourn=in_system / throughput,
    )


# ---------------------------------------------------------------------------
# Tandem (Jackson) network
# ---------------------------------------------------------------------------


def tandem_mm1(
    arrival_rate: float,
    service_rates: Sequence[float],
    link_delays: Sequence[float] = (),
) -> float:
    """Mean end-to-end sojourn through M/M/1 stations in series.

    By Burke's theorem each station's departures are Poisson with rate
    ``lambda``, so (Jackson) the mean is ``sum_i 1 / (mu_i - lambda)`` plus
    the fixed, non-queueing link delays (any number of them, e.g.
    ``len(service_rates) - 1`` hops between stations).

    Parameters
    ----------
    arrival_rate : float
        External Poisson rate ``lambda > 0``.
    service_rates : sequence of float
        ``mu_i`` of each station, in order; each must exceed ``lambda``.
    link_delays : sequence of float, optional
        Deterministic delays ``>= 0`` added to the total.

    Returns
    -------
    float
        Mean end-to-end sojourn time.
    """
    if not service_rates:
        msg = "service_rates must not be empty"
        raise ValueError(msg)
    if any(not (delay >= 0 and math.isfinite(delay)) for delay in link_delays):
        msg = f"link_delays must be finite and >= 0, got {list(link_delays)!r}"
        raise ValueError(msg)
    stations = math.fsum(mm1(arrival_rate, mu).mean_sojourn for mu in service_rates)
    return stations + math.fsum(link_delays)


# ---------------------------------------------------------------------------
# Confidence intervals
# ---------------------------------------------------------------------------


def replication_ci(
    values: npt.ArrayLike, confidence: float = 0.99
) -> tuple[float, float]:
    """Student-t confidence interval for the mean of independent values.

    ``mean +- t_{(1+conf)/2, n-1} s / sqrt(n)``.

    Valid when the values are independent and identically distributed (one
    value per independent replication, or per batch) and their mean is close
    to normal: exact for normal data, otherwise by the CLT, which for skewed
    data such as queueing delays needs each value to be an average over many
    customers.

    Parameters
    ----------
    values : array_like
        At least two finite values.
    confidence : float, optional
        Two-sided confidence level in ``(0, 1)``, default 0.99.

    Returns
    -------
    tuple of float
        ``(mean, half_width)``.
    """
    _require_confidence(confidence)
    data = np.asarray(values, dtype=float).ravel()
    if data.size < 2 or not np.all(np.isfinite(data)):
        msg = f"need at least two finite values, got {data.size}"
        raise ValueError(msg)
    t_quantile = float(stats.t.ppf(0.5 + confidence / 2.0, data.size - 1))
    std_error = float(data.std(ddof=1)) / math.sqrt(data.size)
    return float(data.mean()), t_quantile * std_error


def batch_means(
    samples: npt.ArrayLike, n_batches: int = 20, confidence: float = 0.99
) -> tuple[float, float]:
    """Batch-means confidence interval for the mean of one correlated run.

    The run is cut into ``n_batches`` contiguous batches of equal length
    (the ``len % n_batches`` oldest samples are dropped) and
    :func:`replication_ci` is applied to the batch averages.

    Valid only if the batch averages are nearly independent and normal,
    i.e. each batch is much longer than the correlation time of the series,
    and the run is already in steady state (drop warm-up first).  Rule of
    thumb for M/M/1 waits: each batch should span at least about
    ``30 * tau`` of simulated time (``30 * lambda * tau`` customers), with
    ``tau = 1 / (mu (1 - sqrt(rho))**2)`` from :func:`mm1_relaxation_time`.
    The mean sojourn ``1 / (mu - lambda)`` is *not* the right scale: ``tau``
    is about 18 times longer at ``rho = 0.8``.  Simulated coverage of a
    nominal 0.99 interval with 20 batches (rho 0.5-0.9, stationary start):
    batches of ``tau`` give about 0.82-0.90, ``10 tau`` about 0.96-0.975,
    ``30 tau`` about 0.975-0.995.  For other models: estimate the
    autocorrelation from a pilot run and make batches at least ten times
    the integrated autocorrelation time; the lag-1 autocorrelation of the
    batch means should then be near zero.

    Parameters
    ----------
    samples : array_like
        Time-ordered observations from a single run.
    n_batches : int, optional
        Number of batches, ``>= 2``; 10-30 is usual.  Default 20.
    confidence : float, optional
        Two-sided confidence level, default 0.99.

    Returns
    -------
    tuple of float
        ``(mean of the batch means, half_width)``.
    """
    data = np.asarray(samples, dtype=float).ravel()
    if n_batches < 2 or data.size < n_batches:
        msg = f"need n_batches >= 2 and at least that many samples ({data.size})"
        raise ValueError(msg)
    batch_size = data.size // n_batches
    used = data[data.size - batch_size * n_batches :]
    return replication_ci(used.reshape(n_batches, batch_size).mean(axis=1), confidence)


def proportion_ci(
    successes: int, n: int, confidence: float = 0.99
) -> tuple[float, float]:
    """Normal-approximation (Wald) confidence interval for a proportion.

    ``p_hat +- z_{(1+conf)/2} sqrt(p_hat (1 - p_hat) / n)``.

    Valid for independent Bernoulli trials when ``n p_hat`` and
    ``n (1 - p_hat)`` are both at least about 10.  It degenerates to zero
    width at ``p_hat`` of 0 or 1 and under-covers for rare events (such as
    small blocking probabilities); use a Wilson or exact interval there.
    For correlated indicators from one run (e.g. per-request SLO hits),
    apply :func:`batch_means` to the 0/1 sequence instead.

    Parameters
    ----------
    successes : int
        Number of successes, ``0 <= successes <= n``.
    n : int
        Number of trials, ``>= 1``.
    confidence : float, optional
        Two-sided confidence level, default 0.99.

    Returns
    -------
    tuple of float
        ``(p_hat, half_width)``.
    """
    _require_confidence(confidence)
    if n < 1 or not 0 <= successes <= n:
        msg = f"need n >= 1 and 0 <= successes <= n, got {successes}/{n}"
        raise ValueError(msg)
    p_hat = successes / n
    z_quantile = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    return p_hat, z_quantile * math.sqrt(p_hat * (1.0 - p_hat) / n)
