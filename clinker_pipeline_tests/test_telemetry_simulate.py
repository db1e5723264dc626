"""The telemetry simulator: its messages (pure, deterministic) and its publishing (real broker).

The message tests check the contract the ingestor and the Dagster assets rely on: topics and
envelope of the spec, plants and lanes of the instance, breaches that the threshold rules really
raise, malformed messages the ingestor really dead-letters. The publishing tests run against the
system Mosquitto on 127.0.0.1:1883 under a private topic prefix, so parallel tests do not see
each other's messages.
"""

from __future__ import annotations

import itertools
import json
import math
import operator
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import pandas as pd
import pytest

from clinker_pipeline.defs.telemetry import simulate
from clinker_pipeline.defs.telemetry.payloads import DeadLetter, LandedMessage, parse_message
from clinker_pipeline.defs.telemetry.rules import RuleSet
from clinker_pipeline.defs.telemetry.simulate import (
    KIND_BREACH,
    KIND_MALFORMED,
    KIND_OK,
    great_circle_km,
    iter_messages,
)
from clinker_pipeline.defs.telemetry.topics import parse_topic
from clinker_pipeline.instance import load_instance, sample_instance_path
from clinker_pipeline_tests.helpers import REPO
from clinker_pipeline_tests.mosquitto import MosquittoBroker, mosquitto_binary

START = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
N = 20_000
BROKER_HOST, BROKER_PORT = "127.0.0.1", 1883
OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return load_instance(sample_instance_path()).tables


@pytest.fixture(scope="module")
def messages(tables: dict[str, pd.DataFrame]) -> list[simulate.SimMessage]:
    """About 140 rounds (2.3 h of simulated time) of the sample instance, default shares."""
    return list(itertools.islice(iter_messages(tables, 11, 0.01, 0.02, START), N))


def _well_formed(messages: list[simulate.SimMessage]) -> list[tuple[str, dict, str]]:
    return [(m.topic, json.loads(m.payload), m.kind) for m in messages if m.kind != KIND_MALFORMED]


# -- the generator ------------------------------------------------------------------------------


def test_same_seed_and_start_give_the_same_bytes(tables) -> None:
    def take(seed: int, start: datetime) -> list[simulate.SimMessage]:
        return list(itertools.islice(iter_messages(tables, seed, 0.05, 0.05, start), 3000))

    first = take(5, START)
    assert first == take(5, START)
    other_seed = take(6, START)
    assert [m.payload for m in other_seed] != [m.payload for m in first]
    # A later run with the same seed gets new message ids, so an ingestor that remembers the
    # first run's ids does not drop the second as duplicates.
    later = take(5, START + timedelta(hours=1))
    first_ids = {m.message_id for m in first if m.kind != KIND_MALFORMED}
    assert first_ids.isdisjoint(m.message_id for m in later if m.kind != KIND_MALFORMED)


def test_well_formed_messages_follow_the_envelope_and_topic_scheme(tables, messages) -> None:
    plants = tables["plants"].set_index("iugu_code")["plant_type"].to_dict()
    lanes = {
        (r.from_code, r.to_code, {"T1": "road", "T2": "rail"}[r.transport_code])
        for r in tables["logistics_lanes"].itertuples()
    }
    ids = []
    families = Counter()
    received = datetime.now(UTC)
    for topic, body, kind in _well_formed(messages):
        info = parse_topic(topic)
        assert info is not None, topic
        families[info.family] += 1
        assert set(body) >= {"message_id", "ts", "source", "units", "values"}
        ids.append(body["message_id"])
        assert body["ts"].endswith("Z")
        ts = datetime.fromisoformat(body["ts"])
        assert START <= ts < START + timedelta(hours=3)
        assert all(isinstance(u, str) for u in body["units"].values())
        numeric = {k for k, v in body["values"].items() if not isinstance(v, bool)}
        assert numeric == set(body["units"]), "every number has its unit"
        assert isinstance(parse_message(topic, json.dumps(body).encode(), received), LandedMessage)
        values = body["values"]
        assert all(isinstance(v, int | float) for v in values.values())
        if info.family == "fleet":
            trip = body["trip"]
            assert (trip["origin"], trip["destination"], trip["mode"]) in lanes
            assert trip["trip_id"].startswith("T-")
            assert body["status"] in {"loaded", "empty", "loading", "unloading", "stopped"}
            assert info.vehicle.startswith("TRK-" if trip["mode"] == "road" else "RAKE-")
            assert values["speed_kmh"] >= 0 and 0 <= values["load_t"] <= values["capacity_t"]
            assert 0 <= values["heading_deg"] < 360 and values["fuel_l"] > 0
            continue
        assert info.plant in plants
        if info.family == "line":
            assert values["running"] is True and values["production_tph"] >= 0
            assert ("kiln_temp_c" in values) == (plants[info.plant] == "IU")
        elif info.family == "silo":
            assert 0 <= values["level_pct"] <= 100
            assert values["level_pct"] == pytest.approx(
                100 * values["level_t"] / values["capacity_t"], abs=0.01
            )
        elif info.family == "quality":
            assert plants[info.plant] == "IU"
            assert set(values) == {"free_lime_pct", "lsf", "c3s_pct"}
            if kind == KIND_OK:
                assert 0.5 <= values["free_lime_pct"] <= 2.0 and 0.90 <= values["lsf"] <= 1.0
                assert 50 <= values["c3s_pct"] <= 65
        else:
            assert values["power_kw"] >= 0 and values["interval_s"] == 60
            if plants[info.plant] == "IU":
                assert 680 <= values["thermal_kcal_per_kg"] <= 800
    assert len(ids) == len(set(ids)), "message ids must be unique"
    assert set(families) == {"line", "silo", "quality", "energy", "fleet"}
    # every plant of the instance reports
    assert {parse_topic(t).plant for t, _, _ in _well_formed(messages)} >= set(plants)


