"""SAP S/4HANA and SAP IBP read client over OData v2 (plants, clinker stock, demand forecast).

Reads only: no CSRF token is needed. The client owns the OData conventions that cause silent
data loss when missed (server-driven paging through `__next`, `$top/$skip` windows, a stable
`$orderby`, `sap-client` on every request); the transport only moves bytes. Two transports exist:
`HttpTransport` (HTTP Basic over the resilient JSON layer) and `SampleTransport` (bundled files in
the exact wire format), so sample mode exercises the same paging and parsing code as production.

Records come back as `ODataRecord` dicts typed as parsed (Edm.Decimal to Decimal, `/Date()/` to
aware UTC datetimes); mapping them onto the planner's tables happens elsewhere. A record whose key
field is absent or null is returned with that field set to None and named in `missing_keys` (so is
an empty Plant or Material, which SAP never sends for a real row); the caller quarantines it, since
a silently shorter list would look like less stock.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl, quote, urljoin, urlsplit

from requests.auth import HTTPBasicAuth

from clinker_pipeline.errors import InvalidPayload, SourceUnavailable
from clinker_pipeline.lib.http import HttpPolicy, JsonHttpSession, failure_message
from clinker_pipeline.lib.odata import (
    ODataRecord,
    convert_values,
    gateway_error,
    odata_datetime,
    odata_string,
    parse_page,
)

log = logging.getLogger(__name__)

SOURCE = "SAP"
SAP_ODATA_ROOT = "/sap/opu/odata/sap"
IBP_PLANNING_ROOT = "/sap/opu/odata/IBP/PLANNING_DATA_API_SRV"
MAX_PAGE_SIZE = 5000
#: Safety stop for a server that keeps sending fresh `__next` links (5000 rows each: 50M rows).
MAX_PAGES = 10_000

PLANT_KEYS: tuple[str, ...] = ("Plant",)
STOCK_KEYS: tuple[str, ...] = (
    "Material",
    "Plant",
    "StorageLocation",
    "Batch",
    "Supplier",
    "Customer",
    "WBSElementInternalID",
    "SDDocument",
    "SDDocumentItem",
    "InventorySpecialStockType",
    "InventoryStockType",
)
STOCK_QUANTITY = "MatlWrhsStkQtyInMatlBaseUnit"

#: Key fields per entity set (for `$orderby` and completeness) and Edm.Decimal fields (which
#: cannot be told from strings on the wire). Empty-string keys are legal in SAP (e.g. Batch "").
ENTITY_KEYS: dict[str, tuple[str, ...]] = {
    "A_Plant": PLANT_KEYS,
    "A_MatlStkInAcctMod": STOCK_KEYS,
    "A_ProductPlant": ("Product", "Plant"),
}
ENTITY_DECIMALS: dict[str, tuple[str, ...]] = {"A_MatlStkInAcctMod": (STOCK_QUANTITY,)}
#: Keys that must also be non-empty: a stock row without a plant cannot be placed in the network.
ENTITY_NON_BLANK: dict[str, tuple[str, ...]] = {
    "A_Plant": ("Plant",),
    "A_MatlStkInAcctMod": ("Material", "Plant", "InventoryStockType"),
    "A_ProductPlant": ("Product", "Plant"),
}
IBP_NON_BLANK: tuple[str, ...] = ("PRDID", "LOCID")

BUNDLED_SAMPLES = Path(__file__).resolve().parent / "samples"


@runtime_checkable
class Transport(Protocol):
    """Moves one GET: an absolute path plus an encoded query in, the decoded JSON out."""

    def get_json(self, path: str, query: str) -> Any: ...


class HttpTransport:
    """SAP Gateway over HTTPS with Basic auth, JSON asked for, and the resilient HTTP layer.

    Only the path and query of a request are taken from the caller; scheme, host and port come
    from `base_url`, so a `__next` link naming another host never receives the credentials.
    """

    def __init__(
        self,
        base_url: str,
        username: str | None,
        password: str | None,
        *,
        verify: bool | str = True,
        timeout: float | tuple[float, float] = (10.0, 60.0),
        deadline_s: float = 180.0,
        policy: HttpPolicy | None = None,
        source: str = SOURCE,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("base_url must be http(s)://host[:port][/prefix]")
        if parts.username or parts.password:
            raise ValueError("put credentials in username/password, not in base_url")
        self.origin = f"{parts.scheme}://{parts.netloc}"
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        self.policy = replace(
            policy or HttpPolicy(),
            connect_timeout=connect,
            read_timeout=read,
            deadline_s=deadline_s,
        )
        secrets: list[str] = []
        auth = None
        if username is not None and password is not None:
            auth = HTTPBasicAuth(username, password)
            token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
            secrets = [password, token]
        self.http = JsonHttpSession(
            source,
            policy=self.policy,
            auth=auth,
            verify=verify,
            redact=secrets,
            error_text=gateway_error,
        )

    def __repr__(self) -> str:
        return f"HttpTransport({self.origin!r})"

    def get_json(self, path: str, query: str) -> Any:
        url = f"{self.origin}{path}" + (f"?{query}" if query else "")
        return self.http.get_json(url, parse_float=Decimal)

    def close(self) -> None:
        self.http.close()


class SampleTransport:
    """Serves bundled OData answers from files, for sample mode and offline demos.

    Lookup rule (see samples/README.md): the last two path segments name the file,
    `<directory>/<service>/<entity set>.json` for the first page; a request carrying
    `$skiptoken=T` reads `<entity set>.skiptoken=T.json` and one with `$skip=N` (N > 0) reads
    `<entity set>.skip=N.json`. `$filter`, `$select` and `$orderby` are not evaluated: each file is
    the recorded answer to the request the client makes for the sample scenario.
    """

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory is not None else BUNDLED_SAMPLES
        self.served: list[Path] = []

    def __repr__(self) -> str:
        return f"SampleTransport({str(self.directory)!r})"

    def file_for(self, path: str, query: str) -> Path:
        """The sample file that answers GET `path?query`."""
        segments = [s for s in path.split("/") if s]
        if len(segments) < 2:
            raise SourceUnavailable(failure_message(f"{SOURCE} sample", path, reason="bad path"))
        service, entity = segments[-2], segments[-1]
        params = dict(parse_qsl(query, keep_blank_values=True))
        name = entity
        if params.get("$skiptoken"):
            name += f".skiptoken={quote(params['$skiptoken'], safe='')}"
        elif params.get("$skip", "0") not in ("", "0"):
            name += f".skip={quote(params['$skip'], safe='')}"
        return self.directory / service / f"{name}.json"

    def get_json(self, path: str, query: str) -> Any:
        file = self.file_for(path, query)
        if not file.is_file():
            raise SourceUnavailable(
                failure_message(
                    f"{SOURCE} sample",
                    path,
                    reason=f"no sample file {file.relative_to(self.directory)} in {self.directory}",
                )
            )
        try:
            payload = json.loads(file.read_text(encoding="utf-8"), parse_float=Decimal)
        except (OSError, ValueError) as exc:
            raise InvalidPayload(
                failure_message(f"{SOURCE} sample", path, reason=f"{file.name}: {exc}")
            ) from None
        self.served.append(file)
        return payload


class SapODataClient:
    """Reads S/4HANA API_* services and IBP planning data, all pages, typed.

    `client` is the sap-client number, sent on every request including `__next` links that lack
    it (without it the system default client is read, silently). `base_url` is
    `https://host:port` plus an optional path prefix when an API proxy sits in front; the prefix is
    kept on `__next` links that omit it.
    """

    def __init__(
        self,
        base_url: str,
        username: str | None,
        password: str | None,
        client: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
        verify: bool | str = True,
        timeout: float | tuple[float, float] = (10.0, 60.0),
        deadline_s: float = 180.0,
        transport: Transport | None = None,
        *,
        http_policy: HttpPolicy | None = None,
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE} (SAP caps pages at 5000)")
        self.base_url = base_url
        self.client = str(client) if client not in (None, "") else None
        self.page_size = page_size
        self.prefix = urlsplit(base_url).path.rstrip("/") if base_url else ""
        self.transport: Transport = transport or HttpTransport(
            base_url,
            username,
            password,
            verify=verify,
            timeout=timeout,
            deadline_s=deadline_s,
            policy=http_policy,
        )

    @classmethod
    def sample(
        cls, directory: Path | str | None = None, page_size: int = MAX_PAGE_SIZE
    ) -> SapODataClient:
        """A client that answers from the bundled sample files (no network, no credentials)."""
        return cls(
            "", None, None, client=None, page_size=page_size, transport=SampleTransport(directory)
        )

    def __repr__(self) -> str:
        return f"SapODataClient({self.base_url!r}, client={self.client!r}, transport={self.transport!r})"

    def close(self) -> None:
        close = getattr(self.transport, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> SapODataClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- public reads -------------------------------------------------------------------------

    def get_all(
        self,
        service: str,
        entity_set: str,
        *,
        select: Sequence[str] | None = None,
        filter: str | None = None,
        orderby: Sequence[str] | None = None,
        keys: Sequence[str] | None = None,
        decimal_fields: Sequence[str] | None = None,
    ) -> list[ODataRecord]:
        """Every entity of `service/entity_set` matching `filter`, across all pages.

        `keys` (default: known keys of the entity set) drive the stable `$orderby` that `$skip`
        paging needs and the missing-key flags; `decimal_fields` (default: known Edm.Decimal
        fields) are parsed to Decimal.
        """
        key_fields = tuple(keys) if keys is not None else ENTITY_KEYS.get(entity_set, ())
        return self._read(
            path=f"{self.prefix}{SAP_ODATA_ROOT}/{service}/{entity_set}",
            label=f"{service}/{entity_set}",
            select=select,
            filter=filter,
            orderby=orderby if orderby is not None else key_fields,
            keys=key_fields,
            non_blank=ENTITY_NON_BLANK.get(entity_set, ()) if keys is None else (),
            decimal_fields=(
                tuple(decimal_fields)
                if decimal_fields is not None
                else ENTITY_DECIMALS.get(entity_set, ())
            ),
        )

    def plants(self) -> list[ODataRecord]:
        """Plant master (`API_PLANT_SRV/A_Plant`): Plant, PlantName, CompanyCode, CompanyCodeName."""
        return self.get_all("API_PLANT_SRV", "A_Plant")

    def material_stock(
        self, material: str, plants: Sequence[str] | None = None
    ) -> list[ODataRecord]:
        """Stock of one material per plant, storage location, batch and stock type.

        Stock types are returned as stored (01 unrestricted, 02 quality inspection, 07 blocked);
        which ones count as usable is the mapping's decision. An empty `plants` list means no plant,
        so nothing is read.
        """
        if plants is not None and not plants:
            return []
        clauses = [f"Material eq {odata_string(material)}"]
        if plants:
            clauses.append(_any_of("Plant", plants))
        return self.get_all(
            "API_MATERIAL_STOCK_SRV", "A_MatlStkInAcctMod", filter=" and ".join(clauses)
        )

    def ibp_planning_data(
        self,
        planning_area: str,
        select: Sequence[str],
        uom: str | None,
        key_figure: str,
        period_field: str,
        start: datetime | None,
        end: datetime | None,
    ) -> list[ODataRecord]:
        """Key-figure values of an IBP planning area at the aggregation level of `select`.

        `select` is mandatory in IBP and sets the aggregation level (dimensions + one time field +
        key figures); `key_figure` and `period_field` are added to it when absent. `uom` becomes the
        `UOMTOID` filter that quantity key figures require (None leaves it out, for value key
        figures, and IBP then answers 400 for quantity ones). The window is `start <= period <
        end`, each bound optional, naive datetimes taken as UTC.
        """
        if not select:
            raise ValueError("IBP needs $select: dimensions, a time field and key figures")
        fields = list(dict.fromkeys([*select, period_field, key_figure]))
        dimensions = [f for f in fields if f != key_figure]
        clauses = []
        if uom:
            clauses.append(f"UOMTOID eq {odata_string(uom)}")
        if start is not None:
            clauses.append(f"{period_field} ge {odata_datetime(start)}")
        if end is not None:
            clauses.append(f"{period_field} lt {odata_datetime(end)}")
        return self._read(
            path=f"{self.prefix}{IBP_PLANNING_ROOT}/{planning_area}",
            label=f"PLANNING_DATA_API_SRV/{planning_area}",
            select=fields,
            filter=" and ".join(clauses) or None,
            orderby=dimensions,
            keys=dimensions,
            non_blank=tuple(f for f in (*IBP_NON_BLANK, period_field) if f in dimensions),
            decimal_fields=(key_figure,),
        )

    # ---- paging -------------------------------------------------------------------------------

    def _read(
        self,
        *,
        path: str,
        label: str,
        select: Sequence[str] | None,
        filter: str | None,
        orderby: Sequence[str],
        keys: Sequence[str],
        non_blank: Sequence[str],
        decimal_fields: Sequence[str],
    ) -> list[ODataRecord]:
        """Read `$top` windows, following `__next` inside each, until a window comes back short.

        `__next` (server-driven paging) is always followed when present; a window that returned a
        full `$top` without one means the server honoured `$top`, so the next window starts at
        `$skip += page_size`. `__count` ends the read early when it is reached.
        """
        rows: list[dict[str, Any]] = []
        seen: set[tuple[str, str]] = set()
        total: int | None = None
        pages = 0
        skip = 0
        while True:
            request = (path, self._query(select, filter, orderby, skip))
            window = 0
            while request is not None:
                if request in seen:
                    raise InvalidPayload(
                        failure_message(
                            SOURCE,
                            request[0],
                            reason=f"paging loop: the same __next link came back after "
                            f"{len(rows)} rows",
                        )
                    )
                seen.add(request)
                pages += 1
                if pages > MAX_PAGES:
                    raise InvalidPayload(
                        failure_message(SOURCE, path, reason=f"more than {MAX_PAGES} pages")
                    )
                payload = self.transport.get_json(*request)
                try:
                    results, next_url, count = parse_page(payload)
                except InvalidPayload as exc:
                    raise InvalidPayload(
                        failure_message(SOURCE, request[0], reason=str(exc))
                    ) from None
                rows.extend(results)
                window += len(results)
                if count is not None:
                    total = count
                request = self._follow(next_url, request) if next_url else None
            if window < self.page_size or (total is not None and len(rows) >= total):
                break
            skip += self.page_size
        if total is not None and total != len(rows):
            log.warning(
                "%s %s: server counted %d rows but %d were read (data changed while paging?)",
                SOURCE,
                label,
                total,
                len(rows),
            )
        records = [self._record(row, keys, non_blank, decimal_fields) for row in rows]
        flagged = [r for r in records if not r.ok]
        if flagged:
            missing = sorted({k for r in flagged for k in r.missing_keys})
            invalid = sorted({k for r in flagged for k in r.invalid_fields})
            log.warning(
                "%s %s: %d of %d records flagged for quarantine (missing keys %s, invalid %s)",
                SOURCE,
                label,
                len(flagged),
                len(records),
                missing or "none",
                invalid or "none",
            )
        log.info("%s %s: %d records in %d pages", SOURCE, label, len(records), pages)
        return records

    def _query(
        self,
        select: Sequence[str] | None,
        filter: str | None,
        orderby: Sequence[str],
        skip: int,
    ) -> str:
        params: list[tuple[str, str]] = []
        if select:
            params.append(("$select", ",".join(select)))
        if filter:
            params.append(("$filter", filter))
        if orderby:
            params.append(("$orderby", ",".join(orderby)))
        params.append(("$top", str(self.page_size)))
        if skip:
            params.append(("$skip", str(skip)))
        params.append(("$inlinecount", "allpages"))
        params.append(("$format", "json"))
        if self.client:
            params.append(("sap-client", self.client))
        return "&".join(f"{quote(k, safe='$')}={quote(v, safe=_QUERY_SAFE)}" for k, v in params)

    def _follow(self, next_url: str, current: tuple[str, str]) -> tuple[str, str]:
        """Path and query of a `__next` link: its host is ignored, `sap-client` added if missing."""
        current_url = "http://gateway" + current[0] + ("?" + current[1] if current[1] else "")
        parts = urlsplit(urljoin(current_url, next_url))
        path = parts.path
        if self.prefix and not path.startswith(self.prefix + "/"):
            path = self.prefix + path
        query = parts.query
        names = {name for name, _ in parse_qsl(query, keep_blank_values=True)}
        extra = []
        if "$format" not in names:
            extra.append("$format=json")
        if self.client and "sap-client" not in names:
            extra.append(f"sap-client={quote(self.client, safe='')}")
        if extra:
            query = "&".join([query, *extra]) if query else "&".join(extra)
        return path, query

    @staticmethod
    def _record(
        row: Mapping[str, Any],
        keys: Iterable[str],
        non_blank: Iterable[str],
        decimal_fields: Iterable[str],
    ) -> ODataRecord:
        typed, invalid = convert_values(row, decimal_fields)
        blank_not_ok = set(non_blank)
        missing = []
        for key in keys:
            value = typed.setdefault(key, None)
            if value is None or (key in blank_not_ok and value == ""):
                missing.append(key)
        return ODataRecord(typed, missing_keys=missing, invalid_fields=invalid)


#: Characters left readable in query values; spaces become %20 (some proxies mangle "+").
_QUERY_SAFE = "'(),:$*/"


def _any_of(field: str, values: Iterable[str]) -> str:
    alternatives = [f"{field} eq {odata_string(v)}" for v in dict.fromkeys(values)]
    return alternatives[0] if len(alternatives) == 1 else "(" + " or ".join(alternatives) + ")"
