"""OData v2 "verbose JSON" parsing, kept free of I/O.

SAP Gateway (S/4HANA APIs and SAP IBP) wraps every answer in `{"d": ...}`, sends decimals as
strings and dates as `/Date(ms)/`, and pages silently through `d.__next`. Keeping these rules in
pure functions lets the live HTTP transport and the bundled sample files go through exactly the
same code, and lets the rules be tested without a server.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from clinker_pipeline.errors import InvalidPayload

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DATE_RE = re.compile(r"^/Date\((-?\d+)(?:([+-])(\d{4}))?\)/$")
#: The widest UTC offsets in use (UTC-12:00, UTC+14:00), in minutes.
_MAX_OFFSET_WEST_MIN = 12 * 60
_MAX_OFFSET_EAST_MIN = 14 * 60
_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_H1_RE = re.compile(r"<h1[^>]*>(.*?)</h1>", re.IGNORECASE | re.DOTALL)
_XML_CODE_RE = re.compile(r"<(?:\w+:)?code>(.*?)</(?:\w+:)?code>", re.DOTALL)
_XML_MESSAGE_RE = re.compile(r"<(?:\w+:)?message[^>]*>(.*?)</(?:\w+:)?message>", re.DOTALL)
_TAG_RE = re.compile(r"<(script|style)[^>]*>.*?</\1>|<[^>]+>", re.IGNORECASE | re.DOTALL)
_SPACE_RE = re.compile(r"\s+")

#: Longest server text carried into an error message: enough to act on, short enough to log.
MAX_ERROR_TEXT = 300


class ODataRecord(dict):
    """One entity as a plain dict, plus what is wrong with it.

    Records with a missing key field or an unparsable typed value are returned, never dropped:
    a silently shorter stock list looks exactly like a smaller stock. Missing key fields are present
    with the value None (so every record has the same columns) and named in `missing_keys`; a value
    that could not be converted keeps its raw text and is named in `invalid_fields`. The caller
    decides whether to quarantine (see `ok`).
    """

    missing_keys: tuple[str, ...]
    invalid_fields: tuple[str, ...]

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        *,
        missing_keys: Iterable[str] = (),
        invalid_fields: Iterable[str] = (),
    ) -> None:
        super().__init__(data or {})
        self.missing_keys = tuple(missing_keys)
        self.invalid_fields = tuple(invalid_fields)

    @property
    def ok(self) -> bool:
        """True when every key field is present and every typed value parsed."""
        return not self.missing_keys and not self.invalid_fields


def parse_page(payload: Any) -> tuple[list[dict[str, Any]], str | None, int | None]:
    """Split one OData v2 answer into its entities, the server's next link and the total count.

    Accepts a collection page (`d.results`), a single entity (`d` itself) and the OData v1 form
    (`d` as a list). `__metadata` and unexpanded navigation stubs (`__deferred`) are dropped because
    they carry server URLs, not data; expanded navigations are kept, cleaned the same way.
    """
    if not isinstance(payload, Mapping) or "d" not in payload:
        raise InvalidPayload(f"OData answer has no 'd' envelope (got {_shape(payload)})")
    body = payload["d"]
    next_url: str | None = None
    count: int | None = None
    if isinstance(body, list):
        entities = body
    elif isinstance(body, Mapping):
        if "results" in body and isinstance(body["results"], list):
            entities = body["results"]
            next_url = _next_link(body.get("__next"))
            count = _count(body.get("__count"))
        else:
            entities = [body]
    else:
        raise InvalidPayload(f"OData 'd' is {_shape(body)}, expected an object or a list")
    results = []
    for index, entity in enumerate(entities):
        if not isinstance(entity, Mapping):
            raise InvalidPayload(f"OData result #{index} is {_shape(entity)}, expected an object")
        results.append(clean_entity(entity))
    return results, next_url, count


def clean_entity(entity: Mapping[str, Any]) -> dict[str, Any]:
    """Drop `__metadata` and `__deferred` stubs, recursing into expanded navigations."""
    out: dict[str, Any] = {}
    for name, value in entity.items():
        if name == "__metadata":
            continue
        if isinstance(value, Mapping):
            if "__deferred" in value:
                continue
            if isinstance(value.get("results"), list):
                out[name] = [clean_entity(v) for v in value["results"] if isinstance(v, Mapping)]
            else:
                out[name] = clean_entity(value)
        else:
            out[name] = value
    return out


def edm_decimal(text: str | int | Decimal) -> Decimal:
    """Parse an Edm.Decimal exactly; SAP sends them as strings so that no digit is lost."""
    if isinstance(text, bool):
        raise ValueError(f"not an Edm.Decimal: {text!r}")
    if isinstance(text, Decimal):
        value = text
    elif isinstance(text, int):
        value = Decimal(text)
    elif isinstance(text, str):
        try:
            value = Decimal(text.strip())
        except InvalidOperation:
            raise ValueError(f"not an Edm.Decimal: {text[:40]!r}") from None
    else:
        raise ValueError(f"not an Edm.Decimal: {type(text).__name__}")
    if not value.is_finite():
        raise ValueError(f"not a finite Edm.Decimal: {text!r}")
    return value


def is_edm_datetime(value: Any) -> bool:
    """True for the `/Date(ms)/` and `/Date(ms+mmmm)/` wire forms."""
    return isinstance(value, str) and _DATE_RE.match(value) is not None


def edm_datetime(text: str) -> datetime:
    """Parse `/Date(ms)/` (Edm.DateTime) or `/Date(ms+mmmm)/` (Edm.DateTimeOffset) to aware UTC.

    The milliseconds count from the epoch in UTC in both forms. The offset of the v2 verbose JSON
    form is a count of MINUTES (`+0060` is UTC+01:00, `+0330` is UTC+05:30), as SAP's pyodata and
    other OData v2 writers send it, not hhmm: read as hhmm, `+0060` would be refused and `+0330`
    taken for 03:30. It only says which local time the value was entered in, so it is checked to be
    a real offset (UTC-12:00 to UTC+14:00) and then ignored. Timedelta arithmetic keeps the
    milliseconds exact (no float round trip).
    """
    match = _DATE_RE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"not an OData /Date()/ value: {str(text)[:40]!r}")
    millis, sign, offset = match.groups()
    if offset is not None:
        minutes = int(offset) * (-1 if sign == "-" else 1)
        if not -_MAX_OFFSET_WEST_MIN <= minutes <= _MAX_OFFSET_EAST_MIN:
            raise ValueError(
                f"offset of {minutes} minutes in OData date is no UTC offset: {text!r}"
            )
    try:
        return _EPOCH + timedelta(milliseconds=int(millis))
    except OverflowError:
        raise ValueError(f"OData date out of range: {text!r}") from None


def convert_values(
    row: Mapping[str, Any], decimal_fields: Iterable[str] = ()
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Type one cleaned entity: listed fields to Decimal, every `/Date()/` string to datetime.

    Decimals need the field list because a plant code "1100" and a quantity "1100" look alike on
    the wire; dates are recognised by their unmistakable form. Returns the typed row and the names
    of fields whose value could not be converted (kept as received).
    """
    decimals = set(decimal_fields)
    out: dict[str, Any] = {}
    invalid: list[str] = []
    for name, value in row.items():
        if value is None:
            out[name] = None
        elif name in decimals:
            try:
                out[name] = edm_decimal(value)
            except ValueError:
                out[name] = value
                invalid.append(name)
        elif is_edm_datetime(value):
            try:
                out[name] = edm_datetime(value)
            except ValueError:
                out[name] = value
                invalid.append(name)
        else:
            out[name] = value
    return out, tuple(invalid)


