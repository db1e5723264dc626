"""OpenWeatherMap client: the 5 day / 3 hour forecast (2.5) and optionally One Call 3.0 per plant.

Traps this client owns, so the parsing code never sees them:

* `cod` is the string "200" on success but an int (401, 429) or a string ("404", "400") on
  errors, so it is compared as `str(cod)`. A 2xx body whose `cod` is not "200", or that has no
  `list` of steps, is an InvalidPayload naming the coordinates (never the key): a silently empty
  forecast would read as "no rain".
* The API key travels as the query parameter `appid`; `HttpFeedTransport` adds it and masks it
  (as this client's secret only), so no message or log record carries it. A 401 gets a hint that new keys take up
  to two hours to activate and that One Call 3.0 needs its own subscription.
* The free plan allows 60 calls a minute and a 429 carries no Retry-After: the default policy
  paces calls one second apart (shared by all worker threads of one client) and backs off on
  429 for about a minute (0, 10, 20, 40 s) before giving up.
* One plant's failure must not cost the others their forecast, and must not vanish either:
  `fetch_all` returns it in `failures`; only when every plant fails is the feed unavailable.

Sample mode reads bundled payloads in the exact wire format through the same client
(`SampleFeedTransport`), so the `cod` checks and the parsing downstream run unchanged.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinker_pipeline.errors import ClinkerError, InvalidPayload, SourceUnavailable
from clinker_pipeline.lib.feed_transport import (
    FeedTransport,
    HttpFeedTransport,
    SampleFeedTransport,
)
from clinker_pipeline.lib.http import HttpPolicy, scrub

log = logging.getLogger(__name__)

SOURCE = "OpenWeatherMap"
DEFAULT_BASE_URL = "https://api.openweathermap.org"
FORECAST_PATH = "/data/2.5/forecast"
ONECALL_PATH = "/data/3.0/onecall"
ONECALL_EXCLUDE = "current,minutely,hourly"
SAMPLE_DIR = Path(__file__).resolve().parent / "samples"

#: Free plan: 60 calls/min and no Retry-After on 429. Calls are paced 1 s apart; a 429 (account
#: blocked for the rest of the minute) is retried after 0, 10, 20 and 40 s, which spans the
#: minute, and the whole call still ends inside 3 minutes.
DEFAULT_POLICY = HttpPolicy(
    retries=4,
    backoff_factor=5.0,
    backoff_jitter=1.0,
    backoff_max=60.0,
    connect_timeout=10.0,
    read_timeout=30.0,
    deadline_s=180.0,
    min_interval_s=1.0,
)

_AUTH_HINT = (
    "check the OpenWeatherMap API key: a new key takes up to 2 h to activate, and One Call 3.0 "
    "needs its own 'One Call by Call' subscription"
)
_ENDPOINT_NAMES = {FORECAST_PATH.strip("/"): "forecast", ONECALL_PATH.strip("/"): "onecall"}


@dataclass(frozen=True)
class PlantLocation:
    code: str
    latitude: float
    longitude: float


@dataclass
class WeatherFetch:
    """Raw payloads per plant code, and why the others have none.

    `onecall_failures` is kept apart from `failures`: One Call only adds daily totals and alerts,
    so a plant whose forecast arrived but whose One Call did not is still usable.
    """

    forecasts: dict[str, dict] = field(default_factory=dict)
    onecall: dict[str, dict] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    onecall_failures: dict[str, str] = field(default_factory=dict)


def sample_file(path: str, params: Mapping[str, str]) -> str:
    """`forecast_<lat>_<lon>.json` / `onecall_<lat>_<lon>.json`, coordinates as `f"{x:.2f}"`.

    Rounding to two decimals (about 1 km) makes the file name independent of how many digits the
    caller's plant master carries.
    """
    kind = _ENDPOINT_NAMES.get(path.strip("/"), "unsupported-" + path.strip("/").replace("/", "_"))
    try:
        lat, lon = float(params["lat"]), float(params["lon"])
    except (KeyError, ValueError):
        return f"{kind}_no-coordinates.json"
    return f"{kind}_{lat:.2f}_{lon:.2f}.json"


class OpenWeatherClient:
    """Forecasts for a list of plants, concurrently but within the provider's rate limit."""

    def __init__(
        self, transport: FeedTransport, *, onecall: bool = False, max_workers: int = 4
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be >= 1")
        self.transport = transport
        self.onecall = onecall
        self.max_workers = max_workers

    @classmethod
    def live(
        cls,
        base_url: str,
        api_key: str,
        *,
        onecall: bool = False,
        policy: HttpPolicy | None = None,
        max_workers: int = 4,
        verify: bool | str = True,
    ) -> OpenWeatherClient:
        """The real API (or a mirror at `base_url`); the key is sent as `appid`."""
        if not api_key:
            raise ValueError(f"{SOURCE}: an API key is required (setting for the appid parameter)")
        transport = HttpFeedTransport(
            SOURCE,
            base_url or DEFAULT_BASE_URL,
            secret_params={"appid": api_key},
            policy=policy or DEFAULT_POLICY,
            verify=verify,
        )
        return cls(transport, onecall=onecall, max_workers=max_workers)

    @classmethod
    def sample(
        cls,
        directory: Path | str | None = None,
        *,
        onecall: bool = False,
        max_workers: int = 4,
    ) -> OpenWeatherClient:
        """Bundled payloads (see samples/README.md); no network, no key."""
        transport = SampleFeedTransport(
            SOURCE, directory if directory is not None else SAMPLE_DIR, sample_file
        )
        return cls(transport, onecall=onecall, max_workers=max_workers)

    def __repr__(self) -> str:
        return f"OpenWeatherClient({self.transport!r}, onecall={self.onecall})"

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> OpenWeatherClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- one location -------------------------------------------------------------------------

    def forecast(self, lat: float, lon: float) -> dict:
        """The raw 2.5 forecast payload (metric units), checked to hold a `list` of steps."""
        params = {
            "lat": _coordinate(lat, 90.0, "latitude"),
            "lon": _coordinate(lon, 180.0, "longitude"),
        }
        payload = self._get(FORECAST_PATH, {**params, "units": "metric"}, lat, lon)
        cod = str(payload.get("cod"))
        if cod != "200":
            raise InvalidPayload(
                f"{SOURCE}: forecast for lat {lat}, lon {lon} came back with HTTP 2xx but cod "
                f"{cod!r}{self.transport.scrub(_said(payload))}; no steps were read"
            )
        if not isinstance(payload.get("list"), list):
            raise InvalidPayload(
                f"{SOURCE}: forecast for lat {lat}, lon {lon} has no 'list' of 3-hour steps "
                f"(keys: {', '.join(sorted(map(str, payload))) or 'none'})"
            )
        return payload

    def onecall_forecast(self, lat: float, lon: float) -> dict:
        """The raw One Call 3.0 payload with `daily` (and `alerts` when there are any)."""
        params = {
            "lat": _coordinate(lat, 90.0, "latitude"),
            "lon": _coordinate(lon, 180.0, "longitude"),
            "exclude": ONECALL_EXCLUDE,
            "units": "metric",
        }
        payload = self._get(ONECALL_PATH, params, lat, lon)
        # A success has no `cod`; an error shape that slipped through with a 2xx status has one.
        if "cod" in payload and not str(payload["cod"]).startswith("2"):
            raise InvalidPayload(
                f"{SOURCE}: One Call for lat {lat}, lon {lon} came back with HTTP 2xx but cod "
                f"{str(payload['cod'])!r}{self.transport.scrub(_said(payload))}"
            )
        if not isinstance(payload.get("daily"), list):
            raise InvalidPayload(
                f"{SOURCE}: One Call for lat {lat}, lon {lon} has no 'daily' list "
                f"(keys: {', '.join(sorted(map(str, payload))) or 'none'})"
            )
        return payload

    def _get(self, path: str, params: dict[str, str], lat: float, lon: float) -> dict:
        try:
            payload: Any = self.transport.get_json(path, params)
        except SourceUnavailable as exc:
            text = f"{exc} [lat {lat}, lon {lon}]"
            if exc.status == 401:
                text += f" ({_AUTH_HINT})"
            raise SourceUnavailable(scrub(text), status=exc.status) from None
        except InvalidPayload as exc:
            raise InvalidPayload(scrub(f"{exc} [lat {lat}, lon {lon}]")) from None
        if not isinstance(payload, dict):
            raise InvalidPayload(
                f"{SOURCE}: {path} for lat {lat}, lon {lon} is a JSON {type(payload).__name__}, "
                "expected an object"
            )
        return payload

    # ---- all plants ---------------------------------------------------------------------------

    def fetch_all(self, locations: Sequence[PlantLocation]) -> WeatherFetch:
        """Every plant's forecast (and One Call when enabled), `max_workers` at a time.

        Results keep the order of `locations`. A plant that fails is in `failures` with a
        secret-free reason; if all of them fail, SourceUnavailable says how many and the first
        reason (with the HTTP status when every failure had the same one, so a caller can tell a
        bad key from an outage).
        """
        codes = [loc.code for loc in locations]
        duplicates = sorted({c for c in codes if codes.count(c) > 1})
        if duplicates:
            raise ValueError(f"{SOURCE}: plant codes given more than once: {duplicates}")
        result = WeatherFetch()
        if not locations:
            return result
        workers = min(self.max_workers, len(locations))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="owm") as pool:
            outcomes = list(pool.map(self._fetch_one, locations))
        statuses: list[int | None] = []
        for loc, outcome in zip(locations, outcomes, strict=True):
            forecast, reason, status, onecall, onecall_reason = outcome
            if forecast is not None:
                result.forecasts[loc.code] = forecast
            else:
                result.failures[loc.code] = reason or "unknown failure"
                statuses.append(status)
                log.warning("%s: no forecast for plant %s: %s", SOURCE, loc.code, reason)
            if onecall is not None:
                result.onecall[loc.code] = onecall
            elif onecall_reason:
                result.onecall_failures[loc.code] = onecall_reason
                log.warning(
                    "%s: no One Call data for plant %s: %s", SOURCE, loc.code, onecall_reason
                )
        log.info(
            "%s: forecasts for %d of %d plants%s",
            SOURCE,
            len(result.forecasts),
            len(locations),
            f", One Call for {len(result.onecall)}" if self.onecall else "",
        )
        if not result.forecasts:
            first_code, first_reason = next(iter(result.failures.items()))
            status = statuses[0] if len(set(statuses)) == 1 else None
            raise SourceUnavailable(
                f"{SOURCE}: all {len(locations)} plant forecasts failed; first: "
                f"{first_code}: {first_reason}",
                status=status,
            )
        return result

    def _fetch_one(
        self, loc: PlantLocation
    ) -> tuple[dict | None, str | None, int | None, dict | None, str | None]:
        try:
            forecast = self.forecast(loc.latitude, loc.longitude)
        except (ClinkerError, ValueError) as exc:
            return None, scrub(str(exc)), getattr(exc, "status", None), None, None
        if not self.onecall:
            return forecast, None, None, None, None
        try:
            return forecast, None, None, self.onecall_forecast(loc.latitude, loc.longitude), None
        except (ClinkerError, ValueError) as exc:
            return forecast, None, None, None, scrub(str(exc))


def _coordinate(value: float, limit: float, name: str) -> str:
    """Query text of a coordinate; NaN or out-of-range values never reach the API."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{SOURCE}: {name} {value!r} is not a number") from None
    if not math.isfinite(number) or abs(number) > limit:
        raise ValueError(f"{SOURCE}: {name} {value!r} is outside -{limit:g}..{limit:g}")
    return f"{number:.6f}".rstrip("0").rstrip(".")


def _said(payload: Mapping[str, Any]) -> str:
    message = payload.get("message")
    return f" ({message})" if isinstance(message, str) and message.strip() else ""
