"""Synthetic planning instances shaped like the public dataset, laid on a real map of India.

Planners judge a sample plan by whether it looks like their own network: kilns where the
limestone is, grinding units where cement is sold, rail for long hauls and road for short ones,
freight that grows with distance. Random numbers alone do not pass that look, and solver
benchmarks need sizes the public workbook does not have. So plants sit on real cement clusters and
demand centres, and every number is drawn from the ranges seen in the dataset.

Every instance is feasible under the model contract by construction, so a generated plan never
fails for a reason nobody put there on purpose:
- every MIN CLOSE STOCK is at most the opening stock and every MAX at least the opening stock,
  so holding the opening stock is always allowed;
- forced flows (E > 0, G rows) stay well inside what the origin IU can dispatch, and every L cap
  on the same IU is raised to carry them;
- MIN FULFILLMENT is set only on IU rows, which the IU can always serve from its own kiln.
Only numpy's `default_rng(seed)` is used, so a seed gives the same tables on every machine.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from clinker_pipeline.instance.parse import FIRST_DATA_ROW, coerce_table
from clinker_pipeline.instance.tables import TABLES, TableSpec

Site = tuple[str, str, float, float, float]  # city, state, latitude, longitude, demand weight

# Limestone and cement clusters with integrated plants. Ordered so that the first few are spread
# over the country (a small instance should not be eight kilns in one district).
IU_SITES: tuple[Site, ...] = (
    ("Chandrapur", "Maharashtra", 19.96, 79.30, 1.0),
    ("Satna", "Madhya Pradesh", 24.58, 80.83, 1.0),
    ("Chittorgarh", "Rajasthan", 24.88, 74.63, 1.0),
    ("Kalaburagi", "Karnataka", 17.33, 76.83, 1.0),
    ("Ariyalur", "Tamil Nadu", 11.14, 79.08, 1.0),
    ("Nalgonda", "Telangana", 17.05, 79.27, 1.0),
    ("Jharsuguda", "Odisha", 21.86, 84.01, 1.0),
    ("Sikka", "Gujarat", 22.43, 69.84, 1.0),
    ("Kadapa", "Andhra Pradesh", 14.47, 78.82, 1.0),
    ("Bilaspur", "Chhattisgarh", 22.08, 82.15, 1.0),
    ("Kota", "Rajasthan", 25.18, 75.83, 1.0),
    ("Dalla", "Uttar Pradesh", 24.57, 83.02, 1.0),
    ("Katni", "Madhya Pradesh", 23.83, 80.39, 1.0),
    ("Jaggayyapet", "Andhra Pradesh", 16.89, 80.10, 1.0),
    ("Kutch", "Gujarat", 23.25, 68.90, 1.0),
    ("Darlaghat", "Himachal Pradesh", 31.22, 76.96, 1.0),
    ("Tandur", "Telangana", 17.25, 77.58, 1.0),
    ("Nimbahera", "Rajasthan", 24.62, 74.68, 1.0),
    ("Rewa", "Madhya Pradesh", 24.53, 81.30, 1.0),
    ("Raipur", "Chhattisgarh", 21.25, 81.63, 1.0),
    ("Wadi", "Karnataka", 17.06, 76.99, 1.0),
    ("Yerraguntla", "Andhra Pradesh", 14.64, 78.54, 1.0),
    ("Maihar", "Madhya Pradesh", 24.27, 80.76, 1.0),
    ("Ramganjmandi", "Rajasthan", 24.65, 75.95, 1.0),
    ("Rajgangpur", "Odisha", 22.19, 84.58, 1.0),
    ("Chaibasa", "Jharkhand", 22.55, 85.80, 1.0),
    ("Kodinar", "Gujarat", 20.79, 70.70, 1.0),
    ("Lumshnong", "Meghalaya", 25.18, 92.38, 1.0),
    ("Sedam", "Karnataka", 17.18, 77.28, 1.0),
    ("Bagalkot", "Karnataka", 16.18, 75.70, 1.0),
    ("Gadchandur", "Maharashtra", 19.73, 79.17, 1.0),
    ("Banswara", "Rajasthan", 23.55, 74.44, 1.0),
    ("Beawar", "Rajasthan", 26.10, 74.32, 1.0),
    ("Jafrabad", "Gujarat", 20.87, 71.37, 1.0),
    ("Mancherial", "Telangana", 18.87, 79.44, 1.0),
    ("Dachepalli", "Andhra Pradesh", 16.60, 79.73, 1.0),
    ("Nandyal", "Andhra Pradesh", 15.48, 78.48, 1.0),
    ("Bhatapara", "Chhattisgarh", 21.74, 81.95, 1.0),
    ("Damoh", "Madhya Pradesh", 23.83, 79.44, 1.0),
    ("Neemuch", "Madhya Pradesh", 24.47, 74.87, 1.0),
    ("Lakheri", "Rajasthan", 25.67, 76.17, 1.0),
    ("Tirunelveli", "Tamil Nadu", 8.78, 77.70, 1.0),
    ("Pindwara", "Rajasthan", 24.79, 73.06, 1.0),
    ("Dalmiapuram", "Tamil Nadu", 10.99, 78.96, 1.0),
)

# Demand centres with grinding units; the weight scales a unit's share of grinding demand.
GU_SITES: tuple[Site, ...] = (
    ("Mumbai", "Maharashtra", 19.08, 72.88, 2.2),
    ("Delhi NCR", "Delhi", 28.61, 77.21, 2.4),
    ("Kolkata", "West Bengal", 22.57, 88.36, 1.8),
    ("Chennai", "Tamil Nadu", 13.08, 80.27, 1.7),
    ("Bengaluru", "Karnataka", 12.97, 77.59, 1.8),
    ("Hyderabad", "Telangana", 17.39, 78.49, 1.7),
    ("Ahmedabad", "Gujarat", 23.02, 72.57, 1.5),
    ("Pune", "Maharashtra", 18.52, 73.86, 1.4),
    ("Jaipur", "Rajasthan", 26.91, 75.79, 1.1),
    ("Lucknow", "Uttar Pradesh", 26.85, 80.95, 1.2),
    ("Patna", "Bihar", 25.59, 85.14, 1.1),
    ("Bhubaneswar", "Odisha", 20.30, 85.82, 0.9),
    ("Kochi", "Kerala", 9.93, 76.27, 0.9),
    ("Nagpur", "Maharashtra", 21.15, 79.09, 0.9),
    ("Indore", "Madhya Pradesh", 22.72, 75.86, 1.0),
    ("Guwahati", "Assam", 26.14, 91.74, 0.8),
    ("Surat", "Gujarat", 21.17, 72.83, 1.2),
    ("Bhopal", "Madhya Pradesh", 23.26, 77.41, 0.8),
    ("Ludhiana", "Punjab", 30.90, 75.86, 0.9),
    ("Visakhapatnam", "Andhra Pradesh", 17.69, 83.22, 0.9),
    ("Kanpur", "Uttar Pradesh", 26.45, 80.33, 0.9),
    ("Varanasi", "Uttar Pradesh", 25.32, 82.97, 0.8),
    ("Ranchi", "Jharkhand", 23.34, 85.31, 0.7),
    ("Coimbatore", "Tamil Nadu", 11.02, 76.96, 0.9),
    ("Madurai", "Tamil Nadu", 9.93, 78.12, 0.7),
    ("Mangaluru", "Karnataka", 12.91, 74.86, 0.7),
    ("Thiruvananthapuram", "Kerala", 8.52, 76.94, 0.7),
    ("Vijayawada", "Andhra Pradesh", 16.51, 80.65, 0.8),
    ("Nashik", "Maharashtra", 20.00, 73.79, 0.8),
    ("Chhatrapati Sambhajinagar", "Maharashtra", 19.88, 75.34, 0.7),
    ("Panaji", "Goa", 15.49, 73.83, 0.5),
    ("Vadodara", "Gujarat", 22.31, 73.18, 0.9),
    ("Rajkot", "Gujarat", 22.30, 70.80, 0.7),
    ("Jodhpur", "Rajasthan", 26.24, 73.02, 0.6),
    ("Chandigarh", "Chandigarh", 30.73, 76.78, 0.8),
    ("Dehradun", "Uttarakhand", 30.32, 78.03, 0.6),
    ("Agra", "Uttar Pradesh", 27.18, 78.01, 0.7),
    ("Gorakhpur", "Uttar Pradesh", 26.76, 83.37, 0.6),
    ("Jamshedpur", "Jharkhand", 22.80, 86.20, 0.6),
    ("Durgapur", "West Bengal", 23.52, 87.31, 0.6),
    ("Siliguri", "West Bengal", 26.73, 88.40, 0.5),
    ("Hubballi", "Karnataka", 15.36, 75.12, 0.6),
    ("Mysuru", "Karnataka", 12.30, 76.64, 0.6),
    ("Tiruchirappalli", "Tamil Nadu", 10.79, 78.70, 0.6),
    ("Warangal", "Telangana", 17.97, 79.59, 0.6),
    ("Jabalpur", "Madhya Pradesh", 23.18, 79.99, 0.6),
    ("Gwalior", "Madhya Pradesh", 26.22, 78.18, 0.6),
    ("Amritsar", "Punjab", 31.63, 74.87, 0.6),
    ("Jammu", "Jammu and Kashmir", 32.73, 74.86, 0.5),
    ("Panipat", "Haryana", 29.39, 76.97, 0.6),
    ("Kolhapur", "Maharashtra", 16.70, 74.24, 0.6),
    ("Solapur", "Maharashtra", 17.66, 75.91, 0.5),
    ("Muzaffarpur", "Bihar", 26.12, 85.39, 0.5),
)

EARTH_RADIUS_KM = 6371.0
ROAD_CIRCUITY = 1.25  # road km per great-circle km
ROAD_MAX_KM = 350.0  # longer hauls go by rail
RAKE_SIZES = (3000.0, 3800.0)  # tonnes per rail trip
SITE_JITTER_DEG = 0.15  # spread of a reused site around its cluster
IU_DEST_PENALTY = 2.5  # prefer grinding units over other kilns when picking destinations

CAPACITY_RANGE = (150_000.0, 450_000.0)  # t per month
PRODUCTION_COST_RANGE = (1_400.0, 2_300.0)  # INR per t
GU_DEMAND_RANGE = (40_000.0, 250_000.0)  # t per month
IU_DEMAND_SHARE = (0.40, 0.60)  # own grinding as a share of the kiln's capacity
DEMAND_TO_CAPACITY = (0.88, 0.96)  # total demand / total capacity


def generate_instance(
    ius: int = 8,
    gus: int = 16,
    periods: int = 3,
    lanes_per_iu: int = 6,
    seed: int = 9,
) -> dict[str, pd.DataFrame]:
    """A feasible planning instance with `ius` kilns, `gus` grinding units and `periods` months.

    Each IU gets exactly `lanes_per_iu` outbound lanes besides its self-lane (fewer only when
    there are not that many other plants, more only when the GUs outnumber all IU lane slots and
    one must be added so that every GU can be supplied). Returns the internal tables keyed by
    table name, with the dtypes `parse` produces.
    """
    if ius < 1 or gus < 0 or periods < 1 or lanes_per_iu < 0:
        raise ValueError("need ius >= 1, gus >= 0, periods >= 1 and lanes_per_iu >= 0")
    rng = np.random.default_rng(seed)
    t_ix = np.arange(1, periods + 1)

    iu_sites = _place(IU_SITES, ius, "IU", "Cement Works", rng)
    gu_sites = _place(GU_SITES, gus, "GU", "Grinding Unit", rng)
    nodes = pd.concat([iu_sites, gu_sites], ignore_index=True)
    n = len(nodes)
    is_iu = np.arange(n) < ius

    # --- capacity, cost and demand -----------------------------------------------------------
    # bases sit a little inside the ranges so that the monthly drift rarely hits a bound
    cap_base = rng.uniform(158_000.0, 428_000.0, ius)
    capacity = np.clip(
        cap_base[:, None] * rng.uniform(0.95, 1.05, (ius, periods)), *CAPACITY_RANGE
    ).round()
    cost_base = rng.uniform(1_450.0, 2_230.0, ius)
    prod_cost = np.clip(
        cost_base[:, None] * rng.uniform(0.97, 1.03, (ius, periods)), *PRODUCTION_COST_RANGE
    ).round()
    demand_base = _demand_base(cap_base, nodes["weight"].to_numpy()[ius:], rng)
    demand = demand_base[:, None] * rng.uniform(0.92, 1.08, (n, periods))
    gu_lo = np.minimum(GU_DEMAND_RANGE[0], demand_base[ius:, None])
    demand[ius:] = np.clip(demand[ius:], gu_lo, GU_DEMAND_RANGE[1])
    demand = demand.round()
    export = np.maximum(capacity - demand[:ius], 0.0)  # what an IU can send out beyond own use

    # --- stock ----------------------------------------------------------------------------------
    opening = (demand[:, 0] * rng.uniform(0.3, 0.8, n)).round()
    min_close = np.minimum(
        _round_to(demand * rng.uniform(0.05, 0.15, (n, periods)), 100.0),
        np.floor(0.9 * opening / 100.0)[:, None] * 100.0,
    )
    max_close = np.full((n, periods), np.nan)
    iu_max = _round_to(capacity * rng.uniform(0.3, 0.6, (ius, 1)), 1000.0)
    max_close[:ius] = np.maximum(iu_max, _ceil_to(1.3 * opening[:ius, None], 1000.0))
    gu_bounded = np.flatnonzero(~is_iu & (rng.random(n) < 0.15))
    max_close[gu_bounded] = np.maximum(
        _ceil_to(np.maximum(1.3 * opening[gu_bounded, None], 0.6 * demand[gu_bounded]), 100.0),
        2 * min_close[gu_bounded],
    )

    # --- lanes --------------------------------------------------------------------------------
    lat = np.radians(nodes["latitude"].to_numpy())
    lon = np.radians(nodes["longitude"].to_numpy())
    road_km = ROAD_CIRCUITY * _haversine_km(lat[:ius, None], lon[:ius, None], lat, lon)
    supply = cap_base - demand_base[:ius]
    dests = _choose_destinations(road_km, is_iu, lanes_per_iu, supply, demand_base, rng)
    lanes = _lanes(dests, road_km, rng)

    # --- tables ---------------------------------------------------------------------------------
    codes = nodes["code"].to_numpy()
    cons = _flow_constraints(lanes, codes, demand, export, max_close, periods, rng)
    min_pct = np.full((n, periods), np.nan)
    n_floors = max(1, ius * periods // 12)
    floor_rows = rng.choice(ius * periods, size=min(n_floors, ius * periods), replace=False)
    min_pct[:ius].flat[floor_rows] = rng.choice([50.0, 60.0, 70.0, 80.0], size=len(floor_rows))

    node_col = np.repeat(codes, periods)
    period_col = np.tile(t_ix, n)
    iu_col = np.repeat(codes[:ius], periods)
    iu_period_col = np.tile(t_ix, ius)
    tables = {
        "plants": pd.DataFrame(
            {
                "iugu_code": codes,
                "plant_type": np.where(is_iu, "IU", "GU"),
                "n_source": np.nan,
                "plant_name": nodes["plant_name"],
                "city": nodes["city"],
                "state": nodes["state"],
                "latitude": nodes["latitude"],
                "longitude": nodes["longitude"],
            }
        ),
        "clinker_demand": pd.DataFrame(
            {
                "iugu_code": node_col,
                "time_period": period_col,
                "demand": demand.ravel(),
                "min_fulfillment_pct": min_pct.ravel(),
            }
        ),
        "clinker_capacity": pd.DataFrame(
            {"iu_code": iu_col, "time_period": iu_period_col, "capacity": capacity.ravel()}
        ),
        "production_cost": pd.DataFrame(
            {"iu_code": iu_col, "time_period": iu_period_col, "production_cost": prod_cost.ravel()}
        ),
        "logistics_lanes": _lane_rows(lanes, codes, ius, periods, rng),
        "flow_constraints": cons,
        "opening_stock": pd.DataFrame({"iugu_code": codes, "opening_stock": opening}),
        "closing_stock_bounds": pd.DataFrame(
            {
                "iugu_code": node_col,
                "time_period": period_col,
                "min_close_stock": min_close.ravel(),
                "max_close_stock": max_close.ravel(),
            }
        ),
        "hub_opening_stock": _hub_rows(lanes, codes, is_iu, opening, rng),
    }
    return {spec.name: _typed(spec, tables[spec.name]) for spec in TABLES}


def _place(sites: tuple[Site, ...], count: int, prefix: str, kind: str, rng) -> pd.DataFrame:
    """Put `count` plants on the site list, reusing sites (suffix 2, 3, ...) once it runs out."""
    records = []
    for k in range(count):
        city, state, lat, lon, weight = sites[k % len(sites)]
        reuse = k // len(sites)
        name = f"{city} {kind}"
        if reuse:
            name += f" {reuse + 1}"
            lat += rng.uniform(-SITE_JITTER_DEG, SITE_JITTER_DEG)
            lon += rng.uniform(-SITE_JITTER_DEG, SITE_JITTER_DEG)
        records.append(
            {
                "code": f"{prefix}_{k + 1:03d}",
                "plant_name": name,
                "city": city,
                "state": state,
                "latitude": round(lat, 4),
                "longitude": round(lon, 4),
                "weight": weight,
            }
        )
    columns = ["code", "plant_name", "city", "state", "latitude", "longitude", "weight"]
    return pd.DataFrame(records, columns=columns)


def _demand_base(cap: np.ndarray, gu_weight: np.ndarray, rng) -> np.ndarray:
    """Monthly demand per node so that total demand is a tight but mostly servable share of
    capacity. GU demand stays in GU_DEMAND_RANGE when the sizes allow; when there are many GUs
    per kiln, the IUs' own use shrinks to its low end first and then the GU floor gives."""
    n_gus = len(gu_weight)
    target = rng.uniform(*DEMAND_TO_CAPACITY) * cap.sum()
    share = rng.uniform(*IU_DEMAND_SHARE, len(cap))
    iu_demand = share * cap
    raw = gu_weight * rng.lognormal(0.0, 0.35, n_gus)
    if n_gus == 0:
        return iu_demand
    lo, hi = GU_DEMAND_RANGE
    gu_target = target - iu_demand.sum()
    wanted = n_gus * lo / 0.9  # enough for the GUs to spread above the floor
    if gu_target < wanted:  # shrink own use towards the low end of its range
        low_share = IU_DEMAND_SHARE[0] * cap
        room = iu_demand.sum() - low_share.sum()
        need = wanted - gu_target
        shrink = min(1.0, need / room) if room > 0 else 1.0
        iu_demand = iu_demand - shrink * (iu_demand - low_share)
        gu_target = target - iu_demand.sum()
    if gu_target < wanted * (1 - 1e-9):  # still too little per GU: the floor gives, with spread
        lo = max(1000.0, 0.5 * gu_target / n_gus)
    s_lo, s_hi = 1e-3, 1e7
    for _ in range(100):  # bisection on a scale factor; the clipped sum is monotone in it
        s = math.sqrt(s_lo * s_hi)
        if np.clip(s * raw, lo, hi).sum() < gu_target:
            s_lo = s
        else:
            s_hi = s
    return np.concatenate([iu_demand, np.clip(s_lo * raw, lo, hi)])


