"""Connection settings and client construction for the plants' and fleet's MQTT broker.

Both the ingestor and the simulator talk to the same broker, configured the same way (one URL,
credentials and a CA file from the environment), so the rules live here once: `mqtts://` means
TLS, the password never enters a message (the repr hides it, `url` drops the user info and
broker URLs are masked by the HTTP layer's `scrub` before they are quoted), and the MQTT v5 CONNECT properties that make a persistent session survive a
reconnect (session expiry, receive maximum) are built in one place.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from clinker_pipeline.lib.http import scrub

DEFAULT_BROKER_URL = "mqtt://127.0.0.1:1883"

#: scheme -> (TLS, default port)
_SCHEMES: dict[str, tuple[bool, int]] = {
    "mqtt": (False, 1883),
    "tcp": (False, 1883),
    "mqtts": (True, 8883),
    "ssl": (True, 8883),
}

#: MQTT protocol option values (as on the command line) -> paho protocol constants.
PROTOCOLS: dict[int, int] = {5: mqtt.MQTTv5, 311: mqtt.MQTTv311}


@dataclass(frozen=True)
class BrokerSettings:
    """Where the broker is and how to authenticate; the password never appears in the repr."""

    host: str = "127.0.0.1"
    port: int = 1883
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    client_id: str | None = None

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("MQTT broker host is empty")
        if not 0 < self.port < 65536:
            raise ValueError(f"MQTT broker port {self.port} is out of range")

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> BrokerSettings:
        """Settings from `mqtt[s]://[user[:password]@]host[:port]`; overrides that are not None
        win over the URL (the environment's IOT_USERNAME beats a user in the URL, say)."""
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"MQTT broker URL {scrub(url)!r} is not valid: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            raise ValueError(
                f"MQTT broker URL {scrub(url)!r}: scheme must be one of "
                f"{', '.join(s + '://' for s in _SCHEMES)}"
            )
        if not parts.hostname:
            raise ValueError(f"MQTT broker URL {scrub(url)!r} has no host")
        tls, default_port = _SCHEMES[scheme]
        values: dict[str, Any] = {
            "host": parts.hostname,
            "port": port or default_port,
            "tls": tls,
            "username": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, url: str | None = None, **overrides: Any
    ) -> BrokerSettings:
        """The broker of `url` (else IOT_BROKER_URL, else the local broker) with IOT_USERNAME,
        IOT_PASSWORD, IOT_CA_FILE and IOT_CLIENT_ID filling what the URL leaves out, so
        deployments keep credentials out of command lines; `overrides` that are not None win."""
        env = os.environ if environ is None else environ
        base = cls.from_url(url or env.get("IOT_BROKER_URL") or DEFAULT_BROKER_URL)
        from_env = {
            "username": env.get("IOT_USERNAME") or None,
            "password": env.get("IOT_PASSWORD") or None,
            "ca_file": env.get("IOT_CA_FILE") or None,
            "client_id": env.get("IOT_CLIENT_ID") or None,
        }
        values = {k: v for k, v in from_env.items() if v is not None and getattr(base, k) is None}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(base, **values) if values else base

    def with_client_id(self, client_id: str | None) -> BrokerSettings:
        return self if client_id is None else replace(self, client_id=client_id)

    @property
    def url(self) -> str:
        """The broker as a URL without credentials, for logs and messages."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def make_client(
    settings: BrokerSettings,
    *,
    client_id: str,
    protocol: int = 5,
    manual_ack: bool = False,
    persistent_session: bool = False,
) -> mqtt.Client:
    """A paho 2.x client with TLS and credentials applied when configured.

    `protocol` is 5 or 311. A v3.1.1 session is made persistent here (`clean_session=False` is a
    constructor argument); a v5 session is made persistent at connect time instead
    (`clean_start=False` with a SessionExpiryInterval, see `connect_properties`).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"MQTT protocol must be one of {sorted(PROTOCOLS)}, got {protocol}")
    kwargs: dict[str, Any] = {}
    if protocol == 311:
        kwargs["clean_session"] = not persistent_session
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=PROTOCOLS[protocol],
        manual_ack=manual_ack,
        **kwargs,
    )
    if settings.tls:
        try:
            client.tls_set(ca_certs=settings.ca_file, cert_reqs=ssl.CERT_REQUIRED)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"MQTT CA file {settings.ca_file!r} cannot be used: {exc}") from None
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.password)
    return client


def connect_properties(session_expiry_s: int, receive_maximum: int | None = None) -> Properties:
    """MQTT v5 CONNECT properties of a persistent session.

    Without SessionExpiryInterval a v5 session ends with the connection even with
    clean_start=False. ReceiveMaximum caps the QoS 1 messages the broker sends without a PUBACK:
    a subscriber that acknowledges only after landing a batch needs it above the batch size, or
    the broker stops sending mid-batch.
    """
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = int(session_expiry_s)
    if receive_maximum is not None:
        props.ReceiveMaximum = int(receive_maximum)
    return props
