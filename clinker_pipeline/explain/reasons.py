"""Why demand goes unserved, read off the solved plan.

The plan is a flow in the time-expanded network (node, period): production enters at IUs, lanes
move tonnes within a period, stock carries them to the next. A tonne more could reach an unmet
node-period only along an *augmenting path* of the plan's residual network: from spare supply
(capacity not used, stock left at the end) through lanes that could carry more (or carry less,
freeing tonnes), stock that could be carried or drawn down. In a serve-optimal plan no such path
exists; what cuts it is the reason. We ask, in order, which single kind of limit opens a path
when it is lifted:

1. `no_lane`: even with every limit lifted, nothing that makes or holds clinker reaches the node.
2. `whole_trip_remainder`: a path exists as the plan stands, but only through rake lanes that
   move whole trips; the spare is less than a trip (or a trip would not fit).
3. `dispatch_row_caps`: lifting the IUGUConstraint rows that bind opens a path (the rows named).
4. `stock_floor`: lifting closing-stock bounds that bind as well opens a path (floors named).
5. `fulfilment_floor_elsewhere`: letting nodes held at their minimum fulfilment give tonnes up
   opens a path (those nodes named).
6. `iu_at_capacity`: otherwise every IU that can reach the node is at capacity (IUs named).

`solver_tolerance` marks unmet below 0.01 t (the serve floor's own tolerance), and
`not_serve_optimal` remains only for plans the solver did not prove (time limit): spare supply
reaches the node through continuous lanes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from clinker_pipeline.explain.plan_arrays import PlanArrays
from clinker_pipeline.optimization.data import ModelData

ARC_TOL = 1e-4  # t: flow or room on an arc below this is none
SPARE_TOL = 1.0  # t: spare supply below a tonne is not spare
# t: unmet explained: what plan_unmet publishes as more than 0 (it rounds tonnes to 0.01 t)
UNMET_TOL = 0.005
ROUNDING_T = 0.01  # t: below this, unmet is the serve floor's tolerance (model.md), not a shortfall

REASON_COLUMNS = [
    "iugu_code",
    "time_period",
    "unmet_t",
    "reason",
    "text",
    "named_rows",
    "named_plants",
]

# kinds of limit an arc or source can carry
ROWS, STOCK, FLOORS = "rows", "stock", "floors"


@dataclass
class _Arcs:
    tail: list[np.ndarray] = field(default_factory=list)
    head: list[np.ndarray] = field(default_factory=list)
    kind: list[np.ndarray] = field(default_factory=list)  # "" free, or the limit that blocks it
    integral: list[np.ndarray] = field(default_factory=list)
    ref: list[np.ndarray] = field(default_factory=list)  # lane id or stock vertex

    def add(self, tail, head, kind, integral, ref) -> None:
        n = len(tail)
        self.tail.append(np.asarray(tail, dtype=int))
        self.head.append(np.asarray(head, dtype=int))
        self.kind.append(np.broadcast_to(np.asarray(kind, dtype=object), (n,)).copy())
        self.integral.append(np.broadcast_to(np.asarray(integral, dtype=bool), (n,)).copy())
        self.ref.append(np.broadcast_to(np.asarray(ref, dtype=int), (n,)).copy())

    def arrays(self):
        return tuple(
            np.concatenate(x) for x in (self.tail, self.head, self.kind, self.integral, self.ref)
        )


class _Graph:
    """Adjacency of arcs tail -> head in CSR form, for repeated searches from many starts."""

    def __init__(self, n: int, tail: np.ndarray, head: np.ndarray) -> None:
        order = np.argsort(tail, kind="stable")
        self.n = n
        self.head = head[order]
        self.indptr = np.searchsorted(tail[order], np.arange(n + 1))

    def reach(self, start: np.ndarray) -> np.ndarray:
        """Vertices reachable from `start` (bool mask), one frontier at a time."""
        seen = start.copy()
        frontier = np.nonzero(start)[0]
        while len(frontier):
            lo, hi = self.indptr[frontier], self.indptr[frontier + 1]
            counts = hi - lo
            total = int(counts.sum())
            if total == 0:
                break
            idx = np.repeat(lo - np.cumsum(np.r_[0, counts[:-1]]), counts) + np.arange(total)
            nxt = np.unique(self.head[idx])
            nxt = nxt[~seen[nxt]]
            seen[nxt] = True
            frontier = nxt
        return seen


def _reach(n: int, tail: np.ndarray, head: np.ndarray, start: np.ndarray) -> np.ndarray:
    return _Graph(n, tail, head).reach(start)


class ResidualNetwork:
    """The plan's residual network and which limit blocks each arc."""

    def __init__(self, data: ModelData, plan: PlanArrays) -> None:
        self.data, self.plan = data, plan
        n_t = data.n_periods
        self.n = data.n_nodes * n_t
        self.src = self.n  # the super source
        cap = data.capacity
        lo, hi = data.min_close, data.max_close
        stock, flow = plan.stock, plan.flow

        # rows that bind, per lane: forward blocked by L/E rows without room for one more unit
        # (a whole trip on a rake lane: 240 t of room under a cap does not fit a 3,000 t rake),
        # backward by G/E rows that cannot give up one
        unit = np.where(data.lane_mult > 1, data.lane_mult, ARC_TOL)
        self.fwd_rows: dict[int, list[int]] = {}
        self.rev_rows: dict[int, list[int]] = {}
        for r, row in enumerate(data.constraints):
            act = plan.row_activity[r]
            for k in row.lane_ids:
                k = int(k)
                if row.bound in "LE" and row.value - act < unit[k] - ARC_TOL / 2:
                    self.fwd_rows.setdefault(k, []).append(r)
                if row.bound in "GE" and act - row.value < unit[k] - ARC_TOL / 2:
                    self.rev_rows.setdefault(k, []).append(r)

        arcs = _Arcs()
        k = np.arange(len(flow))
        a = data.lane_from * n_t + data.lane_t
        b = data.lane_to * n_t + data.lane_t
        integral = data.lane_mult > 1
        fwd_kind = np.where(np.isin(k, list(self.fwd_rows)), ROWS, "")
        arcs.add(a, b, fwd_kind, integral, k)
        back = flow > ARC_TOL
        rev_kind = np.where(np.isin(k, list(self.rev_rows)), ROWS, "")
        arcs.add(b[back], a[back], rev_kind[back], integral[back], k[back])

        v = np.arange(self.n).reshape(data.n_nodes, n_t)[:, :-1].ravel()  # (n, t) with t < last
        s_lo, s_hi, s = lo.ravel()[v], hi.ravel()[v], stock.ravel()[v]
        arcs.add(v, v + 1, np.where(s >= s_hi - ARC_TOL, STOCK, ""), False, v)
        held = s > ARC_TOL
        arcs.add(
            (v + 1)[held],
            v[held],
            np.where(s[held] <= s_lo[held] + ARC_TOL, STOCK, ""),
            False,
            v[held],
        )

        # sources: spare capacity; stock left at the horizon's end above its floor (or any stock
        # when floors are lifted); nodes held at minimum fulfilment when those floors are lifted
        spare = (cap - plan.production).ravel()
        last = np.arange(data.n_nodes) * n_t + n_t - 1
        end_stock = stock.ravel()[last]
        end_free = end_stock - lo.ravel()[last]
        served = (data.demand - plan.unmet).ravel()
        at_floor = (
            (data.unmet_cap < data.demand).ravel()
            & (plan.unmet.ravel() >= data.unmet_cap.ravel() - ARC_TOL)
            & (served > SPARE_TOL)
        )
        verts = np.arange(self.n)
        arcs.add(
            np.full(int((spare > SPARE_TOL).sum()), self.src),
            verts[spare > SPARE_TOL],
            "",
            False,
            -1,
        )
        free = end_free > SPARE_TOL
        arcs.add(np.full(int(free.sum()), self.src), last[free], "", False, -1)
        floor_held = ~free & (end_stock > SPARE_TOL)
        arcs.add(np.full(int(floor_held.sum()), self.src), last[floor_held], STOCK, False, -1)
        arcs.add(np.full(int(at_floor.sum()), self.src), verts[at_floor], FLOORS, False, -1)
        self.tail, self.head, self.kind, self.integral, self.ref = arcs.arrays()
        self.at_capacity = ((cap > 0) & (cap - plan.production <= SPARE_TOL)).ravel()
        self.at_floor = at_floor
        self.spare = spare
        self._backward: dict[frozenset[str], _Graph] = {}
        self._forward: dict[tuple[frozenset[str], bool], np.ndarray] = {}

    def reachable(self, lifted: set[str] | frozenset[str], integral: bool = True) -> np.ndarray:
        """Vertices spare supply reaches with the `lifted` kinds of limit lifted."""
        key = (frozenset(lifted), integral)
        if key not in self._forward:
            ok = self._open(key[0])
            if not integral:
                ok &= ~self.integral
            start = np.zeros(self.n + 1, dtype=bool)
            start[self.src] = True
            self._forward[key] = _reach(self.n + 1, self.tail[ok], self.head[ok], start)
        return self._forward[key]

    def floor_elsewhere(self, vertex: int) -> bool:
        """Spare supply reaches `vertex` with the floors of other node-periods lifted."""
        ok = self._open(frozenset({ROWS, STOCK, FLOORS}))
        ok &= ~((self.kind == FLOORS) & (self.head == vertex))
        start = np.zeros(self.n + 1, dtype=bool)
        start[self.src] = True
        return bool(_reach(self.n + 1, self.tail[ok], self.head[ok], start)[vertex])

    def on_paths(self, vertex: int, lifted: frozenset[str]) -> np.ndarray:
        """Arcs that lie on some path from spare supply to `vertex` once `lifted` is lifted."""
        fwd = self.reachable(lifted)
        up = self.upstream(vertex, lifted)
        return self._open(lifted) & fwd[self.tail] & up[self.head]

    def structural(self) -> np.ndarray:
        """Reachable from anything that makes or holds clinker, with every limit lifted: along
        every lane and every stock carry, forward only."""
        data = self.data
        n_t = data.n_periods
        start = np.zeros(self.n + 1, dtype=bool)
        start[: self.n] = (data.capacity > 0).ravel()
        start[np.arange(data.n_nodes) * n_t] |= data.opening > 0
        v = np.arange(self.n).reshape(data.n_nodes, n_t)[:, :-1].ravel()
        tail = np.concatenate([data.lane_from * n_t + data.lane_t, v])
        head = np.concatenate([data.lane_to * n_t + data.lane_t, v + 1])
        return _reach(self.n + 1, tail, head, start)

    def _open(self, lifted: frozenset[str]) -> np.ndarray:
        return np.isin(self.kind, ["", *lifted])

    def upstream(self, vertex: int, lifted: frozenset[str] = frozenset()) -> np.ndarray:
        """Vertices that could send this one more along arcs no (unlifted) limit blocks."""
        graph = self._backward.get(lifted)
        if graph is None:
            ok = self._open(lifted) & (self.tail < self.n)
            graph = self._backward[lifted] = _Graph(self.n + 1, self.head[ok], self.tail[ok])
        start = np.zeros(self.n + 1, dtype=bool)
        start[vertex] = True
        return graph.reach(start)


