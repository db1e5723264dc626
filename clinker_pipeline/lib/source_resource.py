"""The base of every source resource (ERP and feeds): mode, run-level retries, HTTP knobs.

Sample or live is the resource's choice (`sample_mode`), made in one place and read by the
assets, the data-quality report and `clinker health` alike. Run-level retries are requested at
run time (`dg.RetryRequested`) with the resource's settings, so `CLINKER_FEED_RETRIES` and
`CLINKER_FEED_RETRY_DELAY_S` are read when a run needs them, never when the code is imported.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import dagster as dg

from clinker_pipeline.errors import InvalidPayload, SourceUnavailable
from clinker_pipeline.lib.env_resource import Env, EnvResource

RETRY_ENV = {
    "run_retries": Env("CLINKER_FEED_RETRIES", 2),
    "run_retry_delay_s": Env("CLINKER_FEED_RETRY_DELAY_S", 60.0),
}


@dataclass(frozen=True)
class ProbeTarget:
    """Where `clinker health` sends its one cheap request for a live source."""

    base_url: str
    secret_params: dict[str, str]


class SourceResource(EnvResource):
    """A source that is live when configured and answers from bundled samples otherwise."""

    ENV: ClassVar = RETRY_ENV
    run_retries: int | None = None  # run-level retries after the HTTP layer gave up
    run_retry_delay_s: float | None = None  # doubled per attempt, ±50 % jitter

    @property
    def sample_mode(self) -> bool:
        raise NotImplementedError

    def probe_target(self) -> ProbeTarget | None:
        """The live endpoint health probes (None: not an HTTP source or in sample mode)."""
        return None

    def fail(self, context: dg.OpExecutionContext, exc: Exception, what: str) -> Exception:
        """The exception to raise for a failed fetch: a retry request while retries are left and
        one can help (not for a 4xx: a wrong key or URL), else a Failure saying why."""
        retryable = not isinstance(exc, SourceUnavailable) or exc.retryable
        retries = int(self.setting("run_retries"))
        if retryable and context.retry_number < retries:
            delay = float(self.setting("run_retry_delay_s")) * 2**context.retry_number
            context.log.warning(f"{what}: {exc}; retry {context.retry_number + 1} of {retries}")
            return dg.RetryRequested(
                max_retries=retries, seconds_to_wait=delay * random.uniform(0.5, 1.5)
            )
        return dg.Failure(
            description=f"{what}: {exc}",
            allow_retries=False,
            metadata={"retryable": retryable, "error": type(exc).__name__},
        )


SOURCE_ERRORS = (SourceUnavailable, InvalidPayload)


class FeedResource(SourceResource):
    """Per-source HTTP knobs; unset ones keep the client's defaults for that provider (OWM backs
    off for a minute after a 429, EIA paces bursts below 5/s, the rest pace at 2 calls/s)."""

    retries: int | None = None  # per request, by urllib3 with backoff and Retry-After
    backoff_factor: float | None = None
    deadline_s: float | None = None  # whole call, retries included
    min_interval_s: float | None = None  # the client-side rate limit of this source

    def policy(self, default: Any = None) -> Any:  # -> HttpPolicy
        from clinker_pipeline.lib.http import HttpPolicy

        base = default or HttpPolicy(deadline_s=120.0, min_interval_s=0.5)
        fields = ("retries", "backoff_factor", "deadline_s", "min_interval_s")
        return replace(
            base, **{f: getattr(self, f) for f in fields if getattr(self, f) is not None}
        )


class HttpFeedResource(FeedResource):
    """A feed behind one HTTP API: live when its `LIVE_WHEN` setting is set (the API key of a
    keyed provider, the URL of a keyless one); the key travels as the `KEY_PARAM` query
    parameter. Health probes exactly what the assets would call."""

    LIVE_WHEN: ClassVar[str] = "api_key"
    URL_FIELD: ClassVar[str] = "base_url"
    KEY_PARAM: ClassVar[str] = ""

    @property
    def sample_mode(self) -> bool:
        return not self.setting(self.LIVE_WHEN)

    def secret_key(self) -> str:
        return self.setting("api_key") if "api_key" in self.ENV else ""

    def probe_target(self) -> ProbeTarget | None:
        if self.sample_mode:
            return None
        key = self.secret_key()
        secret = {self.KEY_PARAM: key} if key and self.KEY_PARAM else {}
        return ProbeTarget(self.setting(self.URL_FIELD), secret)
