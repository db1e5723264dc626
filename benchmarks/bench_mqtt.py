"""How fast the MQTT ingestor lands telemetry, next to a subscriber that does nothing but count.

Run (from the repo root, with a broker on 127.0.0.1:1883):

    .venv/bin/python benchmarks/bench_mqtt.py [--messages N] [--shared K] [--broker URL]

Default mode: one publisher process sends N (default 50,000) QoS 1 messages as fast as the broker
acknowledges them (realistic plant payloads from the simulator, under a private topic of this
run), while two subscriber processes receive the same stream side by side: (a) a bare paho-mqtt
subscriber (MQTT v5, the ingestor's ReceiveMaximum, automatic PUBACKs) that only counts, and
(b) the real ingestor (`python -m clinker_pipeline.defs.telemetry.ingest`), which parses, deduplicates,
writes Parquet batches with fsync and acknowledges after each write. For each it reports messages
received (for the ingestor: distinct message ids read back from its landing store), first-to-last
message time, messages/s and loss, plus the publisher's own rate: on a small machine the
publisher is often the bottleneck, and then both subscribers simply keep up with it. The ratio
ingestor/bare should be >= 0.9.

`--shared K`: K ingestor processes in one MQTT v5 shared subscription (`--share-group bench`)
split the stream; reported per process, with the union of landed ids (must be N) and duplicates
(must be 0).

Other options: `--private-broker` runs a Mosquitto of its own with no per-client queue limit
(the system broker keeps the default `max_queued_messages 1000`: a subscriber more than
ReceiveMaximum + 1000 messages behind the publisher loses messages there, which this benchmark
reports as loss); `--rate R` paces the publisher (msg/s) to find the rate the ingestor sustains;
`--publishers P` splits the stream over P publisher processes; `--json` adds a JSON summary.

Exit status: 0 when nothing was lost (and, shared, nothing landed twice); 1 otherwise.
Roles `--role publish|bare` are this script's own child processes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RECEIVE_MAXIMUM = 10_000  # what the ingestor announces with its default batch size
SESSION_EXPIRY_S = 60  # persistent enough for the run; the broker forgets the sessions soon after
START_TIMEOUT_S = 120.0


# -- child: publisher ---------------------------------------------------------------------------


def run_publisher(args: argparse.Namespace) -> int:
    """Build N realistic payloads first (so generation does not slow the stream), say READY,
    wait for GO on stdin, then publish them QoS 1 as fast as PUBACKs come back."""
    from clinker_pipeline.defs.telemetry.mqtt import BrokerSettings
    from clinker_pipeline.defs.telemetry.simulate import (
        KIND_MALFORMED,
        SimMessage,
        connect_publisher,
        iter_messages,
        publish,
    )
    from clinker_pipeline.instance import load_instance, sample_instance_path

    tables = load_instance(sample_instance_path()).tables
    start = datetime.now(UTC)
    stream = iter_messages(tables, args.seed, 0.0, 0.02, start)
    messages, ids = [], []
    base = args.base_topic
    for message in stream:
        parts = message.topic.split("/")
        if parts[1] != "plants" or message.kind == KIND_MALFORMED:
            continue  # fleet topics cannot be fenced off under one private filter
        # clinker/plants/IU_001/silo/clinker_silo1 -> <base>/silo/IU_001.clinker_silo1
        topic = f"{base}/{parts[3]}/{parts[2]}.{parts[4]}"
        messages.append(SimMessage(topic, message.payload, message.kind))
        ids.append(message.message_id)
        if len(messages) == args.messages:
            break
    Path(args.ids_file).write_text("\n".join(ids) + "\n", encoding="utf-8")
    settings = BrokerSettings.from_url(args.broker)
    client_id = f"bench-pub-{uuid.uuid4().hex[:8]}"
    client = connect_publisher(settings, client_id, max_inflight=args.max_inflight)
    print("READY", flush=True)
    if sys.stdin.readline().strip() != "GO":
        return 1
    started = time.time()
    stats = publish(messages, client, rate=args.rate, ack_timeout_s=120.0)
    client.disconnect()
    client.loop_stop()
    size = sum(len(m.payload) for m in messages)
    print(json.dumps({**stats.as_dict(), "started": started, "bytes": size}), flush=True)
    return 0 if stats.unacked == 0 and stats.failed == 0 else 1


# -- child: bare subscriber ---------------------------------------------------------------------


def run_bare(args: argparse.Namespace) -> int:
    """Count messages and nothing else: the ceiling of what a Python paho subscriber receives."""
    import paho.mqtt.client as mqtt

    from clinker_pipeline.defs.telemetry.mqtt import BrokerSettings, connect_properties, make_client

    state = {"count": 0, "first": 0.0, "last": 0.0}
    subscribed = threading.Event()
    settings = BrokerSettings.from_url(args.broker)
    client = make_client(settings, client_id=f"bench-bare-{uuid.uuid4().hex[:8]}", protocol=5)

    def on_connect(client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        client.subscribe(args.topic, qos=1)

    def on_message(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        now = time.time()
        if not state["count"]:
            state["first"] = now
        state["count"] += 1
        state["last"] = now

    client.on_connect = on_connect
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = on_message
    client.connect(
        settings.host,
        settings.port,
        clean_start=False,
        properties=connect_properties(SESSION_EXPIRY_S, RECEIVE_MAXIMUM),
    )
    client.loop_start()
    if not subscribed.wait(30):
        return 1
    print("READY", flush=True)
    ready = time.time()
    while state["count"] < args.messages:
        time.sleep(0.05)
        if time.time() - (state["last"] or ready) > args.idle:
            break
    client.disconnect()
    client.loop_stop()
    print(json.dumps({"received": state["count"], "first": state["first"], "last": state["last"]}))
    return 0


# -- driver -------------------------------------------------------------------------------------


class Child:
    """A child process whose stdout/stderr lines are collected by threads, so the driver can wait
    for a readiness line without blocking on a full pipe."""

    def __init__(self, name: str, argv: list[str], ready: str, stdin: bool = False) -> None:
        self.name = name
        self.ready_text = ready
        self.ready = threading.Event()
        self.cpu_s = 0.0
        self.out: list[str] = []
        self.err: list[str] = []
        self.proc = subprocess.Popen(
            argv,
            cwd=REPO,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    def _pump(self, stream: Any, sink: list[str]) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))
            if self.ready_text in line:
                self.ready.set()

    def wait_ready(self, timeout_s: float) -> None:
        if not self.ready.wait(timeout_s) or self.proc.poll() not in (None, 0):
            tail = "\n".join(self.err[-15:])
            raise SystemExit(f"{self.name} did not get ready (exit {self.proc.poll()}):\n{tail}")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def result(self, timeout_s: float) -> dict[str, Any]:
        """The JSON line the child printed last; also records its CPU seconds (user + system,
        start-up included) from the kernel's accounting when it is reaped."""
        deadline = time.time() + timeout_s
        while True:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                self.cpu_s = usage.ru_utime + usage.ru_stime
                break
            if time.time() > deadline:
                self.proc.kill()
                raise SystemExit(f"{self.name} did not finish within {timeout_s} s")
            time.sleep(0.05)
        time.sleep(0.1)  # let the pump threads read the last lines
        for line in reversed(self.out):
            if line.startswith("{"):
                return json.loads(line)
        raise SystemExit(
            f"{self.name} printed no result (exit {self.proc.returncode}):\n"
            + "\n".join(self.err[-15:])
        )


