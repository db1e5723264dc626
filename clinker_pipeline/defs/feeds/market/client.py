"""Cement market price feed: an OGD (data.gov.in style) `records` API or a CSV file, all pages.

There is no public cement price API, so the feed is whatever URL is configured
(MARKET_DATA_URL): an OGD resource (`https://api.data.gov.in/resource/<id>` or a mirror speaking
the same envelope) or a CSV export. Traps handled here:

* OGD pages with `offset`/`limit`, and a server may cap `limit` below what was asked (the shared
  sample key returns ~10 records): the next offset advances by the records actually received,
  never by the limit asked, or records would be skipped silently.
* `total`/`count` are numbers but `limit`/`offset` echo back as strings: both are accepted. An
  echoed offset other than the one asked means the server ignored paging (the same page would be
  read forever, or counted twice): that is an InvalidPayload, not more pages.
* Errors may arrive as HTTP 200 with `"status": "error"`: that is SourceUnavailable with the
  server's message. A 2xx body without a `records` list is InvalidPayload.
* The API key travels as the query parameter `api-key`, a secret of this client's transport: it
  is masked in every message and log record.
* CSV: one GET, a header row required. A body with no header is InvalidPayload; a header-only
  file is a valid feed with zero records (a new feed not yet filled), logged as a warning. A UTF-8
  byte-order mark (Excel's "CSV UTF-8") is removed so the first field id still matches. A row with
  more or fewer cells than the header is returned flagged (`MALFORMED_KEY`) for quarantine: its
  cells may be shifted by an unquoted "3,650".

Records come back raw (dicts as sent, CSV cells as strings); `parse.parse_prices`
makes the table. Sample mode serves bundled files through the same client, paging included.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from clinker_pipeline.defs.feeds.market.parse import MALFORMED_KEY
from clinker_pipeline.errors import InvalidPayload, SourceUnavailable
from clinker_pipeline.lib.feed_transport import (
    FeedTransport,
    HttpFeedTransport,
    SampleFeedTransport,
)
from clinker_pipeline.lib.http import HttpPolicy, failure_message

log = logging.getLogger(__name__)

SOURCE = "Market prices"
OGD_JSON = "ogd-json"
CSV = "csv"
FORMATS = (OGD_JSON, CSV)
API_KEY_PARAM = "api-key"

SAMPLE_DIR = Path(__file__).resolve().parent / "samples"
#: The bundled sample poses as this OGD resource; the resolver ignores the id.
SAMPLE_RESOURCE_PATH = "/resource/3f0c5e2a-7b41-4c8e-9d26-1a5b8e0c7f93"
SAMPLE_CSV = "cement_prices.csv"
SAMPLE_PAGE_LIMIT = 200
#: Safety stop for a server that keeps answering with records (500 per page: 5 million records).
MAX_PAGES = 10_000


def sample_file(path: str, params: Mapping[str, str]) -> str:
    """The bundled file answering GET path?params: `cement_prices.offset=<offset>.json` per OGD
    page, or the file named by a path ending in `.csv`."""
    if path.lower().endswith(".csv"):
        return Path(path).name
    return f"cement_prices.offset={params.get('offset', '0')}.json"


@dataclass
class MarketFetch:
    """Everything one fetch read: the raw records of all pages, and what the feed said of them."""

    records: list[dict]
    format: str
    total: int | None
    pages: int
    title: str | None

    @property
    def first_row(self) -> int:
        """The `first_row` for parse_prices: CSV row numbers then match file lines."""
        return 2 if self.format == CSV else 1


class MarketPriceClient:
    """Reads the configured price feed, all pages, raw records out.

    `path` is the resource below the transport's base URL; `fmt` "auto" reads CSV when the path
    ends in `.csv`, else OGD JSON. `params` are fixed query parameters sent on every request
    (e.g. `filters[state]` of an OGD resource); paging parameters are the client's own.
    """

    def __init__(
        self,
        transport: FeedTransport,
        path: str = "",
        *,
        fmt: str = "auto",
        page_limit: int = 500,
        params: Mapping[str, str] | None = None,
    ) -> None:
        if fmt == "auto":
            fmt = CSV if path.lower().rstrip("/").endswith(".csv") else OGD_JSON
        if fmt not in FORMATS:
            raise ValueError(f"{SOURCE}: format must be 'auto', 'ogd-json' or 'csv', not {fmt!r}")
        if page_limit < 1:
            raise ValueError(f"{SOURCE}: page_limit must be >= 1")
        self.transport = transport
        self.path = path
        self.format = fmt
        self.page_limit = page_limit
        self.params = dict(params or {})

    def __repr__(self) -> str:
        return f"MarketPriceClient({self.transport!r}, {self.path!r}, fmt={self.format!r})"

    @classmethod
    def live(
        cls,
        url: str,
        *,
        api_key: str = "",
        fmt: str = "auto",
        policy: HttpPolicy | None = None,
        page_limit: int = 500,
        verify: bool | str = True,
    ) -> MarketPriceClient:
        """A client for the whole resource URL (`https://api.data.gov.in/resource/<id>`,
        `https://mirror/prices.csv`).

        The key goes in `api_key`, never in the URL: a URL carrying `api-key` is refused, since
        configuration is shown in the UI and logs. Other query parameters of the URL (OGD
        `filters[...]`, `fields`; `format=csv` for a CSV export) are sent on every request; on
        OGD JSON pages the client's own `format`, `offset` and `limit` replace the URL's.
        """
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{SOURCE}: the feed URL must be http(s)://host/path")
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        if any(name.lower() in (API_KEY_PARAM, "api_key", "apikey") for name in params):
            raise ValueError(f"{SOURCE}: put the API key in the API key setting, not in the URL")
        transport = HttpFeedTransport(
            SOURCE,
            f"{parts.scheme}://{parts.netloc}",
            secret_params={API_KEY_PARAM: api_key} if api_key else None,
            policy=policy,
            verify=verify,
        )
        return cls(transport, parts.path, fmt=fmt, page_limit=page_limit, params=params)

    @classmethod
    def sample(
        cls, directory: Path | str | None = None, *, fmt: str = OGD_JSON
    ) -> MarketPriceClient:
        """The bundled sample (two OGD pages of 200, or the same records as CSV)."""
        transport = SampleFeedTransport(SOURCE, directory or SAMPLE_DIR, sample_file)
        path = SAMPLE_CSV if fmt == CSV else SAMPLE_RESOURCE_PATH
        return cls(transport, path, fmt=fmt, page_limit=SAMPLE_PAGE_LIMIT)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> MarketPriceClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def fetch(self) -> MarketFetch:
        """All records of the feed.

        A failure on any page raises SourceUnavailable / InvalidPayload instead of returning the
        pages read so far: a shorter price list would pass for a complete one.
        """
        if self.format == CSV:
            return self._fetch_csv()
        return self._fetch_ogd()

    # ---- OGD JSON --------------------------------------------------------------------------

    def _fetch_ogd(self) -> MarketFetch:
        records: list[dict] = []
        offset, pages = 0, 0
        total: int | None = None
        title: str | None = None
        while True:
            if pages >= MAX_PAGES:
                raise InvalidPayload(
                    self._message(f"still more records after {MAX_PAGES} pages; refusing to loop")
                )
            params = {
                **self.params,
                "format": "json",
                "offset": str(offset),
                "limit": str(self.page_limit),
            }
            body = self.transport.get_json(self.path, params)
            pages += 1
            page, page_total = self._page(body, offset)
            if title is None and isinstance(body.get("title"), str):
                title = body["title"]
            if page_total is not None:
                if total is not None and page_total != total:
                    log.warning(
                        "%s: total changed from %d to %d while paging (feed updated?)",
                        SOURCE,
                        total,
                        page_total,
                    )
                total = page_total
            records.extend(page)
            offset += len(page)
            if not page:
                break
            if total is not None and offset >= total:
                break
        if total is not None and len(records) < total:
            log.warning(
                "%s: the feed reports %d records but stopped answering after %d",
                SOURCE,
                total,
                len(records),
            )
        log.info("%s: %d records in %d page(s)", SOURCE, len(records), pages)
        return MarketFetch(records, OGD_JSON, total, pages, title)

    def _page(self, body: Any, offset: int) -> tuple[list[dict], int | None]:
        """The records of one OGD answer and its `total`, after checking it is one."""
        if not isinstance(body, Mapping):
            raise InvalidPayload(
                self._message(f"expected an OGD JSON object, got {type(body).__name__}")
            )
        status = body.get("status")
        if isinstance(status, str) and status.strip().lower() == "error":
            said = self.transport.scrub(
                str(body.get("message") or body.get("error") or "no message")
            )
            raise SourceUnavailable(self._message(f"the API answered status 'error': {said}"))
        records = body.get("records")
        if not isinstance(records, list):
            keys = ", ".join(sorted(map(str, body))[:8]) or "none"
            raise InvalidPayload(
                self._message(f"OGD answer without a 'records' list (keys: {keys})")
            )
        bad = next((r for r in records if not isinstance(r, Mapping)), None)
        if bad is not None:
            raise InvalidPayload(
                self._message(f"a record at offset {offset} is {type(bad).__name__}, not an object")
            )
        echoed = _integer(body.get("offset"))
        if "offset" in body and echoed is not None and echoed != offset:
            raise InvalidPayload(
                self._message(
                    f"asked for offset {offset} but the server answered offset {echoed}: "
                    "it ignores paging"
                )
            )
        total = _integer(body.get("total"))
        if "total" in body and total is None:
            raise InvalidPayload(self._message(f"'total' is not a number: {body['total']!r:.40}"))
        return [dict(r) for r in records], total

    # ---- CSV -------------------------------------------------------------------------------

    def _fetch_csv(self) -> MarketFetch:
        text = self.transport.get_text(self.path, self.params or None)
        text = text.removeprefix("\ufeff")
        if not text.strip():
            raise InvalidPayload(self._message("the CSV file is empty: a header row is required"))
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next(reader)
            rows = list(reader)
        except csv.Error as exc:
            raise InvalidPayload(self._message(f"unreadable CSV: {exc}")) from None
        names = [name.strip() for name in header]
        if not any(names):
            raise InvalidPayload(self._message("the CSV header row is blank"))
        duplicated = sorted({n for n in names if n and names.count(n) > 1})
        if duplicated:
            raise InvalidPayload(
                self._message(f"the CSV header repeats column(s) {', '.join(duplicated)}")
            )
        records: list[dict] = []
        for line, cells in enumerate(rows, start=2):
            if not any(cell.strip() for cell in cells):
                continue  # blank line
            record = {name: cell for name, cell in zip(names, cells, strict=False) if name}
            if len(cells) != len(names):
                record[MALFORMED_KEY] = (
                    f"line {line} has {len(cells)} cells, the header has {len(names)}"
                )
            records.append(record)
        if not records:
            log.warning("%s: the CSV file has a header but no rows", SOURCE)
        log.info("%s: %d CSV rows", SOURCE, len(records))
        return MarketFetch(records, CSV, len(records), 1, None)

    def _message(self, reason: str) -> str:
        return failure_message(SOURCE, self.path or "/", reason=reason)


def _integer(value: Any) -> int | None:
    """An OGD count that may be a number or a numeric string ("200")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None