def test_malformed_messages_are_dead_lettered_for_each_listed_reason(messages) -> None:
    malformed = [m for m in messages if m.kind == KIND_MALFORMED]
    assert 0.7 * 0.01 * N <= len(malformed) <= 1.3 * 0.01 * N
    reasons = Counter()
    received = datetime.now(UTC)
    for message in malformed:
        result = parse_message(message.topic, message.payload, received)
        assert isinstance(result, DeadLetter), message
        reason = result.reason
        for key, pattern in (
            ("invalid_json", "not JSON"),
            ("missing_message_id", "missing message_id"),
            ("naive_ts", "no UTC offset"),
            ("non_numeric", "is not a number"),
            ("bad_topic", "topic does not match"),
        ):
            if pattern in reason:
                reasons[key] += 1
                break
        else:
            raise AssertionError(f"unexpected dead-letter reason {reason!r}")
    assert set(reasons) == set(simulate.MALFORMED_KINDS)


def test_breaches_are_what_the_rules_raise_and_nothing_else(tables, messages) -> None:
    rules = RuleSet.load()
    first = tables["closing_stock_bounds"].sort_values("time_period").drop_duplicates("iugu_code")
    safety = dict(zip(first["iugu_code"], first["min_close_stock"], strict=True))
    hit_by = Counter()
    kinds = Counter(m.kind for m in messages)
    assert 0.5 * 0.02 * N <= kinds[KIND_BREACH] <= 1.5 * 0.02 * N
    for topic, body, kind in _well_formed(messages):
        info = parse_topic(topic)
        values = body["values"]
        hits = []
        for rule in rules.rules:
            if rule.family != info.family:
                continue
            if rule.kind == "stopped":
                if body["status"] == "stopped":
                    assert values["speed_kmh"] == 0
                    hits.append(rule.name)
                continue
            if rule.field not in values:
                continue
            limit = safety[info.plant] if rule.threshold_from == "safety_stock" else rule.threshold
            if OPS[rule.op](values[rule.field], limit):
                hits.append(rule.name)
        assert bool(hits) == (kind == KIND_BREACH), (topic, body, kind)
        hit_by.update(hits)
    assert set(hit_by) == {r.name for r in rules.rules}, hit_by


def test_a_breach_stop_lasts_past_the_rules_30_minutes(messages) -> None:
    stops: dict[str, list[datetime]] = {}
    for topic, body, _ in _well_formed(messages):
        if body.get("status") == "stopped":
            stops.setdefault(parse_topic(topic).vehicle, []).append(
                datetime.fromisoformat(body["ts"])
            )
    assert stops
    longest = max(max(ts) - min(ts) for ts in stops.values())
    assert longest > timedelta(minutes=30)


