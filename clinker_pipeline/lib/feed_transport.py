"""How the external feed clients move bytes.

Every client speaks to a `FeedTransport`: a path and query parameters in, decoded JSON (or CSV
text) out. `HttpFeedTransport` goes over the resilient HTTP layer (retries with backoff and
Retry-After, a deadline per call, a per-source pace, secret-free messages) and adds the API key
as the query parameter the provider expects. `SampleFeedTransport` answers from bundled files in
the provider's exact wire format, so sample mode runs the client's paging, error handling and
parsing exactly as production does; only the socket is missing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from clinker_pipeline.errors import InvalidPayload, SourceUnavailable
from clinker_pipeline.lib.http import HttpPolicy, JsonHttpSession, failure_message, scrub

log = logging.getLogger(__name__)

#: Picks the sample file (relative to the sample directory) that answers GET path?params.
SampleResolver = Callable[[str, Mapping[str, str]], str]


@runtime_checkable
class FeedTransport(Protocol):
    """One GET: a path below the base URL plus query parameters in, the body out."""

    source: str

    def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any: ...

    def get_text(self, path: str, params: Mapping[str, str] | None = None) -> str: ...

    def scrub(self, text: str) -> str:
        """`text` (e.g. a message quoted from a 2xx body) masked with this source's secrets."""
        ...

    def close(self) -> None: ...


class HttpFeedTransport:
    """A provider's HTTP API below `base_url` (which may carry a path prefix, e.g. a mirror).

    `secret_params` (e.g. {"appid": key}) are added to every query and are this transport's
    secrets: they are masked in every message it builds and in the log records of its calls. Only the path below `base_url` is taken
    from callers, so a paging link can never send the key to another host.
    """

    def __init__(
        self,
        source: str,
        base_url: str,
        *,
        secret_params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        policy: HttpPolicy | None = None,
        verify: bool | str = True,
        error_text: Callable[[str, str | None], str] | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{source}: base URL must be http(s)://host[:port][/prefix]")
        if parts.username or parts.password:
            raise ValueError(f"{source}: put credentials in the API key setting, not the URL")
        self.source = source
        self.base_url = base_url.rstrip("/")
        self.secret_params = {k: v for k, v in (secret_params or {}).items() if v}
        self.http = JsonHttpSession(
            source,
            policy=policy,
            headers=headers,
            verify=verify,
            redact=list(self.secret_params.values()),
            **({"error_text": error_text} if error_text else {}),
        )

    def __repr__(self) -> str:
        return f"HttpFeedTransport({self.source!r}, {self.base_url!r})"

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}" if path else self.base_url

    def _params(self, params: Mapping[str, str] | None) -> dict[str, str]:
        return {**(params or {}), **self.secret_params}

    def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return self.http.get_json(self.url(path), params=self._params(params))

    def get_text(self, path: str, params: Mapping[str, str] | None = None) -> str:
        return self.http.get_text(self.url(path), params=self._params(params))

    def scrub(self, text: str) -> str:
        return self.http.scrub(text)

    def close(self) -> None:
        self.http.close()


class SampleFeedTransport:
    """Answers from bundled files: `resolve(path, params)` names the file in `directory`.

    A request the samples do not cover is a SourceUnavailable naming the missing file, just as a
    live endpoint that is not there would be.
    """

    def __init__(self, source: str, directory: Path | str, resolve: SampleResolver) -> None:
        self.source = source
        self.directory = Path(directory)
        self.resolve = resolve
        self.served: list[Path] = []

    def __repr__(self) -> str:
        return f"SampleFeedTransport({self.source!r}, {str(self.directory)!r})"

    def _file(self, path: str, params: Mapping[str, str] | None) -> Path:
        file = self.directory / self.resolve(path, dict(params or {}))
        if not file.is_file():
            raise SourceUnavailable(
                failure_message(
                    f"{self.source} sample",
                    path,
                    reason=f"no sample file {file.name} in {self.directory}",
                )
            )
        self.served.append(file)
        return file

    def get_text(self, path: str, params: Mapping[str, str] | None = None) -> str:
        file = self._file(path, params)
        try:
            return file.read_text(encoding="utf-8")
        except OSError as exc:
            raise SourceUnavailable(
                failure_message(f"{self.source} sample", path, reason=f"{file.name}: {exc}")
            ) from None

    def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        text = self.get_text(path, params)
        try:
            return json.loads(text)
        except ValueError as exc:
            raise InvalidPayload(
                failure_message(f"{self.source} sample", path, reason=f"not JSON: {exc}")
            ) from None

    def scrub(self, text: str) -> str:
        return scrub(text)  # bundled files hold no secrets; mask credential-shaped text anyway

    def close(self) -> None:
        return None
