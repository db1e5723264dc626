"""Resources whose settings come from environment variables read at run time, not at import.

Dagster's `EnvVar` cannot carry a default: an unset variable fails the run
(dagster-io/dagster#16232), yet every source here must run in sample mode with nothing set. So a
field left at `None` is resolved when the resource is used, from the variable its class names in
`ENV`, else that variable's default. The Dagster UI shows `None` (never a secret), a value passed
explicitly (tests, run config) wins, and `clinker health` asks the very same objects for their
mode, so health and the pipeline cannot disagree.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import dagster as dg

from clinker_pipeline.errors import InvalidSetting


@dataclass(frozen=True)
class Env:
    """One setting's environment variable and its default when the variable is unset or empty."""

    name: str
    default: Any = ""
    secret: bool = False

    def parse(self, raw: str) -> Any:
        if isinstance(self.default, bool):
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if isinstance(self.default, int):
            return int(raw)
        if isinstance(self.default, float):
            return float(raw)
        return raw.strip()


class EnvResource(dg.ConfigurableResource):
    """Base of every resource configured by environment variables (see the module docstring)."""

    ENV: ClassVar[Mapping[str, Env]] = {}

    def setting(self, field: str) -> Any:
        """The field's explicit value, else its environment variable now, else the default."""
        value = getattr(self, field)
        if value is not None:
            return value
        env = self.ENV[field]
        raw = os.environ.get(env.name, "")
        if not raw.strip():
            return env.default
        try:
            return env.parse(raw)
        except ValueError:
            raise InvalidSetting(
                f"{env.name}={raw!r} is not a valid {type(env.default).__name__}"
            ) from None

    @classmethod
    def env_names(cls) -> list[str]:
        return [env.name for env in cls.ENV.values()]
