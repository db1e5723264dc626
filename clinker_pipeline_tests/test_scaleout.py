"""Scale-out on real servers: DuckLake on PostgreSQL, steps on two dagster-celery workers over
RabbitMQ, concurrent publishers, an analyst attached read-only while a run writes."""

from __future__ import annotations

import copy
import json
import multiprocessing as mp
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from clinker_pipeline.lib.store.backend import (
    LAKE_ALIAS,
    StoreConfigError,
    StoreSettings,
    connect,
    extension_directory,
    redact,
    split_password,
)
from clinker_pipeline_tests.scaleout import (
    Cluster,
    differences,
    missing_services,
    pg_databases,
    reachable,
    start_embedded_run,
)

SAMPLE = Path(__file__).resolve().parents[1] / "clinker_pipeline" / "sample_data"
SECRET = "s3cr3t-catalog-7f3a9c"  # fixed: xdist workers must collect the same test ids


# --- settings and connection strings (no server) ------------------------------------------


@pytest.mark.parametrize(
    "catalog",
    [
        f"postgresql://clinker:{SECRET}@db.example:5433/lake?sslmode=require",
        f"dbname=lake host=db.example port=5433 user=clinker password={SECRET} sslmode=require",
        f"dbname=lake host=db.example port=5433 user=clinker password='{SECRET}' sslmode=require",
    ],
    ids=["url", "libpq", "libpq-quoted"],
)
def test_catalog_password_is_cut_out_of_the_connection_string(catalog):
    libpq, password = split_password(catalog)
    assert password == SECRET
    assert SECRET not in libpq and SECRET not in redact(catalog)
    assert dict(p.split("=") for p in libpq.split()) == {
        "host": "db.example",
        "port": "5433",
        "user": "clinker",
        "dbname": "lake",
        "sslmode": "require",
    }


def test_lake_settings_name_what_is_missing():
    with pytest.raises(StoreConfigError, match="CLINKER_DUCKLAKE_CATALOG"):
        StoreSettings(backend="ducklake", data_path="/x").validate()
    with pytest.raises(StoreConfigError, match="CLINKER_DUCKLAKE_DATA_PATH"):
        StoreSettings(backend="ducklake", catalog="dbname=x").validate()
    with pytest.raises(StoreConfigError, match="CLINKER_STORE must be one of duckdb, ducklake"):
        StoreSettings(backend="sqlite").validate()


@pytest.mark.skipif(extension_directory() is None, reason="[scale] extra not installed")
@pytest.mark.skipif(shutil.which("unshare") is None, reason="no unshare(1) to cut the network")
def test_extensions_load_from_the_package_with_no_network(tmp_path):
    """In a network namespace of its own (no route anywhere), DuckDB loads the packaged
    ducklake and postgres extensions and opens a lake: nothing is downloaded at run time."""
    script = (
        "import duckdb\n"
        "from clinker_pipeline.lib.store.backend import extension_directory\n"
        "con = duckdb.connect(config={'autoinstall_known_extensions': False,\n"
        "    'autoload_known_extensions': False, 'extension_directory': str(extension_directory())})\n"
        "con.execute('LOAD ducklake'); con.execute('LOAD postgres')\n"
        f"con.execute(\"ATTACH 'ducklake:{tmp_path}/meta.ducklake' AS l (DATA_PATH '{tmp_path}/d')\")\n"
        "con.execute('CREATE TABLE l.t AS SELECT 42 AS x')\n"
        "print(con.execute('SELECT x FROM l.t').fetchone()[0], duckdb.__version__)\n"
    )
    out = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", script], capture_output=True, text=True
    )
    if out.returncode != 0 and "Operation not permitted" in out.stderr:
        pytest.skip("unshare -n is not permitted here")
    assert out.returncode == 0, out.stderr[-2000:]
    value, version = out.stdout.split()
    assert value == "42" and version.startswith("1.4.")


# --- DuckLake on PostgreSQL ----------------------------------------------------------------

needs_services = pytest.mark.skipif(missing_services() is not None, reason=str(missing_services()))
needs_pg = pytest.mark.skipif(
    not reachable(5432) or extension_directory() is None,
    reason="PostgreSQL on 127.0.0.1:5432 and the [scale] extra are needed",
)


@pytest.fixture
def lake(tmp_path):
    with pg_databases("lake") as names:
        yield StoreSettings(
            backend="ducklake",
            catalog=f"postgresql://postgres:{SECRET}@127.0.0.1:5432/{names['lake']}",
            data_path=str(tmp_path / "lake"),
        )


