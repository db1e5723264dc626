"""How every external feed asset fetches, validates, stores and falls back: one shape for all.

A feed asset supplies a `fetch` function (client call + parsing + schema checks, no Dagster);
this module does the rest identically for weather, diesel, FX, indicators and market prices:
quarantine every problem with its raw record, write history or snapshot tables, record the
outcome in `feed_status`, and report three checks:
- `structure_valid` (ERROR, blocking): the payload's shape and types; the plan never runs on it;
- `values_plausible` (WARN): values outside their usual range are kept and shown;
- `data_fresh` (WARN): fails when the source was down and the last good data was kept, or when
  part of the feed (some plants, one indicator) could not be fetched.
A source outage with earlier good data is not a failed run: the previous snapshot stays, and the
plan records the feed as stale. With no earlier data there is nothing to fall back on, so the
asset fails; retries then follow the asset's RetryPolicy, except for 4xx answers (a wrong key or
URL), which no retry can fix.
"""

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from clinker_pipeline.errors import InvalidPayload, SourceUnavailable
from clinker_pipeline.instance.problems import Problem
from clinker_pipeline.lib.checks import problem_check_result
from clinker_pipeline.lib.store.feeds import (
    FAILED,
    FRESH,
    PARTIAL,
    STALE,
    last_good,
    record_status,
    replace_snapshot,
    upsert_history,
)
from clinker_pipeline.lib.store.quarantine import quarantine_problems

STRUCTURE_CHECK = "structure_valid"
PLAUSIBLE_CHECK = "values_plausible"
FRESH_CHECK = "data_fresh"


def feed_retry_policy() -> dg.RetryPolicy:
    """Run-level retries of feed assets, on top of the HTTP layer's own retries per request.

    CLINKER_FEED_RETRIES (default 2) and CLINKER_FEED_RETRY_DELAY_S (default 60, doubled per
    attempt, ±50 % jitter) let an operator trade freshness against load on a struggling source.
    """
    return dg.RetryPolicy(
        max_retries=int(os.getenv("CLINKER_FEED_RETRIES", "2")),
        delay=float(os.getenv("CLINKER_FEED_RETRY_DELAY_S", "60")),
        backoff=dg.Backoff.EXPONENTIAL,
        jitter=dg.Jitter.PLUS_MINUS,
    )


def feed_checks(asset: str, what: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            STRUCTURE_CHECK,
            asset=asset,
            blocking=True,
            description=f"Every {what} record has the expected structure and types; bad ones "
            "are in the quarantine table. Blocks the plan.",
        ),
        dg.AssetCheckSpec(
            PLAUSIBLE_CHECK,
            asset=asset,
            description=f"{what} values lie within their usual ranges (kept and shown if not).",
        ),
        dg.AssetCheckSpec(
            FRESH_CHECK,
            asset=asset,
            description=f"The {what} source answered in this run (no last-good fallback, no part "
            "of the feed missing).",
        ),
    ]


@dataclass
class StoredTable:
    frame: pd.DataFrame
    keys: tuple[str, ...] = ()  # history tables: upsert by these keys; empty: replace snapshot


@dataclass
class FeedOutcome:
    """What one successful fetch produced (tables to store, every problem found)."""

    tables: dict[str, StoredTable]
    problems: list[Problem]
    fetched: int
    kept: int
    data_as_of: str | None = None
    missing_parts: dict[str, str] = field(default_factory=dict)  # part -> reason
    metadata: dict[str, object] = field(default_factory=dict)


def client_failure(exc: Exception, what: str) -> dg.Failure:
    """A Dagster failure that is retried only when a later attempt can succeed."""
    retryable = not isinstance(exc, SourceUnavailable) or exc.retryable
    return dg.Failure(
        description=f"{what}: {exc}",
        allow_retries=retryable,
        metadata={"retryable": retryable, "error": type(exc).__name__},
    )


@contextmanager
def source_errors(what: str) -> Iterator[None]:
    """Turn a client's SourceUnavailable/InvalidPayload into a Failure that retries only when it
    can help (for feeds with no last-good fallback, such as the ERP)."""
    try:
        yield
    except (SourceUnavailable, InvalidPayload) as exc:
        raise client_failure(exc, what) from None