def _haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    a = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _choose_destinations(
    road_km: np.ndarray,
    is_iu: np.ndarray,
    lanes_per_iu: int,
    supply: np.ndarray,
    need: np.ndarray,
    rng,
) -> list[list[int]]:
    """Outbound destinations per IU, in two passes.

    First the GUs get their main suppliers: IU-GU pairs are taken nearest first while the IU
    has clinker to spare for the GU and a free lane slot, as a planner would source a market
    from the closest kiln with headroom; a GU that nothing could cover then gets a lane from
    the nearest IU with a free slot, so no GU is cut off. Then each IU fills its remaining
    slots with nearby plants, the order perturbed so the network is not a pure
    nearest-neighbour graph.
    """
    ius, n = road_km.shape
    slots = min(lanes_per_iu, n - 1)
    dests: list[list[int]] = [[] for _ in range(ius)]
    gus = np.flatnonzero(~is_iu)
    left = supply.astype(float).copy()
    open_need = need.astype(float).copy()
    supplied = np.zeros(n, dtype=bool)
    if len(gus) and slots:
        for flat in np.argsort(road_km[:, gus], axis=None, kind="stable"):
            i, g = divmod(int(flat), len(gus))
            g = int(gus[g])
            if open_need[g] <= 0 or left[i] <= 0 or len(dests[i]) >= slots:
                continue
            dests[i].append(g)
            supplied[g] = True
            moved = min(left[i], open_need[g])
            left[i] -= moved
            open_need[g] -= moved
    for g in gus[~supplied[gus]]:
        order = np.argsort(road_km[:, g], kind="stable")
        free = [i for i in order if len(dests[i]) < slots]
        dests[int(free[0] if free else order[0])].append(int(g))
    noise = rng.lognormal(0.0, 0.3, (ius, n))
    score = road_km * noise * np.where(is_iu, IU_DEST_PENALTY, 1.0)
    for i in range(ius):
        score[i, i] = np.inf
        taken = set(dests[i])
        for j in np.argsort(score[i], kind="stable"):
            if len(dests[i]) >= slots:
                break
            if j != i and int(j) not in taken:
                dests[i].append(int(j))
                taken.add(int(j))
        dests[i].sort()
    return dests


