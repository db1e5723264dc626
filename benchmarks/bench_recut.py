"""Wall time of the re-cut: the README's first command, and the scenario comparison with its
partitions solved one after another vs two at a time.

    .venv/bin/python benchmarks/bench_recut.py [--workers 2] [--skip-run]

1. `clinker run` in an empty temporary folder (what the README's first command does after the
   install), with no DAGSTER_HOME: an ephemeral instance, every asset in-process.
2. On one DAGSTER_HOME (the repo's dagster.yaml) and the bundled sample: the plan once, then every
   non-base scenario partition of `scenario_plan` as its own `dagster asset materialize` run
   (a separate process with the multiprocess executor, as a deployment launches them) and
   `scenario_comparison`, first one run at a time, then `--workers` runs at a time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MATERIALIZE = [str(BIN / "dagster"), "asset", "materialize", "-m", "clinker_pipeline.definitions"]


def _env(work: Path) -> dict[str, str]:
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "CLINKER_DUCKDB_PATH": str(work / "c.duckdb")}
    for name in ("DAGSTER_POSTGRES_URL", "DAGSTER_PG_HOST"):
        env.pop(name, None)
    return env


def materialize(env: dict[str, str], select: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*MATERIALIZE, "--select", select, *extra],
        env=env,
        cwd=env["DAGSTER_HOME"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait(proc: subprocess.Popen) -> None:
    _, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"run failed:\n{err[-2000:]}")


def time_first_command() -> float:
    with tempfile.TemporaryDirectory(prefix="bench_recut_run_") as folder:
        env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
        env.pop("CLINKER_DUCKDB_PATH", None)
        start = time.perf_counter()
        out = subprocess.run(
            [str(BIN / "clinker"), "run"], cwd=folder, env=env, capture_output=True, text=True
        )
        elapsed = time.perf_counter() - start
        if out.returncode:
            raise SystemExit(f"clinker run failed:\n{out.stderr[-2000:]}")
    return elapsed


def time_scenarios(workers: int) -> tuple[float, float, list[str]]:
    import dagster as dg

    from clinker_pipeline.optimization.scenarios import ScenarioSet

    names = [s.name for s in ScenarioSet.load(None).scenarios]
    with tempfile.TemporaryDirectory(prefix="bench_recut_scen_") as folder:
        env = _env(Path(folder))
        wait(materialize(env, "group:instance,group:erp,group:external,clinker_plan"))
        os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
        with dg.DagsterInstance.get() as instance:
            instance.add_dynamic_partitions("scenarios", names)
        timings = []
        for parallel in (1, workers):
            start = time.perf_counter()
            pending = [n for n in names if n != "base"]
            running: list[subprocess.Popen] = []
            while pending or running:
                while pending and len(running) < parallel:
                    running.append(materialize(env, "scenario_plan", "--partition", pending.pop(0)))
                wait(running.pop(0))
            wait(materialize(env, "scenario_plan", "--partition", "base"))
            wait(materialize(env, "scenario_comparison"))
            timings.append(time.perf_counter() - start)
    return timings[0], timings[1], names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-run", action="store_true", help="skip the `clinker run` timing")
    args = parser.parse_args()
    if not args.skip_run:
        print(f"README first command (`clinker run`, fresh folder): {time_first_command():.1f} s")
    sequential, parallel, names = time_scenarios(args.workers)
    print(f"scenario comparison, {len(names)} scenarios (base reused from the plan):")
    print(f"  partitions one at a time:        {sequential:.1f} s")
    print(f"  partitions {args.workers} at a time:          {parallel:.1f} s")


if __name__ == "__main__":
    main()
