"""Instance tables as assets, validated by asset checks that block the plan on bad data.

One multi-asset reads the instance once and emits the nine tables; each table carries
`schema_valid` (Pandera, ERROR, blocking), `references_valid` (cross-table codes and rules,
ERROR, blocking) and, where rows are left out on purpose, `rows_all_modelled` (WARN). Every
problem row is also written to the DuckDB `quarantine` table with its reason, so nothing is
dropped silently.
"""

from collections import defaultdict

import dagster as dg
from dagster_duckdb import DuckDBResource

from clinker_pipeline.defs.resources import InstanceFiles
from clinker_pipeline.instance import TABLES, Problem
from clinker_pipeline.lib.checks import problem_check_result
from clinker_pipeline.lib.markdown import to_markdown
from clinker_pipeline.lib.store.quarantine import quarantine_problems

GROUP = "instance"
SCHEMA_CHECK = "schema_valid"
REFERENCE_CHECK = "references_valid"
MODELLED_CHECK = "rows_all_modelled"
# rule of a Problem -> the check that reports it
RULE_CHECK = {"schema": SCHEMA_CHECK, "reference": REFERENCE_CHECK, "dropped": MODELLED_CHECK}
DESCRIPTIONS = {
    "plants": "Plant master (IUGUType): every IU and GU with type and, where known, location.",
    "clinker_demand": "Clinker consumed per node and period, with optional minimum fulfilment.",
    "clinker_capacity": "Clinker an IU can burn per period (tonnes).",
    "production_cost": "Production cost per IU and period (INR/t).",
    "logistics_lanes": "Allowed lanes (from, to, mode) per period with freight, handling, trip size.",
    "flow_constraints": "IUGUConstraint dispatch bounds (L/G/E) per IU, mode, destination, period.",
    "opening_stock": "Clinker stock per node at the start of the first period.",
    "closing_stock_bounds": "Hard MIN/MAX closing stock per node and period.",
    "hub_opening_stock": "Hub stock tagged by source IU (validated and reported, not modelled).",
}


def _checks_for(table: str) -> list[str]:
    checks = [SCHEMA_CHECK]
    if table != "plants":
        checks.append(REFERENCE_CHECK)
    if table in ("logistics_lanes", "flow_constraints"):
        checks.append(MODELLED_CHECK)
    return checks


CHECK_SPECS = [
    dg.AssetCheckSpec(
        name,
        asset=spec.name,
        blocking=name != MODELLED_CHECK,
        description={
            SCHEMA_CHECK: "Pandera schema: types, signs, allowed codes, unique keys, MIN <= MAX.",
            REFERENCE_CHECK: "Codes exist, constraint rows can be met, capacity has a cost.",
            MODELLED_CHECK: "Rows left out of the model on purpose (self-lanes, vacuous rows).",
        }[name],
    )
    for spec in TABLES
    for name in _checks_for(spec.name)
]


@dg.multi_asset(
    outs={
        spec.name: dg.AssetOut(
            io_manager_key="duckdb_io_manager",
            description=DESCRIPTIONS[spec.name],
            group_name=GROUP,
            kinds={"pandas", "duckdb"},
            owners=["team:planning"],
            is_required=True,
        )
        for spec in TABLES
    },
    check_specs=CHECK_SPECS,
)
def instance_tables(
    context: dg.AssetExecutionContext, instance_files: InstanceFiles, duckdb: DuckDBResource
):
    """Read the planning instance (bundled sample, or CLINKER_INSTANCE_PATH) and validate it."""
    instance = instance_files.load()
    fingerprint = instance.fingerprint()
    with duckdb.get_connection() as con:
        quarantined = quarantine_problems(
            con,
            [p for p in instance.problems if p.rule != "by_design"],
            instance.tables,
            feed="instance_files",
            dagster_run_id=context.run.run_id,
        )
    if instance.errors:
        context.log.error(
            f"instance has {len(instance.errors)} error(s); the plan is blocked. First: {instance.errors[0]}"
        )
    by_table: dict[str, list[Problem]] = defaultdict(list)
    for p in instance.problems:
        by_table[p.table].append(p)

    for spec in TABLES:
        table = instance.tables[spec.name]
        problems = by_table[spec.name]
        bad_rows = {p.row for p in problems if p.severity == "ERROR" and p.row is not None}
        yield dg.Output(
            table,
            output_name=spec.name,
            metadata={
                "dagster/row_count": len(table),
                "source": instance.sources[spec.name],
                "origin": instance.origin,
                "inputs_fingerprint": fingerprint,
                "rows_with_errors": len(bad_rows),
                "warnings": sum(p.severity == "WARN" for p in problems),
                "quarantined_rows": sum(p.rule != "by_design" for p in problems),
                "preview": dg.MetadataValue.md(
                    to_markdown(table.drop(columns="source_row").head(10))
                ),
            },
        )
    for spec in TABLES:
        for check in _checks_for(spec.name):
            found = [p for p in by_table[spec.name] if RULE_CHECK.get(p.rule) == check]
            yield problem_check_result(spec.name, check, found)
    context.log.info(
        f"instance {instance.origin}: {len(instance.errors)} errors, {len(instance.warnings)} warnings, "
        f"{quarantined} problem rows recorded in quarantine"
    )
