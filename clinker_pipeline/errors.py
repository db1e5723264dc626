"""One exception type per failure family, with messages a planner can act on.

Messages never carry credentials: callers pass endpoints and file names, not URLs with secrets.
"""

from __future__ import annotations


class ClinkerError(Exception):
    """Base of every error this package raises on purpose."""


class InvalidInstance(ClinkerError):
    """The planning instance cannot be read or is not valid; nothing was solved."""

    def __init__(self, message: str, problems: list | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


class InfeasiblePlan(ClinkerError):
    """The instance is valid but no plan satisfies its hard constraints."""


class SolverUnavailable(ClinkerError):
    """The requested solver is not installed or not usable here."""


class SourceUnavailable(ClinkerError):
    """A data source could not be reached or answered with an error."""


class InvalidPayload(ClinkerError):
    """A data source answered, but with something that cannot be parsed."""
