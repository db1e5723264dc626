"""The analysts' tables: append-only per run, one transaction, latest views follow success."""

import dataclasses

import duckdb
import pandas as pd
import pytest

from clinker_pipeline.instance import load_instance
from clinker_pipeline.lib.store.plan_store import PLAN_TABLES, latest_run, write_plan
from clinker_pipeline.optimization import SolveOptions, optimize
from clinker_pipeline_tests.helpers import dataset


@pytest.fixture(scope="module")
def toy_results():
    toy = load_instance(dataset("toy_2iu3gu"))
    infeasible = optimize(toy.tables)
    relaxed = {k: v.copy() for k, v in toy.tables.items()}
    relaxed["clinker_demand"]["min_fulfillment_pct"] = float("nan")
    feasible = optimize(relaxed)
    assert infeasible.status == "infeasible"
    assert feasible.status == "optimal"
    return feasible, infeasible


def counts(con):
    return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in PLAN_TABLES}


def test_runs_are_appended_and_latest_view_points_at_newest_success(tmp_path, toy_results):
    feasible, infeasible = toy_results
    with duckdb.connect(str(tmp_path / "p.duckdb")) as con:
        write_plan(con, feasible, inputs_fingerprint="abc")
        first = counts(con)
        assert first["plan_runs"] == 1
        assert first["plan_shipments"] == len(feasible.shipments) > 0
        write_plan(con, infeasible)
        after = counts(con)
        assert after["plan_runs"] == 2
        assert after["plan_diagnosis"] == len(infeasible.diagnosis) > 0
        # an infeasible run is kept but never becomes the latest plan
        latest = con.execute("SELECT run_id, status FROM latest_plan_run").fetchall()
        assert latest == [(feasible.run_id, "optimal")]
        n_latest = con.execute("SELECT count(*) FROM latest_plan_shipments").fetchone()[0]
        assert n_latest == len(feasible.shipments)
        row = latest_run(con, run_id=infeasible.run_id)
        assert row["status"] == "infeasible" and "must give" in row["message"]


def test_a_failed_write_leaves_no_partial_run(tmp_path, toy_results):
    feasible, _ = toy_results
    # a shipment row with a NULL key column violates NOT NULL after plan_runs was inserted
    broken = dataclasses.replace(
        feasible,
        run_id="broken-run",
        shipments=pd.concat(
            [feasible.shipments, feasible.shipments.head(1).assign(from_code=None)],
            ignore_index=True,
        ),
    )
    with duckdb.connect(str(tmp_path / "p.duckdb")) as con:
        write_plan(con, feasible)
        before = counts(con)
        with pytest.raises(duckdb.Error):
            write_plan(con, broken)
        assert counts(con) == before
        assert (
            con.execute("SELECT count(*) FROM plan_runs WHERE run_id='broken-run'").fetchone()[0]
            == 0
        )


def test_duplicate_run_id_is_refused_not_overwritten(tmp_path, toy_results):
    feasible, _ = toy_results
    with duckdb.connect(str(tmp_path / "p.duckdb")) as con:
        write_plan(con, feasible)
        with pytest.raises(duckdb.ConstraintException):
            write_plan(con, feasible)
        assert con.execute("SELECT count(*) FROM plan_runs").fetchone()[0] == 1


def test_dummy_dataset_plan_round_trips_costs(tmp_path):
    inst = load_instance(dataset("dummy_3mplan"))
    result = optimize(inst.tables, SolveOptions(time_limit=60))
    with duckdb.connect(str(tmp_path / "p.duckdb")) as con:
        write_plan(con, result, inputs_fingerprint=inst.fingerprint())
        prod, ship = con.execute(
            "SELECT (SELECT sum(production_cost_inr) FROM latest_plan_production),"
            "       (SELECT sum(transport_cost_inr) FROM latest_plan_shipments)"
        ).fetchone()
        unmet = con.execute("SELECT sum(unmet_t) FROM latest_plan_unmet").fetchone()[0]
    assert prod + ship == pytest.approx(result.cost, rel=1e-9)
    assert unmet == pytest.approx(10_564_022, abs=1)