def test_fleet_moves_between_origin_and_destination(tables, messages) -> None:
    coords = {
        r.iugu_code: (r.latitude, r.longitude) for r in tables["plants"].itertuples(index=False)
    }
    by_vehicle: dict[str, list[dict]] = {}
    for topic, body, _ in _well_formed(messages):
        info = parse_topic(topic)
        if info.family != "fleet":
            continue
        by_vehicle.setdefault(info.vehicle, []).append(body)
        values, trip = body["values"], body["trip"]
        a, b = coords[trip["origin"]], coords[trip["destination"]]
        p = (values["lat"], values["lon"])
        # on the great circle between the two plants: the detour through p is (almost) nothing
        detour = great_circle_km(a, p) + great_circle_km(p, b) - great_circle_km(a, b)
        assert detour < 0.5, (body, detour)
        status = body["status"]
        if status == "loaded":
            assert values["load_t"] > 0.9 * values["capacity_t"] and values["speed_kmh"] > 0
        elif status == "empty":
            assert values["load_t"] == 0 and values["speed_kmh"] > 0
        elif status in ("loading", "unloading", "stopped"):
            assert values["speed_kmh"] == 0
        if status == "loading":
            assert great_circle_km(p, a) < 0.01
        if status == "unloading":
            assert great_circle_km(p, b) < 0.01
    modes = Counter(bodies[0]["trip"]["mode"] for bodies in by_vehicle.values())
    assert modes["road"] > 0 and modes["rail"] > 0
    capacity = {b[0]["trip"]["mode"]: [] for b in by_vehicle.values()}
    for bodies in by_vehicle.values():
        capacity[bodies[0]["trip"]["mode"]].append(bodies[0]["values"]["capacity_t"])
    assert all(2500 <= c <= 4000 for c in capacity["rail"])
    assert all(20 <= c <= 40 for c in capacity["road"])
    # vehicles in transit really move, and a loaded vehicle heads away from its origin
    moved = 0
    for bodies in by_vehicle.values():
        transit = [b for b in bodies if b["status"] == "loaded"]
        if len(transit) > 10:
            a = coords[transit[0]["trip"]["origin"]]
            first = (transit[0]["values"]["lat"], transit[0]["values"]["lon"])
            last = (transit[-1]["values"]["lat"], transit[-1]["values"]["lon"])
            if transit[0]["trip"]["trip_id"] == transit[-1]["trip"]["trip_id"]:
                assert great_circle_km(a, last) >= great_circle_km(a, first)
                moved += great_circle_km(first, last) > 1.0
    assert moved > 0


def test_readings_are_plausible_walks_around_the_instance(tables, messages) -> None:
    capacity = (
        tables["clinker_capacity"].sort_values("time_period").drop_duplicates("iu_code")
    ).set_index("iu_code")["capacity"]
    opening = tables["opening_stock"].set_index("iugu_code")["opening_stock"]
    production: dict[str, list[float]] = {}
    first_levels: dict[str, dict[str, float]] = {}
    silo_series: dict[tuple[str, str], list[float]] = {}
    for topic, body, kind in _well_formed(messages):
        info = parse_topic(topic)
        values = body["values"]
        if info.family == "line" and info.plant in capacity.index:
            production.setdefault(info.plant, []).append(values["production_tph"])
        if info.family == "silo" and kind == KIND_OK:
            first_levels.setdefault(info.plant, {}).setdefault(info.sensor, values["level_t"])
            silo_series.setdefault((info.plant, info.sensor), []).append(values["level_t"])
    for plant, series in production.items():
        nominal = capacity[plant] / 720
        assert 0.85 * nominal <= sum(series) / len(series) <= 1.03 * nominal
    for plant, levels in first_levels.items():  # silos start at the instance's opening stock
        assert sum(levels.values()) == pytest.approx(opening[plant], rel=0.02)
    assert sum(len(set(s)) > 1 for s in silo_series.values()) > 0.8 * len(silo_series)


def test_no_shares_no_surprises(tables) -> None:
    kinds = {m.kind for m in itertools.islice(iter_messages(tables, 1, 0.0, 0.0, START), 3000)}
    assert kinds == {KIND_OK}


def test_public_dataset_without_coordinates_still_has_a_fleet(tables) -> None:
    bare = dict(tables)
    bare["plants"] = tables["plants"].drop(columns=["latitude", "longitude", "plant_name"])
    fleet = [
        json.loads(m.payload)
        for m in itertools.islice(iter_messages(bare, 2, 0.0, 0.0, START), 2000)
        if "/fleet/" in m.topic
    ]
    assert fleet and all(8 <= f["values"]["lat"] <= 30 for f in fleet)


