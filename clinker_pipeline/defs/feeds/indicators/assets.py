"""The indicators asset: India CPI inflation and the manual monthly inputs, kept as history.

Indicators do not enter the model; they are kept, checked and shown next to the plan.
"""

from datetime import date

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from clinker_pipeline.defs.feeds.indicators.resource import ManualInputs, WorldBankResource
from clinker_pipeline.defs.feeds.indicators.spec import SPEC
from clinker_pipeline.defs.feeds.spec import feed_asset
from clinker_pipeline.errors import InvalidPayload, SourceUnavailable
from clinker_pipeline.lib.feed_runtime import FeedOutcome, StoredTable, drop_error_rows, utc_now
from clinker_pipeline.lib.markdown import to_markdown

MANUAL = ("manufacturing_pmi", "road_freight_index")


@feed_asset(SPEC)
def economic_indicators(
    context: dg.AssetExecutionContext,
    worldbank: WorldBankResource,
    manual_inputs: ManualInputs,
    duckdb: DuckDBResource,
):
    from clinker_pipeline.defs.feeds.indicators.parse import parse_manual_csv, parse_worldbank
    from clinker_pipeline.defs.feeds.indicators.schema import manual_problems, worldbank_problems

    def fetch() -> FeedOutcome:
        frames, problems, missing, fetched_rows = [], [], {}, 0
        try:
            with worldbank.client() as client:
                rows = client.indicator(worldbank.country, date_range=worldbank.date_range)
            fetched_rows += len(rows)
            cpi, found = parse_worldbank(rows)
            found += worldbank_problems(cpi, "World Bank CPI")
            problems += found
            cpi = drop_error_rows(cpi, found, ("indicator", "year"))
            frames.append(
                pd.DataFrame(
                    {
                        "indicator": cpi["indicator"],
                        "period": [date(int(y), 1, 1) for y in cpi["year"]],
                        "frequency": "annual",
                        "value": cpi["value"],
                        "unit": "% per year",
                        "country": cpi["country"],
                        "source": "World Bank " + cpi["indicator_name"].astype(str),
                    }
                )
            )
        except (SourceUnavailable, InvalidPayload) as exc:
            missing["worldbank"] = str(exc)
        for name in MANUAL:
            path = manual_inputs.path(name)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                missing[name] = f"cannot read {path}: {exc.strerror}"
                continue
            table, found = parse_manual_csv(text, name)
            found += manual_problems(table, path.name)
            problems += found
            table = drop_error_rows(table, found, ("indicator", "month"))
            fetched_rows += len(table)
            frames.append(
                pd.DataFrame(
                    {
                        "indicator": table["indicator"],
                        "period": table["month"],
                        "frequency": "monthly",
                        "value": table["value"],
                        "unit": table["unit"],
                        "country": "IND",
                        "source": table["source"],
                    }
                )
            )
        if not frames:
            raise SourceUnavailable(
                "economic indicators: no source answered: "
                + "; ".join(f"{k}: {v}" for k, v in missing.items())
            )
        table = pd.concat(frames, ignore_index=True)
        latest = table.sort_values("period").groupby("indicator").tail(1)
        return FeedOutcome(
            tables={
                "economic_indicators": StoredTable(
                    table.assign(fetched_at=utc_now()), keys=("indicator", "period")
                )
            },
            problems=problems,
            fetched=fetched_rows,
            kept=len(table),
            data_as_of=str(table["period"].max()),
            missing_parts=missing,
            metadata={
                "latest": dg.MetadataValue.md(
                    to_markdown(
                        latest[["indicator", "period", "value", "unit"]], float_format="{:,.2f}"
                    )
                )
            },
        )

    yield from SPEC.run(
        context,
        duckdb,
        source=worldbank,
        fetch=fetch,
        sample_mode=worldbank.sample_mode and manual_inputs.sample_mode,
    )