@contextlib.contextmanager
def _broker(args: argparse.Namespace, work: Path) -> Iterator[None]:
    """With --private-broker: a Mosquitto of our own whose queue per client is unlimited
    (`max_queued_messages 0`), to measure the ingestor without the system broker's default
    1000-message queue, which drops what a subscriber more than ReceiveMaximum + 1000 messages
    behind would get."""
    if not args.private_broker:
        yield
        return
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conf = work / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 0\n",
        encoding="utf-8",
    )
    log_file = (work / "mosquitto.log").open("w")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log_file, stderr=log_file)
    args.broker = f"mqtt://127.0.0.1:{port}"
    deadline = time.time() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                raise SystemExit(f"private mosquitto did not start: {conf}") from None
            time.sleep(0.05)
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(10)
        log_file.close()


def _options(**values: object) -> list[str]:
    """Command-line options from keywords: batch_size=5 -> ["--batch-size", "5"]."""
    return [x for k, v in values.items() for x in (f"--{k.replace('_', '-')}", str(v))]


def _landed(root: Path) -> Any:
    import pandas as pd

    from clinker_pipeline.defs.telemetry.landing import LandingStore

    store = LandingStore(root)
    try:
        frames = [store.read_batch(b) for b in store.list_batches()]
    finally:
        store.close()
    frames = [f[["message_id", "client_id", "received_at"]] for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=["message_id", "client_id", "received_at"])
    return pd.concat(frames, ignore_index=True)