def test_topic_prefix_and_interval(tables) -> None:
    stream = iter_messages(tables, 3, 0.0, 0.0, START, interval_s=5.0, topic_prefix="t1/abc")
    first = list(itertools.islice(stream, 500))
    assert all(m.topic.startswith("t1/abc/") for m in first)
    energy = [json.loads(m.payload) for m in first if "/energy/" in m.topic]
    assert {e["values"]["interval_s"] for e in energy} == {5.0}
    last = max(datetime.fromisoformat(json.loads(m.payload)["ts"]) for m in first)
    assert last < START + timedelta(seconds=5 * math.ceil(500 / 100) + 5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"malformed_share": 1.5}, "between 0 and 1"),
        ({"interval_s": 0}, "interval_s"),
        ({"topic_prefix": "a//b"}, "empty level"),
    ],
)
def test_bad_arguments_are_refused(tables, kwargs, message) -> None:
    args = {"malformed_share": 0.01, "breach_share": 0.02, "start_ts": START} | kwargs
    with pytest.raises(ValueError, match=message):
        next(iter_messages(tables, 1, **args))


# -- publishing ---------------------------------------------------------------------------------


def _broker_listening() -> bool:
    try:
        with socket.create_connection((BROKER_HOST, BROKER_PORT), timeout=1):
            return True
    except OSError:
        return False


needs_broker = pytest.mark.skipif(
    not _broker_listening(), reason="no MQTT broker listens on 127.0.0.1:1883 (system Mosquitto)"
)


class Counting:
    """A QoS 1 subscriber that only records what arrives under one topic prefix."""

    def __init__(self, prefix: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"test-count-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_connect = lambda c, *_: c.subscribe(f"{prefix}/#", qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message

    def _on_message(self, client, userdata, message) -> None:
        with self.lock:
            self.messages.append((message.topic, message.payload))

    def __enter__(self) -> Counting:
        self.client.connect(BROKER_HOST, BROKER_PORT)
        self.client.loop_start()
        assert self.subscribed.wait(10), "the counting subscriber was not subscribed"
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def wait_for(self, count: int, timeout_s: float = 20.0) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len(self.messages) < count:
            time.sleep(0.05)
        time.sleep(0.2)  # anything beyond `count` (duplicates) would show up now
        return len(self.messages)


def _prefix() -> str:
    return f"simtest-{uuid.uuid4().hex[:12]}"


@needs_broker
def test_cli_publishes_every_message_and_writes_the_ids(tmp_path, capsys) -> None:
    from clinker_pipeline.cli import main

    prefix, ids_file = _prefix(), tmp_path / "ids.txt"
    with Counting(prefix) as sub:
        code = main(
            [
                "simulate-telemetry",
                "--broker", f"mqtt://{BROKER_HOST}:{BROKER_PORT}",
                "--count", "600",
                "--rate", "300",
                "--seed", "4",
                "--malformed-share", "0.05",
                "--topic-prefix", prefix,
                "--ids-file", str(ids_file),
                "--json",
            ]
        )  # fmt: skip
        stats = json.loads(capsys.readouterr().out)
        received = sub.wait_for(600)
    assert code == 0
    assert stats["published"] == stats["acked"] == received == 600
    assert stats["failed"] == stats["unacked"] == 0
    assert stats["malformed"] + stats["ok"] + stats["breaches"] == 600
    assert 10 <= stats["malformed"] <= 50
    ids = ids_file.read_text().split()
    assert len(ids) == len(set(ids)) == stats["ok"] + stats["breaches"]
    bodies = [b for b in map(_json_object, (p for _, p in sub.messages)) if b]
    assert set(ids) <= {b.get("message_id") for b in bodies}
    # paced: never much faster than asked (the bucket allows a 0.1 s burst); generously slower
    assert 300 / 10 <= stats["rate"] <= 300 * 1.25
    assert stats["seconds"] >= 600 / 300 * 0.8
    # a run of known length is back-dated so its last readings are stamped about now
    stamps = [datetime.fromisoformat(b["ts"]) for b in bodies if str(b.get("ts")).endswith("Z")]
    assert max(stamps) <= datetime.now(UTC) + timedelta(seconds=5)


def _json_object(payload: bytes) -> dict | None:
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


@needs_broker
def test_module_runs_until_sigterm_and_waits_for_every_puback(tmp_path) -> None:
    prefix = _prefix()
    with Counting(prefix) as sub:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "clinker_pipeline.defs.telemetry.simulate",
                "--broker", f"mqtt://{BROKER_HOST}:{BROKER_PORT}",
                "--rate", "200", "--topic-prefix", prefix, "--json",
            ],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while len(sub.messages) < 50 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        stats = json.loads(out)
        received = sub.wait_for(stats["published"])
    assert stats["published"] >= 50
    assert stats["acked"] == stats["published"] == received
    assert stats["rate"] <= 200 * 1.25


