"""Resilient JSON over HTTP, shared by every client (SAP and the external feeds).

ERP gateways, API proxies and public APIs fail in the same few ways: refused connections,
429/503 with or without Retry-After, HTML error pages, truncated bodies. A planner needs each of
them back as one of two exceptions whose message names the feed, the endpoint and what the
server said, and never a password or an API key. Retries (with exponential backoff, jitter and
Retry-After) are left to urllib3, which already does them well; this module adds what urllib3
lacks: one overall deadline per call, a client-side pace, and secret-free messages.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3 import exceptions as urllib3_exc
from urllib3.exceptions import InvalidHeader, MaxRetryError
from urllib3.util import Retry, Timeout

from clinker_pipeline.errors import InvalidPayload, SourceUnavailable
from clinker_pipeline.lib.odata import gateway_error

log = logging.getLogger(__name__)

#: Statuses worth another GET: throttling and the gateway/backend being briefly away.
RETRY_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504})

#: Shortest per-attempt timeout handed to a socket once the deadline is (almost) used up.
_MIN_TIMEOUT_S = 0.05

#: (deadline as time.monotonic, its length in s) of the call in progress. The Retry object is
#: shared by every call through an adapter, so the deadline travels with the call instead (per
#: thread / per task).
_DEADLINE: ContextVar[tuple[float, float] | None] = ContextVar(
    "clinker_http_deadline", default=None
)

#: Names whose value is a credential wherever they appear: query parameters (`?appid=...`),
#: `name=value` pairs in any text, and JSON / dict keys (`"password": "..."`). Masking by name keeps
#: a secret out of messages by construction, whatever its length or spelling.
_SENSITIVE_NAMES = (
    "api_key|apikey|api-key|x-api-key|appid|app_id|key|token|access_token|refresh_token"
    "|id_token|auth_token|x-auth-token|client_secret|secret|password|passwd|pwd|sig|signature"
    "|auth|authorization|proxy-authorization|cookie|set-cookie"
)
_SENSITIVE_PAIR_RE = re.compile(rf"(?i)((?<![\w-])(?:{_SENSITIVE_NAMES})\s*=\s*)[^&#\s'\",;]*")
_SENSITIVE_QUOTED_RE = re.compile(
    rf"(?i)([\"'])((?:{_SENSITIVE_NAMES}))\1(\s*:\s*)([\"'])(?:(?!\4).)*\4"
)
#: Header lines as printed (`Authorization: Basic dTpQ`, `X-API-Key: ...`): the scheme stays.
_AUTH_HEADER_LINE_RE = re.compile(
    r"(?i)(\b(?:proxy-)?authorization|\bx-api-key|\bapi-key|\bx-auth-token|\bcookie)(\s*:\s*)"
    r"((?:basic|bearer|digest|negotiate|token)\s+)?[^\s,;'\"]+"
)
_USERINFO_RE = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)[^/@\s]+@")
_AUTH_HEADER_RE = re.compile(r"(?i)\b(Basic|Bearer)\s+[A-Za-z0-9+/=._~-]{8,}")
#: Secrets shorter than this are not searched for in text: a 1-7 character password (or a common
#: word such as "data") would turn every "data" or "P" of unrelated messages into "***" and so show
#: itself by where the stars land. Such values are kept out of messages by construction instead
#: (only URL paths are printed; key parameters, user info and auth headers are masked by name).
MIN_SECRET_LENGTH = 8
_OBJECT_REPR_RE = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>:?\s*")
_URL_RE = re.compile(r"(?i)\bhttps?://\S+")

#: What a planner should check first, per status (the server's own text follows).
_STATUS_HINTS: dict[int, str] = {
    401: "credentials rejected: check the user and password (or the API key)",
    403: "not authorised: check the user's roles or the API key's plan",
    404: "not found: check the base URL and that the service or resource exists",
    429: "rate limited",
}

#: The secrets of the client whose call is in progress (per thread / per task), so that
#: urllib3's log records of that call are masked with them and with no other client's.
_CALL_SECRETS: ContextVar[tuple[str, ...]] = ContextVar("clinker_http_secrets", default=())
_FILTER_LOCK = threading.Lock()
_FILTERED_LOGGERS = ("urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry")


@dataclass(frozen=True)
class HttpPolicy:
    """Retry, timeout and pacing of one feed.

    Defaults suit an ERP gateway over a WAN: a slow OData read may take a minute, a whole call
    (all retries included) must end within three so a scheduled run fails visibly instead of
    hanging. `min_interval_s` paces calls made through one session (retries inside a call are
    paced by the backoff instead).
    """

    retries: int = 4
    backoff_factor: float = 0.5
    backoff_jitter: float = 0.5
    backoff_max: float = 30.0
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    deadline_s: float = 180.0
    min_interval_s: float = 0.0
    retry_statuses: frozenset[int] = RETRY_STATUSES

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError("retries must be >= 0")
        for name in ("connect_timeout", "read_timeout", "deadline_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if min(self.backoff_factor, self.backoff_jitter, self.backoff_max, self.min_interval_s) < 0:
            raise ValueError("backoff and pacing values must be >= 0")


class DeadlineExceeded(Exception):
    """The next retry would start after the call's deadline, so it is not attempted."""

    def __init__(
        self, wait: float, remaining: float, deadline_s: float, cause: Exception | None
    ) -> None:
        self.wait = wait
        self.remaining = remaining
        self.deadline_s = deadline_s
        self.cause = cause
        super().__init__(
            f"retrying in {wait:.1f} s would pass the {deadline_s:g} s deadline "
            f"({max(remaining, 0):.1f} s left)"
        )