def gateway_error(body_text: str, content_type: str | None) -> str:
    """The text a planner needs from a Gateway error answer, whatever shape it came in.

    Gateway sends a JSON envelope (`error.code`, `error.message.value`) when JSON was asked for,
    XML otherwise, and proxies or the ICM in front send HTML pages (logon, maintenance). The result
    is one short line; the transaction id is kept because Basis needs it to find the entry in
    /IWFND/ERROR_LOG.
    """
    text = (body_text or "").strip()
    if not text:
        return ""
    ctype = (content_type or "").lower()
    if "json" in ctype or text.startswith("{"):
        message = _json_error(text)
        if message:
            return _short(message)
    if "html" in ctype or text[:200].lstrip().lower().startswith(("<!doctype html", "<html")):
        return _short(_html_text(text))
    if "xml" in ctype or text.startswith("<"):
        codes = _XML_CODE_RE.findall(text)
        messages = _XML_MESSAGE_RE.findall(text)
        if messages:
            code = html.unescape(codes[0]).strip() if codes else ""
            message = html.unescape(messages[0]).strip()
            return _short(f"{code}: {message}" if code else message)
        return _short(_html_text(text))
    return _short(text)


def odata_string(value: str) -> str:
    """A string literal for `$filter`: single quotes, embedded quotes doubled."""
    return "'" + str(value).replace("'", "''") + "'"


def odata_datetime(value: datetime) -> str:
    """A `datetime'…'` literal in UTC; naive datetimes are taken as UTC already."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return f"datetime'{value.strftime('%Y-%m-%dT%H:%M:%S')}'"


def _json_error(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return ""
    if not isinstance(data, Mapping):
        return ""
    error = data.get("error", data.get("odata.error"))
    if not isinstance(error, Mapping):
        return ""
    code = error.get("code") or ""
    message = error.get("message")
    if isinstance(message, Mapping):
        message = message.get("value")
    parts = [str(code).strip()] if code else []
    if message:
        parts.append(str(message).strip())
    line = ": ".join(parts)
    inner = error.get("innererror")
    if isinstance(inner, Mapping) and inner.get("transactionid"):
        line += f" (Gateway transaction {inner['transactionid']})"
    return line


def _html_text(text: str) -> str:
    for pattern in (_TITLE_RE, _H1_RE):
        match = pattern.search(text)
        if match:
            title = _SPACE_RE.sub(" ", html.unescape(_TAG_RE.sub(" ", match.group(1)))).strip()
            if title:
                return title
    return _SPACE_RE.sub(" ", html.unescape(_TAG_RE.sub(" ", text))).strip()


def _short(text: str) -> str:
    text = _SPACE_RE.sub(" ", text).strip()
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 1] + "…"


def _next_link(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidPayload(f"OData __next is {_shape(value)}, expected a URL string")
    return value


def _count(value: Any) -> int | None:
    if value is None:
        return None
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise InvalidPayload(f"OData __count is not an integer: {str(value)[:40]!r}") from None
    if count < 0:
        raise InvalidPayload(f"OData __count is negative: {count}")
    return count


def _shape(value: Any) -> str:
    if isinstance(value, Mapping):
        keys = ", ".join(list(map(str, value))[:5])
        return f"an object with keys [{keys}]"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return type(value).__name__
