"""A finding about one cell, row or file of an instance, located for the person who fixes it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

Severity = Literal["ERROR", "WARN"]
# What kind of rule a problem breaks; each maps to one Dagster asset check. Feeds add
# "plausibility" (a value outside its usual range: WARN) and "stale" (last good data reused).
# "by_design": a row the dataset's format leaves out on purpose (an IU's self-lane, its in-plant
# use): listed by `clinker validate --warnings`, but neither quarantined nor a failed check.
Rule = Literal["schema", "reference", "dropped", "plausibility", "stale", "by_design"]


@dataclass(frozen=True)
class Problem:
    table: str  # internal table name (e.g. "clinker_capacity")
    source: str  # file or sheet the row came from, as the user knows it
    row: int | None  # 1-based line in the file (header = 1); None for whole-file problems
    column: str | None  # header as in the file
    message: str
    severity: Severity = "ERROR"
    rule: Rule = "schema"
    value: str | None = None  # the offending raw value, when there is one
    # the raw source record (e.g. one OData entity), kept for the quarantine table
    record: dict | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        where = self.source
        if self.row is not None:
            where += f", row {self.row}"
        if self.column:
            where += f", column '{self.column}'"
        return f"{where}: {self.message}"

    def to_record(self) -> dict:
        return asdict(self)


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "ERROR"]