class DeadlineRetry(Retry):
    """urllib3 Retry that never sleeps or retries past the deadline of the call in progress.

    A Retry-After (or backoff) longer than the time left makes `increment` give up at once: the
    response is then handed back (raise_on_status=False) or the connection error raised, so the
    caller fails fast with the real reason instead of sleeping into a timeout. A Retry-After
    header that cannot be parsed falls back to the backoff instead of raising.
    """

    def get_retry_after(self, response: Any) -> float | None:
        try:
            return super().get_retry_after(response)
        except InvalidHeader:
            log.warning("ignoring an unparsable Retry-After header")
            return None

    def planned_wait(self, response: Any = None) -> float:
        """Seconds `sleep` would wait before the next attempt."""
        if self.respect_retry_after_header and response is not None:
            retry_after = self.get_retry_after(response)
            if retry_after:
                return float(retry_after)
        return float(self.get_backoff_time())

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: TracebackType | None = None,
    ) -> DeadlineRetry:
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        deadline = _DEADLINE.get()
        if deadline is not None:
            remaining = deadline[0] - time.monotonic()
            wait = new.planned_wait(response)
            if wait >= remaining:
                reason = DeadlineExceeded(wait, remaining, deadline[1], error)
                log.debug("giving up retries: %s", reason)
                raise MaxRetryError(_pool, url, reason) from error  # type: ignore[arg-type]
        return new

    def sleep(self, response: Any = None) -> None:
        deadline = _DEADLINE.get()
        if deadline is None:
            super().sleep(response)
            return
        wait = min(self.planned_wait(response), deadline[0] - time.monotonic())
        if wait > 0:
            time.sleep(wait)


class DeadlineTimeout(Timeout):
    """Per-attempt connect/read timeouts, cut down to the time left before the deadline.

    urllib3 clones the Timeout for every attempt, so clipping in `clone` bounds each retry too.
    """

    def __init__(self, connect: float, read: float, deadline_at: float) -> None:
        super().__init__(connect=connect, read=read)
        self.deadline_at = deadline_at

    def clone(self) -> Timeout:
        left = max(self.deadline_at - time.monotonic(), _MIN_TIMEOUT_S)
        return Timeout(connect=min(self._connect, left), read=min(self._read, left))  # type: ignore[arg-type,type-var]


