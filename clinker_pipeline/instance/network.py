"""Which lanes and constraint rows of an instance take part in the model, and why not.

Both validation (to warn or reject) and the optimizer (to build variables) need the same answer,
so it is computed here once, from the typed tables, with pandas joins rather than Python loops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class Network:
    nodes: list[str]
    ius: list[str]
    periods: list[int]
    lanes: pd.DataFrame  # kept lane-period rows, index 0..n-1 (the model's lane-period ids)
    dropped_lanes: pd.DataFrame  # rows of LogisticsIUGU not modelled, with a `reason`
    constraints: pd.DataFrame  # rows of IUGUConstraint that bind, with `lane_ids` (arrays)
    vacuous_constraints: pd.DataFrame  # rows that match no lane and are trivially satisfied
    unmatched_constraints: pd.DataFrame  # rows that match no lane but demand a flow (E>0, G>0)


def periods_of(tables: dict[str, pd.DataFrame]) -> list[int]:
    """Sorted distinct TIME PERIOD values over every table that has one."""
    values: set[int] = set()
    for frame in tables.values():
        if "time_period" in frame:
            values.update(int(v) for v in frame["time_period"].dropna().unique())
    return sorted(values)


def build_network(tables: dict[str, pd.DataFrame]) -> Network:
    plants = tables["plants"]
    nodes = plants["iugu_code"].dropna().astype(str).tolist()
    node_set = set(nodes)
    ius = plants.loc[plants["plant_type"] == "IU", "iugu_code"].astype(str).tolist()
    periods = periods_of(tables)

    lanes = tables["logistics_lanes"].copy()
    reason = pd.Series(pd.NA, index=lanes.index, dtype="string")
    reason = reason.mask(
        ~lanes["to_code"].isin(node_set), "destination not in IUGUType: lane dropped"
    )
    reason = reason.mask(~lanes["from_code"].isin(node_set), "origin not in IUGUType: lane dropped")
    reason = reason.mask(
        lanes["from_code"] == lanes["to_code"],
        "self-lane (in-plant use, not a shipment): dropped",
    )
    dropped = lanes[reason.notna()].assign(reason=reason[reason.notna()])
    kept = lanes[reason.isna()].reset_index(drop=True)
    kept["lane_id"] = np.arange(len(kept))

    cons = tables["flow_constraints"].copy()
    cons["row_id"] = np.arange(len(cons))
    joined = cons[["row_id", "iu_code", "transport_code", "iugu_code", "time_period"]].merge(
        kept[["lane_id", "from_code", "to_code", "transport_code", "time_period"]],
        left_on=["iu_code", "time_period"],
        right_on=["from_code", "time_period"],
        suffixes=("", "_lane"),
    )
    match = (
        joined["transport_code"].isna()
        | (joined["transport_code"] == joined["transport_code_lane"])
    ) & (joined["iugu_code"].isna() | (joined["iugu_code"] == joined["to_code"]))
    joined = joined[match.fillna(False).astype(bool)]
    lane_ids = joined.groupby("row_id")["lane_id"].apply(lambda s: s.to_numpy())
    cons["lane_ids"] = cons["row_id"].map(lane_ids)
    has_lanes = cons["lane_ids"].notna()
    demands_flow = cons["bound_typeid"].isin(["E", "G"]) & (cons["value"] > 0)
    return Network(
        nodes=nodes,
        ius=ius,
        periods=periods,
        lanes=kept,
        dropped_lanes=dropped,
        constraints=cons[has_lanes].reset_index(drop=True),
        vacuous_constraints=cons[~has_lanes & ~demands_flow].reset_index(drop=True),
        unmatched_constraints=cons[~has_lanes & demands_flow].reset_index(drop=True),
    )
