"""The solve guard: time limits that hold, Ctrl-C that keeps the plan, progress, a clean stdout.

Nothing here depends on how fast the machine is: the hard instance is hard enough that HiGHS does
not prove it within the generous tolerances used, and the "deadline" of the incumbent test is
the first incumbent itself, not a number of seconds.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import duckdb
import numpy as np
import pytest

from clinker_pipeline.cli import main
from clinker_pipeline.instance import load_instance, validate_instance
from clinker_pipeline.instance.generate import generate_instance
from clinker_pipeline.instance.io import write_tables
from clinker_pipeline.lib.store.plan_store import write_plan
from clinker_pipeline.optimization import SolveOptions, optimize
from clinker_pipeline.optimization.guard import SolveGuard
from clinker_pipeline_tests.helpers import dataset
from clinker_pipeline_tests.test_model import _two_sources

HARD = {"ius": 60, "gus": 250, "periods": 6, "lanes_per_iu": 12, "seed": 1}


@pytest.fixture(scope="module")
def hard_tables() -> dict:
    inst = validate_instance(generate_instance(**HARD))
    assert inst.valid, "\n".join(map(str, inst.errors[:5]))
    return inst.tables


@pytest.mark.parametrize("mip_start", [False, True], ids=["no start", "with start"])
def test_time_limit_holds_even_when_highs_own_limit_would_not(hard_tables, mip_start) -> None:
    # HiGHS's own limit is lifted (it does not hold in every phase), so only the guard can end
    # the stages. Unguarded, HiGHS needs minutes to prove this instance; the tolerance is
    # generous for a loaded machine but far below that.
    limit = 4.0
    options = SolveOptions(time_limit=limit, mip_start=mip_start, highs_options={"time_limit": 1e6})
    res = optimize(hard_tables, options)
    assert res.status == "feasible-with-gap", res.message
    assert "time limit" in res.message
    assert res.solve_s < limit + 40  # unguarded, this run took more than 200 s
    assert res.serve_gap is not None and res.serve_gap > 0  # stage 1 was not proven either
    assert res.serve_bound <= res.unmet_t


def test_interrupt_before_any_plan_exits_130_with_one_json_object(monkeypatch, capsys) -> None:
    # Ctrl-C as the solve starts: no plan exists, so the run is an error with exit code 130.
    begin = SolveGuard.begin

    def begin_then_interrupt(self, *args, **kwargs):
        begin(self, *args, **kwargs)
        self.interrupted = True

    monkeypatch.setattr(SolveGuard, "begin", begin_then_interrupt)
    code = main(["optimize", "--input", str(dataset("dummy_3mplan")), "--json", "--no-write"])
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert code == 130
    assert record["status"] == "error" and record["message"].startswith("interrupted")
    assert "interrupted" in captured.err


def test_ctrl_c_returns_the_incumbent(tmp_path) -> None:
    # Send SIGINT once the -v progress shows an incumbent, not after a fixed sleep.
    write_tables(generate_instance(**HARD), tmp_path / "hard")
    cmd = [sys.executable, "-m", "clinker_pipeline.cli", "-v", "optimize"]
    cmd += ["--input", str(tmp_path / "hard"), "--json", "--time-limit", "600"]
    cmd += ["--output", str(tmp_path / "p.duckdb")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if re.search(r"incumbent \d", line):
                proc.send_signal(signal.SIGINT)
                break
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    record = json.loads(out)
    assert record["status"] == "feasible-with-gap"
    assert record["message"] == "interrupted"
    assert record["served_pct"] > 0 and record["serve_bound"] is not None
    assert record["serve_gap"] is not None
    with duckdb.connect(str(tmp_path / "p.duckdb"), read_only=True) as con:
        saved = con.execute("SELECT message FROM plan_runs").fetchall()
    assert saved == [("interrupted",)]  # written like any plan


def test_no_solver_output_on_stdout_with_a_huge_cost(capfd) -> None:
    # HiGHS prints "|cost| value greater than or equal to 1e+20 ..." on stdout for such costs.
    tables = _two_sources()
    tables["production_cost"].loc[0, "production_cost"] = 1e21
    optimize(tables, SolveOptions(time_limit=5))
    assert capfd.readouterr().out == ""


def test_serve_proof_is_reported_and_stored(tmp_path) -> None:
    inst = load_instance(dataset("dummy_3mplan"))
    res = optimize(inst.tables, SolveOptions(mip_gap=0.0))
    assert res.status == "optimal"
    assert res.unmet_t == pytest.approx(10_564_022, abs=1)
    assert res.serve_gap == pytest.approx(0, abs=1e-9)
    assert res.serve_bound == pytest.approx(res.unmet_t, abs=1)
    summary = res.summary()
    assert summary["serve_gap"] == res.serve_gap and summary["serve_bound"] == res.serve_bound
    with duckdb.connect(str(tmp_path / "p.duckdb")) as con:
        write_plan(con, res)
        cols = [c[0] for c in con.execute("DESCRIBE plan_runs").fetchall()]
        stored = con.execute("SELECT serve_gap, serve_bound FROM plan_runs").fetchone()
    # added after the first release's columns (older files gain them at the end)
    assert cols.index("serve_gap") > cols.index("stale_inputs")
    assert cols.index("serve_bound") == cols.index("serve_gap") + 1
    assert stored == pytest.approx((res.serve_gap, res.serve_bound))


def test_lexicographic_order_holds_with_the_repaired_start(hard_tables) -> None:
    # The cost stage starts from the serve stage's trips; it never serves less than stage 1.
    res = optimize(hard_tables, SolveOptions(time_limit=8))
    assert res.plan_found
    stage1_unmet = res.serve_bound + res.serve_gap * res.demand_t  # the serve incumbent
    assert res.unmet_t <= stage1_unmet * (1 + 1e-9) + 1e-5


@pytest.mark.parametrize(
    "options", [{"flow_bounds": True}, {"scale_cost": False}], ids=["bounds", "unscaled"]
)
def test_strength_options_keep_the_contract_optimum(options) -> None:
    inst = load_instance(dataset("dummy_3mplan"))
    res = optimize(inst.tables, SolveOptions(mip_gap=0.0, **options))
    assert res.status == "optimal" and res.n_int == 237
    assert res.unmet_t == pytest.approx(10_564_022, abs=1)
    assert res.cost == pytest.approx(25_450_276_671, rel=1e-4)
    assert res.best_bound == pytest.approx(res.cost, rel=1e-6)  # reported in INR, not scaled


def test_implied_lane_bounds_are_finite_and_respected(hard_tables) -> None:
    from clinker_pipeline.optimization.data import compile_data, lane_flow_bounds

    data = compile_data(hard_tables)
    bound = lane_flow_bounds(data)
    assert (bound >= 0).all() and np.isfinite(bound).mean() > 0.5
    res = optimize(hard_tables, SolveOptions(time_limit=5, flow_bounds=True))
    assert res.plan_found
    unbounded = optimize(hard_tables, SolveOptions(time_limit=5))
    # every plan either run found respects the bounds: they cut off no feasible plan we know of
    for plan in (res, unbounded):
        ship = plan.shipments.merge(
            data.lanes.assign(bound=bound)[
                ["from_code", "to_code", "transport_code", "time_period", "bound"]
            ],
            on=["from_code", "to_code", "transport_code", "time_period"],
        )
        assert (ship["quantity_t"] <= ship["bound"] + 1e-6).all()