def secret_forms(values: Iterable[str | None]) -> tuple[str, ...]:
    """The spellings of a client's secrets worth searching text for, longest first.

    Each value also in its URL-encoded forms (a proxy may echo the request line); values shorter
    than MIN_SECRET_LENGTH are left out (see there).
    """
    forms: set[str] = set()
    for value in values:
        if value and len(value) >= MIN_SECRET_LENGTH:
            forms.update({value, quote(value, safe=""), quote_plus(value)})
    return tuple(sorted(forms, key=len, reverse=True))


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask credentials in foreign text (a server's error body, an exception, a logged URL).

    Structural first: URL user info, the values of key parameters and of `name=value` /
    `"name": "value"` pairs with a credential's name, and auth headers, whatever their length.
    Then the given `secrets` of one client (never a process-wide set: one feed's password must
    not rewrite another feed's messages), as whole tokens (not inside a longer word) and only
    when long enough to be a secret (see MIN_SECRET_LENGTH).
    """
    if not text:
        return text
    forms = secret_forms(secrets)
    if forms:
        alternatives = "|".join(_token_pattern(form) for form in forms)
        text = re.sub(alternatives, "***", text)
    text = _USERINFO_RE.sub(r"\1***@", text)
    text = _SENSITIVE_QUOTED_RE.sub(r"\1\2\1\3\4***\4", text)
    text = _AUTH_HEADER_LINE_RE.sub(r"\1\2\3***", text)
    text = _SENSITIVE_PAIR_RE.sub(r"\1***", text)
    return _AUTH_HEADER_RE.sub(r"\1 ***", text)


def _token_pattern(secret: str) -> str:
    """`secret` as a regex that does not match inside a longer word or number."""
    pattern = re.escape(secret)
    if secret[0].isalnum():
        pattern = r"(?<![A-Za-z0-9])" + pattern
    if secret[-1].isalnum():
        pattern += r"(?![A-Za-z0-9])"
    return pattern


def endpoint_path(url: str) -> str:
    """The path of a URL: no scheme, host, port, user info, query or fragment."""
    return urlsplit(url).path or "/"


def failure_message(
    source: str,
    url: str,
    *,
    method: str = "GET",
    status: int | None = None,
    reason: str | None = None,
    detail: str | None = None,
    redact: Iterable[str] = (),
) -> str:
    """The one place error messages are built, so none of them can carry a secret.

    Only the endpoint path is named (query values may hold API keys, the host part user info),
    then the HTTP status and reason, then what the server or the network said. The parts that
    come from outside (path, reason, detail) are scrubbed with `redact`, the secrets of this
    client only; the wording around them is ours and never holds one, so it is left alone (a
    password that happens to be "password" must not blank out the hint that mentions one).
    """
    text = f"{source}: {method} {scrub(endpoint_path(url), redact)} failed"
    if status is not None:
        text += f" with HTTP {status}" + (f" {scrub(reason, redact)}" if reason else "")
        if status in _STATUS_HINTS:
            text += f" ({_STATUS_HINTS[status]})"
    elif reason:
        text += f": {scrub(reason, redact)}"
    if detail:
        text += f" - {scrub(detail, redact)}"
    return text


def describe_exception(exc: BaseException) -> str:
    """A short, URL-free account of a transport failure ("cannot connect ([Errno 111] ...)")."""
    reason = _transport_reason(exc)
    if isinstance(reason, DeadlineExceeded):
        return f"{describe_exception(reason.cause)}; {reason}" if reason.cause else str(reason)
    kind = next(
        (label for types, label in _FAILURE_KINDS if isinstance(reason, types)),
        type(reason).__name__,
    )
    if kind == "too many redirects":
        return kind
    root = _root_cause(reason)
    if isinstance(root, OSError) and root.strerror:
        said = f"[Errno {root.errno}] {root.strerror}" if root.errno else root.strerror
    else:
        said = str(root)
    said = _URL_RE.sub("<url>", _OBJECT_REPR_RE.sub("", said)).strip()
    if len(said) > 200:
        said = said[:199] + "…"
    return f"{kind} ({said})" if said and said != kind else kind


def short_error_text(body_text: str, content_type: str | None) -> str:
    """Generic extract of an error body: JSON `message`-like fields, an HTML title, or text."""
    text = (body_text or "").strip()
    if text.startswith(("{", "[")):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        found = _find_message(data)
        if found:
            return gateway_error(found, "text/plain")
    return gateway_error(text, content_type)


class JsonHttpSession:
    """A requests.Session that retries, keeps to a deadline and reports failures safely.

    `redact` lists the secrets of this feed (password, API key, the Basic header value); they are
    scrubbed from every message this session builds and from urllib3's debug log records of its
    own calls (no other session's), as a last line of defence behind never putting them into
    messages in the first place.
    """

    def __init__(
        self,
        source: str,
        *,
        policy: HttpPolicy | None = None,
        auth: AuthBase | tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        verify: bool | str = True,
        redact: Iterable[str] = (),
        trust_env: bool = True,
        error_text: Callable[[str, str | None], str] = short_error_text,
    ) -> None:
        self.source = source
        self.policy = policy or HttpPolicy()
        self.redact: tuple[str, ...] = secret_forms(redact)
        self.error_text = error_text
        _install_log_filter()
        self.session = build_session(
            self.policy, auth=auth, headers=headers, verify=verify, trust_env=trust_env
        )
        if verify is False:
            log.warning("%s: TLS certificate verification is disabled", source)
        self._pace_lock = threading.Lock()
        self._next_slot = 0.0

    def __enter__(self) -> JsonHttpSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    def message(self, url: str, **kwargs: Any) -> str:
        """`failure_message` for this feed, with its secrets."""
        return failure_message(self.source, url, redact=self.redact, **kwargs)

    def scrub(self, text: str) -> str:
        """`scrub` with this feed's secrets, for text a client quotes from a 2xx body."""
        return scrub(text, self.redact)

    def get_json(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        parse_float: Callable[[str], Any] | None = None,
    ) -> Any:
        """GET a JSON document, within the policy's deadline.

        Raises SourceUnavailable when no 2xx answer came in time (the message carries the status
        and the server's own error text) and InvalidPayload when a 2xx answer is not JSON.
        """
        status, body, text, content_type = self._get(url, params, headers)
        return self._decode(url, status, body, text, content_type, parse_float)

    def get_text(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """GET a text document (CSV feeds), with the same retries, deadline and errors as JSON."""
        status, body, text, content_type = self._get(url, params, headers)
        if not body.strip():
            raise InvalidPayload(self.message(url, reason=f"HTTP {status} with an empty body"))
        if "html" in (content_type or "").lower() or text.lstrip()[:15].lower().startswith(
            ("<!doctype", "<html")
        ):
            page = self.error_text(text, content_type)
            raise InvalidPayload(
                self.message(url, reason=f"HTTP {status}: expected text, got an HTML page ({page})")
            )
        return text

    def _get(
        self,
        url: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
    ) -> tuple[int, bytes, str, str | None]:
        policy = self.policy
        started = time.monotonic()
        deadline_at = started + policy.deadline_s
        self._pace(url, deadline_at)
        timeout = DeadlineTimeout(policy.connect_timeout, policy.read_timeout, deadline_at)
        token = _DEADLINE.set((deadline_at, policy.deadline_s))
        secrets_token = _CALL_SECRETS.set(self.redact)
        try:
            response = self.session.get(
                url, params=params, headers=headers, timeout=timeout, stream=True
            )
            try:
                body = response.content
            finally:
                response.close()
        except (
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as exc:
            raise InvalidPayload(
                self.message(url, reason=f"body cut off or undecodable ({describe_exception(exc)})")
            ) from None
        except requests.exceptions.RequestException as exc:
            raise SourceUnavailable(self.message(url, reason=describe_exception(exc))) from None
        finally:
            _CALL_SECRETS.reset(secrets_token)
            _DEADLINE.reset(token)

        retries = getattr(getattr(response.raw, "retries", None), "history", ()) or ()
        elapsed = time.monotonic() - started
        log.debug(
            "%s GET %s: HTTP %s, %d bytes, %d retries, %.2f s",
            self.source,
            endpoint_path(url),
            response.status_code,
            len(body),
            len(retries),
            elapsed,
        )
        content_type = response.headers.get("Content-Type")
        text = body.decode(response.encoding or "utf-8", errors="replace")
        if not 200 <= response.status_code < 300:
            raise self._status_error(url, response, text, content_type, len(retries), deadline_at)
        return response.status_code, body, text, content_type

    def _status_error(
        self,
        url: str,
        response: requests.Response,
        text: str,
        content_type: str | None,
        retries: int,
        deadline_at: float,
    ) -> SourceUnavailable:
        detail = self.error_text(text, content_type) or "no error text"
        status = response.status_code
        if status in self.policy.retry_statuses:
            attempts = retries + 1
            detail += f" (gave up after {attempts} attempt{'s' if attempts > 1 else ''}"
            retry_after = response.headers.get("Retry-After")
            left = max(deadline_at - time.monotonic(), 0)
            deadline = f"{left:.1f} s left of the {self.policy.deadline_s:g} s deadline"
            if retry_after:
                detail += f"; server asked to retry after {retry_after.strip()[:40]} s, {deadline}"
            elif retries < self.policy.retries:
                detail += f"; the next retry would not fit: {deadline}"
            detail += ")"
        return SourceUnavailable(
            self.message(url, status=status, reason=response.reason, detail=detail), status=status
        )

    def _decode(
        self,
        url: str,
        status: int,
        body: bytes,
        text: str,
        content_type: str | None,
        parse_float: Callable[[str], Any] | None,
    ) -> Any:
        ctype = (content_type or "").lower()
        if not body.strip():
            raise InvalidPayload(self.message(url, reason=f"HTTP {status} with an empty body"))
        if "html" in ctype or text.lstrip()[:15].lower().startswith(("<!doctype", "<html")):
            page = self.error_text(text, content_type)
            raise InvalidPayload(
                self.message(url, reason=f"HTTP {status}: expected JSON, got an HTML page ({page})")
            )
        try:
            return json.loads(text, parse_float=parse_float)
        except ValueError as exc:
            where = getattr(exc, "pos", None)
            hint = "looks truncated" if text.rstrip()[-1:] not in ("}", "]") else "not JSON"
            raise InvalidPayload(
                self.message(
                    url,
                    reason=f"HTTP {status} but the body is not valid JSON, {hint} "
                    f"({getattr(exc, 'msg', exc)}: char {where} of {len(text)}; "
                    f"Content-Type {content_type or 'missing'})",
                )
            ) from None

    def _pace(self, url: str, deadline_at: float) -> None:
        interval = self.policy.min_interval_s
        if interval <= 0:
            return
        with self._pace_lock:
            now = time.monotonic()
            wait = self._next_slot - now
            if wait > 0 and now + wait >= deadline_at:
                raise SourceUnavailable(
                    self.message(url, reason=f"client rate limit: next slot in {wait:.1f} s")
                )
            self._next_slot = max(now, self._next_slot) + interval
        if wait > 0:
            time.sleep(wait)


def build_session(
    policy: HttpPolicy,
    *,
    auth: AuthBase | tuple[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    verify: bool | str = True,
    trust_env: bool = True,
) -> requests.Session:
    """A Session whose adapter retries idempotent GETs with backoff, jitter and Retry-After."""
    retry = DeadlineRetry(
        total=policy.retries,
        connect=policy.retries,
        read=policy.retries,
        status=policy.retries,
        other=0,
        allowed_methods=frozenset({"GET", "HEAD"}),
        status_forcelist=policy.retry_statuses,
        backoff_factor=policy.backoff_factor,
        backoff_jitter=policy.backoff_jitter,
        backoff_max=policy.backoff_max,
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.verify = verify
    session.trust_env = trust_env
    session.auth = auth
    session.headers.update({"Accept": "application/json", "User-Agent": "clinker-pipeline"})
    if headers:
        session.headers.update(headers)
    return session


class _ScrubFilter(logging.Filter):
    """Rewrites urllib3 log records (which carry full URLs) through `scrub`, with the secrets of
    the session whose call logs them."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        clean = scrub(message, _CALL_SECRETS.get())
        if clean != message:
            record.msg, record.args = clean, None
        return True


def _install_log_filter() -> None:
    with _FILTER_LOCK:
        for name in _FILTERED_LOGGERS:
            logger = logging.getLogger(name)
            if not any(isinstance(f, _ScrubFilter) for f in logger.filters):
                logger.addFilter(_ScrubFilter())


_FAILURE_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    ((urllib3_exc.NewConnectionError, urllib3_exc.NameResolutionError), "cannot connect"),
    ((urllib3_exc.ConnectTimeoutError, requests.exceptions.ConnectTimeout), "connect timeout"),
    ((urllib3_exc.ReadTimeoutError, requests.exceptions.ReadTimeout), "read timeout"),
    ((urllib3_exc.SSLError, requests.exceptions.SSLError), "TLS error"),
    ((urllib3_exc.ProxyError, requests.exceptions.ProxyError), "proxy error"),
    (urllib3_exc.ProtocolError, "connection dropped"),
    (requests.exceptions.TooManyRedirects, "too many redirects"),
    (requests.exceptions.ConnectionError, "cannot connect"),
)


def _transport_reason(exc: BaseException) -> BaseException:
    """The urllib3 reason inside requests' wrapper (requests puts the MaxRetryError in args)."""
    current: BaseException = exc
    for _ in range(6):
        if isinstance(current, MaxRetryError) and current.reason is not None:
            return current.reason
        if current.args and isinstance(current.args[0], BaseException):
            current = current.args[0]
        else:
            break
    return current


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost cause worth quoting: the OSError with an errno text, else the deepest one."""
    seen: set[int] = set()
    current: BaseException = exc
    while id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MaxRetryError) and current.reason is not None:
            current = current.reason
        elif current.args and isinstance(current.args[0], BaseException):
            current = current.args[0]
        elif current.__cause__ is not None:
            current = current.__cause__
        elif isinstance(current, OSError) and current.strerror:
            return current
        elif current.__context__ is not None and not current.__suppress_context__:
            current = current.__context__
        else:
            break
    return current


def _find_message(data: Any, depth: int = 0) -> str:
    if depth > 3:
        return ""
    if isinstance(data, Mapping):
        for key in ("message", "error_description", "error", "detail", "title", "msg"):
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                return value
            if isinstance(value, Mapping | list):
                found = _find_message(value, depth + 1)
                if found:
                    return found
        value = data.get("value")
        if isinstance(value, str):
            return value
    elif isinstance(data, list):
        for item in data[:3]:
            found = _find_message(item, depth + 1)
            if found:
                return found
    return ""
