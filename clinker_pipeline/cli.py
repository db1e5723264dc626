"""The `clinker` command: the interface scripts and people use outside the Dagster UI.

Exit codes are part of the contract: 0 plan found (or instance valid), 1 bad input,
2 infeasible instance (diagnosis on stderr), 3 solver gave no plan (e.g. time limit too short).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

from clinker_pipeline import settings
from clinker_pipeline.argtypes import positive_float, positive_int
from clinker_pipeline.errors import ClinkerError, InvalidInstance, SolverUnavailable

EXIT_OK, EXIT_BAD_INPUT, EXIT_INFEASIBLE, EXIT_NO_PLAN = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # Ctrl-C before any plan was found (128 + SIGINT, as shells report it)


def _gap(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clinker", description="Plan clinker production, shipments and stock."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check an instance; one line per problem")
    p.add_argument("path", help="directory of CSV files or an .xlsx workbook")
    p.add_argument("--warnings", action="store_true", help="also list warnings (on stderr)")

    p = sub.add_parser("template", help="write empty CSV files with the right headers")
    p.add_argument("out_dir")

    p = sub.add_parser("optimize", help="solve an instance and write the plan to DuckDB")
    p.add_argument("--input", default=None, help="instance path (default: bundled sample)")
    p.add_argument("--gap", type=_gap, default=1e-4, help="relative MIP gap of the cost stage")
    p.add_argument("--time-limit", type=positive_float, default=300.0, help="seconds, all stages")
    p.add_argument("--objective", choices=["lexicographic", "penalty"], default="lexicographic")
    p.add_argument("--penalty", type=float, default=1e5, help="INR/t unmet (objective=penalty)")
    p.add_argument("--holding-cost", type=float, default=0.0, help="INR per t per period")
    p.add_argument("--solver", default="highs", help="see `clinker solvers`")
    p.add_argument("--output", default=None, help="DuckDB file (default: CLINKER_DUCKDB_PATH)")
    p.add_argument("--no-write", action="store_true", help="solve only; write nothing")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    sub.add_parser("solvers", help="list the solvers Pyomo can use here")

    p = sub.add_parser("health", help="reachability, latency and data age of every source")
    p.add_argument("--timeout", type=positive_float, default=5.0, help="seconds per probe")
    p.add_argument("--duckdb", default=None, help="DuckDB file (default: CLINKER_DUCKDB_PATH)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")

    p = sub.add_parser("generate", help="write a synthetic instance in the dataset format")
    p.add_argument("out_dir")
    p.add_argument("--ius", type=positive_int, default=8)
    p.add_argument("--gus", type=positive_int, default=16)
    p.add_argument("--periods", type=positive_int, default=3)
    p.add_argument("--lanes-per-iu", type=positive_int, default=6)
    p.add_argument("--seed", type=int, default=9)

    p = sub.add_parser("run", help="materialize the whole asset graph (the main job)")
    p.add_argument("--input", default=None, help="instance path (default: bundled sample)")
    p.add_argument("--duckdb", default=None, help="DuckDB file (default: CLINKER_DUCKDB_PATH)")
    p.add_argument("--time-limit", type=positive_float, default=300.0)
    p.add_argument("--gap", type=_gap, default=1e-4)
    p.add_argument(
        "--source",
        choices=["files", "erp"],
        default=None,
        help="plants, stock, demand and capacity from the instance files or the ERP feeds "
        "(default: CLINKER_INPUT_SOURCE, else files)",
    )

    from clinker_pipeline.defs.telemetry.ingest import add_ingest_arguments
    from clinker_pipeline.defs.telemetry.simulate import add_simulate_arguments

    add_ingest_arguments(
        sub.add_parser(
            "ingest-mqtt", help="land plant and fleet telemetry from MQTT (QoS 1, no loss)"
        )
    )
    add_simulate_arguments(
        sub.add_parser(
            "simulate-telemetry", help="publish realistic plant and fleet telemetry to MQTT"
        )
    )
    return parser


def cmd_ingest(args: argparse.Namespace) -> int:
    from clinker_pipeline.defs.telemetry.ingest import ingest_command

    return ingest_command(args)


def cmd_simulate(args: argparse.Namespace) -> int:
    from clinker_pipeline.defs.telemetry.simulate import simulate_command

    return simulate_command(args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    handler = {
        "validate": cmd_validate,
        "template": cmd_template,
        "optimize": cmd_optimize,
        "solvers": cmd_solvers,
        "generate": cmd_generate,
        "run": cmd_run,
        "health": cmd_health,
        "ingest-mqtt": cmd_ingest,
        "simulate-telemetry": cmd_simulate,
    }[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:  # a second Ctrl-C during a solve, or one outside any solve
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except InvalidInstance as exc:
        print(f"error: {exc}", file=sys.stderr)
        for problem in exc.problems:
            print(str(problem), file=sys.stderr)
        return EXIT_BAD_INPUT
    except (SolverUnavailable, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ClinkerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NO_PLAN


def cmd_validate(args: argparse.Namespace) -> int:
    from clinker_pipeline.instance import load_instance

    instance = load_instance(args.path)
    for problem in instance.errors:
        print(f"ERROR {problem}")
    if args.warnings:
        for problem in instance.warnings:
            print(f"WARN {problem}", file=sys.stderr)
    n_err, n_warn = len(instance.errors), len(instance.warnings)
    verdict = "valid" if instance.valid else "invalid"
    print(f"{args.path}: {verdict} ({n_err} errors, {n_warn} warnings)", file=sys.stderr)
    return EXIT_OK if instance.valid else EXIT_BAD_INPUT


def cmd_template(args: argparse.Namespace) -> int:
    from clinker_pipeline.instance.io import write_tables
    from clinker_pipeline.instance.parse import empty_table
    from clinker_pipeline.instance.tables import TABLES

    written = write_tables({t.name: empty_table(t) for t in TABLES}, args.out_dir, all_columns=True)
    for path in written:
        print(path)
    return EXIT_OK


def cmd_generate(args: argparse.Namespace) -> int:
    from clinker_pipeline.instance.generate import generate_instance
    from clinker_pipeline.instance.io import write_tables

    tables = generate_instance(
        ius=args.ius,
        gus=args.gus,
        periods=args.periods,
        lanes_per_iu=args.lanes_per_iu,
        seed=args.seed,
    )
    for path in write_tables(tables, args.out_dir):
        print(path)
    return EXIT_OK


def cmd_solvers(args: argparse.Namespace) -> int:
    from clinker_pipeline.optimization.solvers import list_solvers

    for info in list_solvers():
        state = f"available {info.version or ''}".strip() if info.available else "not available"
        print(f"{info.name:<14} {state:<22} {info.interface}")
    return EXIT_OK


def cmd_health(args: argparse.Namespace) -> int:
    """Exit 1 when a required (configured) source is down; sample-mode sources never fail."""
    from clinker_pipeline.health import check_all

    results = check_all(timeout=args.timeout, duckdb_path=args.duckdb)
    down = [r for r in results if r.required and not r.ok]
    if args.json:
        print(json.dumps({"ok": not down, "sources": [r.to_dict() for r in results]}))
    else:
        for r in results:
            state = "ok" if r.ok else "DOWN"
            if not r.configured:
                state = "-"
            latency = f"{r.latency_ms:.0f} ms" if r.latency_ms is not None else ""
            last = f"last good {r.last_good_at}" if r.last_good_at else ""
            print(
                f"{r.name:<12} {state:<5} {latency:>8}  {r.endpoint:<32} {r.detail} {last}".rstrip()
            )
    return EXIT_BAD_INPUT if down else EXIT_OK


def cmd_optimize(args: argparse.Namespace) -> int:
    from clinker_pipeline.instance import load_instance, sample_instance_path
    from clinker_pipeline.optimization import SolveOptions, optimize
    from clinker_pipeline.report import plan_summary

    path = args.input or str(sample_instance_path())
    instance = load_instance(path)
    if not instance.valid:
        raise InvalidInstance(
            f"{path}: {len(instance.errors)} problem(s); nothing was solved "
            "(`clinker validate` lists them)",
            instance.errors,
        )
    options = SolveOptions(
        objective=args.objective,
        solver=args.solver,
        mip_gap=args.gap,
        time_limit=args.time_limit,
        holding_cost=args.holding_cost,
        penalty=args.penalty,
    )
    warnings = [str(p) for p in instance.warnings]
    progress = None
    if args.verbose:  # solve progress on stderr every few seconds
        from clinker_pipeline.optimization.guard import StderrProgress

        progress = StderrProgress()
    try:
        result = optimize(instance.tables, options, warnings=warnings, progress=progress)
    finally:
        if progress is not None:
            progress.close()
    output = None
    if not args.no_write:
        import duckdb

        from clinker_pipeline.lib.store.plan_store import write_plan

        output = settings.ensure_parent(args.output or settings.duckdb_path())
        with duckdb.connect(output) as con:
            write_plan(
                con,
                result,
                launched_by="cli",
                inputs_fingerprint=instance.fingerprint(),
                input_origin=str(path),
                input_warnings=warnings,
            )
    if args.json:
        record = {**result.summary(), "output": output, "n_input_warnings": len(warnings)}
        record = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in record.items()
        }
        print(json.dumps(record))
    else:
        print(plan_summary(result, output))
    if result.status == "infeasible":
        print(f"infeasible: {result.message}", file=sys.stderr)
        for line in result.diagnosis.get("description", []):
            print(f"  {line}", file=sys.stderr)
        return EXIT_INFEASIBLE
    if not result.plan_found:
        print(f"no plan: {result.message}", file=sys.stderr)
        return EXIT_INTERRUPTED if result.interrupted else EXIT_NO_PLAN
    return EXIT_OK


def _latest_comparison(database: str) -> Any:
    """The newest scenario comparison, or None (the asset may have been skipped)."""
    import duckdb

    try:
        with duckdb.connect(database, read_only=True) as con:
            return con.execute("SELECT * FROM latest_scenario_comparison").df()
    except duckdb.Error:
        return None


def _quality_report(instance: Any, run_id: str, database: str) -> Any:
    """The data-quality report of the run just made (what data_quality_sensor does in a
    deployment), or None when it cannot be built."""
    from dagster_duckdb import DuckDBResource

    from clinker_pipeline.defs.quality.assets import build_report

    try:
        return build_report(instance, run_id, DuckDBResource(database=database))
    except Exception as exc:  # the plan is already published: report, do not fail the run
        print(f"data-quality report not built: {exc}", file=sys.stderr)
        return None


def cmd_run(args: argparse.Namespace) -> int:
    """Materialize every asset in-process, as the scheduled job would, and print the plan."""
    if args.input:
        os.environ["CLINKER_INSTANCE_PATH"] = str(Path(args.input).resolve())
    if args.duckdb:
        os.environ["CLINKER_DUCKDB_PATH"] = args.duckdb
    import dagster as dg

    from clinker_pipeline.definitions import defs
    from clinker_pipeline.report import plan_summary, quality_summary, scenario_summary

    instance = (
        dg.DagsterInstance.get() if os.getenv("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    )
    job = defs.resolve_job_def("clinker_plan_job")
    plan_config = {"time_limit": args.time_limit, "mip_gap": args.gap}
    if args.source:
        plan_config["input_source"] = args.source
    run_config = {
        "ops": {"clinker_plan": {"config": plan_config}},
        "loggers": {"console": {"config": {"log_level": "INFO" if args.verbose else "WARNING"}}},
    }
    result = job.execute_in_process(run_config=run_config, instance=instance, raise_on_error=False)
    failed_checks = [
        e
        for e in result.get_asset_check_evaluations()
        if not e.passed and e.severity.value == "ERROR"
    ]
    for check in failed_checks:
        print(
            f"check failed: {check.asset_key.to_user_string()}.{check.check_name}", file=sys.stderr
        )
    try:
        plan = result.output_for_node("clinker_plan")
    except Exception:
        plan = None
    if plan is None:
        print(
            "the plan was not built: the input checks above failed (see the quarantine table, "
            "or run `clinker validate` on the instance)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    print(
        f"Materialized {len(result.get_asset_materialization_events())} assets "
        f"(Dagster run {result.run_id})."
    )
    database = os.getenv("CLINKER_DUCKDB_PATH", settings.duckdb_path())
    print(plan_summary(plan, database))
    print(scenario_summary(_latest_comparison(database)))
    print(quality_summary(_quality_report(instance, result.run_id, database)))
    if not result.success:
        return EXIT_NO_PLAN
    if plan.status == "infeasible":
        return EXIT_INFEASIBLE
    return EXIT_OK if plan.plan_found else EXIT_NO_PLAN


if __name__ == "__main__":
    sys.exit(main())
