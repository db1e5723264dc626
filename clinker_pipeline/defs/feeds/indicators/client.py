"""World Bank Indicators API v2 (India CPI inflation), keyless, every page.

What the API does that a naive client gets wrong:

* The body is a 2-element array `[meta, rows]`; `meta.pages` says how many pages follow, and the
  default page is only 50 rows, so stopping after page 1 silently loses years.
* An empty result is `[meta, null]` with `total` 0: that is "no data", returned as [].
* Errors arrive with **HTTP 200** as a 1-element array
  `[{"message": [{"id": "120", "key": "Invalid value", "value": "..."}]}]`. Treating it as data
  would look like an empty series; it is raised as SourceUnavailable with the id, key and text,
  with `status` 400, since it is a request error that retrying will not fix.
* A server (or proxy) that ignores `page` would answer page 1 again and again; the page number
  echoed in `meta` is checked, and the row count is checked against `meta.total` at the end.

Rows are returned raw (newest first, `value` may be null for the newest year); turn them into a
table with `parse.parse_worldbank`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clinker_pipeline.defs.feeds.indicators.parse import CPI_INFLATION
from clinker_pipeline.errors import InvalidPayload, SourceUnavailable
from clinker_pipeline.lib.feed_transport import (
    FeedTransport,
    HttpFeedTransport,
    SampleFeedTransport,
)
from clinker_pipeline.lib.http import HttpPolicy, failure_message

__all__ = [
    "CPI_INFLATION",
    "DEFAULT_BASE_URL",
    "SAMPLE_DIR",
    "SAMPLE_PER_PAGE",
    "SOURCE",
    "WorldBankClient",
    "sample_file",
]

SOURCE = "World Bank"
DEFAULT_BASE_URL = "https://api.worldbank.org"
SAMPLE_DIR = Path(__file__).resolve().parent / "samples" / "worldbank"
#: Page size of sample mode: small, so the bundled 16 years span two pages and paging runs.
SAMPLE_PER_PAGE = 8
#: Country codes (ISO3, ISO2, aggregates, `;`-joined lists) and indicator ids: never a path.
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._;-]*")
#: Safety stop for a server whose `pages` keeps growing.
MAX_PAGES = 1000


def sample_file(path: str, params: Mapping[str, str]) -> str:
    """`<indicator>.page=<n>.json`: the country, `date` and `per_page` are not evaluated."""
    indicator = path.rstrip("/").rsplit("/", 1)[-1]
    return f"{indicator}.page={params.get('page') or '1'}.json"


class WorldBankClient:
    """Reads one indicator of one country over all pages of the v2 JSON API."""

    def __init__(self, transport: FeedTransport, *, per_page: int = 100) -> None:
        if per_page < 1:
            raise ValueError("per_page must be >= 1")
        self.transport = transport
        self.per_page = per_page

    @classmethod
    def live(
        cls,
        base_url: str = DEFAULT_BASE_URL,
        *,
        policy: HttpPolicy | None = None,
        per_page: int = 100,
        verify: bool | str = True,
    ) -> WorldBankClient:
        return cls(
            HttpFeedTransport(SOURCE, base_url, policy=policy, verify=verify), per_page=per_page
        )

    @classmethod
    def sample(cls, directory: Path | str | None = None) -> WorldBankClient:
        """Answers from bundled pages (see samples/worldbank/README.md)."""
        transport = SampleFeedTransport(SOURCE, directory or SAMPLE_DIR, sample_file)
        return cls(transport, per_page=SAMPLE_PER_PAGE)

    def __repr__(self) -> str:
        return f"WorldBankClient({self.transport!r}, per_page={self.per_page})"

    def __enter__(self) -> WorldBankClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    def indicator(
        self,
        country: str = "IND",
        indicator: str = CPI_INFLATION,
        date_range: str | None = "2010:2026",
    ) -> list[dict[str, Any]]:
        """Every row of `indicator` for `country` (ISO3 or ISO2), all pages, as sent."""
        for name, value in (("country", country), ("indicator", indicator)):
            if not _CODE.fullmatch(value or ""):
                raise ValueError(f"{name} {value!r} is not a World Bank code")
        path = f"/v2/country/{country}/indicator/{indicator}"
        rows: list[dict[str, Any]] = []
        page, pages, total = 1, 1, 0
        while page <= pages:
            if page > MAX_PAGES:
                raise InvalidPayload(
                    failure_message(SOURCE, path, reason=f"more than {MAX_PAGES} pages")
                )
            params = {"format": "json", "per_page": str(self.per_page), "page": str(page)}
            if date_range:
                params["date"] = date_range
            meta, page_rows = _split_page(path, page, self.transport.get_json(path, params))
            if page_rows is None:
                if meta["total"] == 0 and page == 1:
                    return []
                raise InvalidPayload(
                    failure_message(
                        SOURCE,
                        path,
                        reason=f"page {page} has no rows although total is {meta['total']}",
                    )
                )
            rows += page_rows
            pages, total = meta["pages"], meta["total"]
            page += 1
        if len(rows) != total:
            raise InvalidPayload(
                failure_message(
                    SOURCE,
                    path,
                    reason=f"got {len(rows)} rows over {pages} page(s) but total says {total}",
                )
            )
        return rows


def _split_page(
    path: str, page: int, payload: Any
) -> tuple[dict[str, int], list[dict[str, Any]] | None]:
    """(meta with int page/pages/total, rows or None) of one answer, or the API's error."""
    if (
        isinstance(payload, list)
        and len(payload) == 1
        and isinstance(payload[0], Mapping)
        and "message" in payload[0]
    ):
        raise SourceUnavailable(
            failure_message(
                SOURCE,
                path,
                reason=f"API error (sent with HTTP 200): {_api_messages(payload[0]['message'])}",
            ),
            status=400,
        )
    if not (isinstance(payload, list) and len(payload) == 2 and isinstance(payload[0], Mapping)):
        raise InvalidPayload(
            failure_message(SOURCE, path, reason=f"expected [meta, rows], got {_shape(payload)}")
        )
    raw_meta, rows = payload
    meta: dict[str, int] = {}
    for key in ("page", "pages", "total"):
        value = raw_meta.get(key)
        try:
            meta[key] = int(str(value))
        except ValueError:
            raise InvalidPayload(
                failure_message(SOURCE, path, reason=f"meta.{key} is {value!r}, not a number")
            ) from None
    if rows is None:
        return meta, None
    if meta["page"] != page:
        raise InvalidPayload(
            failure_message(
                SOURCE,
                path,
                reason=f"asked for page {page}, got page {meta['page']} (paging ignored?)",
            )
        )
    if not isinstance(rows, list) or not all(isinstance(row, Mapping) for row in rows):
        raise InvalidPayload(
            failure_message(SOURCE, path, reason=f"rows are {_shape(rows)}, not a list of objects")
        )
    return meta, [dict(row) for row in rows]


def _api_messages(messages: Any) -> str:
    items = messages if isinstance(messages, list) else [messages]
    parts = []
    for item in items:
        if isinstance(item, Mapping):
            said = " ".join(
                str(item[k]).strip() for k in ("id", "key") if item.get(k) not in (None, "")
            )
            value = str(item.get("value") or "").strip()
            parts.append(f"{said}: {value}" if said and value else said or value)
        else:
            parts.append(str(item))
    text = "; ".join(p for p in parts if p) or "no message text"
    return text if len(text) <= 300 else text[:299] + "…"


def _shape(value: Any) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, Mapping):
        return f"an object with keys {', '.join(sorted(map(str, value)))[:80] or 'none'}"
    return "null" if value is None else f"a {type(value).__name__}"