@pytest.fixture
def own_broker(tmp_path) -> Iterator[MosquittoBroker]:
    """A private broker this test may restart (the system one must not be touched)."""
    if mosquitto_binary() is None:
        pytest.skip("the mosquitto binary is not installed (apt-get install mosquitto)")
    broker = MosquittoBroker(tmp_path / "mosquitto").start()
    try:
        yield broker
    finally:
        broker.kill()


def test_publishing_survives_a_broker_restart(own_broker: MosquittoBroker) -> None:
    """Messages in flight when the broker goes away are sent again after the reconnect, so the
    run still ends with a PUBACK for every message."""
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "clinker_pipeline.defs.telemetry.simulate",
            "--broker", own_broker.url, "--rate", "400", "--count", "1500", "--json",
        ],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1.5)
    own_broker.restart()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    stats = json.loads(out)
    assert stats["published"] == stats["acked"] == 1500


def test_simulated_stream_lands_types_and_alerts(own_broker, tables, tmp_path, capsys) -> None:
    """End to end with the real ingestor: what the simulator publishes (exactly the generator's
    messages for the same seed, start and interval) lands, malformed messages become dead
    letters, the landed readings type without a problem and the plant breaches raise alerts."""
    from clinker_pipeline.defs.telemetry.landing import LandingStore
    from clinker_pipeline.defs.telemetry.readings import FAMILY_TABLE, family_rows
    from clinker_pipeline.defs.telemetry.rules import evaluate

    landing = tmp_path / "landing"
    ingestor = subprocess.Popen(
        [
            sys.executable, "-m", "clinker_pipeline.defs.telemetry.ingest",
            "--broker", own_broker.url, "--landing", str(landing), "--client-id", "sim-e2e",
            "--idle-exit", "3", "--flush-interval", "0.2", "--json",
        ],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert ingestor.stderr is not None
    for line in ingestor.stderr:  # INFO log: wait until the subscription is in place
        if "subscribed" in line:
            break
    else:
        raise AssertionError("the ingestor exited before subscribing")
    start = "2026-11-27T06:00:00+00:00"
    code = simulate.main(
        [
            "--broker", own_broker.url, "--count", "1500", "--rate", "0", "--seed", "21",
            "--start", start, "--interval", "60", "--breach-share", "0.05",
            "--ids-file", str(tmp_path / "ids.txt"), "--json",
        ]
    )  # fmt: skip
    assert code == 0
    out, err = ingestor.communicate(timeout=60)
    assert ingestor.returncode == 0, err
    stats = json.loads(out)
    expected = list(
        itertools.islice(
            iter_messages(tables, 21, 0.01, 0.05, datetime.fromisoformat(start), interval_s=60),
            1500,
        )
    )
    ids = (tmp_path / "ids.txt").read_text().split()
    assert ids == [m.message_id for m in expected if m.kind != KIND_MALFORMED]

    store = LandingStore(landing)
    batches = store.list_batches()
    landed = pd.concat([store.read_batch(b) for b in batches], ignore_index=True)
    dead = pd.concat([store.read_dead_letters(b) for b in batches], ignore_index=True)
    store.close()
    assert sorted(landed["message_id"]) == sorted(ids)
    assert stats["landed"] == len(ids) and stats["duplicates"] == 0
    assert len(dead) == sum(m.kind == KIND_MALFORMED for m in expected)

    typed = {}
    for family in FAMILY_TABLE:
        typed[family], problems = family_rows(family, landed)
        assert not problems, problems[:3]
    first = tables["closing_stock_bounds"].sort_values("time_period").drop_duplicates("iugu_code")
    safety = dict(zip(first["iugu_code"], first["min_close_stock"].astype(float), strict=True))
    alerts = evaluate(RuleSet.load(), typed, safety)
    # the safety-stock rule compares a plant's whole stock (all silos), which a one-silo dip
    # need not break: that rule is tested in test_telemetry_assets; here every other plant
    # breach must raise exactly its alert
    low_silo = {
        m.message_id
        for m in expected
        if m.kind == KIND_BREACH
        and "/silo/" in m.topic
        and json.loads(m.payload)["values"]["level_pct"] <= 95
    }
    plant_breaches = {
        m.message_id for m in expected if m.kind == KIND_BREACH and "/plants/" in m.topic
    } - low_silo
    assert plant_breaches and set(alerts["message_id"]) == plant_breaches


def test_unreachable_broker_is_an_error_not_a_hang(capsys) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = simulate.main(["--broker", f"mqtt://127.0.0.1:{port}", "--count", "5"])
    assert code == 1
    assert f"cannot reach MQTT broker mqtt://127.0.0.1:{port}" in capsys.readouterr().err
