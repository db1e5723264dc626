"""Compile validated instance tables into the arrays the model is built from.

Everything the model needs is looked up here once (numpy arrays and plain lists), so that
building the Pyomo model is a tight loop with no pandas access inside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from clinker_pipeline.instance.network import Network, build_network

INF = float("inf")


@dataclass
class ConstraintRow:
    row_id: int
    source_row: int | None
    iu_code: str
    transport_code: str | None
    iugu_code: str | None
    period: int
    bound: str  # L, G or E
    value: float
    lane_ids: np.ndarray

    def describe(self) -> str:
        scope = self.iu_code
        scope += f" -> {self.iugu_code}" if self.iugu_code else " -> any destination"
        scope += f" by {self.transport_code}" if self.transport_code else " by any mode"
        sign = {"L": "<=", "G": ">=", "E": "="}[self.bound]
        where = f"IUGUConstraint row {self.source_row}" if self.source_row else "IUGUConstraint"
        return f"{where} ({scope}, period {self.period}, dispatch {sign} {self.value:,.0f} t)"


@dataclass
class ModelData:
    nodes: list[str]
    is_iu: np.ndarray  # bool per node
    periods: list[int]
    demand: np.ndarray  # [node, period] t
    unmet_cap: np.ndarray  # [node, period] upper bound of U (demand * (1 - min fulfilment))
    opening: np.ndarray  # [node] t
    min_close: np.ndarray  # [node, period]
    max_close: np.ndarray  # [node, period], inf when unbounded
    close_rows: np.ndarray  # [node, period] source row of the closing-stock bound, 0 if none
    demand_rows: np.ndarray  # [node, period] source row of the demand, 0 if none
    capacity: np.ndarray  # [node, period], 0 for GUs and missing rows
    prod_cost: np.ndarray  # [node, period] INR/t
    lanes: pd.DataFrame  # one row per lane-period: from/to/mode/period + indices and costs
    lane_from: np.ndarray
    lane_to: np.ndarray
    lane_t: np.ndarray
    lane_mult: np.ndarray  # tonnes per trip (1: continuous tonnes)
    lane_cost: np.ndarray  # INR per tonne (freight + handling)
    constraints: list[ConstraintRow]
    network: Network

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    @property
    def n_periods(self) -> int:
        return len(self.periods)


def compile_data(tables: dict[str, pd.DataFrame], network: Network | None = None) -> ModelData:
    network = network or build_network(tables)
    nodes = network.nodes
    periods = network.periods
    node_ix = {n: i for i, n in enumerate(nodes)}
    t_ix = {t: i for i, t in enumerate(periods)}
    shape = (len(nodes), len(periods))
    iu_set = set(network.ius)
    is_iu = np.array([n in iu_set for n in nodes], dtype=bool)

    def grid(name: str, code: str, value: str, default: float) -> np.ndarray:
        out = np.full(shape, default, dtype=float)
        frame = tables[name]
        frame = frame[frame[code].isin(node_ix) & frame["time_period"].isin(t_ix)]
        if len(frame):
            rows = frame[code].map(node_ix).to_numpy(int)
            cols = frame["time_period"].map(t_ix).to_numpy(int)
            vals = frame[value].to_numpy(float)
            mask = ~np.isnan(vals)
            out[rows[mask], cols[mask]] = vals[mask]
        return out

    demand = grid("clinker_demand", "iugu_code", "demand", 0.0)
    pct = grid("clinker_demand", "iugu_code", "min_fulfillment_pct", 0.0)
    unmet_cap = demand * (1.0 - pct / 100.0)
    demand_rows = grid("clinker_demand", "iugu_code", "source_row", 0.0).astype(int)
    capacity = grid("clinker_capacity", "iu_code", "capacity", 0.0)
    capacity[~is_iu, :] = 0.0
    prod_cost = grid("production_cost", "iu_code", "production_cost", 0.0)
    min_close = grid("closing_stock_bounds", "iugu_code", "min_close_stock", 0.0)
    max_close = grid("closing_stock_bounds", "iugu_code", "max_close_stock", INF)
    close_rows = grid("closing_stock_bounds", "iugu_code", "source_row", 0.0).astype(int)

    opening = np.zeros(len(nodes))
    op = tables["opening_stock"]
    op = op[op["iugu_code"].isin(node_ix)]
    opening[op["iugu_code"].map(node_ix).to_numpy(int)] = op["opening_stock"].to_numpy(float)

    # periods_of() includes the logistics periods, so every kept lane-period is modelled and
    # network lane ids are the model's lane indices.
    lanes = network.lanes
    lane_from = lanes["from_code"].map(node_ix).to_numpy(int)
    lane_to = lanes["to_code"].map(node_ix).to_numpy(int)
    lane_t = lanes["time_period"].map(t_ix).to_numpy(int)
    lane_mult = lanes["quantity_multiplier"].to_numpy(float)
    lane_cost = (lanes["freight_cost"] + lanes["handling_cost"]).to_numpy(float)

    constraints = []
    for r in network.constraints.itertuples(index=False):
        constraints.append(
            ConstraintRow(
                row_id=int(r.row_id),
                source_row=int(r.source_row) if pd.notna(r.source_row) else None,
                iu_code=str(r.iu_code),
                transport_code=None if pd.isna(r.transport_code) else str(r.transport_code),
                iugu_code=None if pd.isna(r.iugu_code) else str(r.iugu_code),
                period=int(r.time_period),
                bound=str(r.bound_typeid),
                value=float(r.value),
                lane_ids=np.asarray(r.lane_ids, dtype=int),
            )
        )
    return ModelData(
        nodes=nodes,
        is_iu=is_iu,
        periods=periods,
        demand=demand,
        unmet_cap=unmet_cap,
        opening=opening,
        min_close=min_close,
        max_close=max_close,
        close_rows=close_rows,
        demand_rows=demand_rows,
        capacity=capacity,
        prod_cost=prod_cost,
        lanes=lanes,
        lane_from=lane_from,
        lane_to=lane_to,
        lane_t=lane_t,
        lane_mult=lane_mult,
        lane_cost=lane_cost,
        constraints=constraints,
        network=network,
    )


def lane_flow_bounds(data: ModelData) -> np.ndarray:
    """An upper bound (tonnes) on each lane-period's flow that the balance rows already imply,
    so adding it changes no optimum but gives HiGHS finite trip bounds (without them its root
    reduced-cost bookkeeping and propagation crawl on large instances).

    Origin: what leaves a node by period t is at most its opening stock plus its capacity so far
    minus the stock it must keep (plus, when it also receives, all the network's supply so far).
    Destination: what enters a node with no outbound lane in period t is at most that period's
    demand plus its largest closing stock minus the smallest stock it starts the period with.
    """
    n_t = data.n_periods
    cumcap = np.cumsum(data.capacity, axis=1)
    supply = data.opening[:, None] + cumcap - data.min_close  # [node, t]
    network = float(data.opening.sum()) + cumcap.sum(axis=0)  # [t]
    receives = np.zeros(data.n_nodes, dtype=bool)
    receives[data.lane_to] = True
    origin = np.where(
        receives[data.lane_from],
        network[data.lane_t],
        supply[data.lane_from, data.lane_t],
    )
    sends = np.zeros((data.n_nodes, n_t), dtype=bool)
    sends[data.lane_from, data.lane_t] = True
    start_lb = np.concatenate([data.opening[:, None], data.min_close[:, :-1]], axis=1)
    need = data.demand + data.max_close - start_lb  # inf where the closing stock is unbounded
    dest = np.where(sends[data.lane_to, data.lane_t], np.inf, need[data.lane_to, data.lane_t])
    return np.maximum(0.0, np.minimum(origin, dest))
