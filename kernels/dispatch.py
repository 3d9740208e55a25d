"""Dispatch kernels: the online dispatch rule over a whole arrival sequence, and min-cost flow for
rebalancing a backlog.

``dispatch_events`` applies, event by event in arrival order, exactly the rule of
:meth:`citygrid.engine.dispatch.dispatcher.Dispatcher.choose`:

- candidates come in tiers: the workers of the event's own grid (tier 0), then of the grids one hop
  away (tier 1), and so on; ``cand_workers[cand_offsets[g*T+h]:cand_offsets[g*T+h+1]]`` are the
  workers of grid ``g``'s tier ``h`` (``T`` tiers);
- a candidate is eligible when it is available (active, on duty), its shift covers the event's minute
  of the week, it has the event's requirement (department and skill) and its load is below its
  capacity;
- the first tier with an eligible worker wins; within it the least loaded, ties to the lowest worker
  index (workers are indexed in worker-id order, so the lowest id);
- the chosen worker's load grows by one; an event with a release time gives that unit back once the
  arrival sequence reaches that time (releases at or before an event's time come first).

``min_cost_flow`` is the primal-dual (successive shortest paths with blocking flows) algorithm on a
residual graph in CSR form; with all costs zero it is Dinic's maximum flow.

Kernels take flat buffers, write into caller-allocated outputs and never raise or validate.
"""

from __future__ import annotations

import numpy as np

from citygrid.kernels._jit import njit

#: Release time of an event that never leaves its worker's load during the sequence.
NEVER = np.iinfo(np.int64).max
#: Distance of an unreached node in the shortest-path search.
_INF = np.iinfo(np.int64).max // 4


@njit
def _heap_push(heap_time, heap_worker, size, t, w):
    i = size
    heap_time[i] = t
    heap_worker[i] = w
    while i > 0:
        parent = (i - 1) // 2
        if heap_time[parent] <= heap_time[i]:
            break
        heap_time[parent], heap_time[i] = heap_time[i], heap_time[parent]
        heap_worker[parent], heap_worker[i] = heap_worker[i], heap_worker[parent]
        i = parent
    return size + 1


@njit
def _heap_pop(heap_time, heap_worker, size):
    """Remove the root; return the new size (the root's values must be read before)."""
    size -= 1
    heap_time[0] = heap_time[size]
    heap_worker[0] = heap_worker[size]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        child = left
        if left + 1 < size and heap_time[left + 1] < heap_time[left]:
            child = left + 1
        if heap_time[i] <= heap_time[child]:
            break
        heap_time[child], heap_time[i] = heap_time[i], heap_time[child]
        heap_worker[child], heap_worker[i] = heap_worker[i], heap_worker[child]
        i = child
    return size


@njit
def dispatch_events(
    ev_grid, ev_req, ev_minute, ev_time, ev_release,
    cand_offsets, cand_workers, n_tiers,
    eligible, shift_of, shift_minutes, available, capacity,
    load, heap_time, heap_worker, heap_size,
    out_worker, out_tier,
):
    """Dispatch events ``0 … n-1`` in order (see the module docstring).

    ``ev_grid`` grid row (-1: none), ``ev_req`` requirement index (-1: none), ``ev_minute`` minute of
    the week of the dispatch time, ``ev_time`` the dispatch time, ``ev_release`` when the event stops
    counting on its worker (:data:`NEVER`: not in this sequence). ``eligible[w, r]`` worker ``w``
    meets requirement ``r``; ``shift_minutes[shift_of[w], minute]`` the shift covers that minute.
    ``load`` is updated in place; ``heap_*`` hold pending releases across calls (``heap_size`` is a
    one-element array; the heap arrays need room for every release pushed). Writes the chosen
    worker (-1: none eligible) and its tier (-1) into ``out_worker`` / ``out_tier``.
    """
    size = heap_size[0]
    for i in range(len(ev_grid)):
        t = ev_time[i]
        while size > 0 and heap_time[0] <= t:
            load[heap_worker[0]] -= 1
            size = _heap_pop(heap_time, heap_worker, size)
        out_worker[i] = -1
        out_tier[i] = -1
        g = ev_grid[i]
        r = ev_req[i]
        if g < 0 or r < 0:
            continue
        minute = ev_minute[i]
        best = -1
        for h in range(n_tiers):
            base = g * n_tiers + h
            for j in range(cand_offsets[base], cand_offsets[base + 1]):
                w = cand_workers[j]
                if not available[w] or not eligible[w, r]:
                    continue
                if load[w] >= capacity[w] or not shift_minutes[shift_of[w], minute]:
                    continue
                if best < 0 or load[w] < load[best] or (load[w] == load[best] and w < best):
                    best = w
            if best >= 0:
                out_tier[i] = h
                break
        if best >= 0:
            out_worker[i] = best
            load[best] += 1
            if ev_release[i] != NEVER:
                size = _heap_push(heap_time, heap_worker, size, ev_release[i], best)
    heap_size[0] = size


