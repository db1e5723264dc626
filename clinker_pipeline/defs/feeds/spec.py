"""The one declaration of an external feed, and the discovery that finds every feed.

Each feed folder (`defs/feeds/<feed>/`) holds a `spec.py` with `SPEC = FeedSpec(...)`: the feed's
name, asset, resources (and through them its environment variables), kinds, cadence, freshness,
stored tables and health probe. Everything else is derived from these declarations by iterating
`discover_feeds()`: the asset's checks, tags, automation condition and freshness policy
(`lib/feed_runtime.feed_asset`), the resources of the code location (`defs/resources.py`), the
feed of each asset in the data-quality report, the plan's feed inputs and `clinker health`. A
frozen dataclass rather than a `dg` Component with YAML: a feed is code (a client with API
quirks, parsing, a Pandera schema), the spec points at that code, and type checkers and tests see
it; YAML would only add a second language and a loader for five declarations.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from typing import TYPE_CHECKING

import dagster as dg

from clinker_pipeline.lib.feed_runtime import FEED_TAG, TIMEZONE, feed_checks

if TYPE_CHECKING:
    from dagster_duckdb import DuckDBResource

    from clinker_pipeline.lib.feed_runtime import FeedOutcome
    from clinker_pipeline.lib.source_resource import SourceResource

OWNERS = ("team:planning",)
GROUP = "external"


@dataclass(frozen=True)
class HealthProbe:
    """`clinker health`'s one cheap GET against a live feed (through its own HTTP layer)."""

    title: str  # the name `clinker health` prints
    resource_key: str  # which of the feed's resources is probed
    path: str
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FeedSpec:
    name: str  # the feed in feed_status, quarantine and the data-quality report
    asset: str
    what: str  # how the checks name one record ("FX", "cement price")
    description: str
    kinds: frozenset[str]
    resources: Mapping[str, type[SourceResource]]  # resource key -> class (env vars on the class)
    cron: str  # when the feed is fetched, plant time (Asia/Kolkata)
    cron_reason: str
    max_age: timedelta  # older than this, the asset's freshness fails
    tables: tuple[str, ...]  # DuckDB tables it writes; the first one is the main table
    probe: HealthProbe
    plan_input: bool = False  # the plan reads its tables (scenario layer)
    deps: tuple[str, ...] = ()  # assets read from DuckDB before fetching
    ins: tuple[str, ...] = ()  # assets loaded as inputs by the IO manager

    @property
    def main_table(self) -> str:
        return self.tables[0]

    def run(
        self,
        context: dg.AssetExecutionContext,
        duckdb: DuckDBResource,
        *,
        source: SourceResource,
        fetch: Callable[[], FeedOutcome],
        sample_mode: bool | None = None,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult | dg.AssetObservation]:
        """The feed's asset body after its `fetch`: store, record, check (`lib/feed_runtime`)."""
        from clinker_pipeline.lib.feed_runtime import run_feed

        yield from run_feed(
            context,
            duckdb,
            asset=self.asset,
            feed=self.name,
            tables=self.tables,
            source=source,
            sample_mode=source.sample_mode if sample_mode is None else sample_mode,
            fetch=fetch,
        )

    def env_names(self) -> list[str]:
        return [name for cls in self.resources.values() for name in cls.env_names()]

    def automation_condition(self) -> dg.AutomationCondition:
        """Fetch once per cron tick, whether or not upstream assets changed since: a feed's
        source moves on its own clock (the plant master rarely changes, the forecast does)."""
        return dg.AutomationCondition.on_cron(self.cron, TIMEZONE).without(
            dg.AutomationCondition.all_deps_updated_since_cron(self.cron, TIMEZONE)
        )

    def freshness_policy(self) -> dg.FreshnessPolicy:
        return dg.FreshnessPolicy.time_window(fail_window=self.max_age)


@cache
def _feed_folders() -> tuple[tuple[str, FeedSpec], ...]:
    import clinker_pipeline.defs.feeds as package

    found = []
    for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if module.ispkg:
            spec = importlib.import_module(f"{package.__name__}.{module.name}.spec").SPEC
            found.append((f"{package.__name__}.{module.name}", spec))
    return tuple(found)


def discover_feeds() -> tuple[FeedSpec, ...]:
    """Every feed folder's SPEC, in folder order: the only list of feeds there is."""
    return tuple(spec for _, spec in _feed_folders())


def feed_assets() -> list[dg.AssetsDefinition]:
    """Each declared feed's asset, from its folder's `assets.py` (named after `SPEC.asset`)."""
    return [
        getattr(importlib.import_module(f"{folder}.assets"), spec.asset)
        for folder, spec in _feed_folders()
    ]


def feed_of_asset() -> dict[str, str]:
    """asset -> feed name, for the data-quality report (also the asset's `clinker/feed` tag)."""
    return {spec.asset: spec.name for spec in discover_feeds()}


def feed_asset(spec: FeedSpec):
    """The asset decorator of a feed, everything taken from its spec.

    A one-asset `multi_asset` rather than `@asset`: on an outage the feed yields an observation
    and its failed freshness check but no materialization, so the output and the checks that did
    not run must be optional (`skippable`, `can_subset`).
    """
    return dg.multi_asset(
        name=spec.asset,
        specs=[
            dg.AssetSpec(
                spec.asset,
                description=spec.description,
                group_name=GROUP,
                kinds=set(spec.kinds) | {"duckdb"},
                owners=list(OWNERS),
                tags={FEED_TAG: spec.name},
                deps=[*spec.deps, *spec.ins],
                automation_condition=spec.automation_condition(),
                freshness_policy=spec.freshness_policy(),
                metadata={"clinker/tables": list(spec.tables), "clinker/cron": spec.cron},
                skippable=True,
            )
        ],
        ins={name: dg.AssetIn(name) for name in spec.ins},
        check_specs=feed_checks(spec.asset, spec.what),
        can_subset=True,
    )
