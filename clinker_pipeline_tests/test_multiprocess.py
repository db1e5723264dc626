"""The plan job under Dagster's multiprocess executor (what `dagster dev` uses by default)."""

import subprocess

import duckdb

from clinker_pipeline_tests.helpers import dagster_process_env, venv_command


def test_plan_job_runs_with_the_multiprocess_executor(tmp_path):
    env = dagster_process_env(tmp_path)
    dagster = venv_command("dagster")
    out = subprocess.run(
        [dagster, "job", "execute", "-m", "clinker_pipeline.definitions", "-j", "clinker_plan_job"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert "Executing steps using multiprocess executor" in log
    assert "RUN_SUCCESS" in log
    # several step processes ran: one pid per step line
    pids = {line.split(" - ")[5] for line in log.splitlines() if "STEP_START" in line}
    assert len(pids) >= 3
    with duckdb.connect(str(tmp_path / "clinker.duckdb"), read_only=True) as con:
        assert con.execute("SELECT status, launched_by FROM latest_plan_run").fetchone() == (
            "optimal",
            "dagster",
        )