# ---------------------------------------------------------------------- min-cost flow


@njit
def _shortest_paths(node_offsets, node_arcs, arc_to, arc_cap, arc_cost, potential, source, sink,
                    dist, heap_d, heap_v):
    """Dijkstra on reduced costs from ``source``; stops once ``sink`` is settled. Returns dist[sink]."""
    dist[:] = _INF
    dist[source] = 0
    size = _heap_push(heap_d, heap_v, 0, 0, source)
    while size > 0:
        d = heap_d[0]
        u = heap_v[0]
        size = _heap_pop(heap_d, heap_v, size)
        if d > dist[u]:
            continue
        if u == sink:
            break
        for k in range(node_offsets[u], node_offsets[u + 1]):
            a = node_arcs[k]
            if arc_cap[a] <= 0:
                continue
            v = arc_to[a]
            nd = d + arc_cost[a] + potential[u] - potential[v]
            if nd < dist[v]:
                dist[v] = nd
                size = _heap_push(heap_d, heap_v, size, nd, v)
    return dist[sink]


@njit
def _augment_admissible(node_offsets, node_arcs, arc_to, arc_cap, arc_cost, potential, source, sink,
                        limit, level, it, queue, path):
    """Dinic's blocking flows on the arcs of zero reduced cost, up to ``limit`` units.
    Returns (flow, cost) pushed."""
    n_nodes = len(node_offsets) - 1
    pushed = 0
    cost = 0
    while pushed < limit:
        for v in range(n_nodes):
            level[v] = -1
        level[source] = 0
        head = 0
        tail = 0
        queue[tail] = source
        tail += 1
        while head < tail:
            u = queue[head]
            head += 1
            for k in range(node_offsets[u], node_offsets[u + 1]):
                a = node_arcs[k]
                v = arc_to[a]
                if arc_cap[a] > 0 and level[v] < 0 and arc_cost[a] + potential[u] - potential[v] == 0:
                    level[v] = level[u] + 1
                    queue[tail] = v
                    tail += 1
        if level[sink] < 0:
            break
        for v in range(n_nodes):
            it[v] = node_offsets[v]
        while pushed < limit:
            depth = 0
            u = source
            while u != sink:
                advanced = False
                while it[u] < node_offsets[u + 1]:
                    a = node_arcs[it[u]]
                    v = arc_to[a]
                    if (arc_cap[a] > 0 and level[v] == level[u] + 1
                            and arc_cost[a] + potential[u] - potential[v] == 0):
                        path[depth] = a
                        depth += 1
                        u = v
                        advanced = True
                        break
                    it[u] += 1
                if not advanced:
                    if u == source:
                        break
                    level[u] = -1
                    depth -= 1
                    u = arc_to[path[depth] ^ 1]
                    it[u] += 1
            if u != sink:
                break
            f = limit - pushed
            for k in range(depth):
                if arc_cap[path[k]] < f:
                    f = arc_cap[path[k]]
            for k in range(depth):
                a = path[k]
                arc_cap[a] -= f
                arc_cap[a ^ 1] += f
                cost += f * arc_cost[a]
            pushed += f
    return pushed, cost


@njit
def min_cost_flow(node_offsets, node_arcs, arc_to, arc_cap, arc_cost, source, sink, limit):
    """Send up to ``limit`` units from ``source`` to ``sink`` at least total cost.

    Arcs come in pairs (``a`` and ``a ^ 1`` are each other's reverse; a reverse arc starts with
    capacity 0 and the negated cost); every forward cost is >= 0. ``node_arcs[node_offsets[u]:
    node_offsets[u+1]]`` are the arcs leaving ``u``. ``arc_cap`` is left holding the residual
    capacities (the flow on arc ``a`` is the capacity now on ``a ^ 1``). Returns (flow, cost).
    """
    n_nodes = len(node_offsets) - 1
    potential = np.zeros(n_nodes, dtype=np.int64)
    dist = np.empty(n_nodes, dtype=np.int64)
    heap_d = np.empty(len(arc_to) + 1, dtype=np.int64)
    heap_v = np.empty(len(arc_to) + 1, dtype=np.int64)
    level = np.empty(n_nodes, dtype=np.int64)
    it = np.empty(n_nodes, dtype=np.int64)
    queue = np.empty(n_nodes, dtype=np.int64)
    path = np.empty(n_nodes, dtype=np.int64)
    flow = 0
    cost = 0
    while flow < limit:
        d_sink = _shortest_paths(node_offsets, node_arcs, arc_to, arc_cap, arc_cost, potential,
                                 source, sink, dist, heap_d, heap_v)
        if d_sink >= _INF:
            break
        for v in range(n_nodes):
            potential[v] += dist[v] if dist[v] < d_sink else d_sink
        f, c = _augment_admissible(node_offsets, node_arcs, arc_to, arc_cap, arc_cost, potential,
                                   source, sink, limit - flow, level, it, queue, path)
        if f == 0:
            break
        flow += f
        cost += c
    return flow, cost
