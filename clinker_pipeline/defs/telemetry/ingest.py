"""The MQTT ingestor: plant and fleet telemetry into the landing store, with no message lost.

At-least-once end to end: messages arrive over QoS 1 in a persistent session (stable client id,
MQTT v5 clean_start=False with a session expiry, or v3.1.1 clean_session=False), so the broker
keeps what arrives while the ingestor is down. A message is acknowledged (PUBACK, sent by hand:
paho's manual_ack) only after the batch holding it is durably on disk, so a crash at any point
makes the broker deliver it again rather than forget it. Duplicates that this creates (and those
a publisher sends itself) are dropped by message id, within a batch and against the ids landed
recently, including those of the newest batch files when the process starts.

Two processes. The ingestor's own runs paho's network loop (through paho's external-loop API,
reconnecting with exponential backoff), buffers raw messages and, when a batch is full or its
oldest message has waited `flush_interval`, sends it down a pipe to a landing worker process.
The worker parses, deduplicates and writes the batch and answers with the counts; only then
does the network loop send the batch's PUBACKs. Parsing and writing are a quarter of the work
per message: in the same process they slowed the network loop by as much, and in a thread they
cost more still (the two threads trade the GIL on every packet), whereas the worker runs on the
other core. The broker's ReceiveMaximum is set to two batches, so it keeps sending while a batch
is written. SIGTERM/SIGINT: stop taking messages, land what is held, acknowledge, disconnect.
"""

from __future__ import annotations

import argparse
import contextlib
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

