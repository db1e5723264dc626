"""USD/INR reference rates from Frankfurter (ECB rates, crossed through EUR), keyless.

Frankfurter's v1 API is deprecated but stable and is what mirrors serve; the traps it hides:

* A quote the source does not publish is silently missing from `rates` (or, when no day has it,
  the whole answer is a 404 "not found"). An empty or quote-less answer would look like "no new
  rates"; it is an InvalidPayload naming the pair instead.
* A server that ignores `base` (the old host wanted `from=`) answers EUR-based rates, and EUR/INR
  (~90) passes every range check meant for USD/INR. The echoed `base` is therefore checked, and
  so is `amount` (any value but 1 scales every rate).
* Errors: v1 sends 404 `{"message": "not found"}` for unknown codes or dates outside the
  history and 422 `{"message": ...}` for bad parameters (v2 also uses 422). Both come back as
  SourceUnavailable quoting the server's message (a 4xx: retrying will not help).
* `latest` names the last ECB working day (1-4 days old) and a time series' `start_date` snaps
  back to the last published day on or before the requested start. Both are returned as
  published; the parser keeps the dates so staleness stays visible.
* A mirror may answer a time-series path with a `latest`-shaped body (one `date`, flat `rates`);
  `timeseries` reads it as the one-day series it is instead of mistaking the currency for a day.

The upstream needs no key. A private mirror may: `live(api_key=...)` sends it as the query
parameter `api_key`, a secret of this client only, so it never reaches a message or a log record.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from clinker_pipeline.errors import InvalidPayload, SourceUnavailable
from clinker_pipeline.lib.feed_transport import (
    FeedTransport,
    HttpFeedTransport,
    SampleFeedTransport,
)
from clinker_pipeline.lib.http import HttpPolicy, failure_message

log = logging.getLogger(__name__)

SOURCE = "FX"
DEFAULT_BASE_URL = "https://api.frankfurter.dev"
#: Query parameter a private mirror reads its key from (the public API takes none).
API_KEY_PARAM = "api_key"
SAMPLE_DIR = Path(__file__).resolve().parent / "samples"

_CURRENCY = re.compile(r"[A-Z]{3}")
_TIMESERIES_PATH = re.compile(r"/?v1/\d{4}-\d{2}-\d{2}\.\.(\d{4}-\d{2}-\d{2})?")


def sample_file(path: str, params: Mapping[str, str]) -> str:
    """The bundled file answering GET `path`: the sample does not evaluate dates or currencies."""
    if path.strip("/") == "v1/latest":
        return "latest.json"
    if _TIMESERIES_PATH.fullmatch(path):
        return "timeseries.json"
    return path.strip("/").replace("/", "_") + ".json"


class FxClient:
    """Reads Frankfurter v1 `latest` and time series answers, checked but unparsed.

    Returns the raw payload (a dict) so the asset can store exactly what arrived; turn it into a
    table with `feeds.fx.parse.parse_fx_timeseries` / `parse_fx_latest`.
    """

    def __init__(self, transport: FeedTransport) -> None:
        self.transport = transport

    @classmethod
    def live(
        cls,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_key: str = "",
        policy: HttpPolicy | None = None,
        verify: bool | str = True,
    ) -> FxClient:
        """Frankfurter (or a mirror below `base_url`); `api_key` is sent only when non-empty."""
        secret = {API_KEY_PARAM: api_key} if api_key else None
        return cls(
            HttpFeedTransport(SOURCE, base_url, secret_params=secret, policy=policy, verify=verify)
        )

    @classmethod
    def sample(cls, directory: Path | str | None = None) -> FxClient:
        """Answers from bundled v1 payloads (see samples/README.md)."""
        return cls(SampleFeedTransport(SOURCE, directory or SAMPLE_DIR, sample_file))

    def __repr__(self) -> str:
        return f"FxClient({self.transport!r})"

    def __enter__(self) -> FxClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    def timeseries(
        self, start: date, end: date, base: str = "USD", quote: str = "INR"
    ) -> dict[str, Any]:
        """GET /v1/{start}..{end}?base=&symbols=: every published day of the range.

        Always in the time-series shape: a one-day `latest`-shaped answer comes back as the
        one-day series it stands for (see `_single_day_as_series`).
        """
        if end < start:
            raise ValueError(f"end {end} is before start {start}")
        base, quote = _code(base), _code(quote)
        path = f"/v1/{start.isoformat()}..{end.isoformat()}"
        payload = self._get(path, base, quote)
        if _is_single_day(payload["rates"]):
            payload = _single_day_as_series(path, payload, end)
        rates = payload["rates"]
        if not rates:
            raise InvalidPayload(
                failure_message(SOURCE, path, reason=f"no {base}/{quote} rates in {start}..{end}")
            )
        if not any(isinstance(day, Mapping) and quote in day for day in rates.values()):
            raise InvalidPayload(
                failure_message(
                    SOURCE,
                    path,
                    reason=f"{quote} is absent from every day's rates: the source does not "
                    f"publish {base}/{quote}",
                )
            )
        return payload

    def latest(self, base: str = "USD", quote: str = "INR") -> dict[str, Any]:
        """GET /v1/latest?base=&symbols=: the last published day (not necessarily today)."""
        base, quote = _code(base), _code(quote)
        path = "/v1/latest"
        payload = self._get(path, base, quote)
        if quote not in payload["rates"]:
            raise InvalidPayload(
                failure_message(
                    SOURCE,
                    path,
                    reason=f"{quote} is absent from rates: the source does not publish "
                    f"{base}/{quote}",
                )
            )
        return payload

    def _get(self, path: str, base: str, quote: str) -> dict[str, Any]:
        try:
            payload = self.transport.get_json(path, {"base": base, "symbols": quote})
        except SourceUnavailable as exc:
            if exc.status in (404, 422):
                hint = (
                    f"check that {base} and {quote} are currencies the source publishes "
                    "and that the dates lie within its history"
                )
                raise SourceUnavailable(f"{exc} ({hint})", status=exc.status) from None
            raise
        if not isinstance(payload, Mapping):
            raise InvalidPayload(
                failure_message(
                    SOURCE, path, reason=f"expected a JSON object, got {type(payload).__name__}"
                )
            )
        if not isinstance(payload.get("rates"), Mapping):
            keys = ", ".join(sorted(map(str, payload))) or "none"
            raise InvalidPayload(
                failure_message(SOURCE, path, reason=f"answer has no 'rates' object (keys: {keys})")
            )
        echoed = payload.get("base")
        if echoed != base:
            raise InvalidPayload(
                failure_message(
                    SOURCE,
                    path,
                    reason=f"asked for base {base} but the answer is based on {echoed!r} "
                    "(does the server read `base`?)",
                )
            )
        amount = payload.get("amount", 1)
        if isinstance(amount, bool) or not isinstance(amount, int | float) or amount != 1:
            raise InvalidPayload(
                failure_message(
                    SOURCE, path, reason=f"amount is {amount!r}, expected 1 (rates would be scaled)"
                )
            )
        return dict(payload)


def _is_single_day(rates: Mapping[str, Any]) -> bool:
    """True for `latest`-shaped rates (`{"INR": 84.6}`) rather than a series (`{day: {...}}`)."""
    return bool(rates) and all(
        _CURRENCY.fullmatch(str(key)) and not isinstance(value, Mapping)
        for key, value in rates.items()
    )


def _single_day_as_series(path: str, payload: Mapping[str, Any], end: date) -> dict[str, Any]:
    """A `latest`-shaped answer at a time-series path, as the one-day series it stands for.

    Mirrors (and proxies that rewrite a range holding one published day) answer
    `{"date": d, "rates": {"INR": r}}`; read as a series, "INR" would be taken for a day and the
    feed would say the source does not publish INR although the rate is right there. The day may
    lie before the requested start (Frankfurter snaps back to the last published day) but never
    after its end.
    """
    day = payload.get("date")
    try:
        published = date.fromisoformat(day) if isinstance(day, str) else None
    except ValueError:
        published = None
    if published is None:
        raise InvalidPayload(
            failure_message(
                SOURCE, path, reason=f"one day's rates without a valid 'date' (got {day!r})"
            )
        )
    if published > end:
        raise InvalidPayload(
            failure_message(
                SOURCE,
                path,
                reason=f"one day's rates dated {day}, after the requested end {end.isoformat()}",
            )
        )
    log.info(
        "%s %s: answered with one day's rates (%s), read as a one-day series", SOURCE, path, day
    )
    rest = {k: v for k, v in payload.items() if k not in ("date", "rates")}
    return {**rest, "start_date": day, "end_date": day, "rates": {day: dict(payload["rates"])}}


def _code(currency: str) -> str:
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise ValueError(f"currency {currency!r} must be a 3-letter upper-case ISO 4217 code")
    return currency
