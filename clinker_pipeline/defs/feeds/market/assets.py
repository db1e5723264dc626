"""The cement price asset: city prices kept as history, with volatility, trend and spread.

Market prices do not enter the model; they are kept, checked and shown next to the plan.
"""

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from clinker_pipeline.defs.feeds.market.resource import MarketResource
from clinker_pipeline.defs.feeds.market.spec import SPEC
from clinker_pipeline.defs.feeds.spec import feed_asset
from clinker_pipeline.lib.feed_runtime import FeedOutcome, StoredTable, drop_error_rows, utc_now
from clinker_pipeline.lib.markdown import to_markdown
from clinker_pipeline.lib.store.feeds import read_table


@feed_asset(SPEC)
def cement_prices(
    context: dg.AssetExecutionContext, market: MarketResource, duckdb: DuckDBResource
):
    from clinker_pipeline.defs.feeds.market.parse import (
        DEFAULT_FIELDS,
        market_stats,
        parse_prices,
        regional_spread,
    )
    from clinker_pipeline.defs.feeds.market.schema import price_problems

    def fetch() -> FeedOutcome:
        with market.client() as client:
            fetched = client.fetch()
        table, problems = parse_prices(
            fetched.records,
            {**DEFAULT_FIELDS, **market.field_map()},
            source="cement market prices",
            first_row=fetched.first_row,
        )
        problems += price_problems(table, "cement market prices")
        table = drop_error_rows(table, problems, ("city", "price_date"))
        table = table.drop(columns="source_row").assign(fetched_at=utc_now())
        with duckdb.get_connection() as con:
            kept = read_table(con, "cement_prices")
        history = table
        if kept is not None and len(kept):
            kept["price_date"] = pd.to_datetime(kept["price_date"]).dt.date
            merged = pd.concat([kept, table], ignore_index=True)
            history = merged.drop_duplicates(["city", "price_date"], keep="last")
        stats = market_stats(history)
        spread = regional_spread(history)
        return FeedOutcome(
            tables={
                "cement_prices": StoredTable(table, keys=("city", "price_date")),
                "cement_market_stats": StoredTable(stats.assign(computed_at=utc_now())),
                "cement_regional_spread": StoredTable(spread.assign(computed_at=utc_now())),
            },
            problems=problems,
            fetched=len(fetched.records),
            kept=len(table),
            data_as_of=str(table["price_date"].max()) if len(table) else None,
            metadata={
                "format": fetched.format,
                "cities": int(history["city"].nunique()),
                "market_stats": dg.MetadataValue.md(
                    to_markdown(
                        stats[
                            [
                                "city",
                                "latest_price_inr_per_t",
                                "volatility_pct",
                                "trend_pct_per_month",
                            ]
                        ],
                        float_format="{:,.2f}",
                    )
                ),
            },
        )

    yield from SPEC.run(context, duckdb, source=market, fetch=fetch)