def explain_unmet(data: ModelData, plan: PlanArrays) -> pd.DataFrame:
    """One row per unmet node-period: the reason code, a sentence, the rows and plants named."""
    n_t = data.n_periods
    verts = np.flatnonzero(plan.unmet.ravel() > UNMET_TOL)
    if len(verts) == 0:
        return pd.DataFrame(columns=REASON_COLUMNS)
    net = ResidualNetwork(data, plan)
    structural = net.structural()
    levels = [
        ("not_serve_optimal", net.reachable(set(), integral=False)),
        ("whole_trip_remainder", net.reachable(set())),
        ("dispatch_row_caps", net.reachable({ROWS})),
        ("stock_floor", net.reachable({ROWS, STOCK})),
        ("fulfilment_floor_elsewhere", net.reachable({ROWS, STOCK, FLOORS})),
    ]
    out = []
    for v in verts:
        node, t = divmod(int(v), n_t)
        if plan.unmet.flat[v] < ROUNDING_T:
            code = "solver_tolerance"
        elif not structural[v]:
            code = "no_lane"
        else:
            code = next((c for c, mask in levels if mask[v]), "iu_at_capacity")
            if (
                code == "fulfilment_floor_elsewhere"
                and net.at_floor[v]
                and not net.floor_elsewhere(v)
            ):
                code = "iu_at_capacity"  # its own floor is no reason for its own shortfall
        rows, plants, text = _name(net, int(v), code)
        out.append(
            {
                "iugu_code": data.nodes[node],
                "time_period": int(data.periods[t]),
                "unmet_t": float(plan.unmet.flat[v]),
                "reason": code,
                "text": text,
                "named_rows": rows,
                "named_plants": plants,
            }
        )
    return pd.DataFrame(out, columns=REASON_COLUMNS)