def run_feed(
    context: dg.AssetExecutionContext,
    duckdb: DuckDBResource,
    *,
    asset: str,
    feed: str,
    main_table: str,
    sample_mode: bool,
    fetch: Callable[[], FeedOutcome],
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    run_id = context.run.run_id
    try:
        outcome = fetch()
    except (SourceUnavailable, InvalidPayload) as exc:
        yield from _fall_back(context, duckdb, asset, feed, main_table, sample_mode, exc)
        return
    errors = [p for p in outcome.problems if p.severity == "ERROR"]
    warns = [p for p in outcome.problems if p.severity != "ERROR"]
    status = PARTIAL if outcome.missing_parts else FRESH
    written: dict[str, object] = {}
    with duckdb.get_connection() as con:
        quarantine_problems(con, outcome.problems, {}, feed=feed, dagster_run_id=run_id)
        for name, stored in outcome.tables.items():
            if stored.keys:
                counts = upsert_history(con, name, stored.frame, stored.keys)
                written[name] = f"{counts['inserted']} new, {counts['revised']} revised"
            else:
                written[name] = f"{replace_snapshot(con, name, stored.frame)} rows (snapshot)"
        message = "; ".join(f"{k}: {v}" for k, v in outcome.missing_parts.items())
        record_status(
            con,
            feed,
            status,
            sample_mode=sample_mode,
            rows_fetched=outcome.fetched,
            rows_kept=outcome.kept,
            rows_quarantined=len(outcome.problems),
            data_as_of=outcome.data_as_of,
            message=message[:2000],
            dagster_run_id=run_id,
        )
    context.log.info(
        f"{feed}: {outcome.kept} rows kept of {outcome.fetched} fetched, "
        f"{len(errors)} errors and {len(warns)} warnings quarantined"
    )
    yield dg.MaterializeResult(
        asset_key=asset,
        metadata={
            "feed_status": status,
            "sample_mode": sample_mode,
            "records_fetched": outcome.fetched,
            "rows_kept": outcome.kept,
            "quarantined_errors": len(errors),
            "quarantined_warnings": len(warns),
            "data_as_of": outcome.data_as_of or "",
            "tables_written": dg.MetadataValue.json(written),
            "dagster/row_count": outcome.kept,
            **outcome.metadata,
        },
    )
    yield problem_check_result(asset, STRUCTURE_CHECK, errors)
    yield problem_check_result(asset, PLAUSIBLE_CHECK, warns)
    yield dg.AssetCheckResult(
        asset_key=asset,
        check_name=FRESH_CHECK,
        passed=not outcome.missing_parts,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "feed_status": status,
            "missing_parts": dg.MetadataValue.json(outcome.missing_parts),
        },
    )


def _fall_back(
    context: dg.AssetExecutionContext,
    duckdb: DuckDBResource,
    asset: str,
    feed: str,
    main_table: str,
    sample_mode: bool,
    exc: Exception,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    reason = str(exc)
    with duckdb.get_connection() as con:
        previous = last_good(con, feed)
        status = record_status(
            con,
            feed,
            STALE if previous else FAILED,
            sample_mode=sample_mode,
            message=reason[:2000],
            dagster_run_id=context.run.run_id,
        )
    if previous is None:
        raise client_failure(exc, f"{feed} is unavailable and has no earlier good data") from None
    context.log.warning(
        f"{feed}: source unavailable, keeping the last good data from "
        f"{previous.last_good_at:%Y-%m-%d %H:%M} UTC ({reason})"
    )
    note = "not re-validated: the source was down, the last good data was kept"
    yield dg.MaterializeResult(
        asset_key=asset,
        metadata={
            "feed_status": STALE,
            "sample_mode": sample_mode,
            "stale": True,
            "stale_reason": reason,
            "last_good_at": str(status.last_good_at),
            "data_as_of": status.data_as_of or "",
            "kept_table": main_table,
        },
    )
    for check in (STRUCTURE_CHECK, PLAUSIBLE_CHECK):
        yield dg.AssetCheckResult(
            asset_key=asset, check_name=check, passed=True, metadata={"note": note}
        )
    yield dg.AssetCheckResult(
        asset_key=asset,
        check_name=FRESH_CHECK,
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"source down; last good data from {status.last_good_at} kept",
        metadata={"feed_status": STALE, "reason": reason, "last_good_at": str(previous.checked_at)},
    )
