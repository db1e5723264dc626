"""The MQTT ingestor against real Mosquitto brokers: no message lost or landed twice through
ingestor crashes, broker restarts and shared subscriptions; malformed messages dead-lettered
with their bytes; SIGTERM lands what is held; no password in any output. Plus the pure parts
(topic scheme, structural checks, landing store, broker settings).

The ingestor runs as `python -m clinker_pipeline.defs.telemetry.ingest` (a real process that can be
SIGKILLed), each test against its own private broker, so no test sees another's traffic or the
sessions other tests leave behind.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from clinker_pipeline.defs.telemetry.landing import (
    DEAD_LETTER_COLUMNS,
    LANDED_COLUMNS,
    LandingStore,
)
from clinker_pipeline.defs.telemetry.mqtt import BrokerSettings, connect_properties, make_client
from clinker_pipeline.defs.telemetry.payloads import DeadLetter, LandedMessage, parse_message
from clinker_pipeline.defs.telemetry.topics import (
    fleet_topic,
    parse_topic,
    plant_topic,
    shared_subscription,
)
from clinker_pipeline_tests.mosquitto import (
    MosquittoBroker,
    free_port,
    mosquitto_binary,
    private_broker,
)

__all__ = ["private_broker"]  # the fixture, imported for the tests below

NOW = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
RECEIVED = datetime(2026, 11, 27, 6, 0, 1, tzinfo=UTC)
PASSWORD = "S3cret-pw!ingest"

needs_mosquitto = pytest.mark.skipif(
    mosquitto_binary() is None,
    reason="the mosquitto binary is not installed (apt-get install mosquitto)",
)

# -- messages -----------------------------------------------------------------------------------

FAMILY_VALUES: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "line": (
        plant_topic("IU_001", "line", "kiln1"),
        {"production_tph": 212.4, "running": True, "kiln_temp_c": 1452.0},
        {},
    ),
    "silo": (
        plant_topic("GU_004", "silo", "clinker_silo1"),
        {"level_pct": 61.5, "level_t": 12300, "capacity_t": 20000},
        {},
    ),
    "quality": (
        plant_topic("IU_001", "quality", "xrf1"),
        {"free_lime_pct": 1.2, "lsf": 0.95, "c3s_pct": 58.0},
        {},
    ),
    "energy": (
        plant_topic("IU_001", "energy", "main_meter"),
        {"power_kw": 5400.0, "interval_s": 60, "thermal_kcal_per_kg": 720.0},
        {},
    ),
    "fleet": (
        fleet_topic("TRK-0007"),
        {
            "lat": 26.9,
            "lon": 75.8,
            "speed_kmh": 41.5,
            "fuel_l": 210.0,
            "load_t": 29.5,
            "capacity_t": 30.0,
            "heading_deg": 87.0,
        },
        {
            "trip": {
                "trip_id": "T-000123",
                "origin": "IU_001",
                "destination": "GU_006",
                "mode": "road",
            },
            "status": "loaded",
        },
    ),
}


def envelope(values: dict[str, Any], *, message_id: str | None = None, **extra: Any) -> dict:
    return {
        "message_id": message_id or str(uuid.uuid4()),
        "ts": NOW.isoformat().replace("+00:00", "Z"),
        "source": "test",
        "values": values,
        **extra,
    }


def reading(family: str = "line", **overrides: Any) -> tuple[str, bytes, str]:
    """(topic, payload, message id) of a well-formed message of `family`."""
    topic, values, extra = FAMILY_VALUES[family]
    body = envelope(dict(values), **extra)
    body.update(overrides)
    return topic, json.dumps(body).encode(), body["message_id"]


def stream(n: int) -> list[tuple[str, bytes, str]]:
    families = list(FAMILY_VALUES)
    return [reading(families[i % len(families)]) for i in range(n)]


# -- processes and brokers ----------------------------------------------------------------------


class Publisher:
    """A small paho QoS 1 publisher; `send` returns once the broker has acknowledged all."""

    def __init__(self, broker: MosquittoBroker, **credentials: str) -> None:
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"test-pub-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        if credentials:
            self.client.username_pw_set(credentials["username"], credentials["password"])
        self.client.max_inflight_messages_set(500)
        self.client.connect("127.0.0.1", broker.port, keepalive=10)
        self.client.loop_start()

    def send(self, messages: Iterable[tuple[str, bytes, Any]], *, pace: float = 0.0) -> None:
        infos = []
        for topic, payload, *_ in messages:
            infos.append(self.client.publish(topic, payload, qos=1))
            if pace:
                time.sleep(pace)
        for info in infos:
            info.wait_for_publish(timeout=15)
            assert info.is_published(), "the broker did not acknowledge a QoS 1 publish"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish(broker: MosquittoBroker, messages: Iterable[tuple[str, bytes, Any]]) -> None:
    publisher = Publisher(broker)
    try:
        publisher.send(messages)
    finally:
        publisher.close()


def hermetic_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOT_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class IngestProcess:
    """`python -m clinker_pipeline.defs.telemetry.ingest` as a child process; stderr goes to a file
    so a test can wait for a log line without a reader thread."""

    _runs = 0

    def __init__(
        self,
        broker: MosquittoBroker,
        landing: Path,
        client_id: str,
        *args: str,
        env: dict[str, str] | None = None,
        broker_url: str | None = None,
    ) -> None:
        IngestProcess._runs += 1
        self.log_path = landing.parent / f"ingest-{client_id}-{IngestProcess._runs}.log"
        self.out_path = self.log_path.with_suffix(".out")
        command = [
            sys.executable,
            "-m",
            "clinker_pipeline.defs.telemetry.ingest",
            "--broker",
            broker_url or broker.url,
            "--landing",
            str(landing),
            "--client-id",
            client_id,
            "--json",
            *args,
        ]
        with self.log_path.open("wb") as err, self.out_path.open("wb") as out:
            self.process = subprocess.Popen(
                command,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env or hermetic_env(),
                cwd=landing.parent,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def wait_for_log(self, text: str, count: int = 1, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log().count(text) >= count:
                return
            if self.process.poll() is not None:
                pytest.fail(
                    f"ingestor exited ({self.process.returncode}) before {text!r}:\n{self.log()}"
                )
            time.sleep(0.05)
        pytest.fail(f"no {text!r} x{count} in the ingestor log within {timeout} s:\n{self.log()}")

    def wait(self, timeout: float = 30.0) -> tuple[int, dict]:
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"ingestor still running after {timeout} s:\n{self.log()}")
        out = self.output().strip()
        stats = json.loads(out.splitlines()[-1]) if out else {}
        return code, stats

    def terminate(self, timeout: float = 30.0) -> tuple[int, dict]:
        self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def ingestors() -> Any:
    """Starts ingestors and kills any still running when the test ends (pass or fail)."""
    started: list[IngestProcess] = []

    def start(*args: Any, **kwargs: Any) -> IngestProcess:
        ingestor = IngestProcess(*args, **kwargs)
        started.append(ingestor)
        return ingestor

    yield start
    for ingestor in started:
        ingestor.kill()


def landed_ids(landing: Path) -> list[str]:
    store = LandingStore(landing)
    ids: list[str] = []
    for batch in store.list_batches():
        ids += store.read_batch(batch)["message_id"].tolist()
    return ids


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def assert_exactly_once(landing: Path, expected: Iterable[str]) -> list[str]:
    ids = landed_ids(landing)
    twice = [i for i, n in Counter(ids).items() if n > 1]
    assert not twice, f"{len(twice)} message ids landed more than once"
    missing = set(expected) - set(ids)
    assert not missing, f"{len(missing)} messages never landed"
    return ids


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


# -- pure parts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("family", list(FAMILY_VALUES))
def test_each_family_lands_with_its_routing(family: str) -> None:
    topic, payload, message_id = reading(family)
    parsed = parse_message(topic, payload, RECEIVED)
    assert isinstance(parsed, LandedMessage), parsed
    assert (parsed.message_id, parsed.family, parsed.topic) == (message_id, family, topic)
    assert parsed.ts == NOW and parsed.ts.tzinfo is UTC
    assert parsed.received_at == RECEIVED
    assert parsed.payload == payload.decode()
    if family == "fleet":
        assert (parsed.vehicle, parsed.plant, parsed.sensor) == ("TRK-0007", None, None)
    else:
        assert parsed.vehicle is None and parsed.plant in ("IU_001", "GU_004") and parsed.sensor


def test_offsets_are_converted_to_utc_and_units_are_optional() -> None:
    topic, values, _ = FAMILY_VALUES["line"]
    body = envelope(values, ts="2026-11-27T11:30:00.250+05:30", units={"production_tph": "t/h"})
    parsed = parse_message(topic, json.dumps(body).encode(), RECEIVED)
    assert isinstance(parsed, LandedMessage)
    assert parsed.ts == datetime(2026, 11, 27, 6, 0, 0, 250000, tzinfo=UTC)
    plus_zero = envelope(values, ts="2026-11-27T06:00:00+00:00")
    assert parse_message(topic, json.dumps(plus_zero).encode(), RECEIVED).ts == NOW


def test_fleet_values_may_be_strings_but_plant_values_may_not() -> None:
    fleet, _, _ = FAMILY_VALUES["fleet"]
    body = envelope({"lat": 26.9, "lon": 75.8, "speed_kmh": 0, "ignition": "off"})
    assert isinstance(parse_message(fleet, json.dumps(body).encode(), RECEIVED), LandedMessage)
    line, _, _ = FAMILY_VALUES["line"]
    parsed = parse_message(line, json.dumps(body).encode(), RECEIVED)
    assert isinstance(parsed, DeadLetter)
    assert parsed.reason == "value 'ignition' is not a number or boolean: \"off\""


def _body(**changes: Any) -> bytes:
    body = envelope(dict(FAMILY_VALUES["line"][1]))
    for key, value in changes.items():
        if value is _DROP:
            body.pop(key)
        else:
            body[key] = value
    return json.dumps(body).encode()


_DROP = object()
LINE = FAMILY_VALUES["line"][0]
FLEET = FAMILY_VALUES["fleet"][0]


MALFORMED = [
    (LINE, b'{"message_id": "a", "ts": ', "not JSON: Expecting value: line 1 column 27 (char 26)"),
    (LINE, b"", "not JSON: Expecting value: line 1 column 1 (char 0)"),
    (LINE, _body() + b" trailing", "not JSON: Extra data"),
    (LINE, b"\xff\xfe{}", "not UTF-8:"),
    (LINE, b"[1, 2]", "not a JSON object (got array)"),
    (LINE, b"[" * 100_000 + b"]" * 100_000, "not JSON: nested too deeply"),
    (LINE, _body(message_id=_DROP), "missing message_id"),
    (LINE, _body(message_id=""), "message_id is not a non-empty string"),
    (LINE, _body(message_id=42), "message_id is not a non-empty string"),
    (LINE, _body(ts=_DROP), "missing ts"),
    (LINE, _body(ts="2026-11-27T06:00:00"), 'ts has no UTC offset: "2026-11-27T06:00:00"'),
    (LINE, _body(ts="2026-11-27"), "ts has no UTC offset"),
    (LINE, _body(ts="27/11/2026 06:00"), "ts is not an ISO-8601 timestamp"),
    (LINE, _body(ts=1764223200), "ts is not a string (got number)"),
    (LINE, _body(ts="3026-11-27T06:00:00Z"), "ts is out of range (1900-2200)"),
    (LINE, _body(values=_DROP), "missing values"),
    (LINE, _body(values=[1, 2]), "values is not an object (got array)"),
    (LINE, _body(values={"production_tph": "212"}), "value 'production_tph' is not a number"),
    (LINE, _body(values={"production_tph": None}), "value 'production_tph' is not a number"),
    (
        LINE,
        b'{"message_id": "a", "ts": "2026-11-27T06:00:00Z", "values": {"x": NaN}}',
        "value 'x' is not a finite number: nan",
    ),
    (LINE, _body(units={"production_tph": 1}), "unit of 'production_tph' is not a string"),
    (LINE, _body(units="t/h"), "units is not an object (got string)"),
    (FLEET, _body(trip="T-1"), "trip is not an object (got string)"),
    (FLEET, _body(trip={"trip_id": 7}), "trip.trip_id is not a string: 7"),
    (FLEET, _body(status=3), "status is not a string (got number)"),
    ("clinker/plants/IU_001/kiln/kiln1", _body(), "topic does not match the scheme"),
    ("clinker/plants/IU_001/line", _body(), "topic does not match the scheme"),
    ("clinker/plants/IU 001/line/kiln1", _body(), "topic does not match the scheme"),
    ("clinker/fleet/TRK-0007/position", _body(), "topic does not match the scheme"),
    ("other/plants/IU_001/line/kiln1", _body(), "topic does not match the scheme"),
]


@pytest.mark.parametrize(
    ("topic", "payload", "reason"), MALFORMED, ids=[reason for _, _, reason in MALFORMED]
)
def test_malformed_messages_become_dead_letters_with_a_precise_reason(
    topic: str, payload: bytes, reason: str
) -> None:
    parsed = parse_message(topic, payload, RECEIVED)
    assert isinstance(parsed, DeadLetter), parsed
    assert parsed.reason.startswith(reason), parsed.reason
    assert base64.b64decode(parsed.payload_b64) == payload
    assert parsed.payload == payload.decode("utf-8", errors="replace")
    assert (parsed.topic, parsed.received_at) == (topic, RECEIVED)


def test_topic_scheme_helpers() -> None:
    assert parse_topic("clinker/plants/GU_004/silo/clinker_silo1").family == "silo"
    assert parse_topic("clinker/fleet/RAKE-02/telemetry").vehicle == "RAKE-02"
    assert parse_topic("clinker/plants/+/line/kiln1") is None
    assert shared_subscription("clinker/#", "ingest") == "$share/ingest/clinker/#"
    assert shared_subscription("clinker/#", None) == "clinker/#"
    with pytest.raises(ValueError, match="not a valid topic segment"):
        plant_topic("IU/001", "line", "kiln1")
    with pytest.raises(ValueError, match="unknown plant telemetry family"):
        plant_topic("IU_001", "fleet", "kiln1")
    with pytest.raises(ValueError, match="share group"):
        shared_subscription("clinker/#", "a/b")


def test_broker_settings_from_url_and_env() -> None:
    plain = BrokerSettings.from_url("mqtt://broker.plant.local")
    assert (plain.host, plain.port, plain.tls, plain.username) == (
        "broker.plant.local",
        1883,
        False,
        None,
    )
    assert BrokerSettings.from_url("mqtt://127.0.0.1:18830").port == 18830
    secure = BrokerSettings.from_url("mqtts://ingest:p%40ss%2Fword@broker.example.com")
    assert (secure.port, secure.tls, secure.username, secure.password) == (
        8883,
        True,
        "ingest",
        "p@ss/word",
    )
    assert BrokerSettings.from_url("mqtts://h:9883").port == 9883
    for text in (repr(secure), str(secure), secure.url):
        assert "p@ss/word" not in text and "p%40ss" not in text
    assert secure.url == "mqtts://broker.example.com:8883"
    overridden = BrokerSettings.from_url("mqtt://u:pw@h", username="other", client_id="c1")
    assert (overridden.username, overridden.password, overridden.client_id) == ("other", "pw", "c1")

    for bad, match in (
        ("http://u:hunter2-secret@h", "scheme must be one of"),
        ("mqtt://u:hunter2-secret@", "has no host"),
        ("mqtt://u:hunter2-secret@h:notaport", "is not valid"),
    ):
        with pytest.raises(ValueError, match=match) as raised:
            BrokerSettings.from_url(bad)
        assert "hunter2-secret" not in str(raised.value)

    env = {
        "IOT_BROKER_URL": "mqtts://broker.example.com:9000",
        "IOT_USERNAME": "ingest",
        "IOT_PASSWORD": PASSWORD,
        "IOT_CA_FILE": "/etc/ssl/plant-ca.pem",
        "IOT_CLIENT_ID": "ingest-1",
    }
    from_env = BrokerSettings.from_env(env)
    assert (from_env.host, from_env.port, from_env.tls, from_env.ca_file) == (
        "broker.example.com",
        9000,
        True,
        "/etc/ssl/plant-ca.pem",
    )
    assert (from_env.username, from_env.password, from_env.client_id) == (
        "ingest",
        PASSWORD,
        "ingest-1",
    )
    assert PASSWORD not in repr(from_env)
    # --broker beats IOT_BROKER_URL; credentials in the URL beat the environment's
    cli = BrokerSettings.from_env(env, url="mqtt://me:mine@127.0.0.1:1")
    assert (cli.host, cli.port, cli.tls, cli.username, cli.password) == (
        "127.0.0.1",
        1,
        False,
        "me",
        "mine",
    )
    assert BrokerSettings.from_env({}).url == "mqtt://127.0.0.1:1883"


def test_make_client_refuses_a_missing_ca_file(tmp_path: Path) -> None:
    settings = BrokerSettings.from_url("mqtts://h", ca_file=str(tmp_path / "missing-ca.pem"))
    with pytest.raises(ValueError, match=r"missing-ca\.pem"):
        make_client(settings, client_id="c")
    client = make_client(BrokerSettings.from_url("mqtts://u:pw@h"), client_id="c")
    assert client.protocol == mqtt.MQTTv5
    props = connect_properties(3600, 10_000)
    assert (props.SessionExpiryInterval, props.ReceiveMaximum) == (3600, 10_000)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--broker", "http://u:hunter2-secret@h"], "scheme must be one of"),
        (["--share-group", "a/b"], "share group 'a/b' must match"),
        (["--protocol", "5", "--topic", "clinker/#", "--batch-size", "0"], None),
    ],
)
def test_bad_arguments_fail_before_connecting(args, message, capsys, tmp_path) -> None:
    from clinker_pipeline.defs.telemetry.ingest import main

    argv = ["--landing", str(tmp_path), *args]
    if message is None:
        with pytest.raises(SystemExit) as exited:  # argparse refuses it
            main(argv)
        assert exited.value.code == 2
        return
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "hunter2-secret" not in err


def test_landing_store_round_trip(tmp_path: Path) -> None:
    store = LandingStore(tmp_path / "landing")
    assert store.list_batches() == [] and store.recent_message_ids() == set()
    messages = [parse_message(t, p, RECEIVED) for t, p, _ in stream(10)]
    dead = [parse_message(LINE, b"{oops", RECEIVED)]
    first = store.write_batch(messages, dead, "ingest/host:1")
    only_dead = store.write_batch([], dead, "ingest/host:1")
    clean = store.write_batch(messages[:2], [], "ingest/host:1")
    assert store.list_batches() == [first.batch_id, only_dead.batch_id, clean.batch_id]
    assert store.list_batches(after=first.batch_id) == [only_dead.batch_id, clean.batch_id]
    assert "-ingest_host_1-" in first.batch_id and len(first.batch_id.split("-")[0]) == 20

    frame = store.read_batch(first.batch_id)
    assert list(frame.columns) == list(LANDED_COLUMNS)
    assert len(frame) == 10 and set(frame["family"]) == set(FAMILY_VALUES)
    assert frame["ts"].dt.tz is None and frame["ts"].iloc[0] == NOW.replace(tzinfo=None)
    assert set(frame["client_id"]) == {"ingest/host:1"}
    assert set(frame["batch_id"]) == {first.batch_id}
    fleet_row = frame[frame["family"] == "fleet"].iloc[0]
    assert fleet_row["plant"] is None and fleet_row["vehicle"] == "TRK-0007"

    letters = store.read_dead_letters(first.batch_id)
    assert list(letters.columns) == list(DEAD_LETTER_COLUMNS)
    assert letters.iloc[0]["reason"].startswith("not JSON")
    assert base64.b64decode(letters.iloc[0]["payload_b64"]) == b"{oops"
    assert len(store.read_batch(only_dead.batch_id)) == 0
    empty = store.read_dead_letters(clean.batch_id)
    assert list(empty.columns) == list(DEAD_LETTER_COLUMNS) and empty.empty

    assert store.recent_message_ids() == {m.message_id for m in messages}
    assert store.recent_message_ids(batches=1) == {m.message_id for m in messages[:2]}
    leftovers = [p.name for p in (tmp_path / "landing").rglob("*") if p.name.startswith(".")]
    assert leftovers == []
    with pytest.raises(ValueError, match="not a landing batch id"):
        store.read_batch("../../etc/passwd")
    with pytest.raises(FileNotFoundError):
        store.read_batch("0" * 20 + "-x-000000")


# -- the ingestor against real brokers ----------------------------------------------------------


@needs_mosquitto
@pytest.mark.timeout(60)
def test_every_published_message_lands_once(private_broker, ingestors, tmp_path) -> None:
    landing = tmp_path / "landing"
    messages = stream(1000)
    ingestor = ingestors(
        private_broker, landing, "ingest-plain", "--batch-size", "300", "--max-messages", "1000"
    )
    ingestor.wait_for_log("subscribed")
    publish(private_broker, messages)
    code, stats = ingestor.wait()
    assert code == 0, ingestor.log()
    assert stats["landed"] == 1000 and stats["dead_letters"] == 0 and stats["batches"] >= 4
    ids = assert_exactly_once(landing, [m[2] for m in messages])
    assert len(ids) == 1000
    frame = LandingStore(landing).read_batch(LandingStore(landing).list_batches()[0])
    assert set(frame["client_id"]) == {"ingest-plain"}


@needs_mosquitto
@pytest.mark.timeout(60)
def test_sigkill_mid_stream_and_restart_lands_all_once(private_broker, ingestors, tmp_path) -> None:
    """SIGKILL between writing a batch and acknowledging it is the worst moment: the broker
    sends those messages again and the restarted ingestor must recognise them."""
    landing = tmp_path / "landing"
    messages = stream(3000)
    args = ("--batch-size", "100", "--flush-interval", "0.1")
    first = ingestors(private_broker, landing, "ingest-crash", *args)
    first.wait_for_log("subscribed")
    publisher = Publisher(private_broker)
    sender = threading.Thread(target=publisher.send, args=(messages,), kwargs={"pace": 0.0004})
    sender.start()
    try:
        wait_until(lambda: len(landed_ids(landing)) >= 1000, "a third of the stream to land")
        workers = children(first.process.pid)
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
        # the landing worker dies with it, so no batch completes after the crash
        wait_until(lambda: not any(alive(pid) for pid in workers), "the landing worker to die")
        killed_at = len(landed_ids(landing))
        assert killed_at < 3000, "the stream ended before the crash: nothing was tested"
        second = ingestors(private_broker, landing, "ingest-crash", *args, "--idle-exit", "2")
        sender.join(30)
        code, stats = second.wait(40)
    finally:
        publisher.close()
    assert code == 0, second.log()
    assert "session present: True" in second.log()
    assert_exactly_once(landing, [m[2] for m in messages])
    assert stats["landed"] == 3000 - killed_at


@needs_mosquitto
@pytest.mark.timeout(60)
def test_messages_landed_but_not_acknowledged_before_a_crash_are_not_landed_again(
    private_broker, ingestors, tmp_path
) -> None:
    """The crash window a SIGKILL rarely hits (batch written, PUBACKs not yet sent), made
    certain: the batch is already in the store when the broker delivers its messages."""
    landing = tmp_path / "landing"
    first = ingestors(private_broker, landing, "ingest-window")
    first.wait_for_log("subscribed")
    assert first.terminate()[0] == 0
    messages = stream(300)
    publish(private_broker, messages)
    crashed = [parse_message(t, p, RECEIVED) for t, p, _ in messages[:120]]
    LandingStore(landing).write_batch(crashed, [], "ingest-window")
    second = ingestors(private_broker, landing, "ingest-window", "--idle-exit", "1.5")
    code, stats = second.wait()
    assert code == 0, second.log()
    assert (stats["received"], stats["landed"], stats["duplicates"]) == (300, 180, 120)
    assert_exactly_once(landing, [m[2] for m in messages])


@needs_mosquitto
@pytest.mark.timeout(60)
@pytest.mark.parametrize("protocol", ["5", "311"])
def test_messages_published_while_ingestor_and_broker_were_down_are_landed(
    private_broker, ingestors, tmp_path, protocol
) -> None:
    landing = tmp_path / "landing"
    args = ("--protocol", protocol, "--session-expiry", "600")
    first = ingestors(private_broker, landing, f"ingest-offline-{protocol}", *args)
    first.wait_for_log("subscribed")
    assert first.terminate()[0] == 0
    messages = stream(500)
    publish(private_broker, messages)
    private_broker.stop()  # SIGTERM: Mosquitto writes its persistence file
    private_broker.start()
    second = ingestors(
        private_broker, landing, f"ingest-offline-{protocol}", *args, "--max-messages", "500"
    )
    code, stats = second.wait()
    assert code == 0, second.log()
    assert "session present: True" in second.log()
    assert stats["landed"] == 500
    assert_exactly_once(landing, [m[2] for m in messages])


@needs_mosquitto
@pytest.mark.timeout(60)
def test_ingestor_reconnects_when_the_broker_restarts(private_broker, ingestors, tmp_path):
    landing = tmp_path / "landing"
    ingestor = ingestors(private_broker, landing, "ingest-reconnect", "--flush-interval", "0.1")
    ingestor.wait_for_log("subscribed")
    before = stream(100)
    publish(private_broker, before)
    wait_until(lambda: len(landed_ids(landing)) == 100, "the first 100 messages to land")
    private_broker.stop()
    ingestor.wait_for_log("lost the connection")
    private_broker.start()
    ingestor.wait_for_log("subscribed", count=2)
    after = stream(100)
    publish(private_broker, after)
    wait_until(lambda: len(landed_ids(landing)) == 200, "the messages sent after the restart")
    code, stats = ingestor.terminate()
    assert code == 0, ingestor.log()
    assert stats["connections"] == 2 and stats["landed"] == 200
    assert_exactly_once(landing, [m[2] for m in before + after])


@needs_mosquitto
@pytest.mark.timeout(60)
def test_a_duplicate_message_id_lands_once(private_broker, ingestors, tmp_path) -> None:
    landing = tmp_path / "landing"
    ingestor = ingestors(
        private_broker, landing, "ingest-dup", "--flush-interval", "0.2", "--idle-exit", "1.5"
    )
    ingestor.wait_for_log("subscribed")
    original = reading("silo")
    other = reading("quality")
    publish(private_broker, [original, original, other])  # a duplicate within one batch
    wait_until(lambda: len(landed_ids(landing)) == 2, "the first batch")
    publish(private_broker, [original])  # and one in a later batch
    code, stats = ingestor.wait()
    assert code == 0, ingestor.log()
    assert stats["received"] == 4 and stats["landed"] == 2 and stats["duplicates"] == 2
    assert sorted(landed_ids(landing)) == sorted([original[2], other[2]])


@needs_mosquitto
@pytest.mark.timeout(60)
def test_malformed_messages_are_dead_lettered_and_the_rest_lands(
    private_broker, ingestors, tmp_path
) -> None:
    landing = tmp_path / "landing"
    ingestor = ingestors(private_broker, landing, "ingest-dead", "--idle-exit", "1.5")
    ingestor.wait_for_log("subscribed")
    good = stream(5)
    naive = _body(ts="2026-11-27T06:00:00")
    bad = [
        (LINE, b'{"message_id": "x", "ts": "2026-11-27T06:00:00Z", "values": {', "not JSON: "),
        (LINE, _body(message_id=_DROP), "missing message_id"),
        (LINE, naive, "ts has no UTC offset"),
        (LINE, _body(values={"production_tph": "high"}), "value 'production_tph' is not a"),
        ("clinker/plants/IU_001/kiln/kiln1", _body(), "topic does not match the scheme"),
        (LINE, b"\x80\x81binary", "not UTF-8"),
    ]
    publish(private_broker, good[:3] + bad + good[3:])
    code, stats = ingestor.wait()
    assert code == 0, ingestor.log()
    assert stats["landed"] == 5 and stats["dead_letters"] == 6
    assert_exactly_once(landing, [m[2] for m in good])
    store = LandingStore(landing)
    letters = [store.read_dead_letters(b) for b in store.list_batches()]
    rows = [row for frame in letters for row in frame.to_dict("records")]
    assert len(rows) == 6
    by_payload = {base64.b64decode(r["payload_b64"]): r for r in rows}
    for topic, payload, reason in bad:
        row = by_payload[payload]
        assert row["reason"].startswith(reason), row["reason"]
        assert row["topic"] == topic and row["client_id"] == "ingest-dead"
        assert row["payload"] == payload.decode("utf-8", errors="replace")


@needs_mosquitto
@pytest.mark.timeout(60)
def test_sigterm_lands_and_acknowledges_what_is_held(private_broker, ingestors, tmp_path):
    landing = tmp_path / "landing"
    args = ("--batch-size", "100000", "--flush-interval", "3600")
    ingestor = ingestors(private_broker, landing, "ingest-term", *args)
    ingestor.wait_for_log("subscribed")
    messages = stream(50)
    publish(private_broker, messages)
    time.sleep(1.0)  # delivered over loopback long before this; held in memory
    assert landed_ids(landing) == []
    code, stats = ingestor.terminate()
    assert code == 0, ingestor.log()
    assert stats["landed"] == 50 and stats["batches"] == 1
    assert_exactly_once(landing, [m[2] for m in messages])
    # acknowledged: a restart with the same client id gets nothing again
    again = ingestors(private_broker, landing, "ingest-term", "--idle-exit", "1")
    code, stats = again.wait()
    assert code == 0 and stats["received"] == 0, again.log()


@needs_mosquitto
@pytest.mark.timeout(60)
def test_a_share_group_splits_one_stream(private_broker, ingestors, tmp_path) -> None:
    landing = tmp_path / "landing"
    args = ("--share-group", "g", "--flush-interval", "0.1")
    a = ingestors(private_broker, landing, "ingest-a", *args)
    b = ingestors(private_broker, landing, "ingest-b", *args)
    a.wait_for_log("subscribed (QoS 1) to $share/g/clinker/#")
    b.wait_for_log("subscribed (QoS 1) to $share/g/clinker/#")
    messages = stream(600)
    publish(private_broker, messages)
    wait_until(lambda: len(landed_ids(landing)) >= 600, "the union to reach 600")
    (code_a, stats_a), (code_b, stats_b) = a.terminate(), b.terminate()
    assert code_a == code_b == 0
    assert stats_a["landed"] > 0 and stats_b["landed"] > 0
    assert stats_a["landed"] + stats_b["landed"] == 600
    ids = assert_exactly_once(landing, [m[2] for m in messages])
    assert len(ids) == 600
    store = LandingStore(landing)
    clients = Counter(
        c for batch in store.list_batches() for c in store.read_batch(batch)["client_id"]
    )
    assert set(clients) == {"ingest-a", "ingest-b"}


@needs_mosquitto
@pytest.mark.timeout(60)
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_dead_landing_worker_stops_the_ingestor_and_nothing_is_lost(
    private_broker, ingestors, tmp_path
) -> None:
    landing = tmp_path / "landing"
    first = ingestors(private_broker, landing, "ingest-worker", "--flush-interval", "0.1")
    first.wait_for_log("subscribed")
    workers = children(first.process.pid)
    assert len(workers) == 1, workers
    os.kill(workers[0], signal.SIGKILL)
    messages = stream(200)
    publish(private_broker, messages)
    code, _ = first.wait()
    assert code == 1 and "the landing worker exited" in first.log(), first.log()
    second = ingestors(private_broker, landing, "ingest-worker", "--idle-exit", "1.5")
    code, stats = second.wait()
    assert code == 0 and stats["landed"] == 200, second.log()
    assert_exactly_once(landing, [m[2] for m in messages])


@needs_mosquitto
@pytest.mark.timeout(60)
def test_a_failed_write_acknowledges_nothing(private_broker, ingestors, tmp_path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "batches").write_text("not a directory")  # every batch write fails
    first = ingestors(private_broker, landing, "ingest-disk", "--flush-interval", "0.1")
    first.wait_for_log("subscribed")
    messages = stream(100)
    publish(private_broker, messages)
    code, stats = first.wait()
    assert code == 1, first.log()
    assert "cannot land under" in first.log() and "will be redelivered" in first.log()
    assert stats["landed"] == 0
    (landing / "batches").unlink()
    second = ingestors(private_broker, landing, "ingest-disk", "--max-messages", "100")
    code, stats = second.wait()
    assert code == 0 and stats["landed"] == 100, second.log()
    assert_exactly_once(landing, [m[2] for m in messages])


@needs_mosquitto
@pytest.mark.timeout(60)
def test_the_password_never_reaches_output_or_logs(tmp_path, ingestors) -> None:
    broker = MosquittoBroker(tmp_path / "mosquitto", users={"ingest": PASSWORD})
    broker.start()
    try:
        landing = tmp_path / "landing"
        env = {**hermetic_env(), "IOT_USERNAME": "ingest", "IOT_PASSWORD": PASSWORD}
        ok = ingestors(
            broker,
            landing,
            "ingest-auth",
            "--max-messages",
            "10",
            "--log-level",
            "DEBUG",
            env=env,
        )
        ok.wait_for_log("subscribed")
        publisher = Publisher(broker, username="ingest", password=PASSWORD)
        publisher.send(stream(10))
        publisher.close()
        code, stats = ok.wait()
        assert code == 0 and stats["landed"] == 10, ok.log()

        wrong = ingestors(broker, landing, "ingest-wrong", env={**env, "IOT_PASSWORD": "nope-x1"})
        code, _ = wrong.wait()
        assert code == 1
        assert "refused the connection" in wrong.log()

        quoted = PASSWORD.replace("!", "%21")
        refused = ingestors(
            broker,
            landing,
            "ingest-refused",
            broker_url=f"mqtt://ingest:{quoted}@127.0.0.1:{free_port()}",
        )
        code, _ = refused.wait()
        assert code == 1 and "cannot connect to the MQTT broker mqtt://127.0.0.1" in refused.log()
    finally:
        broker.kill()
    for run in (ok, wrong, refused):
        text = run.log() + run.output()
        assert PASSWORD not in text and quoted not in text
        assert "nope-x1" not in text


def test_timestamps_round_trip_through_the_store(tmp_path: Path) -> None:
    """Microseconds and the UTC conversion survive the float path the store uses."""
    store = LandingStore(tmp_path)
    topic, values, _ = FAMILY_VALUES["line"]
    stamps = [
        datetime(2026, 11, 27, 6, 0, 0, 999999, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, 1, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2199, 1, 1, tzinfo=UTC),
    ]
    messages = [
        parse_message(topic, json.dumps(envelope(values, ts=ts.isoformat())).encode(), RECEIVED)
        for ts in stamps
    ]
    frame = store.read_batch(store.write_batch(messages, [], "c").batch_id)
    assert [t.to_pydatetime() for t in frame["ts"]] == [
        s.astimezone(UTC).replace(tzinfo=None) for s in stamps
    ]
