"""A scale-out cluster on this machine for tests and the benchmark: PostgreSQL databases of their
own (Dagster instance and DuckLake catalog), a DuckLake data folder, and dagster-celery workers
on a queue of their own on the shared RabbitMQ, started with the README's command."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from clinker_pipeline_tests.helpers import REPO, venv_command

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
BROKER = os.getenv("CLINKER_CELERY_BROKER", "pyamqp://guest@127.0.0.1//")


def reachable(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def missing_services() -> str | None:
    """Why a scale-out test cannot run here, or None when everything it needs is up."""
    from clinker_pipeline.lib.store.backend import extension_directory

    if not reachable(5432):
        return "PostgreSQL not reachable on 127.0.0.1:5432 (.ci/run starts it)"
    if not reachable(5672):
        return "RabbitMQ not reachable on 127.0.0.1:5672 (.ci/run starts it)"
    if extension_directory() is None:
        return "the DuckLake extensions are not installed (pip install -e '.[scale]')"
    try:
        import dagster_celery  # noqa: F401
    except ImportError:
        return "dagster-celery is not installed (pip install -e '.[scale]')"
    return None


@contextmanager
def pg_databases(*roles: str) -> Iterator[dict[str, str]]:
    """Fresh PostgreSQL databases named after this run; dropped afterwards."""
    import psycopg2

    admin = psycopg2.connect(dbname="postgres", connect_timeout=5, **PG)
    admin.autocommit = True
    tag = uuid.uuid4().hex[:8]
    names = {role: f"clinker_scale_{role}_{tag}" for role in roles}
    try:
        with admin.cursor() as cur:
            for name in names.values():
                cur.execute(f'CREATE DATABASE "{name}"')
        yield names
    finally:
        with admin.cursor() as cur:
            for name in names.values():
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@dataclass
class Cluster:
    """Environment and processes of one scale-out setup under `work`."""

    work: Path
    dagster_db: str
    lake_db: str
    queue: str = field(default_factory=lambda: f"clinker_test_{uuid.uuid4().hex[:10]}")
    workers: list[subprocess.Popen] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def lake_catalog(self) -> str:
        return f"dbname={self.lake_db} host=127.0.0.1 port=5432 user=postgres"

    def env(self) -> dict[str, str]:
        home = self.work / "home"
        home.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
        (self.work / "lake").mkdir(exist_ok=True)
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "DAGSTER_POSTGRES_URL": f"postgresql://postgres@127.0.0.1:5432/{self.dagster_db}",
            "CLINKER_STORE": "ducklake",
            "CLINKER_DUCKLAKE_CATALOG": self.lake_catalog,
            "CLINKER_DUCKLAKE_DATA_PATH": str(self.work / "lake"),
            "CLINKER_DUCKDB_PATH": str(self.work / "unused.duckdb"),
            "CLINKER_EXECUTOR": "celery",
            "CLINKER_CELERY_BROKER": BROKER,
            "CLINKER_CELERY_QUEUE": self.queue,
            # dagster-celery starts `celery` from PATH: the venv's, as after `activate`
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        env.pop("DAGSTER_PG_HOST", None)
        return {**env, **self.extra_env}

    def worker_config(self) -> Path:
        """The worker YAML, written by the same function the README's command uses."""
        path = self.work / "celery.yaml"
        subprocess.run(
            [sys.executable, "-m", "clinker_pipeline.defs.executor", str(path)],
            env=self.env(),
            check=True,
            capture_output=True,
            timeout=120,
        )
        return path

    def start_workers(self, count: int = 2, timeout: float = 120.0) -> None:
        config = self.worker_config()
        for i in range(count):
            log = open(self.work / f"worker{i}.log", "wb")  # noqa: SIM115 (closed with the worker)
            self.workers.append(
                subprocess.Popen(
                    [
                        venv_command("dagster-celery"),
                        "worker",
                        "start",
                        "-A",
                        "dagster_celery.app",
                        "-y",
                        str(config),
                        "-q",
                        self.queue,
                        "-n",
                        f"{self.queue}_w{i}",
                        "--",
                        "--concurrency=1",
                    ],
                    env=self.env(),
                    cwd=self.work,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: stopped whole
                )
            )
        deadline = time.monotonic() + timeout
        for i in range(count):
            while b" ready." not in (self.work / f"worker{i}.log").read_bytes():
                if time.monotonic() > deadline or self.workers[i].poll() is not None:
                    raise RuntimeError(f"worker {i} did not start: {self.worker_log(i)[-2000:]}")
                time.sleep(0.5)

    def worker_log(self, i: int) -> str:
        return (self.work / f"worker{i}.log").read_text(errors="replace")

    def stop_workers(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.workers.clear()

    def execute_job(self, job: str = "main_run_job", **popen) -> subprocess.Popen:
        """`dagster job execute` of the code location, as the README's scale-out section runs it."""
        dagster = venv_command("dagster")
        with open(self.work / "run.log", "ab") as log:
            return subprocess.Popen(
                [dagster, "job", "execute", "-m", "clinker_pipeline.definitions", "-j", job],
                env=self.env(),
                cwd=self.work,
                stdout=log,
                stderr=subprocess.STDOUT,
                **popen,
            )

    def run_log(self) -> str:
        return (self.work / "run.log").read_text(errors="replace")

    def step_pids(self, run_id: str | None = None) -> dict[str, int]:
        """step key -> pid of the process that ran it, from the STEP_START events in PostgreSQL."""
        return {step: pid for kind, step, _, pid in self.step_times(run_id) if kind == "STEP_START"}

    def step_times(self, run_id: str | None = None) -> list[list]:
        """[event type, step key, timestamp, pid] of the run's step starts and successes, read
        from the instance in PostgreSQL (the newest run when `run_id` is None)."""
        script = (
            "import dagster as dg\n"
            "inst = dg.DagsterInstance.get()\n"
            "class r:\n"
            f"    run_id = {run_id!r} or inst.get_runs(limit=1)[0].run_id\n"
            f"{STEP_TIMES}"
        )
        out = subprocess.run(
            [sys.executable, "-c", script],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return step_times(out.stdout)


#: Appended to a script that has `inst` and `r.run_id`: prints one JSON line of
#: [event type, step key, timestamp, pid] for every step start and success.
STEP_TIMES = (
    "import json\n"
    "print('STEP_TIMES ' + json.dumps([[k.value, e.step_key, e.timestamp, e.dagster_event.pid]\n"
    "    for k in (dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS)\n"
    "    for e in inst.all_logs(r.run_id, of_type=k)]))\n"
)


def step_times(output: str) -> list[list]:
    """The STEP_TIMES line of a script's output."""
    for line in reversed(output.splitlines()):
        if line.startswith("STEP_TIMES "):
            return json.loads(line[len("STEP_TIMES ") :])
    return []


def start_embedded_run(
    work: Path, database: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen:
    """The whole graph on the embedded default (DuckDB file, in-process), on the same inputs;
    its output goes to `work/embedded.log`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLINKER_STORE", "CLINKER_DUCKLAKE", "CLINKER_EXECUTOR", "DAGSTER_"))
    }
    env["CLINKER_DUCKDB_PATH"] = str(database)
    env.update(extra_env or {})
    script = (
        "import dagster as dg\n"
        "from clinker_pipeline.definitions import defs\n"
        "inst = dg.DagsterInstance.ephemeral()\n"
        "r = defs.resolve_job_def('main_run_job').execute_in_process(\n"
        "    instance=inst, raise_on_error=False)\n"
        f"{STEP_TIMES}"
        "raise SystemExit(0 if r.success else 1)\n"
    )
    with open(work / "embedded.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-c", script], env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT
        )


# --- comparing two stores -----------------------------------------------------------------

#: Columns that differ between any two runs by nature: ids, clocks, timings.
VOLATILE = re.compile(
    r"(^|_)(run_id|comparison_id|created_at|checked_at|fetched_at|computed_at|quarantined_at"
    r"|raised_at|loaded_at|last_good_at)$|_s$"
)
#: Keys of plan_runs.options that depend on step order, not on the store: the plan lists the
#: WARN checks that had run in its Dagster run before it, and a parallel executor orders the
#: independent feed steps differently from run to run.
ORDER_DEPENDENT_OPTIONS = ("input_check_warnings",)


def base_tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return sorted(
        con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_catalog = current_database() AND table_type = 'BASE TABLE'"
        ).fetchall()
    )


def views(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return sorted(
        con.execute(
            "SELECT schema_name, view_name FROM duckdb_views() "
            "WHERE database_name = current_database() AND NOT internal"
        ).fetchall()
    )


def comparable(con: duckdb.DuckDBPyConnection, relation: str) -> pd.DataFrame:
    """The rows of `relation` less volatile columns, as sorted text (NULL-safe)."""
    frame = con.execute(f"SELECT * FROM {relation}").df()
    keep = [c for c in frame.columns if not VOLATILE.search(c)]
    if relation.endswith("plan_marginals"):
        # shadow prices at a degenerate LP optimum are not unique: two processes may report
        # different, equally valid ones; which limits were priced, and their slack, must agree
        keep = [c for c in keep if c not in ("serve_t_per_unit", "saving_inr_per_unit")]
    frame = frame[keep].copy()
    if "options" in frame:
        frame["options"] = frame["options"].map(_stable_options)
    for column in frame.select_dtypes("float").columns:
        # LP re-solves (marginal values) differ in the last bits between processes
        frame[column] = frame[column].map(lambda x: f"{x:.9g}")
    frame = frame.astype(str)
    return frame.sort_values(keep).reset_index(drop=True) if keep else frame


def _stable_options(text: object) -> str:
    if not isinstance(text, str):
        return str(text)
    options = json.loads(text)
    for key in ORDER_DEPENDENT_OPTIONS:
        options.pop(key, None)
    return json.dumps(options, sort_keys=True)


def differences(a: duckdb.DuckDBPyConnection, b: duckdb.DuckDBPyConnection) -> list[str]:
    """What differs between two stores: tables, views, columns, rows."""
    problems = []
    if base_tables(a) != base_tables(b):
        problems.append(f"tables differ: {base_tables(a)} vs {base_tables(b)}")
    if views(a) != views(b):
        problems.append(f"views differ: {views(a)} vs {views(b)}")
    for schema, name in base_tables(a):
        relation = f"{schema}.{name}"
        cols_a = [r[0] for r in a.execute(f"DESCRIBE {relation}").fetchall()]
        cols_b = [r[0] for r in b.execute(f"DESCRIBE {relation}").fetchall()]
        if cols_a != cols_b:
            problems.append(f"{relation}: columns {cols_a} vs {cols_b}")
            continue
        rows_a, rows_b = comparable(a, relation), comparable(b, relation)
        if not rows_a.equals(rows_b):
            problems.append(f"{relation}: {len(rows_a)} vs {len(rows_b)} rows, contents differ")
    return problems