@needs_pg
def test_lake_connection_keeps_the_password_out_of_duckdb(lake):
    con = connect(lake)
    try:
        con.execute("CREATE TABLE probe AS SELECT 1 AS x")
        seen = " ".join(
            str(v)
            for query in (
                "SELECT * FROM duckdb_databases()",
                "SELECT name, value FROM duckdb_settings()",
                "SELECT * FROM duckdb_secrets()",
            )
            for row in con.execute(query).fetchall()
            for v in row
        )
        assert f"dbname={lake.catalog.rsplit('/', 1)[1]}" in seen  # the lake is attached...
        assert SECRET not in seen  # ...with no password anywhere DuckDB shows
        assert con.execute("SELECT current_database()").fetchone()[0] == LAKE_ALIAS
    finally:
        con.close()
    wrong = StoreSettings(
        backend="ducklake",
        catalog=f"postgresql://postgres:{SECRET}@127.0.0.1:1/nowhere",
        data_path=lake.data_path,
    )
    with pytest.raises(StoreConfigError) as caught:
        connect(wrong)
    assert "cannot open the DuckLake at" in str(caught.value)
    assert SECRET not in str(caught.value)


def _publisher(settings, kind, plan, barrier, rounds, errors):
    """One of two processes writing at the same moment: a plan or a feed, and a comparison."""
    from clinker_pipeline.defs.planning.store import write_comparison
    from clinker_pipeline.lib.store.feeds import upsert_history
    from clinker_pipeline.lib.store.plan_store import write_plan

    con = connect(settings)
    try:
        barrier.wait()
        for i in range(rounds):
            if kind == "plan":
                result = copy.copy(plan)
                result.run_id = f"plan-{i}"
                write_plan(con, result, launched_by="test")
            else:
                # overlapping keys every round: each upsert deletes what the last one wrote
                frame = pd.DataFrame({"week": ["w1", "w2", f"w{i + 3}"], "price": [float(i)] * 3})
                upsert_history(con, "diesel_history", frame, ["week"])
            write_comparison(
                con,
                pd.DataFrame({"scenario": [kind], "status": ["optimal"], "cost_inr": [float(i)]}),
                comparison_id=f"{kind}-{i}",
            )
    except Exception as exc:
        chain, seen = [], exc
        while seen is not None:
            chain.append(f"{type(seen).__name__}: {seen}")
            seen = seen.__cause__ or seen.__context__
        errors.put(f"{kind}: " + " <- ".join(chain))
    finally:
        con.close()


@needs_pg
def test_two_concurrent_publishers_both_land(lake, sample_plan):
    """A plan and a feed written from two processes at once into a new lake (both create the
    tables and views, both replace the comparison view, the feed upserts delete what the previous
    round wrote): every write lands, conflicts are retried, nothing is lost or doubled."""
    ctx = mp.get_context("spawn")
    barrier, errors, rounds = ctx.Barrier(2), ctx.Queue(), 4
    procs = [
        ctx.Process(target=_publisher, args=(lake, kind, sample_plan, barrier, rounds, errors))
        for kind in ("plan", "feed")
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    problems = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
    assert not problems, problems
    assert all(p.exitcode == 0 for p in procs)
    con = connect(lake, read_only=True)
    try:
        runs = {r[0] for r in con.execute("SELECT run_id FROM plan_runs").fetchall()}
        assert runs == {f"plan-{i}" for i in range(rounds)}
        assert con.execute("SELECT count(*) FROM plan_production").fetchone()[0] == rounds * len(
            sample_plan.production
        )
        history = dict(con.execute("SELECT week, price FROM diesel_history").fetchall())
        assert history == {
            "w1": rounds - 1.0,
            "w2": rounds - 1.0,
            **{f"w{i + 3}": float(i) for i in range(rounds)},
        }
        comparisons = {
            r[0] for r in con.execute("SELECT comparison_id FROM scenario_comparison").fetchall()
        }
        assert comparisons == {f"{k}-{i}" for k in ("plan", "feed") for i in range(rounds)}
    finally:
        con.close()


def _conflicting_delete(settings, barrier, outcome):
    con = connect(settings)
    barrier.wait()
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM stock WHERE plant = 'IU_001'")
        time.sleep(1.0)  # both hold their delete until both have made it
        con.execute("COMMIT")
        outcome.put("committed")
    except duckdb.TransactionException as exc:
        outcome.put(str(exc))
    finally:
        con.close()


@needs_pg
def test_a_lost_commit_is_a_conflict_that_retry_recognises(lake):
    """Without the retry, one of two writers deleting from the same file loses: the conflict is
    real, and `is_conflict` recognises DuckLake's message (the retry's trigger)."""
    from clinker_pipeline.lib.store.backend import is_conflict

    con = connect(lake)
    con.execute("CREATE TABLE stock AS SELECT 'IU_001' AS plant, 1.0 AS t")
    con.close()
    ctx = mp.get_context("spawn")
    barrier, outcome = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_conflicting_delete, args=(lake, barrier, outcome)) for _ in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    results = [outcome.get(timeout=10) for _ in procs]
    assert results.count("committed") == 1, results
    (lost,) = (r for r in results if r != "committed")
    assert "Transaction conflict" in lost
    assert is_conflict(duckdb.TransactionException(lost))