from clinker_pipeline.argtypes import (
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from clinker_pipeline.defs.telemetry.payloads import DeadLetter, LandedMessage
from clinker_pipeline.defs.telemetry.payloads import parse_message as _parse
from clinker_pipeline.defs.telemetry.topics import DEFAULT_SUBSCRIPTION, shared_subscription
from clinker_pipeline.errors import ClinkerError, SourceUnavailable

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    import paho.mqtt.client as mqtt

    from clinker_pipeline.defs.telemetry.landing import LandingStore
    from clinker_pipeline.defs.telemetry.mqtt import BrokerSettings

log = logging.getLogger("clinker_pipeline.defs.telemetry.ingest")

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
#: How long a stopping ingestor waits for the worker to land what it was sent.
_SHUTDOWN_WAIT_S = 60.0
#: How long the landing worker may take to import pandas/DuckDB and read recent ids.
_WORKER_START_S = 120.0
_PIPE_BYTES = 1 << 20
_PR_SET_PDEATHSIG = 1
_fromtimestamp = datetime.fromtimestamp


def scrub(text: str) -> str:
    """The HTTP layer's scrubber, imported on first use: `clinker --help` builds this module's
    arguments and should not pay for importing requests."""
    from clinker_pipeline.lib.http import scrub as scrub_secrets

    return scrub_secrets(text)


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
        self._pending: list[tuple[str, bytes, float]] = []
        self._pending_acks: list[tuple[int, int, int]] = []
        self._pending_since = 0.0
        self._seq = 0
        self._outstanding: dict[int, list[tuple[int, int, int]]] = {}
        self._accepting = True
        self._generation = 0
        self._last_message = time.time()
        self._stop_requested = False
        self._closing = False
        self._fatal: Exception | None = None
        self._reconnect_delay = self.options.reconnect_min_s
        self._next_attempt: float | None = None
        self._client: mqtt.Client | None = None
        self._worker: Any = None
        self._to_worker: Connection | None = None
        self._from_worker: Connection | None = None

    def stop(self) -> None:
        """Ask `run` to land what it holds and return. Only sets a flag, so it is safe in a
        signal handler (which must not take the locks the interrupted code may hold)."""
        self._stop_requested = True

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    def run(self) -> IngestStats:
        """Ingest until stopped; raises SourceUnavailable (broker unreachable or refusing) or
        LandingFailed (a batch could not be written) after acknowledging only what landed."""
        started = time.monotonic()
        try:
            self._start_worker()
            self._client = self._connect()
            try:
                self._consume()
            finally:
                self._shutdown()
        finally:
            self._stop_worker()
            self.stats.seconds = time.monotonic() - started
        if self._fatal is not None:
            raise self._fatal
        return self.stats

    def _connect(self) -> mqtt.Client:
        """The first connection is made here, so an unreachable broker or a wrong URL fails the
        command at once; later losses are retried by `_service`."""
        from clinker_pipeline.defs.telemetry.mqtt import connect_properties, make_client

        options = self.options
        client = make_client(
            self.settings,
            client_id=self.client_id,
            protocol=options.protocol,
            manual_ack=True,
            persistent_session=True,
        )
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
        return client

    def _consume(self) -> None:
        options = self.options
        size, interval = options.batch_size, options.flush_interval_s
        while not self._stop_requested and self._fatal is None:
            self._service(_LOOP_TIMEOUT_S)
            if self._pending and (
                len(self._pending) >= size or time.time() - self._pending_since >= interval
            ):
                self._dispatch()
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
        """One turn: wait for the broker's socket or the worker's answers, read or write what is
        ready, and reconnect (with exponential backoff) when the broker went away.

        paho's own `loop()` is not used: it adds a socket pair to be woken from other threads,
        which costs a system call per acknowledgement, and it cannot wait on the worker too.
        """
        client = self._client
        results = self._from_worker
        assert client is not None and results is not None
        sock = client.socket() if self._next_attempt is None else None
        if sock is None and self._next_attempt is None and not self._closing:
            self._next_attempt = time.monotonic() + self._reconnect_delay
        buffered = 0
        readers: list[Any] = [results]
        writers: list[Any] = []
        if sock is not None:
            readers.append(sock)
            if client.want_write():
                writers.append(sock)
            buffered = sock.pending() if hasattr(sock, "pending") else 0  # TLS: decrypted
        elif self._next_attempt is not None:
            timeout = min(timeout, max(self._next_attempt - time.monotonic(), 0.0))
        try:
            readable, writable, _ = select.select(
                readers, writers, [], 0.0 if buffered else timeout
            )
        except (OSError, ValueError, TypeError):
            readable, writable = [], []
        if results in readable:
            self._receive_results()
        if sock is not None:
            if (
                ((sock in readable or buffered) and client.loop_read() != _MQTT_ERR_SUCCESS)
                or (
                    writable
                    and client.socket() is not None
                    and client.loop_write() != _MQTT_ERR_SUCCESS
                )
                or client.loop_misc() != _MQTT_ERR_SUCCESS
            ) and not self._closing:
                self._next_attempt = time.monotonic() + self._reconnect_delay
        elif self._next_attempt is not None and time.monotonic() >= self._next_attempt:
            self._reconnect()

    def _reconnect(self) -> None:
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

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if not self._accepting:
            return  # stopping: left unacknowledged, so the broker keeps it for the next run
        now = time.time()
        if not self._pending:
            self._pending_since = now
            if not self.stats.first_message_at:
                self.stats.first_message_at = now
        self._pending.append((message.topic, message.payload, now))
        self._pending_acks.append((message.mid, message.qos, self._generation))
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

    # -- the landing worker -----------------------------------------------------------------------

    def _start_worker(self) -> None:
        """Start the landing worker and wait until it is ready (pandas and DuckDB imported,
        recent message ids read), so the broker is not connected before batches can land."""
        context = _process_context()
        batches_out, batches_in = context.Pipe(duplex=False)  # (reader, writer)
        results_out, results_in = context.Pipe(duplex=False)
        _widen_pipe(batches_in)
        self._worker = context.Process(
            target=_landing_worker,
            args=(
                str(self.store.root),
                self.client_id,
                os.getpid(),
                batches_out,
                results_in,
                (batches_in, results_out),
            ),
            name=f"clinker-landing-{self.client_id}",
            daemon=True,
        )
        self._worker.start()
        batches_out.close()
        results_in.close()
        self._to_worker, self._from_worker = batches_in, results_out
        if not results_out.poll(_WORKER_START_S):
            raise LandingFailed(f"the landing worker did not start within {_WORKER_START_S:g} s")
        try:
            kind, detail = results_out.recv()
        except EOFError:
            kind, detail = "failed", f"exit code {self._worker.exitcode}"
        if kind != "ready":
            raise LandingFailed(f"the landing worker could not start: {detail}")

    def _dispatch(self) -> None:
        """Hand the held batch to the worker; its acknowledgements wait for the answer."""
        batch, self._pending = self._pending, []
        acks, self._pending_acks = self._pending_acks, []
        assert self._to_worker is not None
        self._seq += 1
        self._outstanding[self._seq] = acks
        try:
            self._to_worker.send((self._seq, batch))
        except OSError as exc:
            self._worker_failed(f"the landing worker is gone ({exc})")

    def _receive_results(self) -> None:
        results = self._from_worker
        assert results is not None
        while results.poll():
            try:
                answer = results.recv()
            except EOFError:
                self._worker_failed(
                    f"the landing worker exited (code {self._worker.exitcode}); "
                    "nothing it had not landed was acknowledged"
                )
                return
            if answer[0] == "failed":
                self._worker_failed(answer[-1])
                return
            _, seq, received, landed, dead, duplicates, batch_id = answer
            stats = self.stats
            stats.received += received
            stats.landed += landed
            stats.dead_letters += dead
            stats.duplicates += duplicates
            stats.batches += batch_id is not None
            stats.last_landed_at = time.time()
            self._acknowledge(self._outstanding.pop(seq))

    def _acknowledge(self, acks: list[tuple[int, int, int]]) -> None:
        client = self._client
        assert client is not None
        current = self._generation
        for mid, qos, generation in acks:
            # A message received on an earlier connection is sent again on this one (and
            # acknowledged then, as a duplicate); its old packet id may now mean another.
            if qos and generation == current:
                client.ack(mid, qos)

    def _worker_failed(self, reason: str) -> None:
        if self._fatal is None:
            self._fatal = LandingFailed(
                f"cannot land under {self.store.root}: {reason}; the messages not yet landed "
                "stay unacknowledged and will be redelivered"
            )
            log.error("%s", self._fatal)
        self._accepting = False

    def _shutdown(self) -> None:
        """Land what is held, wait for the worker's answers (acknowledging as they come),
        disconnect, and give paho a moment to write the acknowledgements and the DISCONNECT."""
        client = self._client
        assert client is not None
        self._closing = True
        self._accepting = False
        if self._pending and self._fatal is None:
            self._dispatch()
        deadline = time.monotonic() + _SHUTDOWN_WAIT_S
        while self._outstanding and self._fatal is None and time.monotonic() < deadline:
            self._service(0.05)
        if self._outstanding and self._fatal is None:
            log.error(
                "%d batches were not landed within %g s; their messages stay unacknowledged",
                len(self._outstanding),
                _SHUTDOWN_WAIT_S,
            )
        client.disconnect()
        deadline = time.monotonic() + 2.0
        while client.socket() is not None and client.want_write():
            if time.monotonic() > deadline:
                break
            self._service(0.05)

    def _stop_worker(self) -> None:
        worker, to_worker = self._worker, self._to_worker
        if worker is None:
            return
        if to_worker is not None:
            with contextlib.suppress(OSError):
                to_worker.send(None)
            to_worker.close()
        worker.join(_SHUTDOWN_WAIT_S if self._fatal is None else 5.0)
        if worker.is_alive():
            worker.kill()
            worker.join(5.0)
        if self._from_worker is not None:
            self._from_worker.close()


class _Lander:
    """Parses, deduplicates and writes batches; lives in the landing worker process."""

    def __init__(self, store: LandingStore, client_id: str) -> None:
        self.store = store
        self.client_id = client_id
        self.recent = _RecentIds()

    def prepare(self) -> None:
        self.store.remove_stale_temp_files()
        self.store.warm_up()
        self.recent.add(list(self.store.recent_message_ids(SEED_BATCHES)))

    def land(self, batch: list[tuple[str, bytes, float]]) -> tuple[int, int, int, int, str | None]:
        """(received, landed, dead letters, duplicates, batch id or None when nothing to
        write). Ids join the recent set only once their batch is on disk: a failed write must
        not make the broker's redelivery look like a duplicate."""
        recent = self.recent.ids
        fresh: set[str] = set()
        landed: list[LandedMessage] = []
        dead: list[DeadLetter] = []
        duplicates = 0
        for topic, payload, received in batch:
            parsed = _parse(topic, payload, _fromtimestamp(received, UTC))
            if type(parsed) is LandedMessage:
                message_id = parsed.message_id
                if message_id in recent or message_id in fresh:
                    duplicates += 1
                else:
                    fresh.add(message_id)
                    landed.append(parsed)
            else:
                dead.append(parsed)
        batch_id = None
        if landed or dead:
            batch_id = self.store.write_batch(landed, dead, self.client_id).batch_id
            log.debug(
                "batch %s: %d landed, %d dead letters, %d duplicates",
                batch_id,
                len(landed),
                len(dead),
                duplicates,
            )
        self.recent.add(list(fresh))
        return len(batch), len(landed), len(dead), duplicates, batch_id


def _landing_worker(
    root: str,
    client_id: str,
    parent_pid: int,
    batches: Connection,
    results: Connection,
    parent_ends: tuple[Connection, ...],
) -> None:
    """The landing worker process: parse, deduplicate and write each batch it is sent, answer
    with the counts. The ingestor's network loop runs in the parent, which parsing and writing
    (a quarter of the work per message) would otherwise slow down: one Python process cannot
    use the second core, and a thread would fight the network loop for the GIL.

    It ignores SIGTERM/SIGINT (a service manager or a terminal signals the whole group; the
    parent decides when to stop, after the last batch) and dies with the parent, so a batch is
    never completed after the ingestor is gone.
    """
    for end in parent_ends:
        end.close()
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from clinker_pipeline.defs.telemetry.landing import LandingStore

    lander = _Lander(LandingStore(root), client_id)
    try:
        lander.prepare()
    except Exception as exc:
        results.send(("failed", f"cannot open the landing store {root}: {exc}"))
        return
    gc.freeze()
    results.send(("ready", None))
    while True:
        try:
            item = batches.recv()
        except EOFError:
            return
        if item is None:
            return
        seq, batch = item
        try:
            outcome = lander.land(batch)
        except Exception as exc:
            results.send(("failed", seq, f"batch of {len(batch)} messages not written: {exc}"))
            return
        results.send(("landed", seq, *outcome))


def _process_context() -> Any:
    """fork where it is safe (Linux, no other thread yet: a fresh worker without re-importing),
    else spawn."""
    import multiprocessing

    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _widen_pipe(connection: Connection) -> None:
    """Let a couple of batches wait in the pipe (Linux allows up to 1 MiB by default), so the
    network loop rarely blocks handing a batch to a busy worker."""
    with contextlib.suppress(AttributeError, OSError):
        import fcntl

        fcntl.fcntl(connection.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(EXIT_FAILED)


# -- command line ---------------------------------------------------------------------------------


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
        type=non_negative_int,
        default=86_400,
        help="seconds the broker keeps the session while disconnected (MQTT v5)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=1000,
        help="messages per landed file; acknowledged after the file is written (keep it under "
        "32768: the broker sends at most 65535 unacknowledged messages)",
    )
    parser.add_argument(
        "--flush-interval",
        type=positive_float,
        default=0.5,
        help="seconds a message may wait in memory before its batch is landed",
    )
    parser.add_argument(
        "--max-messages",
        type=non_negative_int,
        default=0,
        help="exit after landing this many messages (0: run until stopped)",
    )
    parser.add_argument(
        "--idle-exit",
        type=non_negative_float,
        default=0.0,
        help="exit after this many seconds without a message (0: never)",
    )
    parser.add_argument("--json", action="store_true", help="print the final stats as JSON")
    return parser


def ingest_command(args: argparse.Namespace) -> int:
    """`clinker ingest-mqtt`: run until SIGTERM/SIGINT (or --max-messages / --idle-exit)."""
    from clinker_pipeline.defs.telemetry.landing import LandingStore
    from clinker_pipeline.defs.telemetry.mqtt import BrokerSettings
    from clinker_pipeline.settings import telemetry_dir

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
    # Everything imported so far lives as long as the process: keep it out of the garbage
    # collector's passes, which otherwise scan those objects again and again while messages
    # are allocated at thousands per second.
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
        except (ClinkerError, ValueError) as exc:
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
    """`python -m clinker_pipeline.defs.telemetry.ingest`: the ingestor without the `clinker` CLI."""
    parser = argparse.ArgumentParser(
        prog="python -m clinker_pipeline.defs.telemetry.ingest",
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
    # Run the package's copy of this module, not `__main__`'s, so the landing worker's function
    # is found under its real name whichever way the worker process is started.
    from clinker_pipeline.defs.telemetry.ingest import main as package_main

    sys.exit(package_main())
