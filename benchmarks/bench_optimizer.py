"""Where an optimizer run spends its time, and how strong the planner is on realistic networks.

Overhead (default): `.venv/bin/python benchmarks/bench_optimizer.py` (bundled sample + the 120 IU /
500 GU / 12 period / 15 lanes-per-IU generated instance). The contract's target: everything that is
not HiGHS's own solve costs less than 30 % of the solve time on the large instance.

Strength (`--strength`): for each instance of the realistic set (`clinker generate --ius 40 --gus
120 --periods 12 --lanes-per-iu 12` with seeds the project never used, and the large instance) and
each time limit in `--points`, one run per configuration (`old`: the settings before issue 14;
`new`: today's defaults; `bounds`, `unscaled`: one option changed), printing per stage the gap and served tonnes side by side.
`--instances` and `--points` make a quick run possible, e.g.
`--strength --instances r40-41 --points 30`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from clinker_pipeline.instance import load_instance, sample_instance_path, validate_instance
from clinker_pipeline.instance.generate import generate_instance
from clinker_pipeline.lib.store.plan_store import write_plan
from clinker_pipeline.optimization import SolveOptions, optimize

LARGE = {"ius": 120, "gus": 500, "periods": 12, "lanes_per_iu": 15, "seed": 2026}
# The realistic set of issue 14: 40 IU / 120 GU / 12 months, seeds no test or example uses.
REALISTIC = {
    **{
        f"r40-{seed}": {"ius": 40, "gus": 120, "periods": 12, "lanes_per_iu": 12, "seed": seed}
        for seed in (41, 53, 67)
    },
    "large": LARGE,
}
CONFIGS = {
    "old": {"mip_start": False, "flow_bounds": False, "scale_cost": False},
    "new": {},
    "bounds": {"flow_bounds": True},  # new + the implied lane bounds
    "unscaled": {"scale_cost": False},  # new without the cost objective scaled inside HiGHS
}


def measure(name: str, tables: dict, options: SolveOptions, repeats: int) -> dict:
    rows = []
    for _ in range(repeats):
        result = optimize(tables, options)
        with tempfile.TemporaryDirectory() as tmp, duckdb.connect(f"{tmp}/b.duckdb") as con:
            t = time.perf_counter()
            write_plan(con, result, launched_by="benchmark")
            write_s = time.perf_counter() - t
        overhead = result.build_s + result.handoff_s + result.extract_s + write_s
        rows.append(
            {
                "instance": name,
                "status": result.status,
                "n_vars": result.n_vars,
                "n_int": result.n_int,
                "n_rows": result.n_rows,
                "build_s": result.build_s,
                "handoff_s": result.handoff_s,
                "solve_s": result.solve_s,
                "extract_s": result.extract_s,
                "write_s": write_s,
                "overhead_pct_of_solve": 100 * overhead / result.solve_s,
                "mip_gap": result.mip_gap,
                "served_pct": result.served_pct,
            }
        )
    best = min(rows, key=lambda r: r["overhead_pct_of_solve"])
    best["repeats"] = repeats
    best["median_solve_s"] = statistics.median(r["solve_s"] for r in rows)
    return best


def strength(name: str, tables: dict, config: str, time_limit: float, gap: float) -> dict:
    """One run: the serve stage's gap (share of demand) and served tonnes, the cost stage's gap."""
    options = SolveOptions(time_limit=time_limit, mip_gap=gap, **CONFIGS[config])
    t = time.perf_counter()
    result = optimize(tables, options)
    return {
        "instance": name,
        "config": config,
        "time_limit_s": time_limit,
        "wall_s": time.perf_counter() - t,
        "solve_s": result.solve_s,
        "status": result.status,
        "served_t": None if result.unmet_t is None else result.demand_t - result.unmet_t,
        "serve_gap": result.serve_gap,
        "cost_gap": result.mip_gap,
        "cost": result.cost,
    }


def _pct(v: float | None) -> str:
    return "    n/a" if v is None else f"{100 * v:7.4f} %"


def run_strength(args: argparse.Namespace) -> int:
    names = args.instances.split(",") if args.instances else list(REALISTIC)
    points = [float(p) for p in args.points.split(",")]
    configs = args.configs.split(",")
    if not args.json:
        print(
            "instance   limit  | "
            + " | ".join(f"{c}: serve gap, served t, cost gap, solve s" for c in configs)
        )
    for name in names:
        tables = validate_instance(generate_instance(**REALISTIC[name])).tables
        for limit in points:
            rows = [strength(name, tables, c, limit, args.gap) for c in configs]
            if args.json:
                for row in rows:
                    print(json.dumps(row), flush=True)
                continue
            cells = [
                f"{_pct(r['serve_gap'])} {r['served_t'] or 0:>12,.0f} {_pct(r['cost_gap'])}"
                f" {r['solve_s']:6.1f}"
                for r in rows
            ]
            print(f"{name:<9} {limit:5.0f} s | " + " | ".join(cells), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--time-limit", type=float, default=300.0)
    parser.add_argument("--gap", type=float, default=1e-4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--json", action="store_true", help="one JSON line per instance")
    parser.add_argument("--strength", action="store_true", help="the realistic set, old vs new")
    parser.add_argument("--instances", help=f"comma list of {', '.join(REALISTIC)}")
    parser.add_argument("--points", default="30,60,120,300", help="time limits (s), comma list")
    parser.add_argument("--configs", default="old,new", help=f"comma list of {', '.join(CONFIGS)}")
    args = parser.parse_args(argv)
    if args.strength:
        return run_strength(args)
    options = SolveOptions(time_limit=args.time_limit, mip_gap=args.gap)

    cases = [("bundled sample", lambda: load_instance(sample_instance_path()).tables)]
    if not args.skip_large:
        label = "generated {ius} IU / {gus} GU / {periods} periods / {lanes_per_iu} lanes".format(
            **LARGE
        )
        cases.append((label, lambda: validate_instance(generate_instance(**LARGE)).tables))
    for name, make in cases:
        t = time.perf_counter()
        tables = make()
        load_s = time.perf_counter() - t
        row = measure(name, tables, options, args.repeats)
        row["load_s"] = load_s
        if args.json:
            print(json.dumps(row))
            continue
        print(
            f"{name}: {row['status']}, {row['n_vars']:,} vars ({row['n_int']:,} int), "
            f"{row['n_rows']:,} rows, gap {row['mip_gap']}, served {row['served_pct']:.3f} %"
        )
        print(
            f"  load {load_s:.2f} s | build {row['build_s']:.2f} s | hand-off {row['handoff_s']:.2f} s"
            f" | solve {row['solve_s']:.2f} s | extract {row['extract_s']:.2f} s"
            f" | write {row['write_s']:.2f} s"
        )
        print(f"  not-solver overhead = {row['overhead_pct_of_solve']:.1f} % of solve time")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
