"""The diesel asset: EIA weekly retail diesel in INR per litre (fuel index of road freight)."""

from datetime import date

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from clinker_pipeline.defs.feeds.diesel.resource import DieselResource
from clinker_pipeline.defs.feeds.diesel.spec import SPEC
from clinker_pipeline.defs.feeds.spec import feed_asset
from clinker_pipeline.errors import InvalidPayload
from clinker_pipeline.instance.problems import Problem
from clinker_pipeline.lib.feed_runtime import FeedOutcome, StoredTable, drop_error_rows, utc_now
from clinker_pipeline.lib.store.feeds import read_table


@feed_asset(SPEC)
def diesel_prices(
    context: dg.AssetExecutionContext, diesel: DieselResource, duckdb: DuckDBResource
):
    from clinker_pipeline.defs.feeds.diesel.parse import (
        diesel_in_inr,
        missing_fx_problems,
        parse_diesel,
    )
    from clinker_pipeline.defs.feeds.diesel.schema import diesel_inr_problems, diesel_problems

    def fetch() -> FeedOutcome:
        with diesel.client() as client:
            fetched = client.weekly_diesel(start=date.fromisoformat(diesel.history_start))
        table, problems = parse_diesel(fetched.rows)
        problems += diesel_problems(table, "EIA weekly diesel")
        problems += [
            Problem("diesel_prices", "EIA weekly diesel", None, None, w, severity="WARN")
            for w in fetched.warnings
        ]
        table = drop_error_rows(table, problems, ("week",))
        with duckdb.get_connection() as con:
            fx = read_table(con, "fx_rates")
        if fx is None or fx.empty:
            raise InvalidPayload("diesel: no USD/INR rates stored yet; materialize fx_rates")
        fx = fx[(fx["base"] == "USD") & (fx["quote"] == "INR")][["date", "rate"]]
        fx["date"] = pd.to_datetime(fx["date"]).dt.date
        inr = diesel_in_inr(table, fx)
        problems += missing_fx_problems(inr, "EIA weekly diesel (INR)")
        problems += diesel_inr_problems(inr, "EIA weekly diesel (INR)")
        latest = inr.dropna(subset=["inr_per_litre"]).tail(1)
        return FeedOutcome(
            tables={
                "diesel_prices": StoredTable(
                    inr.drop(columns="source_row").assign(fetched_at=utc_now()), keys=("week",)
                )
            },
            problems=problems,
            fetched=len(fetched.rows),
            kept=len(inr),
            data_as_of=str(latest["week"].iloc[0]) if len(latest) else None,
            metadata={
                "pages": fetched.pages,
                "latest_week": str(latest["week"].iloc[0]) if len(latest) else "",
                "latest_usd_per_gal": float(latest["usd_per_gal"].iloc[0]) if len(latest) else 0.0,
                "latest_inr_per_litre": float(latest["inr_per_litre"].iloc[0])
                if len(latest)
                else 0.0,
            },
        )

    yield from SPEC.run(context, duckdb, source=diesel, fetch=fetch)
