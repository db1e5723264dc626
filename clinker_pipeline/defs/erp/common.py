"""What every ERP asset shares: its checks, publishing, tags and automation (SAP and Oracle).

Each asset fetches through a resource (live when configured, bundled wire-format payloads
otherwise), maps records with the ERP mapping, quarantines every record it cannot use, and
reports two checks: `schema_valid` (Pandera on the produced table) and `records_usable` (ERROR
when a record carrying planning data was bad, WARN when records were only left out). Both ERROR
checks block the plan. A source outage fails the asset once the client's own retries (backoff,
Retry-After, a deadline per request) are spent, so the previous good table stays in DuckDB.
"""

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from clinker_pipeline.instance.problems import Problem
from clinker_pipeline.instance.validate import schema_problems
from clinker_pipeline.lib.checks import problem_check_result
from clinker_pipeline.lib.feed_runtime import FEED_TAG, TIMEZONE
from clinker_pipeline.lib.markdown import to_markdown
from clinker_pipeline.lib.store.quarantine import quarantine_problems

DAILY = "0 2 * * *"  # master data, demand and capacity: nightly at 02:00 IST

GROUP = "erp"
SCHEMA_CHECK = "schema_valid"
RECORDS_CHECK = "records_usable"
# internal table each ERP asset produces
PRODUCES = {
    "erp_plants": "plants",
    "erp_inventory": "opening_stock",
    "erp_demand_forecast": "clinker_demand",
    "erp_capacity": "clinker_capacity",
}


def _checks(asset: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            SCHEMA_CHECK,
            asset=asset,
            blocking=True,
            description=f"Pandera schema of the `{PRODUCES[asset]}` table this feed produces.",
        ),
        dg.AssetCheckSpec(
            RECORDS_CHECK,
            asset=asset,
            blocking=True,
            description="Every ERP record was usable; bad ones are in the quarantine table.",
        ),
    ]


def publish(
    context: dg.AssetExecutionContext,
    asset: str,
    table: pd.DataFrame,
    problems: list[Problem],
    duckdb: DuckDBResource,
    *,
    feed: str,
    sample_mode: bool,
    fetched: int,
):
    """Quarantine, then yield the output and both check results (shared by every ERP asset)."""
    with duckdb.get_connection() as con:
        quarantine_problems(con, problems, {}, feed=feed, dagster_run_id=context.run.run_id)
    schema = schema_problems(PRODUCES[asset], table, feed)
    yield dg.Output(
        table,
        metadata={
            "dagster/row_count": len(table),
            "records_fetched": fetched,
            "good_rows": len(table),
            "quarantined_records": len(problems),
            "quarantined_errors": sum(p.severity == "ERROR" for p in problems),
            "sample_mode": sample_mode,
            "produces": PRODUCES[asset],
            "preview": dg.MetadataValue.md(to_markdown(table.drop(columns="source_row").head(10))),
        },
    )
    yield problem_check_result(asset, SCHEMA_CHECK, schema)
    yield problem_check_result(asset, RECORDS_CHECK, problems)


def erp_asset(name: str, kinds: set[str], description: str, *, feed: str, cron: str):
    """An ERP asset: fetched on `cron` (plant time), tagged with its data-quality feed."""
    return dg.asset(
        name=name,
        group_name=GROUP,
        kinds=kinds | {"pandas", "duckdb"},
        owners=["team:planning"],
        tags={FEED_TAG: feed},
        io_manager_key="duckdb_io_manager",
        check_specs=_checks(name),
        automation_condition=dg.AutomationCondition.on_cron(cron, TIMEZONE),
        description=description,
    )
