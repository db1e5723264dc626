"""Pictures of a plan, as PNG bytes: network map, production against capacity, unmet by node,
rail/road share, cost by component, and the scenario comparison.

matplotlib's object API (`Figure`, no pyplot: no global state, no display, Agg canvas) with a
fixed size and DPI and no date in the PNG metadata, so the same plan gives the same bytes.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

DPI = 100
MODE_COLOURS = {"T1": "#e07b39", "T2": "#2f6db3"}  # road, rail
MODE_NAMES = {"T1": "road (T1)", "T2": "rail (T2)"}
MAX_LANES_DRAWN = 400


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _figure(width: float = 8.0, height: float = 4.5) -> tuple[Figure, object]:
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _positions(plants: pd.DataFrame) -> tuple[dict[str, tuple[float, float]], bool]:
    """Plant coordinates (longitude, latitude) when every plant has them, else a layered layout:
    IUs in a column on the left, GUs on the right."""
    have = {"latitude", "longitude"} <= set(plants.columns)
    if have and plants[["latitude", "longitude"]].notna().all().all() and len(plants):
        return {
            str(r.iugu_code): (float(r.longitude), float(r.latitude))
            for r in plants.itertuples(index=False)
        }, True
    pos = {}
    for x, kind in ((0.0, "IU"), (1.0, "GU")):
        codes = sorted(plants.loc[plants["plant_type"] == kind, "iugu_code"].astype(str))
        for i, code in enumerate(codes):
            pos[code] = (x, -i)
    return pos, False


def network_map(plants: pd.DataFrame, shipments: pd.DataFrame) -> bytes:
    fig, ax = _figure(8, 7)
    pos, geographic = _positions(plants)
    lanes = pd.DataFrame(columns=["from_code", "to_code", "transport_code", "quantity_t"])
    if shipments is not None and len(shipments):
        lanes = (
            shipments.groupby(["from_code", "to_code", "transport_code"], as_index=False)[
                "quantity_t"
            ]
            .sum()
            .sort_values("quantity_t", ascending=False)
            .head(MAX_LANES_DRAWN)
        )
    top = float(lanes["quantity_t"].max()) if len(lanes) else 1.0
    segments, colours, widths = [], [], []
    for r in lanes.itertuples(index=False):
        a, b = pos.get(str(r.from_code)), pos.get(str(r.to_code))
        if a is None or b is None:
            continue
        segments.append([a, b])
        colours.append(MODE_COLOURS.get(r.transport_code, "#777777"))
        widths.append(0.5 + 6 * float(r.quantity_t) / top)
    # one collection, not a line per lane: hundreds of lanes draw in one call
    ax.add_collection(
        LineCollection(segments, colors=colours, linewidths=widths, alpha=0.6, capstyle="round")
    )
    for kind, marker, colour in (("IU", "s", "#333333"), ("GU", "o", "#4caf50")):
        codes = plants.loc[plants["plant_type"] == kind, "iugu_code"].astype(str)
        xy = np.array([pos[c] for c in codes if c in pos]).reshape(-1, 2)
        ax.scatter(xy[:, 0], xy[:, 1], marker=marker, s=30, color=colour, label=kind, zorder=3)
    if len(pos) <= 60:
        for code, (x, y) in sorted(pos.items()):
            ax.annotate(code, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    for mode, colour in MODE_COLOURS.items():
        ax.plot([], [], color=colour, linewidth=3, label=MODE_NAMES[mode])
    ax.legend(loc="best", fontsize=8)
    if geographic:
        ax.set_xlabel("longitude")
        ax.set_ylabel("latitude")
        ax.set_aspect("equal", adjustable="datalim")
    else:
        ax.set_xticks([0, 1], ["IUs", "GUs"])
        ax.set_yticks([])
    ax.set_title("Plan network: lane width by tonnes, colour by mode")
    return _png(fig)


def production_vs_capacity(production: pd.DataFrame, top: int = 25) -> bytes:
    fig, ax = _figure(9, 4.5)
    if production is not None and len(production):
        p = production.groupby(["iu_code", "time_period"])[["production_t", "capacity_t"]].sum()
        ius = p.groupby("iu_code")["capacity_t"].sum().sort_values(ascending=False).head(top).index
        periods = sorted(p.index.get_level_values("time_period").unique())
        width = 0.8 / max(1, len(periods))
        x = np.arange(len(ius))
        for i, t in enumerate(periods):
            sub = p.xs(t, level="time_period").reindex(ius).fillna(0.0)
            ax.bar(
                x + i * width, sub["capacity_t"] / 1e3, width, color="#dddddd", edgecolor="#999999"
            )
            ax.bar(x + i * width, sub["production_t"] / 1e3, width * 0.7, label=f"period {t}")
        ax.set_xticks(x + 0.4 - width / 2, list(ius), rotation=90, fontsize=7)
        ax.legend(fontsize=7, title="produced (grey: capacity)", title_fontsize=7)
    ax.set_ylabel("kt")
    ax.set_title("Production against capacity per IU and period")
    return _png(fig)


def unmet_by_node(unmet: pd.DataFrame, top: int = 30) -> bytes:
    fig, ax = _figure(9, 4.5)
    if unmet is not None and len(unmet) and unmet["unmet_t"].sum() > 0:
        u = unmet.pivot_table(
            index="iugu_code", columns="time_period", values="unmet_t", aggfunc="sum"
        ).fillna(0.0)
        u = u.loc[u.sum(axis=1).sort_values(ascending=False).index[:top]]
        u = u[u.sum(axis=1) > 0]
        bottom = np.zeros(len(u))
        for t in u.columns:
            ax.bar(u.index.astype(str), u[t] / 1e3, bottom=bottom, label=f"period {t}")
            bottom += u[t].to_numpy() / 1e3
        ax.tick_params(axis="x", rotation=90, labelsize=7)
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "all demand served", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("kt unmet")
    ax.set_title("Unmet demand by node")
    return _png(fig)


def mode_share(shipments: pd.DataFrame) -> bytes:
    fig, ax = _figure(7, 4)
    if shipments is not None and len(shipments):
        s = shipments.pivot_table(
            index="time_period", columns="transport_code", values="quantity_t", aggfunc="sum"
        ).fillna(0.0)
        share = 100 * s.div(s.sum(axis=1).replace(0, np.nan), axis=0).fillna(0.0)
        bottom = np.zeros(len(share))
        labels = [str(t) for t in share.index]
        for mode in share.columns:
            ax.bar(
                labels,
                share[mode],
                bottom=bottom,
                color=MODE_COLOURS.get(mode, "#777777"),
                label=MODE_NAMES.get(mode, mode),
            )
            bottom += share[mode].to_numpy()
        ax.legend(fontsize=8)
    ax.set_xlabel("period")
    ax.set_ylabel("% of tonnes shipped")
    ax.set_title("Rail / road share per period")
    return _png(fig)


def cost_by_component(costs: dict[str, float | None]) -> bytes:
    fig, ax = _figure(7, 3.5)
    names = [k for k, v in costs.items() if v is not None]
    values = [float(costs[k]) / 1e7 for k in names]
    bars = ax.barh(names, values, color=["#6a8caf", "#e07b39", "#9e9e9e"][: len(names)])
    ax.bar_label(bars, labels=[f"{v:,.1f}" for v in values], fontsize=8, padding=3)
    ax.set_xlabel("INR crore")
    ax.set_title("Cost by component")
    return _png(fig)


# an infeasible scenario leaves these None: the column is then of object dtype
NUMBERS = ("cost_inr", "served_pct", "rail_share_pct")


def scenario_chart(table: pd.DataFrame) -> bytes:
    fig = Figure(figsize=(9, 4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    if table is not None and len(table):
        names = table["scenario"].astype(str).tolist()
        number = {c: pd.to_numeric(table[c], errors="coerce").fillna(0.0) for c in NUMBERS}
        ax1.barh(names, number["cost_inr"] / 1e7, color="#6a8caf")
        ax1.set_xlabel("cost, INR crore")
        ax1.invert_yaxis()
        served = number["served_pct"]
        rail = number["rail_share_pct"]
        ax2.barh(names, rail, color=MODE_COLOURS["T2"], label="rail share %")
        ax2.plot(served, names, "o", color="#333333", label="served %")
        ax2.set_xlim(0, 100)
        ax2.invert_yaxis()
        ax2.legend(fontsize=7, loc="lower right")
    fig.suptitle("Scenarios: cost, served % and rail share")
    return _png(fig)


def plan_charts(plants: pd.DataFrame, result) -> dict[str, bytes]:
    """Every chart of one plan, by file stem."""
    return {
        "network_map": network_map(plants, result.shipments),
        "production_vs_capacity": production_vs_capacity(result.production),
        "unmet_by_node": unmet_by_node(result.unmet),
        "mode_share": mode_share(result.shipments),
        "cost_by_component": cost_by_component(
            {
                "production": result.production_cost,
                "transport": result.transport_cost,
                "holding": result.holding_cost,
            }
        ),
    }


def charts_dir(duckdb_path: str | Path) -> Path:
    """Where the PNGs of a DuckDB file's plans go: `<file stem>_charts/` beside it."""
    p = Path(duckdb_path)
    return p.parent / f"{p.stem}_charts"


def write_charts(charts: dict[str, bytes], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, png in charts.items():
        path = folder / f"{name}.png"
        path.write_bytes(png)
        out.append(path)
    return out


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown with the PNG embedded: how Dagster shows a picture in asset metadata."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
