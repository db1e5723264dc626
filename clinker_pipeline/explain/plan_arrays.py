"""The plan's tables laid back onto the model's arrays (lane-periods, node x period grids).

Reasons and marginals reason about the model, whose indices are positions in `ModelData`; the
plan travels as DataFrames keyed by codes. This is the one place that maps one onto the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from clinker_pipeline.optimization.data import ModelData
from clinker_pipeline.optimization.result import PlanResult


@dataclass
class PlanArrays:
    flow: np.ndarray  # tonnes per lane-period
    trips: np.ndarray  # whole trips per lane-period (0 where the lane is continuous)
    production: np.ndarray  # [node, period]
    stock: np.ndarray  # closing stock [node, period]
    unmet: np.ndarray  # [node, period]
    row_activity: np.ndarray  # tonnes dispatched under each IUGUConstraint row


def _grid(data: ModelData, frame: pd.DataFrame, code: str, value: str) -> np.ndarray:
    out = np.zeros((data.n_nodes, data.n_periods))
    if frame is None or frame.empty:
        return out
    node_ix = {n: i for i, n in enumerate(data.nodes)}
    t_ix = {t: i for i, t in enumerate(data.periods)}
    rows = frame[code].astype(str).map(node_ix)
    cols = frame["time_period"].astype(int).map(t_ix)
    ok = rows.notna() & cols.notna()
    np.add.at(
        out,
        (rows[ok].to_numpy(int), cols[ok].to_numpy(int)),
        frame.loc[ok, value].to_numpy(float),
    )
    return out


def lane_positions(data: ModelData, frame: pd.DataFrame) -> np.ndarray:
    """Model lane-period index of each (from_code, to_code, transport_code, time_period) row;
    -1 where the row is not a modelled lane."""
    lanes = data.lanes
    key = pd.MultiIndex.from_arrays(
        [lanes[c].astype(str) for c in ("from_code", "to_code", "transport_code")]
        + [lanes["time_period"].astype(int)]
    )
    pos = pd.Series(np.arange(len(lanes)), index=key)
    other = pd.MultiIndex.from_arrays(
        [frame[c].astype(str) for c in ("from_code", "to_code", "transport_code")]
        + [frame["time_period"].astype(int)]
    )
    return pos.reindex(other).fillna(-1).to_numpy(int)


def plan_arrays(data: ModelData, result: PlanResult) -> PlanArrays:
    flow = np.zeros(len(data.lane_mult))
    ship = result.shipments
    if ship is not None and len(ship):
        ids = lane_positions(data, ship)
        ok = ids >= 0
        flow[ids[ok]] = ship["quantity_t"].to_numpy(float)[ok]
    trips = np.where(data.lane_mult > 1, np.round(flow / data.lane_mult), 0.0)
    activity = np.array([flow[row.lane_ids].sum() for row in data.constraints])
    return PlanArrays(
        flow=flow,
        trips=trips,
        production=_grid(data, result.production, "iu_code", "production_t"),
        stock=_grid(data, result.inventory, "iugu_code", "closing_t"),
        unmet=_grid(data, result.unmet, "iugu_code", "unmet_t"),
        row_activity=activity,
    )
