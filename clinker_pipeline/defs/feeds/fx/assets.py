"""The FX asset: USD/INR reference rates kept as history by date."""

from datetime import UTC, date, datetime

import dagster as dg
from dagster_duckdb import DuckDBResource

from clinker_pipeline.defs.feeds.fx.resource import FxResource
from clinker_pipeline.defs.feeds.fx.spec import SPEC
from clinker_pipeline.defs.feeds.spec import feed_asset
from clinker_pipeline.lib.feed_runtime import FeedOutcome, StoredTable, drop_error_rows, utc_now


@feed_asset(SPEC)
def fx_rates(context: dg.AssetExecutionContext, fx: FxResource, duckdb: DuckDBResource):
    from clinker_pipeline.defs.feeds.fx.parse import parse_fx_timeseries
    from clinker_pipeline.defs.feeds.fx.schema import fx_problems

    def fetch() -> FeedOutcome:
        with fx.client() as client:
            payload = client.timeseries(
                date.fromisoformat(fx.history_start), datetime.now(UTC).date()
            )
        table, problems = parse_fx_timeseries(payload, "INR")
        problems += fx_problems(table, "FX USD/INR")
        table = drop_error_rows(table, problems, ("date",))
        latest = table.iloc[-1] if len(table) else None
        return FeedOutcome(
            tables={
                "fx_rates": StoredTable(
                    table.drop(columns="source_row").assign(fetched_at=utc_now()),
                    keys=("date", "base", "quote"),
                )
            },
            problems=problems,
            fetched=len(table) + sum(p.severity == "ERROR" for p in problems),
            kept=len(table),
            data_as_of=str(latest["date"]) if latest is not None else None,
            metadata={"latest_usd_inr": float(latest["rate"]) if latest is not None else 0.0},
        )

    yield from SPEC.run(context, duckdb, source=fx, fetch=fetch)
