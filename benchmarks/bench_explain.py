"""What explaining a plan costs next to solving it: reasons, marginal values (the fixed-trip LP,
both stages, and the one-more-rake re-solves), charts, and writing the explanation tables.

Run: `.venv/bin/python benchmarks/bench_explain.py` (bundled sample + the optimizer benchmark's
120 IU / 500 GU / 12 period / 15 lanes-per-IU instance; `--skip-large` for the sample only).
Target (issue 12): everything the explanation adds costs less than 20 % of the solve.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_optimizer import LARGE
from clinker_pipeline.explain import explain_plan
from clinker_pipeline.explain.charts import plan_charts
from clinker_pipeline.explain.marginals import bottlenecks
from clinker_pipeline.instance import load_instance, sample_instance_path, validate_instance
from clinker_pipeline.instance.generate import generate_instance
from clinker_pipeline.lib.store.plan_store import write_plan
from clinker_pipeline.optimization import SolveOptions, optimize


def measure(name: str, tables: dict, options: SolveOptions) -> dict:
    result = optimize(tables, options)
    expl = explain_plan(tables, result)
    result.explanation = expl
    plan_charts(tables["plants"], result)  # matplotlib's import and font cache: once a process
    t = time.perf_counter()
    plan_charts(tables["plants"], result)
    charts_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp, duckdb.connect(f"{tmp}/b.duckdb") as con:
        write_plan(con, result, launched_by="benchmark")  # a previous plan: changes are made
        result.run_id = uuid.uuid4().hex
        t = time.perf_counter()
        counts = write_plan(con, result, launched_by="benchmark")
        with_expl_s = time.perf_counter() - t
        result.explanation = None
        result.run_id = uuid.uuid4().hex
        t = time.perf_counter()
        write_plan(con, result, launched_by="benchmark")
        plain_s = time.perf_counter() - t
    write_extra_s = max(0.0, with_expl_s - plain_s)
    extra = expl.seconds + charts_s + write_extra_s
    return {
        "instance": name,
        "status": result.status,
        "n_vars": result.n_vars,
        "n_int": result.n_int,
        "solve_s": result.solve_s,
        "explain_s": expl.seconds,
        **expl.timings,
        "charts_s": charts_s,
        "write_extra_s": write_extra_s,
        "extra_pct_of_solve": 100 * extra / result.solve_s,
        "unmet_node_periods": len(expl.reasons),
        "reasons": expl.reasons["reason"].value_counts().to_dict() if len(expl.reasons) else {},
        "marginal_rows": len(expl.marginals),
        "rake_lanes_resolved": int((expl.marginals["kind"] == "rake_trip").sum())
        if len(expl.marginals)
        else 0,
        "binding_bottlenecks": len(bottlenecks(expl.marginals)),
        "rows_written": {k: v for k, v in counts.items() if k.startswith("plan_") and "_" in k},
        "error": expl.error,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--time-limit", type=float, default=300.0)
    parser.add_argument("--gap", type=float, default=1e-4)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--json", action="store_true", help="one JSON line per instance")
    args = parser.parse_args(argv)
    options = SolveOptions(time_limit=args.time_limit, mip_gap=args.gap)
    cases = [("bundled sample", lambda: load_instance(sample_instance_path()).tables)]
    if not args.skip_large:
        label = "generated {ius} IU / {gus} GU / {periods} periods / {lanes_per_iu} lanes".format(
            **LARGE
        )
        cases.append((label, lambda: validate_instance(generate_instance(**LARGE)).tables))
    for name, make in cases:
        row = measure(name, make(), options)
        if args.json:
            print(json.dumps(row))
            continue
        print(
            f"{name}: {row['status']}, {row['n_vars']:,} vars ({row['n_int']:,} int); "
            f"{row['unmet_node_periods']} unmet node-periods explained, {row['marginal_rows']:,} "
            f"marginal rows ({row['rake_lanes_resolved']} rake lanes re-solved)"
        )
        print(
            f"  solve {row['solve_s']:.2f} s | explain {row['explain_s']:.2f} s (prepare "
            f"{row.get('prepare_s', 0):.2f}, reasons {row.get('reasons_s', 0):.2f}, marginals "
            f"{row.get('marginals_s', 0):.2f}) | charts {row['charts_s']:.2f} s | extra write "
            f"{row['write_extra_s']:.2f} s"
        )
        print(f"  reasons {row['reasons']}")
        print(f"  explanations cost {row['extra_pct_of_solve']:.1f} % of the solve time")
        if row["error"]:
            print(f"  ERROR {row['error']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
