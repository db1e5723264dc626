"""The `clinker` command: the interface scripts and people use outside the Dagster UI.

Exit codes are part of the contract: 0 plan found (or instance valid), 1 bad input (usage
errors included), 2 infeasible instance (diagnosis on stderr), 3 solver gave no plan (e.g. time
limit too short), 4 plan solved but not written (it is printed instead), 130 interrupted.
With `--json` every exit path prints exactly one JSON object with `status` and `message`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clinker_pipeline import settings
from clinker_pipeline.argtypes import non_negative_float, positive_float, positive_int
from clinker_pipeline.errors import ClinkerError, InvalidInstance, SolverUnavailable

EXIT_OK, EXIT_BAD_INPUT, EXIT_INFEASIBLE, EXIT_NO_PLAN = 0, 1, 2, 3
EXIT_NOT_WRITTEN, EXIT_INTERRUPTED = 4, 130


class UsageError(ClinkerError):
    """A command line argparse refuses; argparse would exit 2, which here means "infeasible"."""


class BadOutput(ClinkerError):
    """The DuckDB file to write cannot be used (a directory, not DuckDB, no writable folder)."""


class _Parser(argparse.ArgumentParser):
    """Usage errors raise (exit 1 "bad input", JSON under --json) instead of exiting 2."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def _gap(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="clinker", description="Plan clinker production, shipments and stock.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check an instance; one line per problem")
    p.add_argument("path", help="directory of CSV files or an .xlsx workbook")
    p.add_argument("--warnings", action="store_true", help="also list warnings (on stderr)")

    p = sub.add_parser("template", help="write empty CSV files with the right headers")
    p.add_argument("out_dir")
    p.add_argument("--force", action="store_true", help="overwrite CSV files already there")

    p = sub.add_parser("optimize", help="solve an instance and write the plan to DuckDB")
    p.add_argument("--input", default=None, help="instance path (default: bundled sample)")
    p.add_argument("--gap", type=_gap, default=1e-4, help="relative MIP gap of the cost stage")
    p.add_argument("--time-limit", type=positive_float, default=300.0, help="seconds, all stages")
    p.add_argument("--objective", choices=["lexicographic", "penalty"], default="lexicographic")
    p.add_argument(
        "--penalty", type=positive_float, default=1e5, help="INR/t unmet (objective=penalty)"
    )
    p.add_argument(
        "--holding-cost", type=non_negative_float, default=0.0, help="INR per t per period"
    )
    p.add_argument("--solver", default="highs", help="see `clinker solvers`")
    p.add_argument("--output", default=None, help="DuckDB file (default: CLINKER_DUCKDB_PATH)")
    p.add_argument("--no-write", action="store_true", help="solve only; write nothing")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    sub.add_parser("solvers", help="list the solvers Pyomo can use here")

    p = sub.add_parser("explain", help="why demand goes unserved, bottlenecks, what changed")
    p.add_argument("--run-id", default=None, help="plan run (default: the latest base run)")
    p.add_argument("--duckdb", default=None, help="DuckDB file (default: CLINKER_DUCKDB_PATH)")
    p.add_argument("--top", type=positive_int, default=10, help="bottlenecks and changes shown")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")

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
    p.add_argument("--force", action="store_true", help="write into a folder that has files")

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


def _fail(json_out: bool, status: str, message: str, code: int, details: Sequence[str] = ()) -> int:
    """One line on stderr (details after it), and under --json one object on stdout."""
    print(f"error: {message}", file=sys.stderr)
    for line in details:
        print(line, file=sys.stderr)
    if json_out:
        record: dict[str, Any] = {"status": status, "message": message, "exit_code": code}
        if details:
            record["problems"] = list(details)
        print(json.dumps(record))
    return code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        return _fail("--json" in argv, "bad-input", str(exc), EXIT_BAD_INPUT)
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
        "explain": cmd_explain,
        "generate": cmd_generate,
        "run": cmd_run,
        "health": cmd_health,
        "ingest-mqtt": cmd_ingest,
        "simulate-telemetry": cmd_simulate,
    }[args.command]
    json_out = bool(getattr(args, "json", False))
    try:
        return handler(args)
    except InvalidInstance as exc:
        details = [str(p) for p in exc.problems]
        return _fail(json_out, "bad-input", str(exc), EXIT_BAD_INPUT, details)
    except (SolverUnavailable, BadOutput, ValueError) as exc:
        return _fail(json_out, "bad-input", str(exc), EXIT_BAD_INPUT)
    except ClinkerError as exc:
        return _fail(json_out, "error", str(exc), EXIT_NO_PLAN)
    except KeyboardInterrupt:
        return _fail(json_out, "interrupted", "interrupted; nothing was written", EXIT_INTERRUPTED)


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


