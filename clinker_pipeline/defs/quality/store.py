"""The data-quality report: per feed and run, what was checked, what was kept, how fresh it is.

One score per feed and run, so a planner can see at a glance which input to distrust and a data
owner can see whether the feed is getting better. The formula (README "Data-quality report"):

    completeness = rows_kept / (rows_kept + rows quarantined as ERROR)   (1 when nothing came in)
    checks       = max(0, 1 - (failed ERROR checks + 0.5 * failed WARN checks) / checks run)
    freshness    = 1 fresh, 0.8 partial (part of the feed missing), 0.5 stale (last good data
                   kept), 0 failed (nothing usable)
    score        = round(100 * completeness * checks * freshness, 1)

A feed that brought no rows at all (nothing fetched, kept or quarantined, and not stale or failed)
is in state "no data" with no score: an empty MQTT landing store is not a perfect feed.

WARN rows are not counted against completeness: they were kept (plausibility) or left out on
purpose (e.g. a self-lane), and the WARN check that reports them already costs half a point.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import duckdb
import pandas as pd

from clinker_pipeline.lib.store.db import transaction
from clinker_pipeline.lib.store.feeds import table_exists

SCORE_VERSION = 1
FRESHNESS_FACTOR = {"fresh": 1.0, "partial": 0.8, "stale": 0.5, "failed": 0.0}
NO_DATA = "no data"

REPORT_DDL = """
CREATE TABLE IF NOT EXISTS data_quality_report (
    created_at TIMESTAMP NOT NULL,
    dagster_run_id VARCHAR NOT NULL,
    job_name VARCHAR,
    run_status VARCHAR,
    feed VARCHAR NOT NULL,
    assets VARCHAR,
    checks_run INTEGER,
    checks_passed INTEGER,
    checks_failed_error INTEGER,
    checks_failed_warn INTEGER,
    failed_checks VARCHAR,
    rows_fetched INTEGER,
    rows_kept INTEGER,
    rows_quarantined_error INTEGER,
    rows_quarantined_warn INTEGER,
    freshness VARCHAR,
    data_as_of VARCHAR,
    last_good_at TIMESTAMP,
    completeness DOUBLE,
    checks_factor DOUBLE,
    freshness_factor DOUBLE,
    score DOUBLE,
    score_version INTEGER
)
"""

REASONS_DDL = """
CREATE TABLE IF NOT EXISTS data_quality_reasons (
    dagster_run_id VARCHAR NOT NULL,
    feed VARCHAR NOT NULL,
    severity VARCHAR,
    rule VARCHAR,
    reason VARCHAR,
    rows INTEGER
)
"""

LATEST_VIEW = """
CREATE OR REPLACE VIEW latest_data_quality AS
SELECT * FROM data_quality_report
QUALIFY row_number() OVER (PARTITION BY feed ORDER BY created_at DESC) = 1
"""


@dataclass
class CheckOutcome:
    asset: str
    check: str
    passed: bool
    severity: str  # ERROR | WARN


@dataclass
class FeedQuality:
    feed: str
    assets: list[str] = field(default_factory=list)
    checks: list[CheckOutcome] = field(default_factory=list)
    rows_fetched: int = 0
    rows_kept: int = 0
    rows_quarantined_error: int = 0
    rows_quarantined_warn: int = 0
    freshness: str = "fresh"
    data_as_of: str | None = None
    last_good_at: datetime | None = None

    @property
    def failed(self) -> list[CheckOutcome]:
        return [c for c in self.checks if not c.passed]

    def factors(self) -> tuple[float, float, float]:
        denominator = self.rows_kept + self.rows_quarantined_error
        completeness = 1.0 if denominator == 0 else self.rows_kept / denominator
        failed_error = sum(c.severity == "ERROR" for c in self.failed)
        failed_warn = sum(c.severity != "ERROR" for c in self.failed)
        checks = (
            1.0
            if not self.checks
            else max(0.0, 1 - (failed_error + 0.5 * failed_warn) / len(self.checks))
        )
        return completeness, checks, FRESHNESS_FACTOR.get(self.freshness, 0.0)

    @property
    def state(self) -> str:
        """Freshness, or "no data" when the run brought nothing to judge."""
        came_in = (
            self.rows_fetched
            or self.rows_kept
            or self.rows_quarantined_error
            or self.rows_quarantined_warn
        )
        if not came_in and self.freshness in ("fresh", "partial"):
            return NO_DATA
        return self.freshness

    def score(self) -> float | None:
        if self.state == NO_DATA:
            return None
        completeness, checks, freshness = self.factors()
        return round(100 * completeness * checks * freshness, 1)


def report_frame(
    feeds: Iterable[FeedQuality], *, run_id: str, job_name: str | None, run_status: str | None
) -> pd.DataFrame:
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = []
    for q in feeds:
        completeness, checks, freshness = q.factors()
        no_data = q.state == NO_DATA
        rows.append(
            {
                "created_at": now,
                "dagster_run_id": run_id,
                "job_name": job_name,
                "run_status": run_status,
                "feed": q.feed,
                "assets": ", ".join(sorted(q.assets)),
                "checks_run": len(q.checks),
                "checks_passed": len(q.checks) - len(q.failed),
                "checks_failed_error": sum(c.severity == "ERROR" for c in q.failed),
                "checks_failed_warn": sum(c.severity != "ERROR" for c in q.failed),
                "failed_checks": ", ".join(f"{c.asset}.{c.check} ({c.severity})" for c in q.failed),
                "rows_fetched": q.rows_fetched,
                "rows_kept": q.rows_kept,
                "rows_quarantined_error": q.rows_quarantined_error,
                "rows_quarantined_warn": q.rows_quarantined_warn,
                "freshness": q.state,
                "data_as_of": q.data_as_of,
                "last_good_at": q.last_good_at,
                "completeness": None if no_data else round(completeness, 6),
                "checks_factor": round(checks, 6),
                "freshness_factor": None if no_data else freshness,
                "score": q.score(),
                "score_version": SCORE_VERSION,
            }
        )
    return pd.DataFrame(rows)


def quarantine_by_reason(
    con: duckdb.DuckDBPyConnection, run_id: str, feeds: Sequence[str] | None = None
) -> pd.DataFrame:
    """Quarantined rows of one run, counted per feed, severity, rule and reason."""
    columns = ["feed", "severity", "rule", "reason", "rows"]
    if not table_exists(con, "quarantine"):
        return pd.DataFrame(columns=columns)
    frame = con.execute(
        "SELECT feed, severity, rule, reason, count(*)::INTEGER AS rows FROM quarantine "
        "WHERE dagster_run_id = ? GROUP BY ALL ORDER BY feed, rows DESC",
        [run_id],
    ).df()
    if feeds is not None:
        frame = frame[frame["feed"].isin(feeds)]
    return frame.reindex(columns=columns)


def write_report(
    con: duckdb.DuckDBPyConnection, report: pd.DataFrame, reasons: pd.DataFrame, run_id: str
) -> None:
    """Replace this run's rows (a re-run of the report is idempotent) in one transaction."""
    con.execute(REPORT_DDL)
    con.execute(REASONS_DDL)
    with transaction(con):
        con.execute("DELETE FROM data_quality_report WHERE dagster_run_id = ?", [run_id])
        con.execute("DELETE FROM data_quality_reasons WHERE dagster_run_id = ?", [run_id])
        if len(report):
            cols = [r[0] for r in con.execute("DESCRIBE data_quality_report").fetchall()]
            con.from_df(report.reindex(columns=cols)).insert_into("data_quality_report")
        if len(reasons):
            con.from_df(
                reasons.assign(dagster_run_id=run_id).reindex(
                    columns=["dagster_run_id", "feed", "severity", "rule", "reason", "rows"]
                )
            ).insert_into("data_quality_reasons")
    con.execute(LATEST_VIEW)


def as_records(feeds: Iterable[FeedQuality]) -> list[dict]:
    return [asdict(f) for f in feeds]
