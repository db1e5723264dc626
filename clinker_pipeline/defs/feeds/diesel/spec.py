"""The diesel feed, declared once (see `defs/feeds/spec.py` for what is derived from it)."""

from datetime import timedelta

from clinker_pipeline.defs.feeds.diesel.resource import DieselResource
from clinker_pipeline.defs.feeds.spec import FeedSpec, HealthProbe

SPEC = FeedSpec(
    name="diesel",
    asset="diesel_prices",
    what="diesel price",
    description="EIA weekly US No 2 diesel retail price, converted to INR per litre with the FX "
    "history; the latest week sets the fuel index of road freight.",
    kinds=frozenset({"eia"}),
    resources={"diesel": DieselResource},
    cron="0 6 * * 2",
    cron_reason="Tuesdays 06:00 IST: EIA publishes Monday afternoon Eastern time",
    max_age=timedelta(days=8),
    tables=("diesel_prices",),
    probe=HealthProbe("EIA diesel", "diesel", "/v2/petroleum/pri/gnd/"),
    plan_input=True,
    deps=("fx_rates",),
)