def _lanes(dests: list[list[int]], road_km: np.ndarray, rng) -> pd.DataFrame:
    """One lane per (origin, destination): road below ROAD_MAX_KM, rail above."""
    frm = np.array([i for i, ds in enumerate(dests) for _ in ds], dtype=int)
    to = np.array([j for ds in dests for j in ds], dtype=int)
    km = road_km[frm, to]
    rail = km >= ROAD_MAX_KM
    k = len(frm)
    road_rate = rng.uniform(2.2, 3.2, k)
    rail_rate = rng.uniform(0.9, 1.4, k)
    fixed = np.where(rail, rng.normal(250.0, 25.0, k), rng.normal(150.0, 15.0, k))
    freight = np.where(rail, rail_rate, road_rate) * km + fixed
    handling = np.where(rail & (rng.random(k) < 0.3), rng.integers(4, 19, k) * 25.0, 0.0)
    mult = np.where(rail, rng.choice(RAKE_SIZES, k, p=[0.7, 0.3]), 1.0)
    return pd.DataFrame(
        {
            "from_ix": frm,
            "to_ix": to,
            "km": km,
            "mode": np.where(rail, "T2", "T1"),
            "freight": freight,
            "handling": handling,
            "mult": mult,
        }
    )


def _lane_rows(lanes: pd.DataFrame, codes: np.ndarray, ius: int, periods: int, rng) -> pd.DataFrame:
    """Every lane once per period (freight drifting a little), plus the IUs' self-lanes."""
    self_lanes = pd.DataFrame(
        {
            "from_ix": np.arange(ius),
            "to_ix": np.arange(ius),
            "mode": "T1",
            "freight": 0.0,
            "handling": 0.0,
            "mult": 1.0,
        }
    )
    all_lanes = pd.concat([self_lanes, lanes], ignore_index=True)
    all_lanes = all_lanes.sort_values(["from_ix", "to_ix"], kind="stable", ignore_index=True)
    k = len(all_lanes)
    drift = rng.uniform(0.95, 1.05, (k, periods))
    freight = (all_lanes["freight"].to_numpy()[:, None] * drift).round(2)
    return pd.DataFrame(
        {
            "from_code": np.repeat(codes[all_lanes["from_ix"].to_numpy()], periods),
            "to_code": np.repeat(codes[all_lanes["to_ix"].to_numpy()], periods),
            "transport_code": np.repeat(all_lanes["mode"].to_numpy(), periods),
            "time_period": np.tile(np.arange(1, periods + 1), k),
            "freight_cost": freight.ravel(),
            "handling_cost": np.repeat(all_lanes["handling"].to_numpy(), periods),
            "quantity_multiplier": np.repeat(all_lanes["mult"].to_numpy(), periods),
        }
    )


