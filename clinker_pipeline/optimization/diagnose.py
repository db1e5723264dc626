"""Explain an infeasible instance: which rows have to give, and by how much.

The elastic model softens every IUGUConstraint row, closing-stock bound and fulfilment floor
with a slack and minimises total violation (tonnes); rows with a positive slack are the
conflict a planner must resolve. Capacity stays hard: it is physics, not policy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from clinker_pipeline.optimization.data import ModelData
from clinker_pipeline.optimization.model import build_model
from clinker_pipeline.optimization.runners import make_runner

if TYPE_CHECKING:
    from clinker_pipeline.optimization.solve import SolveOptions

TOL = 1e-4
COLUMNS = [
    "source_table",
    "source_row",
    "kind",
    "iugu_code",
    "time_period",
    "violation_t",
    "description",
]


def diagnose_infeasibility(
    data: ModelData, options: SolveOptions, time_limit: float
) -> pd.DataFrame:
    built = build_model(data, elastic=True, relax_trips=options.relax_trips)
    runner = make_runner(options.solver, threads=options.threads)
    runner.load(built.model)
    outcome = runner.solve(built.model, time_limit=time_limit, rel_gap=1e-6)
    if not outcome.has_solution:
        return pd.DataFrame(columns=COLUMNS)
    m = built.model
    records = []
    for r, row in enumerate(data.constraints):
        up = m.s_row_up[r].value or 0.0
        dn = m.s_row_dn[r].value or 0.0
        for amount, way in ((up, "above"), (dn, "below")):
            if amount > TOL:
                records.append(
                    {
                        "source_table": "IUGUConstraint",
                        "source_row": row.source_row,
                        "kind": f"constraint_{row.bound}",
                        "iugu_code": row.iu_code,
                        "time_period": row.period,
                        "violation_t": amount,
                        "description": f"{row.describe()}: needs {amount:,.0f} t {way} its bound",
                    }
                )
    for kind, var, (n, t) in built.elastic_terms:
        amount = var.value or 0.0
        if amount <= TOL:
            continue
        node, period = data.nodes[n], data.periods[t]
        if kind == "fulfilment":
            row = int(data.demand_rows[n, t]) or None
            table = "ClinkerDemand"
            text = (
                f"ClinkerDemand row {row} ({node}, period {period}, minimum fulfilment of "
                f"{data.demand[n, t] - data.unmet_cap[n, t]:,.0f} t): {amount:,.0f} t cannot be served"
            )
        else:
            row = int(data.close_rows[n, t]) or None
            table = "IUGUClosingStock"
            bound = data.min_close[n, t] if kind == "min_close" else data.max_close[n, t]
            way = "short of MIN CLOSE STOCK" if kind == "min_close" else "over MAX CLOSE STOCK"
            text = (
                f"IUGUClosingStock row {row} ({node}, period {period}, bound {bound:,.0f} t): "
                f"stock ends {amount:,.0f} t {way}"
            )
        records.append(
            {
                "source_table": table,
                "source_row": row,
                "kind": kind,
                "iugu_code": node,
                "time_period": period,
                "violation_t": amount,
                "description": text,
            }
        )
    out = pd.DataFrame(records, columns=COLUMNS)
    return out.sort_values("violation_t", ascending=False, ignore_index=True)
