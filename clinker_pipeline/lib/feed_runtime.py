"""How every external feed asset fetches, validates, stores and falls back: one shape for all.

A feed asset supplies a `fetch` function (client call + parsing + schema checks, no Dagster);
this module does the rest identically for every declared feed:
quarantine every problem with its raw record, write history or snapshot tables, record the
outcome in `feed_status`, and report three checks:
- `structure_valid` (ERROR, blocking): the payload's shape and types; the plan never runs on it;
- `values_plausible` (WARN): values outside their usual range are kept and shown;
- `data_fresh` (WARN): fails when the source was down and the last good data was kept, or when
  part of the feed (some plants, one indicator) could not be fetched.
A source outage is not a new materialization: nothing new was fetched, so nothing is
materialized and no structure or plausibility check runs (a check that did not run is not
"passed"). The asset records an `AssetObservation` (stale, reason, last good time), fails the
WARN `data_fresh` check and keeps the last good tables; its Dagster freshness policy turns it
stale in the UI once the data is older than the feed's `max_age`. With no earlier data there is
nothing to fall back on, so the asset fails; retries are then requested at run time by the
source resource (`SourceResource.fail`), except for 4xx answers (a wrong key or URL), which no
retry can fix.
"""

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from clinker_pipeline.instance.problems import Problem
from clinker_pipeline.lib.checks import problem_check_result
from clinker_pipeline.lib.source_resource import SOURCE_ERRORS, SourceResource
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
FEED_CHECK_NAMES = (STRUCTURE_CHECK, PLAUSIBLE_CHECK, FRESH_CHECK)
#: Tag naming the data-quality feed of an asset (external feeds and ERP alike).
FEED_TAG = "clinker/feed"
#: Plant time, no DST: a cron tick never moves or repeats.
TIMEZONE = "Asia/Kolkata"


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


@contextmanager
def source_errors(
    context: dg.OpExecutionContext, source: SourceResource, what: str
) -> Iterator[None]:
    """Turn a client's SourceUnavailable/InvalidPayload into a retry request or a Failure (for
    feeds with no last-good fallback, such as the ERP)."""
    try:
        yield
    except SOURCE_ERRORS as exc:
        raise source.fail(context, exc, what) from None


def _selected(context: dg.AssetExecutionContext, result: dg.AssetCheckResult) -> bool:
    """Feed assets can be subset (a run may select the asset without some checks)."""
    key = dg.AssetCheckKey(result.asset_key, result.check_name)
    return key in context.selected_asset_check_keys


def run_feed(
    context: dg.AssetExecutionContext,
    duckdb: DuckDBResource,
    *,
    asset: str,
    feed: str,
    tables: Sequence[str],
    source: SourceResource,
    sample_mode: bool,
    fetch: Callable[[], FeedOutcome],
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult | dg.AssetObservation]:
    """Fetch, then store, record and report; on an outage, observe and keep the last good data.

    `tables` are the feed's declared tables: writing any other is a bug in the feed's code.
    """
    run_id = context.run.run_id
    try:
        outcome = fetch()
    except SOURCE_ERRORS as exc:
        for event in _fall_back(context, duckdb, asset, feed, tables[0], source, sample_mode, exc):
            if not isinstance(event, dg.AssetCheckResult) or _selected(context, event):
                yield event
        return
    undeclared = sorted(set(outcome.tables) - set(tables))
    if undeclared:
        raise dg.Failure(f"{feed}: writes tables its spec does not declare: {undeclared}")
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
    checks = [
        problem_check_result(asset, STRUCTURE_CHECK, errors),
        problem_check_result(asset, PLAUSIBLE_CHECK, warns),
        dg.AssetCheckResult(
            asset_key=asset,
            check_name=FRESH_CHECK,
            passed=not outcome.missing_parts,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "feed_status": status,
                "missing_parts": dg.MetadataValue.json(outcome.missing_parts),
            },
        ),
    ]
    yield from (check for check in checks if _selected(context, check))


def _fall_back(
    context: dg.AssetExecutionContext,
    duckdb: DuckDBResource,
    asset: str,
    feed: str,
    main_table: str,
    source: SourceResource,
    sample_mode: bool,
    exc: Exception,
) -> Iterator[dg.AssetObservation | dg.AssetCheckResult]:
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
        raise source.fail(context, exc, f"{feed} is unavailable and has no earlier good data")
    context.log.warning(
        f"{feed}: source unavailable, keeping the last good data from "
        f"{previous.last_good_at:%Y-%m-%d %H:%M} UTC ({reason})"
    )
    yield dg.AssetObservation(
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
    yield dg.AssetCheckResult(
        asset_key=asset,
        check_name=FRESH_CHECK,
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"source down; last good data from {status.last_good_at} kept",
        metadata={"feed_status": STALE, "reason": reason, "last_good_at": str(previous.checked_at)},
    )


def utc_now() -> datetime:
    """Naive UTC, as DuckDB TIMESTAMP columns store it."""
    return datetime.now(UTC).replace(tzinfo=None)


def drop_error_rows(
    frame: pd.DataFrame, problems: list[Problem], keys: tuple[str, ...]
) -> pd.DataFrame:
    """Rows named by an ERROR problem leave the stored table; they are in the quarantine, and a
    value the planner cannot trust must not wait in a snapshot for a later run.

    A problem names its row by `keys` of its record, or, when the frame numbers its rows with a
    `source_row` that is not part of `keys`, by its row: a schema problem carrying the raw record
    as it arrived (`RAW_RECORDS`) may not spell the table's keys.
    """
    errors = [p for p in problems if p.severity == "ERROR"]
    bad = {
        tuple(str(p.record.get(k)) for k in keys)
        for p in errors
        if p.record and all(k in p.record for k in keys)
    }
    by_row = "source_row" in frame.columns and "source_row" not in keys
    bad_rows = {p.row for p in errors if p.row is not None} if by_row else set()
    if not (bad or bad_rows) or frame.empty:
        return frame
    mine = frame[list(keys)].astype(str).apply(tuple, axis=1)
    drop = mine.isin(bad)
    if bad_rows:
        drop |= frame["source_row"].isin(bad_rows)
    return frame[~drop].reset_index(drop=True)
