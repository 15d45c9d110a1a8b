"""The topology as a networkx graph, and routes computed once per node pair.

Every link is a two-way edge weighted by its one-way latency. A route is the
latency-shortest path between two nodes (networkx's Dijkstra), computed once for
each origin and pool that a scenario uses, never per request.

Crossing a route costs each link's latency plus the time to push the bytes
through it (store and forward): ``sum(latency_i + bytes * 8 / bandwidth_i)``.
A :class:`Route` keeps the two sums that make this one multiply-add per request.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from sim.schema import Link, Pool, Topology

__all__ = ["Network", "Route"]


@dataclass(frozen=True)
class Route:
    """A path through the topology and its delay terms.

    Attributes
    ----------
    nodes
        Node names from source to target.
    links
        The links crossed, in order.
    latency_s
        Sum of the links' one-way latencies, in seconds.
    s_per_byte
        Sum over links of 8 / bandwidth in bits per second: seconds per byte.
    """

    nodes: tuple[str, ...]
    links: tuple[Link, ...]
    latency_s: float
    s_per_byte: float

    def delay_s(self, size_bytes: float) -> float:
        """Time for a message of `size_bytes` to cross the route, in seconds.

        Examples
        --------
        >>> from sim.schema import Link
        >>> link = Link(a="x", b="y", latency_ms=5, bandwidth_mbps=8)
        >>> Route(("x", "y"), (link,), 0.005, 1e-6).delay_s(1000)
        0.006
        """
        return self.latency_s + size_bytes * self.s_per_byte


class Network:
    """A topology's graph with cached routes.

    Parameters
    ----------
    topology
        A validated topology.

    Examples
    --------
    >>> from sim.schema import Topology
    >>> topo = Topology.model_validate({
    ...     "name": "t",
    ...     "nodes": [{"name": "d", "kind": "device"}, {"name": "c", "kind": "cloud"}],
    ...     "links": [{"a": "d", "b": "c", "latency_ms": 10, "bandwidth_mbps": 100}],
    ... })
    >>> Network(topo).route("d", "c").latency_s
    0.01
    """

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.graph = _build_graph(topology)
        self.pool_node = {p.name: n.name for n in topology.nodes for p in n.pools}
        self.pools: dict[str, Pool] = {
            p.name: p for n in topology.nodes for p in n.pools
        }
        self._routes: dict[tuple[str, str], Route] = {}

    def route(self, source: str, target: str) -> Route:
        """The latency-shortest route from `source` to `target`, cached."""
        key = (source, target)
        if key not in self._routes:
            self._routes[key] = self._shortest(source, target)
        return self._routes[key]

    def route_to_pool(self, source: str, pool: str) -> Route:
        """The route from node `source` to the node that holds `pool`."""
        return self.route(source, self.pool_node[pool])

    def _shortest(self, source: str, target: str) -> Route:
        nodes = nx.dijkstra_path(self.graph, source, target, weight="latency_ms")
        links = tuple(
            self.graph.edges[u, v]["link"]
            for u, v in zip(nodes, nodes[1:], strict=False)
        )
        latency_s = sum(link.latency_ms for link in links) / 1000.0
        s_per_byte = sum(8.0 / (link.bandwidth_mbps * 1e6) for link in links)
        return Route(tuple(nodes), links, latency_s, s_per_byte)


def _build_graph(topology: Topology) -> nx.Graph:
    graph = nx.Graph(name=topology.name)
    for node in topology.nodes:
        graph.add_node(node.name, kind=node.kind, pools=[p.name for p in node.pools])

    # Parallel links between the same two nodes: keep the faster one for routing.
    for link in topology.links:
        if graph.has_edge(link.a, link.b):
            if graph.edges[link.a, link.b]["latency_ms"] <= link.latency_ms:
                continue
        graph.add_edge(link.a, link.b, latency_ms=link.latency_ms, link=link)
    return graph
