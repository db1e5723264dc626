"""US EIA API v2 client for the weekly US No 2 diesel retail price (the fuel index input).

EIA's API has traps that lose data or hide failures without raising:

* the API key is read from the query string only (a header is ignored and the call fails as
  API_KEY_MISSING), so it goes in as the `api_key` query parameter, a secret of this client only;
* without `data[0]=value` the answer has dimension columns and no prices, and an unknown facet
  value is a 200 with zero rows, not an error (the caller sees an empty table and says so);
* one JSON answer holds at most 5000 rows and `response.total` is a *string*; a longer answer is
  a 200 carrying a `warnings` entry ("incomplete return"), so the client pages with
  `offset += length` until `offset >= int(total)` under an explicit sort, and records warnings;
  a server that ignores `offset` or `length` (the same page again, more rows than asked or than
  `total`) would double the history silently, so that is an InvalidPayload at the first page
  that shows it;
* the gateway's error bodies nest the code (`{"error": {"code": "API_KEY_INVALID", ...}}`) where
  the generic extractor keeps only the message, so this module supplies its own extractor and
  the code reaches the planner; before v2.1.10 a 200 could carry an error body, so the body is
  checked too, whatever the status.

Sample mode serves the bundled pages (samples/) through the same paging and checks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from clinker_pipeline.errors import InvalidPayload, SourceUnavailable
from clinker_pipeline.lib.feed_transport import (
    FeedTransport,
    HttpFeedTransport,
    SampleFeedTransport,
)
from clinker_pipeline.lib.http import HttpPolicy, failure_message, short_error_text

log = logging.getLogger(__name__)

SOURCE = "EIA"
DEFAULT_BASE_URL = "https://api.eia.gov"
DIESEL_SERIES = "EMD_EPD2D_PTE_NUS_DPG"
ROUTE = "/v2/petroleum/pri/gnd/data/"

#: EIA's cap on rows per JSON answer.
MAX_PAGE_LENGTH = 5000
#: Safety stop for a server whose `total` keeps growing or never arrives (5000 rows per page:
#: far beyond the ~1,700 weeks of history since 1994).
MAX_PAGES = 200

SAMPLE_DIR = Path(__file__).resolve().parent / "samples"
SAMPLE_FIRST_PAGE = "diesel_weekly.offset=0.json"
#: Page length of the bundled sample when its first page does not say (`request.params.length`).
SAMPLE_PAGE_LENGTH = 100

#: EIA states bursts must stay below 5 requests/s; an OVER_RATE_LIMIT suspends the key for
#: seconds to minutes, so retries back off for up to half a minute (no Retry-After is sent).
DEFAULT_POLICY = HttpPolicy(
    retries=5,
    backoff_factor=1.0,
    backoff_jitter=0.5,
    backoff_max=30.0,
    connect_timeout=10.0,
    read_timeout=60.0,
    deadline_s=180.0,
    min_interval_s=0.25,
)

#: What the status would have been for a gateway code found in a 200 body (pre-2.1.10 servers).
_CODE_STATUS = {"API_KEY_MISSING": 403, "API_KEY_INVALID": 403, "OVER_RATE_LIMIT": 429}


@dataclass
class EiaFetch:
    """Everything one `weekly_diesel` call got: raw rows of all pages in order, and what EIA said.

    `total` is EIA's own count (the last page's `response.total`); `rows` may be shorter if a page
    came back empty early, in which case `warnings` says so.
    """

    rows: list[dict] = field(default_factory=list)
    total: int = 0
    pages: int = 0
    warnings: list[str] = field(default_factory=list)


def eia_error(payload: Any) -> tuple[str | None, str] | None:
    """(code, message) of an EIA error body in either of its shapes, else None.

    Gateway shape: `{"error": {"code": "API_KEY_INVALID", "message": "..."}}`; API shape:
    `{"error": "Invalid frequency ...", "code": 400}`.
    """
    if not isinstance(payload, Mapping) or "error" not in payload:
        return None
    error = payload["error"]
    if isinstance(error, Mapping):
        code = error.get("code")
        message = error.get("message")
        return (str(code) if code not in (None, "") else None, str(message or "").strip())
    if error in (None, "", False):
        return None
    code = payload.get("code")
    return (str(code) if code not in (None, "") else None, str(error).strip())


def eia_error_text(body_text: str, content_type: str | None) -> str:
    """Error text for a non-2xx answer that keeps the gateway code (`API_KEY_INVALID: ...`)."""
    try:
        payload = json.loads(body_text)
    except ValueError:
        payload = None
    found = eia_error(payload)
    if found is None:
        return short_error_text(body_text, content_type)
    code, message = found
    text = f"{code}: {message}" if code and not code.isdigit() else message
    return text[:300] if text else short_error_text(body_text, content_type)


def sample_resolver(path: str, params: Mapping[str, str]) -> str:
    """`diesel_weekly.offset=<offset>.json` for the data route; other routes have no sample."""
    if path.strip("/") != ROUTE.strip("/"):
        return "no-sample-for-" + path.strip("/").replace("/", "_") + ".json"
    offset = str(params.get("offset", "0") or "0")
    return f"diesel_weekly.offset={offset}.json"


def _sample_page_length(directory: Path) -> int:
    """The page length the bundled pages were cut with, as recorded in their `request` block."""
    try:
        payload = json.loads((directory / SAMPLE_FIRST_PAGE).read_text(encoding="utf-8"))
        length = int(payload["request"]["params"]["length"])
    except (OSError, ValueError, KeyError, TypeError):
        return SAMPLE_PAGE_LENGTH
    return length if 1 <= length <= MAX_PAGE_LENGTH else SAMPLE_PAGE_LENGTH


class EiaClient:
    """Reads EIA v2 route data, all pages, with the key in the query string only."""

    def __init__(self, transport: FeedTransport, *, page_length: int = MAX_PAGE_LENGTH) -> None:
        if not 1 <= page_length <= MAX_PAGE_LENGTH:
            raise ValueError(f"page_length must be 1..{MAX_PAGE_LENGTH} (EIA's JSON row cap)")
        self.transport = transport
        self.page_length = page_length

    @classmethod
    def live(
        cls,
        base_url: str,
        api_key: str,
        *,
        policy: HttpPolicy | None = None,
        page_length: int = MAX_PAGE_LENGTH,
        verify: bool | str = True,
    ) -> EiaClient:
        """EIA over HTTPS. An empty key is refused here: EIA would answer 403 API_KEY_MISSING."""
        if not api_key or not api_key.strip():
            raise ValueError("EIA needs an API key (register at https://www.eia.gov/opendata/)")
        transport = HttpFeedTransport(
            SOURCE,
            base_url,
            secret_params={"api_key": api_key.strip()},
            policy=policy or DEFAULT_POLICY,
            verify=verify,
            # the shared extractor drops the nested `error.code`: EIA's code is what one acts on
            error_text=eia_error_text,
        )
        return cls(transport, page_length=page_length)

    @classmethod
    def sample(cls, directory: Path | str | None = None) -> EiaClient:
        """Bundled pages (no network, no key), paged with the length they were recorded with."""
        folder = Path(directory) if directory is not None else SAMPLE_DIR
        transport = SampleFeedTransport(SOURCE, folder, sample_resolver)
        return cls(transport, page_length=_sample_page_length(folder))

    def __repr__(self) -> str:
        return f"EiaClient({self.transport!r}, page_length={self.page_length})"

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> EiaClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def weekly_diesel(
        self,
        start: date | None = None,
        end: date | None = None,
        series: str = DIESEL_SERIES,
    ) -> EiaFetch:
        """All weekly rows of `series` (newest first) between `start` and `end`, both inclusive.

        Zero rows (e.g. a mistyped series id) is returned as such: EIA does not call it an error.
        """
        if not series or not series.strip():
            raise ValueError("series must be a non-empty EIA v2 series id")
        if start is not None and end is not None and start > end:
            raise ValueError(f"start {start} is after end {end}")
        params = {
            "frequency": "weekly",
            "data[0]": "value",
            "facets[series][]": series.strip(),
            "sort[0][column]": "period",
            "sort[0][direction]": "desc",
        }
        if start is not None:
            params["start"] = start.isoformat()
        if end is not None:
            params["end"] = end.isoformat()
        return self._fetch(ROUTE, params)

    def _fetch(self, route: str, params: Mapping[str, str]) -> EiaFetch:
        """All pages of `route`, refusing answers that do not add up.

        A server (or a caching proxy) that ignores `offset` sends page 1 for every offset, one
        that ignores `length` sends more rows than asked, and either way `offset += length`
        would count rows twice while looking complete. So a page longer than asked, a row seen
        on an earlier page, or more rows than `response.total` is an InvalidPayload naming what
        was seen, at the first page that shows it: never a silently doubled history, never an
        endless loop.
        """
        fetch = EiaFetch()
        offset = 0
        total: int | None = None
        seen: dict[str, int] = {}  # row fingerprint -> offset of the page that brought it
        while True:
            if fetch.pages >= MAX_PAGES:
                raise InvalidPayload(
                    self._message(
                        route,
                        f"still paging after {MAX_PAGES} pages ({len(fetch.rows)} rows, "
                        f"total {total}); refusing to continue",
                    )
                )
            query = {**params, "offset": str(offset), "length": str(self.page_length)}
            payload = self.transport.get_json(route, query)
            rows, page_total, warnings = self._page(route, payload, offset)
            self._check_page(route, rows, offset, seen)
            fetch.pages += 1
            fetch.rows.extend(rows)
            for text in warnings:
                if text not in fetch.warnings:
                    log.warning("%s %s offset %d: %s", SOURCE, route, offset, text)
                    fetch.warnings.append(text)
            total = page_total
            if total is not None and len(fetch.rows) > total:
                raise InvalidPayload(
                    self._message(
                        route,
                        f"{len(fetch.rows)} rows came back in {fetch.pages} page(s) but "
                        f"response.total is {total}: the answer does not add up, so none of it "
                        "is used",
                    )
                )
            if not rows:
                break
            offset += self.page_length
            if total is None:
                if len(rows) < self.page_length:
                    break
            elif offset >= total:
                break
        fetch.total = total if total is not None else len(fetch.rows)
        if len(fetch.rows) < fetch.total:
            text = (
                f"EIA reported {fetch.total} rows but only {len(fetch.rows)} came back "
                f"(page at offset {offset} was empty)"
            )
            log.warning("%s %s: %s", SOURCE, route, text)
            fetch.warnings.append(text)
        return fetch

    def _check_page(self, route: str, rows: list, offset: int, seen: dict[str, int]) -> None:
        """Raise when this page cannot be the next slice of the answer (see `_fetch`)."""
        if len(rows) > self.page_length:
            raise InvalidPayload(
                self._message(
                    route,
                    f"offset {offset}: asked for at most {self.page_length} rows, got "
                    f"{len(rows)}: the server does not honour `length`, so paging would "
                    "re-read or skip rows",
                )
            )
        repeated: list[int] = []
        fresh: dict[str, int] = {}
        for row in rows:
            key = json.dumps(row, sort_keys=True, default=str)
            if key in seen:
                repeated.append(seen[key])
            else:
                fresh[key] = offset
        if repeated:
            raise InvalidPayload(
                self._message(
                    route,
                    f"the page at offset {offset} repeats {len(repeated)} of its {len(rows)} "
                    f"rows from the page at offset {min(repeated)}: the server does not page by "
                    "`offset` (a proxy cache or a mirror that ignores it?); refusing a history "
                    "with rows counted twice",
                )
            )
        seen.update(fresh)

    def _page(
        self, route: str, payload: Any, offset: int
    ) -> tuple[list[dict], int | None, list[str]]:
        """(rows, total, warning texts) of one answer; error bodies raise whatever the status."""
        found = eia_error(payload)
        if found is not None:
            code, message = found
            status = int(code) if code and code.isdigit() else _CODE_STATUS.get(code or "")
            said = f"{code}: {message}" if code and not code.isdigit() else message
            raise SourceUnavailable(
                self._message(
                    route, f"HTTP 200 but the body is an EIA error - {self.transport.scrub(said)}"
                ),
                status=status,
            )
        response = payload.get("response") if isinstance(payload, Mapping) else None
        if not isinstance(response, Mapping) or "data" not in response:
            raise InvalidPayload(
                self._message(route, f"offset {offset}: answer has no response.data")
            )
        data = response["data"]
        if not isinstance(data, list):
            raise InvalidPayload(
                self._message(
                    route, f"offset {offset}: response.data is a {type(data).__name__}, not a list"
                )
            )
        raw_total = response.get("total")
        total: int | None = None
        if raw_total is not None:
            try:
                total = int(str(raw_total).strip())
            except ValueError:
                raise InvalidPayload(
                    self._message(
                        route, f"offset {offset}: response.total {raw_total!r} is not a count"
                    )
                ) from None
        warnings = [
            text
            for item in _as_list(payload.get("warnings")) + _as_list(response.get("warnings"))
            if (text := _warning_text(item))
        ]
        return data, total, warnings

    def _message(self, route: str, reason: str) -> str:
        return failure_message(self.transport.source, route, reason=reason)


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _warning_text(item: Any) -> str:
    """ "incomplete return: The API can only return 5000 rows ..." (EIA's title varies, so both)."""
    if isinstance(item, Mapping):
        title = str(item.get("warning") or "").strip()
        description = str(item.get("description") or "").strip()
        return ": ".join(part for part in (title, description) if part)
    return str(item).strip()
