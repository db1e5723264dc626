"""The scenario comparison's wall time in one process against two dagster-celery workers.

Run (from the repo root, with PostgreSQL on 127.0.0.1:5432 and RabbitMQ on 127.0.0.1:5672, and
the `[scale]` extra installed):

    .venv/bin/python benchmarks/bench_scaleout.py [--scenarios N] [--json]

Both sides materialize the plan job on the bundled sample with the first N scenarios of the
bundled scenario set (default: all): (a) the embedded default, every step in one process
(`execute_in_process`, DuckDB file); (b) `dagster job execute` with `CLINKER_EXECUTOR=celery`,
two workers (`dagster-celery worker start`, concurrency 1 each) and the DuckLake store on
PostgreSQL, in databases, a queue and a folder of this run's own, removed afterwards. Reported:
each run's wall time, the wall time of its scenario steps from the run's step events (first
STEP_START to last STEP_SUCCESS) and, for (b), how many worker processes ran steps.

Where the scenarios are solved in one step (one `scenario_comparison` asset), two workers cannot
split them: the gain can only come from feed steps running side by side, and the cost is the
broker round trips and the lake's commits. With scenarios as partitions of their own, each
partition is a step a worker can take.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clinker_pipeline_tests.scaleout import (  # noqa: E402
    Cluster,
    missing_services,
    pg_databases,
    start_embedded_run,
    step_times,
)


def scenario_window(events: list[list]) -> tuple[float, int]:
    """(seconds from the first scenario step's start to the last one's end, step processes)."""
    scen = [e for e in events if "scenario" in e[1]]
    starts = [e[2] for e in scen if e[0] == "STEP_START"]
    ends = [e[2] for e in scen if e[0] == "STEP_SUCCESS"]
    pids = {e[3] for e in events if e[0] == "STEP_START"}
    return (max(ends) - min(starts)) if starts and ends else float("nan"), len(pids)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", type=int, default=0, help="first N scenarios (0: all)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    why = missing_services()
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="clinker_bench_scale_") as tmp:
        work = Path(tmp)
        scenarios = json.loads((REPO / "clinker_pipeline/sample_data/scenarios.json").read_text())
        if args.scenarios:
            scenarios["scenarios"] = scenarios["scenarios"][: args.scenarios]
        (work / "scenarios.json").write_text(json.dumps(scenarios))
        extra = {"CLINKER_SCENARIOS_PATH": str(work / "scenarios.json")}

        started = time.perf_counter()
        embedded = start_embedded_run(work, work / "embedded.duckdb", extra)
        if embedded.wait() != 0:
            print((work / "embedded.log").read_text()[-3000:], file=sys.stderr)
            return 1
        one_process = time.perf_counter() - started
        one_scenario_s, _ = scenario_window(step_times((work / "embedded.log").read_text()))

        with pg_databases("dagster", "lake") as names:
            cluster = Cluster(work, names["dagster"], names["lake"], extra_env=extra)
            cluster.start_workers(2)
            try:
                started = time.perf_counter()
                run = cluster.execute_job()
                rc = run.wait(timeout=3600)
                celery_wall = time.perf_counter() - started
                if rc != 0:
                    print(cluster.run_log()[-3000:], file=sys.stderr)
                    return 1
                scenario_s, processes = scenario_window(cluster.step_times())
            finally:
                cluster.stop_workers()

    n = len(scenarios["scenarios"])
    result = {
        "scenarios": n,
        "one_process_wall_s": round(one_process, 1),
        "one_process_scenario_steps_s": round(one_scenario_s, 1),
        "two_celery_workers_wall_s": round(celery_wall, 1),
        "celery_scenario_steps_s": round(scenario_s, 1),
        "celery_step_processes": processes,
    }
    print(f"scenarios                     {n}")
    print(f"one process (embedded)        {one_process:8.1f} s  whole plan job")
    print(f"  of which scenario steps     {one_scenario_s:8.1f} s")
    print(f"two Celery workers + DuckLake {celery_wall:8.1f} s  whole plan job")
    print(f"  of which scenario steps     {scenario_s:8.1f} s  ({processes} step processes)")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
