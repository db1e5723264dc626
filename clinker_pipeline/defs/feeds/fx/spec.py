"""The FX feed, declared once (see `defs/feeds/spec.py` for what is derived from it)."""

from datetime import timedelta

from clinker_pipeline.defs.feeds.fx.resource import FxResource
from clinker_pipeline.defs.feeds.spec import FeedSpec, HealthProbe

SPEC = FeedSpec(
    name="fx",
    asset="fx_rates",
    what="FX",
    description="USD/INR reference rates (ECB via Frankfurter JSON), kept as history by date.",
    kinds=frozenset({"frankfurter"}),
    resources={"fx": FxResource},
    cron="30 21 * * 1-5",
    cron_reason="weekdays 21:30 IST, after the ECB reference rates (~16:00 CET)",
    max_age=timedelta(days=4),  # a long weekend
    tables=("fx_rates",),
    probe=HealthProbe("FX", "fx", "/v1/latest", {"base": "USD"}),
)
