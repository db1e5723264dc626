"""The MQTT ingestor: plant and fleet telemetry into the landing store, with no message lost.

At-least-once end to end: messages arrive over QoS 1 in a persistent session (stable client id,
MQTT v5 clean_start=False with a session expiry, or v3.1.1 clean_session=False), so the broker
keeps what arrives while the ingestor is down. A message is acknowledged (PUBACK, sent by hand:
paho's manual_ack) only after the batch holding it is durably on disk, so a crash at any point
makes the broker deliver it again rather than forget it. Duplicates that this creates (and those
a publisher sends itself) are dropped by message id, within a batch and against the ids landed
recently, including those of the newest batch files when the process starts.

One thread does it all: paho's network loop (driven here through its external-loop API, which
also reconnects with exponential backoff), parsing each message as it arrives, and, when a batch
is full or its oldest message has waited `flush_interval`, deduplicating, writing and
acknowledging it. A second Python thread was tried for the writes: trading the GIL with the
network thread on every packet cost more than the overlap gained. While a batch is written
(~10 ms per 1000 messages) the broker keeps sending into the socket buffer, within the
ReceiveMaximum window (two batches), so it never stops mid-batch. SIGTERM/SIGINT: stop taking
messages, land what is held, acknowledge, disconnect.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from clinker_pipeline.errors import ClinkerError, SourceUnavailable
from clinker_pipeline.telemetry.payloads import DeadLetter, LandedMessage
from clinker_pipeline.telemetry.payloads import parse_message as _parse
from clinker_pipeline.telemetry.topics import DEFAULT_SUBSCRIPTION, shared_subscription

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

    from clinker_pipeline.sources.mqtt import BrokerSettings
    from clinker_pipeline.telemetry.landing import LandingStore

log = logging.getLogger("clinker_pipeline.telemetry.ingest")

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130

#: Message ids remembered for deduplication; past this the oldest batches' ids are forgotten.
#: A redelivery comes from the unacknowledged window (at most ReceiveMaximum messages), so a
#: multiple of that is plenty.
RECENT_IDS_LIMIT = 200_000
#: Newest batch files whose ids seed the memory at start-up.
SEED_BATCHES = 200
#: CONNACK reason codes no retry can fix (bad credentials, client id refused, banned, ...).
_FATAL_CONNACK = frozenset({0x84, 0x85, 0x86, 0x87, 0x8A, 0x8C})
#: Longest wait in select: how late a timed flush may be when no message comes.
_LOOP_TIMEOUT_S = 0.02
_MQTT_ERR_SUCCESS = 0
_fromtimestamp = datetime.fromtimestamp


def scrub(text: str) -> str:
    """The HTTP layer's scrubber, imported on first use: `clinker --help` builds this module's
    arguments and should not pay for importing requests."""
    from clinker_pipeline.sources.http import scrub as scrub_secrets

    return scrub_secrets(text)


#: (parsed message, packet id, QoS, connection generation) of one received message
_Received = tuple["LandedMessage | DeadLetter", int, int, int]


class LandingFailed(ClinkerError):
    """A batch could not be written; nothing of it was acknowledged, so the broker keeps it."""


@dataclass(frozen=True)
class IngestOptions:
    """How to subscribe and when to land; defaults are those of `clinker ingest-mqtt`."""

    topics: tuple[str, ...] = (DEFAULT_SUBSCRIPTION,)
    share_group: str | None = None
    protocol: int = 5
    session_expiry_s: int = 86_400
    batch_size: int = 1000
    flush_interval_s: float = 0.5
    max_messages: int = 0
    idle_exit_s: float = 0.0
    keepalive_s: int = 30
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch size must be >= 1")
        if self.flush_interval_s <= 0:
            raise ValueError("flush interval must be > 0")
        if self.protocol not in (5, 311):
            raise ValueError(f"MQTT protocol must be 5 or 311, got {self.protocol}")
        if not self.topics:
            raise ValueError("at least one topic filter is needed")
        self.subscriptions  # noqa: B018 (refuses a share group outside the topic syntax)

    @property
    def receive_maximum(self) -> int:
        """Unacknowledged messages the broker may send: at least two batches, so the next batch
        fills while one is written (65535 is the protocol's ceiling)."""
        return min(65_535, max(10_000, 2 * self.batch_size))

    @property
    def subscriptions(self) -> list[str]:
        return [shared_subscription(t, self.share_group) for t in self.topics]


@dataclass
class IngestStats:
    received: int = 0
    landed: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    batches: int = 0
    seconds: float = 0.0
    connections: int = 0
    client_id: str = ""
    first_message_at: float = field(default=0.0, repr=False)
    last_landed_at: float = field(default=0.0, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """The stats, with `messages_per_s` = received / (last landing - first message): the rate
        while there was work to do, which the process's lifetime would understate."""
        busy = self.last_landed_at - self.first_message_at
        rate = self.received / busy if self.received and busy > 0 else 0.0
        out = {k: v for k, v in asdict(self).items() if not k.endswith("_at")}
        return {**out, "seconds": round(self.seconds, 3), "messages_per_s": round(rate, 1)}


@dataclass
class _RecentIds:
    """Ids landed lately, forgotten oldest batch first once there are more than `limit`."""

    limit: int = RECENT_IDS_LIMIT
    ids: set[str] = field(default_factory=set)
    batches: deque[list[str]] = field(default_factory=deque)

    def add(self, ids: list[str]) -> None:
        if not ids:
            return
        self.ids.update(ids)
        self.batches.append(ids)
        while len(self.ids) > self.limit and len(self.batches) > 1:
            self.ids.difference_update(self.batches.popleft())


class Ingestor:
    """Subscribes, lands and acknowledges until stopped, `max_messages` are landed or the
    stream has been idle for `idle_exit_s`."""

    def __init__(
        self,
        settings: BrokerSettings,
        store: LandingStore,
        client_id: str,
        options: IngestOptions | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.client_id = client_id
        self.options = options or IngestOptions()
        self.stats = IngestStats(client_id=client_id)
        self._pending: list[_Received] = []
        self._pending_since = 0.0
        self._accepting = True
        self._generation = 0
        self._last_message = time.time()
        self._stop_requested = False
        self._closing = False
        self._fatal: Exception | None = None
        self._recent = _RecentIds()
        self._reconnect_delay = self.options.reconnect_min_s
        self._next_attempt: float | None = None
        self._client: mqtt.Client | None = None

    def stop(self) -> None:
        """Ask `run` to land what it holds and return. Only sets a flag, so it is safe in a
        signal handler (which must not take the locks the interrupted code may hold)."""
        self._stop_requested = True

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    def run(self) -> IngestStats:
        from clinker_pipeline.sources.mqtt import connect_properties, make_client

        started = time.monotonic()
        options = self.options
        self.store.remove_stale_temp_files()
        self.store.warm_up()
        self._recent.add(list(self.store.recent_message_ids(SEED_BATCHES)))
        client = make_client(
            self.settings,
            client_id=self.client_id,
            protocol=options.protocol,
            manual_ack=True,
            persistent_session=True,
        )
        self._client = client
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        kwargs: dict[str, Any] = {}
        if options.protocol == 5:
            kwargs = {
                "clean_start": False,
                "properties": connect_properties(options.session_expiry_s, options.receive_maximum),
            }
        try:
            client.connect(
                self.settings.host, self.settings.port, keepalive=options.keepalive_s, **kwargs
            )
        except (OSError, ValueError) as exc:
            raise SourceUnavailable(
                f"cannot connect to the MQTT broker {self.settings.url}: {scrub(str(exc))}"
            ) from None
        self._last_message = time.time()
        try:
            self._consume()
        finally:
            self._shutdown()
            self.stats.seconds = time.monotonic() - started
        if self._fatal is not None:
            raise self._fatal
        return self.stats

    def _consume(self) -> None:
        options = self.options
        size, interval = options.batch_size, options.flush_interval_s
        while not self._stop_requested and self._fatal is None:
            self._service(_LOOP_TIMEOUT_S)
            pending = self._pending
            if pending:
                now = time.time()
                if len(pending) >= size or now - self._pending_since >= interval:
                    self._land_pending()
            if options.max_messages and self.stats.landed >= options.max_messages:
                log.info("landed %d messages (--max-messages): stopping", self.stats.landed)
                return
            if options.idle_exit_s and time.time() - self._last_message >= options.idle_exit_s:
                log.info("no message for %g s (--idle-exit): stopping", options.idle_exit_s)
                return
        if self._stop_requested:
            log.info("stop requested: landing what is held, then disconnecting")

    # -- network --------------------------------------------------------------------------------

    def _service(self, timeout: float) -> None:
        """One turn of the network, or of reconnecting (with exponential backoff) when the
        broker went away."""
        if self._next_attempt is None:
            if not self._network_step(timeout) and not self._closing:
                self._next_attempt = time.monotonic() + self._reconnect_delay
            return
        wait = self._next_attempt - time.monotonic()
        if wait > 0:
            time.sleep(min(timeout, wait))
            return
        client = self._client
        assert client is not None
        try:
            client.reconnect()
            self._next_attempt = None
        except OSError as exc:
            self._reconnect_delay = min(self._reconnect_delay * 2, self.options.reconnect_max_s)
            self._next_attempt = time.monotonic() + self._reconnect_delay
            log.warning(
                "cannot reach the MQTT broker %s (%s); retrying in %.1f s",
                self.settings.url,
                scrub(str(exc)),
                self._reconnect_delay,
            )

    def _network_step(self, timeout: float) -> bool:
        """select + paho's loop_read/loop_write/loop_misc; False once the connection is gone.

        Like paho's `loop()`, minus the socket pair `loop()` adds to be woken from other
        threads: with it, every acknowledgement costs one more system call, and this
        ingestor never publishes or acknowledges from another thread.
        """
        client = self._client
        assert client is not None
        sock = client.socket()
        if sock is None:
            return False
        buffered = sock.pending() if hasattr(sock, "pending") else 0  # TLS: already decrypted
        try:
            readable, writable, _ = select.select(
                [sock], [sock] if client.want_write() else [], [], 0.0 if buffered else timeout
            )
        except (OSError, ValueError, TypeError):
            return False
        if (readable or buffered) and client.loop_read() != _MQTT_ERR_SUCCESS:
            return False
        if writable and client.socket() is not None and client.loop_write() != _MQTT_ERR_SUCCESS:
            return False
        return client.loop_misc() == _MQTT_ERR_SUCCESS

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if not self._accepting:
            return  # stopping: left unacknowledged, so the broker keeps it for the next run
        now = time.time()
        parsed = _parse(message.topic, message.payload, _fromtimestamp(now, UTC))
        pending = self._pending
        if not pending:
            self._pending_since = now
            if not self.stats.first_message_at:
                self.stats.first_message_at = now
        pending.append((parsed, message.mid, message.qos, self._generation))
        self._last_message = now

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if reason_code.is_failure:
            message = f"the MQTT broker {self.settings.url} refused the connection: {reason_code}"
            if reason_code.value in _FATAL_CONNACK:
                self._fatal = SourceUnavailable(message)
            log.error("%s", message)
            return
        self._generation += 1
        self._reconnect_delay = self.options.reconnect_min_s
        self.stats.connections += 1
        subscriptions = self.options.subscriptions
        if self.stats.connections > 1 and not flags.session_present:
            log.warning(
                "the broker %s had no session for %s on reconnecting: messages published while "
                "it was away may be lost (broker restarted without persistence, or the session "
                "expired)",
                self.settings.url,
                self.client_id,
            )
        log.info(
            "connected to %s as %s (session present: %s); subscribing to %s",
            self.settings.url,
            self.client_id,
            bool(flags.session_present),
            ", ".join(subscriptions),
        )
        # With a persistent session the broker still has the subscriptions; subscribing again
        # is harmless, and needed when the session expired or the broker lost it.
        client.subscribe([(topic, 1) for topic in subscriptions])

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: list, properties: Any
    ) -> None:
        refused = [
            f"{topic}: {code}"
            for topic, code in zip(self.options.subscriptions, reason_codes, strict=False)
            if code.is_failure
        ]
        if refused:
            self._fatal = SourceUnavailable(
                f"the MQTT broker {self.settings.url} refused the subscription "
                f"({'; '.join(refused)})"
            )
            log.error("%s", self._fatal)
            return
        log.info("subscribed (QoS 1) to %s", ", ".join(self.options.subscriptions))

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if not self._closing and self._fatal is None:
            log.warning(
                "lost the connection to %s (%s); reconnecting", self.settings.url, reason_code
            )

    # -- landing --------------------------------------------------------------------------------

    def _land_pending(self) -> None:
        """Write the held batch, then acknowledge it; if the write fails nothing is
        acknowledged and the ingestor stops (the broker redelivers to the next run)."""
        batch, self._pending = self._pending, []
        try:
            acks = self._land(batch)
        except Exception as exc:
            self._fatal = LandingFailed(
                f"cannot write a landing batch under {self.store.root}: {exc}; its "
                f"{len(batch)} messages stay unacknowledged and will be redelivered"
            )
            log.error("%s", self._fatal)
            return
        client = self._client
        assert client is not None
        current = self._generation
        for mid, qos, generation in acks:
            # A message received on an earlier connection is sent again on this one (and
            # acknowledged then, as a duplicate); its old packet id may now mean another.
            if generation == current:
                client.ack(mid, qos)

    def _land(self, batch: list[_Received]) -> list[tuple[int, int, int]]:
        recent = self._recent.ids
        fresh: set[str] = set()
        landed: list[LandedMessage] = []
        dead: list[DeadLetter] = []
        acks: list[tuple[int, int, int]] = []
        duplicates = 0
        for parsed, mid, qos, generation in batch:
            if type(parsed) is LandedMessage:
                message_id = parsed.message_id
                if message_id in recent or message_id in fresh:
                    duplicates += 1
                else:
                    fresh.add(message_id)
                    landed.append(parsed)
            else:
                dead.append(parsed)
            if qos:
                acks.append((mid, qos, generation))
        if landed or dead:
            info = self.store.write_batch(landed, dead, self.client_id)
            self.stats.batches += 1
            log.debug(
                "batch %s: %d landed, %d dead letters, %d duplicates",
                info.batch_id,
                len(landed),
                len(dead),
                duplicates,
            )
        self._recent.add(list(fresh))
        stats = self.stats
        stats.received += len(batch)
        stats.dead_letters += len(dead)
        stats.duplicates += duplicates
        stats.landed += len(landed)
        stats.last_landed_at = time.time()
        return acks

    def _shutdown(self) -> None:
        """Land what is held (unless landing failed), acknowledge it, disconnect, and give paho
        a moment to write the acknowledgements and the DISCONNECT."""
        client = self._client
        assert client is not None
        self._closing = True
        self._accepting = False
        if self._pending and self._fatal is None:
            self._land_pending()
        client.disconnect()
        deadline = time.monotonic() + 2.0
        while client.socket() is not None and client.want_write():
            if time.monotonic() > deadline or not self._network_step(0.05):
                break


# -- command line ---------------------------------------------------------------------------------


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def default_client_id() -> str:
    """IOT_CLIENT_ID, else one per host: stable across restarts, which the persistent session
    (and so the no-loss guarantee) depends on."""
    return os.environ.get("IOT_CLIENT_ID") or f"clinker-ingestor-{socket.gethostname()}"


def add_ingest_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--broker",
        default=None,
        help="mqtt://host:port or mqtts://host:port (default: IOT_BROKER_URL, else "
        "mqtt://127.0.0.1:1883); credentials from IOT_USERNAME/IOT_PASSWORD, CA from IOT_CA_FILE",
    )
    parser.add_argument(
        "--landing", default=None, help="landing directory (default: CLINKER_TELEMETRY_DIR)"
    )
    parser.add_argument(
        "--topic",
        action="append",
        default=None,
        help=f"topic filter, repeatable (default: {DEFAULT_SUBSCRIPTION})",
    )
    parser.add_argument(
        "--share-group",
        default=None,
        help="subscribe as $share/GROUP/<topic> so several ingestors (each with its own "
        "--client-id) split the stream",
    )
    parser.add_argument(
        "--client-id",
        default=None,
        help="stable MQTT client id: the broker keeps this id's session and messages while the "
        "ingestor is down (default: IOT_CLIENT_ID, else clinker-ingestor-<hostname>)",
    )
    parser.add_argument(
        "--protocol",
        type=int,
        choices=[5, 311],
        default=5,
        help="MQTT 5 (default: clean_start=False + session expiry, ReceiveMaximum of two "
        "batches) or 3.1.1 (clean_session=False; the broker's max_inflight_messages, 20 by "
        "default in Mosquitto, then caps the unacknowledged window: raise it for v3.1.1)",
    )
    parser.add_argument(
        "--session-expiry",
        type=_non_negative_int,
        default=86_400,
        help="seconds the broker keeps the session while disconnected (MQTT v5)",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=1000,
        help="messages per landed file; acknowledged after the file is written (keep it under "
        "32768: the broker sends at most 65535 unacknowledged messages)",
    )
    parser.add_argument(
        "--flush-interval",
        type=_positive_float,
        default=0.5,
        help="seconds a message may wait in memory before its batch is landed",
    )
    parser.add_argument(
        "--max-messages",
        type=_non_negative_int,
        default=0,
        help="exit after landing this many messages (0: run until stopped)",
    )
    parser.add_argument(
        "--idle-exit",
        type=_non_negative_float,
        default=0.0,
        help="exit after this many seconds without a message (0: never)",
    )
    parser.add_argument("--json", action="store_true", help="print the final stats as JSON")
    return parser


def ingest_command(args: argparse.Namespace) -> int:
    """`clinker ingest-mqtt`: run until SIGTERM/SIGINT (or --max-messages / --idle-exit)."""
    from clinker_pipeline.settings import telemetry_dir
    from clinker_pipeline.sources.mqtt import BrokerSettings
    from clinker_pipeline.telemetry.landing import LandingStore

    try:
        settings = BrokerSettings.from_env(url=args.broker)
        client_id = args.client_id or settings.client_id or default_client_id()
        options = IngestOptions(
            topics=tuple(args.topic or [DEFAULT_SUBSCRIPTION]),
            share_group=args.share_group,
            protocol=args.protocol,
            session_expiry_s=args.session_expiry,
            batch_size=args.batch_size,
            flush_interval_s=args.flush_interval,
            max_messages=args.max_messages,
            idle_exit_s=args.idle_exit,
        )
    except ValueError as exc:
        print(f"error: {scrub(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    store = LandingStore(args.landing or telemetry_dir())
    store.warm_up()
    # Everything imported so far lives as long as the process: keep it out of the garbage
    # collector's passes, which otherwise scan pandas' and DuckDB's objects again and again
    # while messages are allocated at thousands per second.
    gc.freeze()
    ingestor = Ingestor(settings, store, client_id, options)
    log.info(
        "ingesting %s from %s as %s into %s",
        ", ".join(options.subscriptions),
        settings.url,
        client_id,
        store.root,
    )
    with _StopOnSignals(ingestor):
        try:
            stats = ingestor.run()
            code = EXIT_OK
        except ClinkerError as exc:
            print(f"error: {scrub(str(exc))}", file=sys.stderr)
            stats, code = ingestor.stats, EXIT_FAILED
        finally:
            store.close()
    summary = stats.as_dict()
    log.info("ingestor stopped: %s", summary)
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"received {stats.received}, landed {stats.landed}, duplicates {stats.duplicates}, "
            f"dead letters {stats.dead_letters}, batches {stats.batches}, "
            f"{stats.seconds:.1f} s"
        )
    return code


class _StopOnSignals:
    """SIGTERM/SIGINT stop the ingestor cleanly; a second one exits at once (nothing acked is
    lost: unacknowledged messages are redelivered, a half-written batch is a temporary file)."""

    def __init__(self, ingestor: Ingestor) -> None:
        self.ingestor = ingestor
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.ingestor.stop_requested:
            os._exit(EXIT_INTERRUPTED)
        self.ingestor.stop()

    def __enter__(self) -> _StopOnSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m clinker_pipeline.telemetry.ingest`: the ingestor without the `clinker` CLI."""
    parser = argparse.ArgumentParser(
        prog="python -m clinker_pipeline.telemetry.ingest",
        description="Land plant and fleet telemetry from MQTT (QoS 1, no loss).",
    )
    add_ingest_arguments(parser)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    return ingest_command(args)


if __name__ == "__main__":
    sys.exit(main())
