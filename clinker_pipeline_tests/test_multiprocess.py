"""Runs as a deployment makes them: separate `dagster asset materialize` processes on one
instance (the repo's dagster.yaml: one slot in the `duckdb_writer` pool) and one DuckDB file,
each with the multiprocess executor.

- a telemetry batch loads while a plan is solving (the solve holds no pool slot);
- two scenario partitions solve at the same time, in different processes;
- a telemetry batch and its dead letters are stored once when two runs of it and a plan run
  overlap.

The instance is generated large enough that each solve runs into its time limit, so a solve
lasts as long as the test says, however loaded the machine is.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from clinker_pipeline.defs.telemetry.landing import LandingStore
from clinker_pipeline_tests.helpers import dagster_process_env, venv_command
from clinker_pipeline_tests.test_telemetry_assets import land, msg

PLAN_SOLVE_S = 75  # the plan's time limit: the window in which a telemetry load must finish
SCENARIO_SOLVE_S = 15
GENERATE = ["--ius", "30", "--gus", "60", "--periods", "6", "--lanes-per-iu", "10"]
MAIN = "group:instance,group:erp,clinker_plan"  # what the plan needs, fetched once


def materialize(env: dict[str, str], select: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            venv_command("dagster"),
            "asset",
            "materialize",
            "-m",
            "clinker_pipeline.definitions",
            "--select",
            select,
            *extra,
        ],
        cwd=env["CLINKER_WORK"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def step_events(instance: dg.DagsterInstance, step: str) -> dict[str, list]:
    """STEP_START / STEP_SUCCESS log entries of one step key, over every run of the instance."""
    found: dict[str, list] = {"STEP_START": [], "STEP_SUCCESS": []}
    for run in instance.get_runs():
        for kind in (dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS):
            records = instance.get_records_for_run(run.run_id, of_type=kind).records
            found[kind.value] += [
                r.event_log_entry for r in records if r.event_log_entry.step_key == step
            ]
    return found


def ensure_plan(env: dict[str, str], instance: dg.DagsterInstance) -> None:
    """A quick plan, when this worker has none yet (pytest-xdist may split the module)."""
    if not instance.get_latest_materialization_event(dg.AssetKey("clinker_plan")):
        finish(materialize(env, MAIN, "--config-json", json.dumps(quick_plan())))


def quick_plan(time_limit: float = 5) -> dict:
    return {"ops": {"clinker_plan": {"config": {"time_limit": time_limit}}}}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[tuple[dict[str, str], dg.DagsterInstance]]:
    work = tmp_path_factory.mktemp("deployment")
    env = dagster_process_env(work)
    big = work / "big"
    subprocess.run(
        [venv_command("clinker"), "generate", str(big), *GENERATE],
        check=True,
        capture_output=True,
    )
    env |= {
        "CLINKER_WORK": str(work),
        "CLINKER_INSTANCE_PATH": str(big),
        "CLINKER_TELEMETRY_DIR": str(work / "landing"),
    }
    saved = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]  # the storage class reads it
    try:
        with dg.DagsterInstance.get() as instance:
            yield env, instance
    finally:
        if saved is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = saved


def _land_one(env: dict[str, str], instance: dg.DagsterInstance) -> str:
    store = LandingStore(Path(env["CLINKER_TELEMETRY_DIR"]))
    batch = land(
        store,
        [
            msg("clinker/plants/IU_001/line/kiln1", {"production_tph": 400.0, "running": True}),
            ("clinker/plants/IU_001/line/kiln1", b"{not json"),
        ],
    )
    instance.add_dynamic_partitions("telemetry_batches", [batch])
    return batch


def test_a_telemetry_load_completes_while_the_plan_is_solving(deployment):
    env, instance = deployment
    plan = materialize(env, MAIN, "--config-json", json.dumps(quick_plan(PLAN_SOLVE_S)))
    deadline = time.time() + 300
    while not step_events(instance, "clinker_plan")["STEP_START"]:
        assert plan.poll() is None, plan.communicate()[0][-3000:]
        assert time.time() < deadline, "the plan step never started"
        time.sleep(1)
    batch = _land_one(env, instance)
    log = finish(materialize(env, "group:telemetry", "--partition", batch))
    assert "Executing steps using multiprocess executor" in log
    finish(plan)
    solve = step_events(instance, "clinker_plan")
    load = step_events(instance, "telemetry_tables")
    solve_window = (solve["STEP_START"][-1].timestamp, solve["STEP_SUCCESS"][-1].timestamp)
    load_window = (load["STEP_START"][-1].timestamp, load["STEP_SUCCESS"][-1].timestamp)
    assert solve_window[0] < load_window[0] < load_window[1] < solve_window[1], (
        f"the load {load_window} did not run inside the solve {solve_window}"
    )
    pool = instance.event_log_storage.get_pool_limits()
    assert {(p.name, p.limit) for p in pool} >= {("duckdb_writer", 1)}  # the pool was in force
    with duckdb.connect(env["CLINKER_DUCKDB_PATH"], read_only=True) as con:
        assert con.execute("SELECT count(*) FROM telemetry_batches_loaded").fetchone()[0] == 1


def test_scenario_partitions_solve_in_parallel(deployment):
    env, instance = deployment
    ensure_plan(env, instance)
    instance.add_dynamic_partitions("scenarios", ["demand_plus_10", "outage_IU_001"])
    config = {"ops": {"scenario_plan": {"config": {"time_limit": SCENARIO_SOLVE_S}}}}
    procs = [
        materialize(env, "scenario_plan", "--partition", name, "--config-json", json.dumps(config))
        for name in ("demand_plus_10", "outage_IU_001")
    ]
    for proc in procs:
        finish(proc)
    events = step_events(instance, "scenario_plan")
    starts = {r.run_id: r.timestamp for r in events["STEP_START"]}
    ends = {r.run_id: r.timestamp for r in events["STEP_SUCCESS"]}
    assert len(starts) == 2 and set(ends) == set(starts)
    (a, b) = sorted(starts)
    assert max(starts[a], starts[b]) < min(ends[a], ends[b]), "the two solves did not overlap"
    pids = {r.dagster_event.pid for r in events["STEP_START"]}
    assert len(pids) == 2


def test_a_batch_and_its_dead_letters_load_once_when_runs_overlap(deployment):
    env, instance = deployment
    ensure_plan(env, instance)
    batch = _land_one(env, instance)
    runs = [materialize(env, "group:telemetry", "--partition", batch) for _ in range(2)]
    # a plan run at the same time (it loads no telemetry)
    plan = materialize(env, "clinker_plan", "--config-json", json.dumps(quick_plan()))
    for proc in [*runs, plan]:
        finish(proc)
    with duckdb.connect(env["CLINKER_DUCKDB_PATH"], read_only=True) as con:
        rows = con.execute(
            "SELECT count(*) FROM telemetry_dead_letter WHERE batch_id = ?", [batch]
        ).fetchone()[0]
        loads = con.execute(
            "SELECT count(*) FROM telemetry_batches_loaded WHERE batch_id = ?", [batch]
        ).fetchone()[0]
    assert (rows, loads) == (1, 1)