def _flow_constraints(
    lanes: pd.DataFrame,
    codes: np.ndarray,
    demand: np.ndarray,
    export: np.ndarray,
    max_close: np.ndarray,
    periods: int,
    rng,
) -> pd.DataFrame:
    """IUGUConstraint rows of the three scopes seen in the dataset, each one satisfiable.

    Forced flows (E > 0 on road lanes, G on rail lanes) go only to GUs without a MAX CLOSE
    STOCK, take at most ~45 % of what the IU can export, and every L cap on that IU is set on
    top of them. Bans (E = 0) hit only lanes whose destination has another supplier.
    """
    ius = export.shape[0]
    t_ix = np.arange(1, periods + 1)
    rows: list[tuple] = []
    forced = np.zeros((ius, periods))
    forced_mode = {"T1": np.zeros((ius, periods)), "T2": np.zeros((ius, periods))}
    used: set[tuple[int, int]] = set()
    to_gu = lanes[lanes["to_ix"] >= ius]
    unbounded = np.isnan(max_close).all(axis=1)
    suppliers = lanes.groupby("to_ix")["from_ix"].nunique().to_dict()

    def pick(candidates: pd.DataFrame, share: float) -> list[pd.Series]:
        """At most one lane per IU, on about `share` of the IUs that have a candidate."""
        if candidates.empty:
            return []
        chosen = []
        origins = candidates["from_ix"].unique()
        want = max(1, round(share * ius))
        for i in rng.permutation(origins)[:want]:
            options = candidates[candidates["from_ix"] == i]
            options = options[[(int(i), int(j)) not in used for j in options["to_ix"]]]
            if len(options):
                lane = options.iloc[int(rng.integers(len(options)))]
                used.add((int(lane["from_ix"]), int(lane["to_ix"])))
                chosen.append(lane)
        return chosen

    def add(i: int, mode: str | None, dest: int | None, bound: str, values) -> None:
        for t, v in zip(t_ix, values, strict=True):
            rows.append((codes[i], mode, None if dest is None else codes[dest], t, bound, float(v)))

    # lane bans: E = 0, only where the destination keeps another supplier
    bannable = to_gu[to_gu["to_ix"].map(suppliers) >= 2]
    for lane in pick(bannable, 0.10):
        i, j = int(lane["from_ix"]), int(lane["to_ix"])
        if suppliers[j] < 2:
            continue
        suppliers[j] -= 1
        add(i, lane["mode"] if rng.random() < 0.5 else None, j, "E", np.zeros(periods))

    # fixed road deliveries: E > 0 on T1 lanes
    road = to_gu[(to_gu["mode"] == "T1") & unbounded[to_gu["to_ix"]]]
    for lane in pick(road, 0.10):
        i, j = int(lane["from_ix"]), int(lane["to_ix"])
        share = rng.uniform(0.10, 0.30)
        values = np.maximum(10.0, _round_to(np.minimum(share * demand[j], 0.2 * export[i]), 10.0))
        forced[i] += values
        forced_mode["T1"][i] += values
        add(i, None, j, "E", values)

    # minimum rail offtake: G on T2 lanes, a little under a whole number of rakes
    rail = to_gu[(to_gu["mode"] == "T2") & unbounded[to_gu["to_ix"]]]
    for lane in pick(rail, 0.08):
        i, j, m = int(lane["from_ix"]), int(lane["to_ix"]), float(lane["mult"])
        budget = np.minimum(rng.uniform(0.15, 0.30) * demand[j], 0.25 * export[i])
        rakes = np.floor(budget / m)
        if (rakes < 1).any():
            used.discard((i, j))
            continue
        values = rakes * m - rng.integers(0, int(m) // 4, periods)
        forced[i] += rakes * m
        forced_mode["T2"][i] += rakes * m
        add(i, None, j, "G", values)

    # contractual caps on single destinations: L
    for lane in pick(to_gu, 0.15):
        j = int(lane["to_ix"])
        add(int(lane["from_ix"]), None, j, "L", _round_to(rng.uniform(0.2, 0.5) * demand[j], 10.0))

    # dispatch caps per IU and mode (mostly rail) and per IU in total
    modes = lanes.groupby("from_ix")["mode"].agg(set).to_dict()
    for i in _subset(ius, 0.35, rng):
        have = modes.get(i, set())
        if not have:
            continue
        mode = "T2" if "T2" in have and (rng.random() < 0.8 or "T1" not in have) else "T1"
        values = _ceil_to(export[i] * rng.uniform(0.55, 0.95) + forced_mode[mode][i], 100.0)
        add(i, mode, None, "L", values)
    for i in _subset(ius, 0.35, rng):
        if i not in modes:
            continue
        add(i, None, None, "L", _ceil_to(export[i] * rng.uniform(0.8, 1.2) + forced[i], 100.0))

    frame = pd.DataFrame(
        rows,
        columns=[
            "iu_code",
            "transport_code",
            "iugu_code",
            "time_period",
            "bound_typeid",
            "value",
        ],
    )
    frame.insert(5, "value_typeid", "C")
    order = frame["iu_code"].map({c: k for k, c in enumerate(codes)})
    return (
        frame.assign(_o=order).sort_values(["_o", "time_period"], kind="stable").drop(columns="_o")
    )


def _subset(count: int, share: float, rng) -> list[int]:
    """About `share` of range(count), at least one, in ascending order."""
    if count == 0:
        return []
    mask = rng.random(count) < share
    if not mask.any():
        mask[rng.integers(count)] = True
    return np.flatnonzero(mask).tolist()


def _hub_rows(
    lanes: pd.DataFrame, codes: np.ndarray, is_iu: np.ndarray, opening: np.ndarray, rng
) -> pd.DataFrame:
    """Origin-tagged stock at one or a few GU hubs fed by several IUs. The tags split part of
    the hub's opening stock, never more (the rule validation checks)."""
    if lanes.empty:
        return pd.DataFrame(columns=["iu_code", "hub_code", "opening_stock"])
    inbound = lanes[~is_iu[lanes["to_ix"]]].groupby("to_ix")["from_ix"].apply(sorted)
    inbound = inbound[inbound.map(len) >= 2]
    records = []
    n_hubs = min(len(inbound), 1 + len(codes) // 200)
    if n_hubs:
        by_sources = sorted(inbound.index, key=lambda j: (-len(inbound[j]), j))
        for hub in by_sources[:n_hubs]:
            sources = inbound[hub][:3]
            tagged = opening[hub] * rng.uniform(0.4, 0.9)
            split = rng.dirichlet(np.ones(len(sources)))
            split[rng.random(len(sources)) < 0.4] = 0.0  # some origins have nothing left there
            for i, part in zip(sources, split, strict=True):
                records.append((codes[i], codes[hub], math.floor(tagged * part * 100) / 100))
    return pd.DataFrame(records, columns=["iu_code", "hub_code", "opening_stock"])


def _typed(spec: TableSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """The table's internal columns with the dtypes `parse` gives them. `source_row` is the line
    each row gets from `write_tables`, so a problem found later points into the written file."""
    typed = coerce_table(spec, frame.drop(columns="source_row", errors="ignore"))
    typed = typed[spec.column_names]
    typed["source_row"] = pd.array(np.arange(len(typed)) + FIRST_DATA_ROW, dtype="Int64")
    return typed


def _round_to(x, step: float):
    return np.round(np.asarray(x, dtype=float) / step) * step


def _ceil_to(x, step: float):
    return np.ceil(np.asarray(x, dtype=float) / step - 1e-9) * step


__all__ = ["GU_SITES", "IU_SITES", "generate_instance"]