def _label(data: ModelData, v: int) -> str:
    node, t = divmod(v, data.n_periods)
    return f"{data.nodes[node]} (period {data.periods[t]})"


def _name(net: ResidualNetwork, v: int, code: str) -> tuple[list[str], list[str], str]:
    data, plan = net.data, net.plan
    n_t = data.n_periods
    where = _label(data, v)
    if code == "no_lane":
        return [], [], f"{where}: no lane reaches it and it makes no clinker itself"
    if code == "solver_tolerance":
        return [], [], f"{where}: {plan.unmet.flat[v]:.6f} t is within the solver's serve tolerance"
    lane_arc = (net.ref >= 0) & (net.tail < net.n) & (net.kind != STOCK)
    if code == "dispatch_row_caps":
        path = net.on_paths(v, frozenset({ROWS}))
        rows: set[int] = set()
        for k in net.ref[path & (net.kind == ROWS) & lane_arc]:
            rows.update(net.fwd_rows.get(int(k), []) + net.rev_rows.get(int(k), []))
        # the rows of the node's own period first, then the nearest periods
        t_v = data.periods[v % n_t]
        order = sorted(rows, key=lambda r: (abs(data.constraints[r].period - t_v), r))
        named = [data.constraints[r].describe() for r in order]
        return (
            named,
            sorted({data.constraints[r].iu_code for r in order}),
            f"{where}: dispatch rows cap the flow that could serve it: "
            + "; ".join(named[:5])
            + (f" and {len(named) - 5} more" if len(named) > 5 else ""),
        )
    if code in ("whole_trip_remainder", "not_serve_optimal"):
        path = net.on_paths(v, frozenset())
        spare = np.unique(net.head[path & (net.tail == net.src)])
        plants = sorted({data.nodes[s // n_t] for s in spare})
        if code == "not_serve_optimal":
            return (
                [],
                plants,
                f"{where}: spare clinker at {', '.join(plants[:5])} can reach it; the solver "
                "stopped before using it",
            )
        lanes = np.unique(net.ref[path & net.integral & lane_arc])
        named = [
            f"{data.nodes[data.lane_from[k]]} -> {data.nodes[data.lane_to[k]]} by "
            f"{data.lanes['transport_code'].iat[k]} in period {data.periods[data.lane_t[k]]} "
            f"({data.lane_mult[k]:,.0f} t per trip)"
            for k in lanes
        ]
        spare_t = float(net.spare[spare].sum())
        return (
            named,
            plants,
            f"{where}: the spare clinker that reaches it ({spare_t:,.0f} t at "
            f"{', '.join(plants[:5]) or 'stock'}) moves only in whole rake trips that do not "
            "fit: " + "; ".join(named[:3]),
        )
    if code == "stock_floor":
        path = net.on_paths(v, frozenset({ROWS, STOCK}))
        verts = sorted({int(x) for x in net.ref[path & (net.kind == STOCK) & (net.ref >= 0)]})
        verts += [int(h) % net.n for h in net.head[path & (net.kind == STOCK) & (net.ref < 0)]]
        named = [
            f"{_label(data, s)} closing stock {plan.stock.flat[s]:,.0f} t at its bound "
            f"[{data.min_close.flat[s]:,.0f}, {data.max_close.flat[s]:,.0f}]"
            for s in sorted(set(verts))
        ]
        return (
            named,
            sorted({data.nodes[s // n_t] for s in verts}),
            f"{where}: closing-stock bounds hold the clinker that could serve it: "
            + "; ".join(named[:3]),
        )
    if code == "fulfilment_floor_elsewhere":
        path = net.on_paths(v, frozenset({ROWS, STOCK, FLOORS}))
        held = sorted({int(h) for h in net.head[path & (net.kind == FLOORS)]} - {v})
        return (
            [],
            sorted({data.nodes[s // n_t] for s in held}),
            f"{where}: minimum fulfilment at {', '.join(_label(data, s) for s in held[:5])} "
            "takes the tonnes that could serve it",
        )
    up = net.upstream(v, frozenset({ROWS, STOCK, FLOORS}))
    full = np.flatnonzero(up[: net.n] & net.at_capacity)
    named = [_label(data, s) for s in full]
    return (
        [],
        sorted({data.nodes[s // n_t] for s in full}),
        f"{where}: every IU that can reach it is at capacity: {', '.join(named[:8])}"
        + (f" and {len(named) - 8} more" if len(named) > 8 else ""),
    )
