"""Analysts read a published snapshot: their open connection never blocks the pipeline."""

import duckdb
from dagster import materialize

from clinker_pipeline.defs.erp.assets import ERP_ASSETS
from clinker_pipeline.defs.instance.assets import instance_tables
from clinker_pipeline.defs.planning.assets import clinker_plan, plan_tables
from clinker_pipeline.lib.store.snapshot import snapshot_path
from clinker_pipeline_tests.test_erp_assets import resources

ASSETS = [instance_tables, *ERP_ASSETS, clinker_plan, plan_tables]


def test_snapshot_name_follows_the_database(monkeypatch):
    monkeypatch.delenv("CLINKER_ANALYTICS_DUCKDB_PATH", raising=False)
    assert snapshot_path("/data/clinker.duckdb").as_posix() == "/data/clinker_analytics.duckdb"
    assert snapshot_path(":memory:") is None
    monkeypatch.setenv("CLINKER_ANALYTICS_DUCKDB_PATH", "/srv/bi/plan.duckdb")
    assert snapshot_path("/data/clinker.duckdb").as_posix() == "/srv/bi/plan.duckdb"


def test_analyst_query_during_a_materialization_blocks_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("CLINKER_ANALYTICS_DUCKDB_PATH", raising=False)
    db = tmp_path / "clinker.duckdb"
    first = materialize(ASSETS, resources=resources(db))
    assert first.success
    snap = tmp_path / "clinker_analytics.duckdb"
    assert snap.exists()

    analyst = duckdb.connect(str(snap), read_only=True)  # stays open across the next run
    try:
        before = analyst.execute("SELECT run_id FROM latest_plan_run").fetchall()
        assert len(before) == 1
        # the pipeline writes the main file and replaces the snapshot while the analyst reads
        second = materialize(ASSETS, resources=resources(db))
        assert second.success
        still = analyst.execute(
            "SELECT count(*), sum(quantity_t) FROM latest_plan_shipments"
        ).fetchone()
        assert still[0] > 0  # the open connection keeps its consistent (older) view
        assert analyst.execute("SELECT run_id FROM latest_plan_run").fetchall() == before
    finally:
        analyst.close()
    with duckdb.connect(str(snap), read_only=True) as fresh:
        runs = fresh.execute("SELECT count(*) FROM plan_runs").fetchone()[0]
        newest = fresh.execute("SELECT dagster_run_id FROM latest_plan_run").fetchone()[0]
    assert runs == 2 and newest == second.run_id


def test_a_reader_on_the_main_file_would_block_the_writer(tmp_path):
    """Why the snapshot exists: DuckDB refuses a writer while another process reads the file."""
    import subprocess
    import sys

    db = tmp_path / "main.duckdb"
    duckdb.connect(str(db)).close()
    reader = duckdb.connect(str(db), read_only=True)
    try:
        out = subprocess.run(
            [sys.executable, "-c", f"import duckdb; duckdb.connect({str(db)!r})"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        reader.close()
    assert out.returncode != 0 and "lock" in out.stderr.lower()