@pytest.fixture(scope="module")
def sample_plan():
    from clinker_pipeline.instance import load_instance, sample_instance_path
    from clinker_pipeline.optimization import SolveOptions, optimize

    return optimize(load_instance(sample_instance_path()).tables, SolveOptions(time_limit=30))


# --- the whole graph on Celery workers -----------------------------------------------------


@needs_services
@pytest.mark.timeout(1500)
def test_whole_graph_on_two_celery_workers_and_ducklake_matches_the_embedded_run(tmp_path):
    # the same inputs for both runs: the bundled sample, two of its scenarios (time on 2 cores)
    scenarios = json.loads((SAMPLE / "scenarios.json").read_text())
    scenarios["scenarios"] = scenarios["scenarios"][:2]
    (tmp_path / "scenarios.json").write_text(json.dumps(scenarios))
    extra = {"CLINKER_SCENARIOS_PATH": str(tmp_path / "scenarios.json")}
    # the embedded run goes on beside the cluster's (both are whole runs; 2 cores)
    embedded = start_embedded_run(tmp_path, tmp_path / "embedded.duckdb", extra)
    with pg_databases("dagster", "lake") as names:
        cluster = Cluster(
            tmp_path, dagster_db=names["dagster"], lake_db=names["lake"], extra_env=extra
        )
        cluster.start_workers(2)
        try:
            run = cluster.execute_job()
            seen = _watch_as_analyst(cluster, run)
            assert run.wait(timeout=60) == 0, (
                cluster.run_log()[-4000:] + cluster.worker_log(0)[-3000:]
            )
            pids = cluster.step_pids()
        finally:
            cluster.stop_workers()
        embedded_log = (tmp_path / "embedded.log").read_text(errors="replace")
        assert embedded.wait(timeout=900) == 0, embedded_log[-3000:]
        analyst = connect(StoreSettings.from_env(environ=cluster.env()), read_only=True)
        try:
            newest = analyst.execute("SELECT run_id FROM latest_plan_run").fetchone()[0]
            with duckdb.connect(str(tmp_path / "embedded.duckdb"), read_only=True) as file:
                assert differences(file, analyst) == []
        finally:
            analyst.close()
    # steps ran in more than one worker process, none in the launching process
    assert len(pids) >= 10 and len(set(pids.values())) >= 2, pids
    assert run.pid not in pids.values()
    # the analyst saw the newest plan while the run was still writing (scenarios, report)
    assert (newest, True) in seen, seen


def _watch_as_analyst(cluster: Cluster, run: subprocess.Popen) -> set[tuple[str, bool]]:
    """Poll `latest_plan_run` from a read-only attachment until the run ends: (run_id, the run
    was still going) for every answer."""
    settings = StoreSettings.from_env(environ=cluster.env())
    seen: set[tuple[str, bool]] = set()
    deadline = time.monotonic() + 1200
    con = None
    while run.poll() is None and time.monotonic() < deadline:
        try:
            con = con or connect(settings, read_only=True)
            row = con.execute("SELECT run_id FROM latest_plan_run").fetchone()
            if row:
                seen.add((row[0], run.poll() is None))
        except (duckdb.Error, StoreConfigError):
            pass  # the lake or its views do not exist yet
        time.sleep(1.0)
    if con is not None:
        con.close()
    return seen


@needs_pg
def test_health_probes_the_lake_not_a_local_file(lake, monkeypatch, tmp_path):
    """With CLINKER_STORE=ducklake, `clinker health` reads the lake the pipeline writes: no plan
    at first, then the newest plan; the catalog's password is never shown."""
    from clinker_pipeline.health import check_duckdb
    from clinker_pipeline.instance import load_instance, sample_instance_path
    from clinker_pipeline.lib.store.plan_store import write_plan
    from clinker_pipeline.optimization import optimize

    monkeypatch.chdir(tmp_path)  # no clinker.duckdb here: a file probe would say "no file yet"
    monkeypatch.setenv("CLINKER_STORE", "ducklake")
    monkeypatch.setenv("CLINKER_DUCKLAKE_CATALOG", lake.catalog)
    monkeypatch.setenv("CLINKER_DUCKLAKE_DATA_PATH", lake.data_path)
    empty = check_duckdb()
    assert (empty.name, empty.ok) == ("DuckLake", True), empty
    assert "no lake yet" in empty.detail
    assert SECRET not in empty.endpoint and SECRET not in empty.detail
    con = connect(lake)
    try:
        write_plan(con, optimize(load_instance(sample_instance_path()).tables))
    finally:
        con.close()
    planned = check_duckdb()
    assert planned.ok and "latest plan optimal" in planned.detail, planned
    assert planned.last_good_at is not None
    monkeypatch.setenv("CLINKER_DUCKLAKE_CATALOG", "dbname=clinker_no_such_lake host=127.0.0.1")
    down = check_duckdb()
    assert not down.ok and down.name == "DuckLake"
