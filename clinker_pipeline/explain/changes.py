"""What changed against the previous plan: tonnes per lane and mode, trips, production per IU,
unmet per node and cost by component. Pure pandas on the two plans' tables."""

from __future__ import annotations

import pandas as pd

CHANGE_COLUMNS = ["category", "item", "before", "after", "change", "unit"]
MIN_CHANGE = 0.5  # t or INR: smaller moves are solver noise, not a change of plan


def _per(frame: pd.DataFrame, keys: list[str], value: str) -> pd.Series:
    if frame is None or frame.empty:
        return pd.Series(dtype=float)
    f = frame.copy()
    if len(keys) > 1:
        label = f[keys[0]].astype(str)
        label += " -> " + f[keys[1]].astype(str) + " by " + f[keys[2]].astype(str)
    else:
        label = f[keys[0]].astype(str)
    return f.assign(_item=label).groupby("_item")[value].sum(min_count=1).astype(float)


def compare_plans(
    before: dict[str, pd.DataFrame], after: dict[str, pd.DataFrame], costs: tuple[dict, dict]
) -> pd.DataFrame:
    """`before`/`after`: {"shipments", "production", "unmet"} frames of the two plans;
    `costs`: (before, after) dicts of cost components in INR."""
    out = []
    lane_keys = ["from_code", "to_code", "transport_code"]
    for category, frame, keys, value, unit in (
        ("lane_tonnes", "shipments", lane_keys, "quantity_t", "t"),
        ("lane_trips", "shipments", lane_keys, "trips", "trips"),
        ("production", "production", ["iu_code"], "production_t", "t"),
        ("unmet", "unmet", ["iugu_code"], "unmet_t", "t"),
    ):
        b = _per(before.get(frame), keys, value)
        a = _per(after.get(frame), keys, value)
        both = pd.concat([b.rename("before"), a.rename("after")], axis=1).fillna(0.0)
        both["change"] = both["after"] - both["before"]
        both = both[both["change"].abs() >= MIN_CHANGE]
        for item, r in both.iterrows():
            out.append((category, str(item), r["before"], r["after"], r["change"], unit))
    cb, ca = costs
    for part in ("production_cost", "transport_cost", "holding_cost", "cost"):
        vb, va = cb.get(part), ca.get(part)
        if vb is None or va is None:
            continue
        name = "total" if part == "cost" else part.removesuffix("_cost")
        out.append(("cost", name, float(vb), float(va), float(va) - float(vb), "INR"))
    frame = pd.DataFrame(out, columns=CHANGE_COLUMNS)
    return frame.sort_values(
        ["category", "change"], key=lambda s: s if s.name == "category" else -s.abs()
    ).reset_index(drop=True)


def change_summary(changes: pd.DataFrame, previous_run_id: str | None) -> str:
    """One line for the terminal and the plan's page."""
    if previous_run_id is None:
        return "first plan of this scenario and instance: nothing to compare"
    if changes is None or changes.empty:
        return f"same as {previous_run_id[:8]}"
    parts = []
    cost = changes[(changes["category"] == "cost") & (changes["item"] == "total")]
    if len(cost):
        c = cost.iloc[0]
        pct = 100 * c["change"] / c["before"] if c["before"] else 0.0
        parts.append(f"cost {c['change'] / 1e7:+,.2f} crore ({pct:+.2f} %)")
    unmet = changes[changes["category"] == "unmet"]
    if len(unmet):
        parts.append(f"unmet {unmet['change'].sum():+,.0f} t at {len(unmet)} node(s)")
    lanes = changes[changes["category"] == "lane_tonnes"]
    if len(lanes):
        top = lanes.iloc[0]
        parts.append(f"{len(lanes)} lane(s) moved, most {top['item']} {top['change']:+,.0f} t")
    prod = changes[changes["category"] == "production"]
    if len(prod):
        parts.append(f"production changed at {len(prod)} IU(s)")
    return f"vs {previous_run_id[:8]}: " + "; ".join(parts or ["no change"])
