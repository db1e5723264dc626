"""The cement market price feed, declared once (see `defs/feeds/spec.py`)."""

from datetime import timedelta

from clinker_pipeline.defs.feeds.market.resource import MarketResource
from clinker_pipeline.defs.feeds.spec import FeedSpec, HealthProbe

SPEC = FeedSpec(
    name="market",
    asset="cement_prices",
    what="cement price",
    description="City cement prices from the configured market feed (OGD `records` JSON or CSV), "
    "kept as history; volatility, trend and regional spread recomputed over the whole history.",
    kinds=frozenset({"json", "csv"}),
    resources={"market": MarketResource},
    cron="0 7 * * *",
    cron_reason="daily at 07:00 IST",
    max_age=timedelta(days=2),
    tables=("cement_prices", "cement_market_stats", "cement_regional_spread"),
    probe=HealthProbe("Market", "market", "", {"limit": "1"}),
)
