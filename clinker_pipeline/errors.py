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
    """A data source could not be reached or answered with an error.

    `status` is the HTTP status when the source answered: a 4xx means our request or credentials
    are wrong and retrying the run will not help; None or a 5xx/429 is worth a later retry.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status == 429 or self.status >= 500


class InvalidPayload(ClinkerError):
    """A data source answered, but with something that cannot be parsed."""


class InvalidSetting(ClinkerError):
    """An environment variable or resource setting has a value that cannot be used."""