def _check_target_folder(out_dir: str, force: bool) -> None:
    """Instance files are somebody's data: never overwrite them without --force."""
    target = Path(out_dir)
    if target.exists() and not target.is_dir():
        raise BadOutput(f"{out_dir}: exists and is not a folder; give a new or empty folder")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise BadOutput(f"{out_dir}: folder is not empty; add --force to write into it anyway")


def cmd_template(args: argparse.Namespace) -> int:
    from clinker_pipeline.instance.io import write_tables
    from clinker_pipeline.instance.parse import empty_table
    from clinker_pipeline.instance.tables import TABLES

    _check_target_folder(args.out_dir, args.force)
    written = write_tables({t.name: empty_table(t) for t in TABLES}, args.out_dir, all_columns=True)
    for path in written:
        print(path)
    return EXIT_OK


def cmd_generate(args: argparse.Namespace) -> int:
    from clinker_pipeline.instance.generate import generate_instance
    from clinker_pipeline.instance.io import write_tables

    _check_target_folder(args.out_dir, args.force)
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
    from clinker_pipeline.optimization.solvers import solver_info
    from clinker_pipeline.report import plan_summary

    if not solver_info(args.solver).available:
        raise SolverUnavailable(
            f"solver '{args.solver}' is not available here; run `clinker solvers` to see which are"
        )
    output = None if args.no_write else _check_output(args.output or settings.duckdb_path())
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
    write_error = None
    if output is not None:
        import duckdb

        from clinker_pipeline.defs.analytics import ensure_analyst_tables
        from clinker_pipeline.explain import explain_plan
        from clinker_pipeline.lib.store.plan_store import write_plan
        from clinker_pipeline.lib.store.snapshot import publish_snapshot

        result.explanation = explain_plan(instance.tables, result)

        def publish(con: Any) -> None:
            ensure_analyst_tables(con)
            write_plan(
                con,
                result,
                launched_by="cli",
                inputs_fingerprint=instance.fingerprint(),
                input_origin=str(path),
                input_warnings=warnings,
                instance_name=instance.name,
            )
            if _owns_snapshot(output):  # analysts read the snapshot: keep it current
                publish_snapshot(con, output)

        try:
            _write_waiting(output, publish)
        except (OSError, duckdb.Error, BadOutput) as exc:
            write_error = f"the plan was not written to {output}: {_one_line(exc)}"
            output = None
    if args.json:
        from clinker_pipeline.lib.store.plan_store import rounded

        record = {**rounded(result.summary()), "output": output, "n_input_warnings": len(warnings)}
        if write_error:
            record["write_error"] = write_error
        record = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in record.items()
        }
        print(json.dumps(record))
    else:
        print(plan_summary(result, output))
    if write_error:
        print(f"error: {write_error}; the plan is printed above", file=sys.stderr)
        return EXIT_NOT_WRITTEN
    if result.status == "infeasible":
        print(f"infeasible: {result.message}", file=sys.stderr)
        for line in result.diagnosis.get("description", []):
            print(f"  {line}", file=sys.stderr)
        return EXIT_INFEASIBLE
    if not result.plan_found:
        print(f"no plan: {result.message}", file=sys.stderr)
        return EXIT_INTERRUPTED if result.interrupted else EXIT_NO_PLAN
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    """Read a published plan's explanation back from DuckDB (nothing is solved)."""
    from clinker_pipeline.explain.report import explain_text, load_explanation

    database = args.duckdb or settings.duckdb_path()
    if not Path(database).exists():
        print(f"error: {database}: no such DuckDB file (run `clinker run` first)", file=sys.stderr)
        return EXIT_BAD_INPUT
    record = load_explanation(database, args.run_id, top=args.top)
    if record is None:
        which = f"run {args.run_id}" if args.run_id else "a successful base plan"
        print(f"error: {database} holds no {which}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(record, default=str))
    else:
        print(explain_text(record))
    return EXIT_OK


def _one_line(exc: BaseException) -> str:
    """DuckDB messages carry a documentation link and sometimes several lines."""
    text = " ".join(str(exc).split())
    return text.split(" See also ")[0].rstrip(".")


def _owns_snapshot(output: str) -> bool:
    """A configured snapshot path belongs to the pipeline's file: another --output must not
    replace it with a copy of itself (the default snapshot sits next to each file)."""
    if not os.getenv("CLINKER_ANALYTICS_DUCKDB_PATH", "").strip():
        return True
    return (
        Path(output).expanduser().resolve() == Path(settings.duckdb_path()).expanduser().resolve()
    )


def _check_output(path: str) -> str:
    """Refuse an --output that cannot hold a plan before solving, not after."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise BadOutput(f"--output {path}: is a folder; give a .duckdb file")
    if target.exists():
        with target.open("rb") as fh:
            if fh.read(12)[8:12] != b"DUCK":
                raise BadOutput(f"--output {path}: exists but is not a DuckDB database file")
        if not os.access(target, os.W_OK):
            raise BadOutput(f"--output {path}: file is read-only")
        return path
    try:
        settings.ensure_parent(path)
    except OSError as exc:
        raise BadOutput(
            f"--output {path}: cannot create its folder ({exc.strerror}: {exc.filename})"
        ) from None
    if not os.access(target.resolve().parent, os.W_OK):
        raise BadOutput(f"--output {path}: its folder is not writable")
    return path


def _write_waiting(path: str, write: Any) -> Any:
    """Open `path` for writing and run `write(con)`, waiting for another process's lock.

    DuckDB lets one process write a file, and a reader in another process (an analyst's
    connection) blocks writers too; both are usually short, so wait (bounded by
    CLINKER_DUCKDB_LOCK_WAIT_S) rather than lose the write.
    """
    import duckdb

    deadline = time.monotonic() + settings.duckdb_lock_wait_s()
    delay, told = 0.1, False
    while True:
        try:
            with duckdb.connect(path) as con:
                return write(con)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() >= deadline:
                waited = settings.duckdb_lock_wait_s()
                raise BadOutput(f"still locked after {waited:g} s: {_one_line(exc)}") from None
            if not told:
                print(f"waiting for {path}: {_one_line(exc)}", file=sys.stderr)
                told = True
            time.sleep(min(delay, max(deadline - time.monotonic(), 0.01)))
            delay = min(delay * 2, 1.0)


def _latest_comparison(database: str) -> Any:
    """The newest scenario comparison, or None (the asset may have been skipped)."""
    import duckdb

    from clinker_pipeline.lib.store.backend import StoreSettings, connect

    try:
        with connect(StoreSettings.from_env(database), read_only=True) as con:
            return con.execute("SELECT * FROM latest_scenario_comparison").df()
    except (duckdb.Error, ClinkerError):
        return None


def _quality_report(instance: Any, run_id: str, database: str) -> Any:
    """The data-quality report of the run just made (what data_quality_sensor does in a
    deployment), or None when it cannot be built."""
    from clinker_pipeline.defs.quality.assets import build_report
    from clinker_pipeline.lib.store.resources import store_resources

    try:
        return build_report(instance, run_id, store_resources(database)["duckdb"])
    except Exception as exc:  # the plan is already published: report, do not fail the run
        print(f"data-quality report not built: {exc}", file=sys.stderr)
        return None


def _failed_steps(result: Any) -> list[tuple[str, str]]:
    """(step, the root cause in one line) for every failed step of an in-process run.

    Dagster wraps a step's exception ("Error occurred while executing op ..."); the cause at the
    bottom of the chain is what the user can act on. Its class name is dropped unless it is all
    there is ("dagster...Failure: weather: ..." -> "weather: ...").
    """
    out = []
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None and error.cause is not None:
            error = error.cause
        text = " ".join((error.message if error else "").split()) or "no message"
        head, _, rest = text.partition(": ")
        if rest and re.fullmatch(r"[\w.]+", head):
            text = rest
        out.append((event.step_key, text))
    return out


def _failure_details(result: Any) -> list[str]:
    lines = []
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        if error is not None:
            lines.append(f"--- {event.step_key}")
            lines.extend(error.to_string().rstrip().splitlines())
    return lines


def cmd_run(args: argparse.Namespace) -> int:
    """Materialize every asset in-process, as the automation would, and print the plan."""
    if args.input and not Path(args.input).exists():
        raise InvalidInstance(f"--input {args.input}: no such file or directory")
    import dagster as dg

    from clinker_pipeline.definitions import defs
    from clinker_pipeline.defs.materialize_all import materialize_all
    from clinker_pipeline.report import plan_summary, quality_summary, scenario_summary

    instance = (
        dg.DagsterInstance.get() if os.getenv("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    )
    database = args.duckdb or settings.duckdb_path()
    runs = materialize_all(
        defs,
        instance,
        _run_config(args),
        _scenario_names(defs),
        defs.resources["telemetry"].store().list_batches(),
    )
    result = runs.main
    failed_steps = [f for r in (result, *runs.others) for f in _failed_steps(r)]
    failed_checks = [
        e
        for r in (result, *runs.others)
        for e in r.get_asset_check_evaluations()
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
        if failed_steps:
            step, message = failed_steps[0]
            why = f"step {step} failed ({message})"
            if args.verbose:
                for line in _failure_details(result):
                    print(line, file=sys.stderr)
            else:
                why += "; `clinker -v run` shows the details"
            print(f"error: the plan was not built: {why}", file=sys.stderr)
            return EXIT_NO_PLAN
        print(
            "error: the plan was not built: the input checks above failed (see the quarantine "
            "table, or run `clinker validate --warnings` on the instance)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    for step, message in failed_steps:  # after the plan (scenarios, quality): the plan stands
        print(f"step failed: {step}: {message}", file=sys.stderr)
    print(f"Materialized {runs.materialized} assets (Dagster run {result.run_id}).")
    from clinker_pipeline.lib.store.backend import StoreSettings

    store = StoreSettings.from_env(database)
    print(plan_summary(plan, store.describe() if store.is_lake else database))
    print(scenario_summary(_latest_comparison(database)))
    print(quality_summary(_quality_report(instance, result.run_id, database)))
    if not runs.success:
        return EXIT_NO_PLAN
    if plan.status == "infeasible":
        return EXIT_INFEASIBLE
    return EXIT_OK if plan.plan_found else EXIT_NO_PLAN


def _scenario_names(defs: Any) -> list[str]:
    """The scenario partitions to solve; none when the set does not load (the plan step then
    fails on it and says why, in one line)."""
    from clinker_pipeline.optimization.scenarios import ScenarioError

    try:
        return [s.name for s in defs.resources["scenarios"].load().scenarios]
    except ScenarioError:
        return []


def _run_config(args: argparse.Namespace) -> dict[str, Any]:
    """The command's options as run config: resources and the plan's solver settings (the
    environment is left as it is)."""
    plan_config: dict[str, Any] = {"time_limit": args.time_limit, "mip_gap": args.gap}
    if args.source:
        plan_config["input_source"] = args.source
    resources: dict[str, Any] = {}
    if args.input:
        resources["instance_files"] = {"config": {"path": str(Path(args.input).resolve())}}
    if args.duckdb:
        settings.ensure_parent(args.duckdb)
        resources["duckdb"] = {"config": {"database": args.duckdb}}
        resources["duckdb_io_manager"] = {"config": {"database": args.duckdb}}
    return {
        "ops": {"clinker_plan": {"config": plan_config}},
        "resources": resources,
        # Dagster's console logger prints each failed step's stack trace at ERROR; the summary
        # names what failed in one line, and -v shows Dagster's full log.
        "loggers": {"console": {"config": {"log_level": "INFO" if args.verbose else "CRITICAL"}}},
    }


if __name__ == "__main__":
    sys.exit(main())
