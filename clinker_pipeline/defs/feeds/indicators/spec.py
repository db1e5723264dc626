"""The economic indicators feed, declared once (see `defs/feeds/spec.py`)."""

from datetime import timedelta

from clinker_pipeline.defs.feeds.indicators.resource import ManualInputs, WorldBankResource
from clinker_pipeline.defs.feeds.spec import FeedSpec, HealthProbe

SPEC = FeedSpec(
    name="indicators",
    asset="economic_indicators",
    what="indicator",
    description="India CPI inflation (World Bank API v2) and the manual monthly inputs with no "
    "public API (manufacturing PMI, road freight index), kept as history.",
    kinds=frozenset({"worldbank", "csv"}),
    resources={"worldbank": WorldBankResource, "manual_inputs": ManualInputs},
    cron="0 7 1,15 * *",
    cron_reason="the 1st and 15th at 07:00 IST (monthly and annual series)",
    max_age=timedelta(days=17),
    tables=("economic_indicators",),
    probe=HealthProbe(
        "World Bank",
        "worldbank",
        "/v2/country/IND/indicator/FP.CPI.TOTL.ZG",
        {"format": "json", "per_page": "1"},
    ),
)