def _row(name: str, received: int, distinct: int, n: int, first: float, last: float) -> dict:
    seconds = max(last - first, 1e-9) if received else 0.0
    return {
        "subscriber": name,
        "received": received,
        "distinct": distinct,
        "duplicates": received - distinct,
        "lost": n - distinct,
        "first_to_last_s": round(seconds, 3),
        "msg_per_s": round(received / seconds, 1) if seconds else 0.0,
    }


def _table(rows: list[dict]) -> str:
    cols = list(rows[0])
    width = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    lines = ["  ".join(c.rjust(width[c]) for c in cols)]
    lines += ["  ".join(str(r[c]).rjust(width[c]) for c in cols) for r in rows]
    return "\n".join(lines)


def drive(args: argparse.Namespace) -> int:
    run = uuid.uuid4().hex[:8]
    base = f"clinker/plants/BENCH-{run}"
    topic = f"{base}/#"
    me = [sys.executable, str(Path(__file__).resolve())]
    n, shared = args.messages, args.shared
    with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as tmp, _broker(args, Path(tmp)):
        work = Path(tmp)
        landing = work / "landing"
        # Publishers first: they build their payloads before anybody listens.
        per = [n // args.publishers + (i < n % args.publishers) for i in range(args.publishers)]
        publishers = []
        for i, count in enumerate(per):
            options = _options(
                role="publish",
                broker=args.broker,
                messages=count,
                seed=1000 + i,
                base_topic=base,
                ids_file=work / f"ids-{i}.txt",
                max_inflight=args.max_inflight,
                rate=args.rate / args.publishers,
            )
            publishers.append(Child(f"publisher {i}", [*me, *options], "READY", stdin=True))
        for child in publishers:
            child.wait_ready(START_TIMEOUT_S)
        subscribers: list[Child] = []
        bare = None
        if not shared:
            options = _options(
                role="bare", broker=args.broker, topic=topic, messages=n, idle=args.idle
            )
            bare = Child("bare", [*me, *options], "READY")
            subscribers.append(bare)
        ingestors = []
        for i in range(max(shared, 1)):
            argv = [
                sys.executable,
                "-m",
                "clinker_pipeline.defs.telemetry.ingest",
                "--json",
                *_options(
                    broker=args.broker,
                    landing=landing,
                    topic=topic,
                    client_id=f"bench-ingest-{run}-{i}",
                    session_expiry=SESSION_EXPIRY_S,
                    batch_size=args.batch_size,
                    idle_exit=args.idle,
                    log_level="INFO",
                ),
            ]
            if shared:
                argv += ["--share-group", "bench"]
            else:
                argv += ["--max-messages", str(n)]
            ingestors.append(Child(f"ingestor {i}", argv, "subscribed (QoS 1)"))
        subscribers += ingestors
        for child in subscribers:
            child.wait_ready(START_TIMEOUT_S)
        for child in publishers:
            child.send("GO")
        pub = [child.result(600) for child in publishers]
        if shared:  # members see only their share: stop them once the union is complete
            deadline = time.time() + args.idle + 60
            while time.time() < deadline and len(_landed(landing)) < n:
                time.sleep(0.5)
            for child in ingestors:
                child.proc.terminate()
        ing = [child.result(args.idle + 120) for child in ingestors]
        bare_result = bare.result(args.idle + 120) if bare else None

        expected: set[str] = set()
        for i in range(args.publishers):
            expected.update((work / f"ids-{i}.txt").read_text().split())
        frame = _landed(landing)
        landed_ids = set(frame["message_id"])
        received_at = frame["received_at"].map(lambda t: t.replace(tzinfo=UTC).timestamp())

    published = sum(p["published"] for p in pub)
    pub_start = min(p["started"] for p in pub)
    pub_seconds = max(p["started"] + p["seconds"] for p in pub) - pub_start
    rows = [
        {
            "subscriber": f"publisher x{args.publishers}",
            "received": published,
            "distinct": len(expected),
            "duplicates": 0,
            "lost": n - sum(p["acked"] for p in pub),
            "first_to_last_s": round(pub_seconds, 3),
            "msg_per_s": round(published / pub_seconds, 1),
            "cpu_s": round(sum(c.cpu_s for c in publishers), 2),
        }
    ]
    if bare_result is not None:
        got = bare_result["received"]
        # the bare subscriber cannot tell duplicates: count what came, loss = what did not
        first, last = bare_result["first"], bare_result["last"]
        rows.append(_row("bare paho", got, min(got, n), n, first, last) | {"cpu_s": bare.cpu_s})
    per_process = []
    for i, stats in enumerate(ing):
        mine = frame["client_id"] == f"bench-ingest-{run}-{i}"
        times = received_at[mine]
        per_process.append(
            _row(
                f"ingestor {i}" if shared else "ingestor",
                int(mine.sum()),
                int(frame.loc[mine, "message_id"].nunique()),
                n,
                float(times.min()) if len(times) else 0.0,
                float(times.max()) if len(times) else 0.0,
            )
            | {"cpu_s": ingestors[i].cpu_s, "batches": stats.get("batches")}
        )
    if shared:
        for row in per_process:
            row["lost"] = "-"
        rows += per_process
        rows.append(
            _row(
                f"union of {shared}",
                len(frame),
                len(landed_ids),
                n,
                float(received_at.min()),
                float(received_at.max()),
            )
            | {"cpu_s": sum(c.cpu_s for c in ingestors)}
        )
    else:
        rows += per_process
    missing = expected - landed_ids
    unexpected = landed_ids - expected
    duplicates = len(frame) - len(landed_ids)
    print(f"MQTT benchmark: {n} QoS 1 messages, broker {args.broker}, topic {topic}")
    avg = sum(p["bytes"] for p in pub) / max(published, 1)
    print(f"payloads: {avg:.0f} bytes on average; ingestor batch size {args.batch_size}")
    for row in rows:
        row["cpu_s"] = round(row["cpu_s"], 2)
    shown = [{k: v for k, v in r.items() if k != "batches"} for r in rows]
    print(_table(shown))
    print(
        "cpu_s: user + system CPU seconds of the process (start-up and payload building included)"
    )
    result: dict[str, Any] = {
        "messages": n,
        "rows": rows,
        "missing": len(missing),
        "unexpected": len(unexpected),
        "duplicates": duplicates,
    }
    failed = bool(missing or unexpected) or any(p["acked"] != p["published"] for p in pub)
    if bare_result is not None:
        bare_rate = rows[1]["msg_per_s"]
        ratio = per_process[0]["msg_per_s"] / bare_rate if bare_rate else 0.0
        result["ratio"] = round(ratio, 3)
        verdict = "meets" if ratio >= 0.9 else "BELOW"
        print(f"ratio ingestor/bare: {ratio:.3f} ({verdict} the 0.9 target)")
        failed |= bare_result["received"] < n
    else:
        counts = ", ".join(str(r["received"]) for r in per_process)
        print(f"per process: {counts}; union {len(landed_ids)} of {n}; duplicates {duplicates}")
        failed |= duplicates > 0
    print(f"lost: {len(missing)}  unexpected: {len(unexpected)}  landed twice: {duplicates}")
    if args.json:
        print(json.dumps(result))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--shared", type=int, default=0, help="K ingestors in a shared group")
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--rate", type=float, default=0.0, help="msg/s in total (0: flat out)")
    parser.add_argument(
        "--private-broker",
        action="store_true",
        help="run a private Mosquitto with an unlimited queue per client (max_queued_messages 0)",
    )
    parser.add_argument("--publishers", type=int, default=1, help="publisher processes")
    parser.add_argument("--max-inflight", type=int, default=20, help="per publisher")
    parser.add_argument("--batch-size", type=int, default=1000, help="ingestor --batch-size")
    parser.add_argument("--idle", type=float, default=30.0, help="s without messages = done")
    parser.add_argument("--json", action="store_true", help="also print the result as JSON")
    parser.add_argument("--role", choices=["publish", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--base-topic", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--ids-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "publish":
        return run_publisher(args)
    if args.role == "bare":
        return run_bare(args)
    if args.messages < 1 or args.shared < 0 or args.publishers < 1:
        parser.error("--messages and --publishers must be >= 1, --shared >= 0")
    return drive(args)


if __name__ == "__main__":
    sys.exit(main())
