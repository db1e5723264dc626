"""`clinker health`: sample mode is healthy, a stopped service is named, secrets never print."""

import json
import socket
import threading
from collections.abc import Iterator

import duckdb
import pytest

from clinker_pipeline.cli import main
from clinker_pipeline.instance import load_instance, sample_instance_path
from clinker_pipeline.lib.store.plan_store import write_plan
from clinker_pipeline.optimization import optimize
from clinker_pipeline_tests.mosquitto import MosquittoBroker, mosquitto_binary

SOURCE_VARS = (
    "SAP_BASE_URL",
    "SAP_USERNAME",
    "SAP_PASSWORD",
    "ORACLE_HOST",
    "ORACLE_PORT",
    "IOT_BROKER_URL",
    "IOT_USERNAME",
    "IOT_PASSWORD",
    "IOT_CA_FILE",
    "IOT_CLIENT_ID",
    "DAGSTER_POSTGRES_URL",
    "DAGSTER_PG_HOST",
    "DAGSTER_HOME",
    "WEATHER_API_KEY",
    "OPENWEATHER_BASE_URL",
    "FUEL_PRICE_API_KEY",
    "EIA_BASE_URL",
    "FX_BASE_URL",
    "FX_API_KEY",
    "WORLDBANK_BASE_URL",
    "MARKET_DATA_URL",
    "MARKET_DATA_API_KEY",
)
SECRET = "Health-S3cret-pw"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in SOURCE_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLINKER_DUCKDB_PATH", str(tmp_path / "none.duckdb"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


def require_listening(port: int, what: str) -> None:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        pytest.skip(f"{what} not listening on 127.0.0.1:{port}; .ci/run starts it")


def run(capsys, *args):
    code = main(["health", "--json", "--timeout", "2", *args])
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    return code, {s["name"]: s for s in json.loads(out.out)["sources"]}


def test_sample_mode_is_healthy(capsys):
    code, sources = run(capsys)
    assert code == 0
    assert sources["SAP"]["detail"] == "sample mode" and not sources["SAP"]["configured"]
    assert sources["DuckDB"]["ok"]


def test_stopped_sap_is_down_and_named_without_the_password(capsys, monkeypatch):
    port = free_port()
    monkeypatch.setenv("SAP_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("SAP_USERNAME", "CLINKER_RO")
    monkeypatch.setenv("SAP_PASSWORD", SECRET)
    code, sources = run(capsys)
    assert code == 1
    sap = sources["SAP"]
    assert not sap["ok"] and sap["endpoint"] == f"127.0.0.1:{port}"
    assert "Connection refused" in sap["detail"] and "API_PLANT_SRV/A_Plant" in sap["detail"]


def test_live_sap_answers_with_latency(capsys, monkeypatch, httpserver):
    httpserver.expect_request("/sap/opu/odata/sap/API_PLANT_SRV/A_Plant").respond_with_json(
        {"d": {"results": []}}
    )
    monkeypatch.setenv("SAP_BASE_URL", httpserver.url_for("").rstrip("/"))
    monkeypatch.setenv("SAP_USERNAME", "CLINKER_RO")
    monkeypatch.setenv("SAP_PASSWORD", SECRET)
    code, sources = run(capsys)
    assert code == 0 and sources["SAP"]["ok"] and sources["SAP"]["latency_ms"] >= 0
    assert "sap-client=100" in httpserver.log[0][0].query_string.decode()


def test_oracle_and_mqtt_down_when_their_ports_are_closed(capsys, monkeypatch):
    monkeypatch.setenv("ORACLE_HOST", "127.0.0.1")
    monkeypatch.setenv("ORACLE_PORT", str(free_port()))
    monkeypatch.setenv("IOT_BROKER_URL", f"mqtt://127.0.0.1:{free_port()}")
    code, sources = run(capsys)
    assert code == 1
    assert not sources["Oracle"]["ok"] and not sources["MQTT broker"]["ok"]


def test_real_broker_and_postgres_are_up(capsys, monkeypatch):
    for port, what in ((1883, "Mosquitto"), (5432, "PostgreSQL")):
        require_listening(port, what)
    monkeypatch.setenv("IOT_BROKER_URL", "mqtt://127.0.0.1:1883")
    monkeypatch.setenv(
        "DAGSTER_POSTGRES_URL", f"postgresql://postgres:{SECRET}@127.0.0.1:5432/postgres"
    )
    code, sources = run(capsys)
    assert code == 0
    assert sources["MQTT broker"]["ok"] and sources["PostgreSQL"]["ok"]
    assert sources["PostgreSQL"]["endpoint"] == "127.0.0.1:5432/postgres"


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A loopback port that accepts TCP and never says a word (a TCP connect says "up")."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    worker = threading.Thread(target=accept, daemon=True)
    worker.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        worker.join(2)
        for conn in accepted:
            conn.close()
        server.close()


def test_default_broker_is_probed_with_mqtt_connect_when_unset(capsys):
    """IOT_BROKER_URL unset: the ingestor's documented default mqtt://127.0.0.1:1883 is probed."""
    require_listening(1883, "Mosquitto")
    code, sources = run(capsys)
    broker = sources["MQTT broker"]
    assert code == 0
    assert broker["configured"] and broker["ok"] and broker["endpoint"] == "127.0.0.1:1883"
    assert "CONNACK" in broker["detail"] and "IOT_BROKER_URL unset" in broker["detail"]
    assert not broker["required"]  # the default broker being down warns, it does not fail


def test_a_port_that_is_not_an_mqtt_broker_is_down(capsys, monkeypatch, silent_listener):
    monkeypatch.setenv("IOT_BROKER_URL", f"mqtt://127.0.0.1:{silent_listener}")
    code, sources = run(capsys)
    broker = sources["MQTT broker"]
    assert code == 1 and not broker["ok"] and broker["required"]
    assert "no CONNACK within 2 s" in broker["detail"]


@pytest.mark.skipif(mosquitto_binary() is None, reason="the mosquitto binary is not installed")
def test_a_broker_refusing_the_credentials_is_down_without_the_password(
    capsys, monkeypatch, tmp_path
):
    broker = MosquittoBroker(tmp_path / "mosquitto", users={"health": "the-right-one-42"})
    broker.start()
    try:
        monkeypatch.setenv("IOT_BROKER_URL", f"mqtt://127.0.0.1:{broker.port}")
        monkeypatch.setenv("IOT_USERNAME", "health")
        monkeypatch.setenv("IOT_PASSWORD", SECRET)
        code, sources = run(capsys)
    finally:
        broker.kill()
    detail = sources["MQTT broker"]["detail"]
    assert code == 1 and not sources["MQTT broker"]["ok"]
    assert "refused the CONNECT: Not authorized" in detail, detail


def test_a_postgres_error_keeps_to_one_line_of_the_table(capsys, monkeypatch):
    """libpq's "Is the server running...?" second line must not break the table."""
    monkeypatch.setenv(
        "DAGSTER_POSTGRES_URL", f"postgresql://postgres:{SECRET}@127.0.0.1:{free_port()}/x"
    )
    code = main(["health", "--timeout", "2"])
    out = capsys.readouterr().out
    assert code == 1 and SECRET not in out
    lines = out.splitlines()
    assert len(lines) == 10  # one per source
    (postgres,) = [line for line in lines if line.startswith("PostgreSQL")]
    assert "DOWN" in postgres and "Connection refused" in postgres
    assert "Background on this error" not in out


def test_stopped_postgres_is_down(capsys, monkeypatch):
    monkeypatch.setenv(
        "DAGSTER_POSTGRES_URL", f"postgresql://postgres:{SECRET}@127.0.0.1:{free_port()}/x"
    )
    code, sources = run(capsys)
    assert code == 1 and not sources["PostgreSQL"]["ok"]


def test_duckdb_reports_the_latest_good_plan_time(capsys, tmp_path):
    db = tmp_path / "plan.duckdb"
    result = optimize(load_instance(sample_instance_path()).tables)
    with duckdb.connect(str(db)) as con:
        write_plan(con, result)
        created = con.execute("SELECT created_at FROM plan_runs").fetchone()[0]
    code, sources = run(capsys, "--duckdb", str(db))
    assert code == 0
    assert sources["DuckDB"]["last_good_at"] == created.isoformat()
    assert "latest plan optimal" in sources["DuckDB"]["detail"]


def test_external_feeds_up_down_and_sample(capsys, monkeypatch, httpserver):
    """Weather and market answer on loopback (key sent, never printed), EIA is stopped, FX and
    World Bank stay in sample mode."""
    httpserver.expect_request("/data/2.5/forecast").respond_with_json({"cod": "200", "list": []})
    httpserver.expect_request("/resource/cement").respond_with_json({"status": "ok"})
    base = httpserver.url_for("").rstrip("/")
    monkeypatch.setenv("WEATHER_API_KEY", SECRET)
    monkeypatch.setenv("OPENWEATHER_BASE_URL", base)
    monkeypatch.setenv("MARKET_DATA_URL", f"{base}/resource/cement")
    monkeypatch.setenv("FUEL_PRICE_API_KEY", SECRET)
    monkeypatch.setenv("EIA_BASE_URL", f"http://127.0.0.1:{free_port()}")
    code, sources = run(capsys)
    assert code == 1  # a configured feed is down
    assert sources["Weather"]["ok"] and sources["Market"]["ok"]
    assert (
        not sources["EIA diesel"]["ok"] and "Connection refused" in sources["EIA diesel"]["detail"]
    )
    assert sources["FX"]["detail"] == "sample mode" and sources["World Bank"]["ok"]
    sent = {r.path: r.args for r, _ in httpserver.log}
    assert sent["/data/2.5/forecast"]["appid"] == SECRET
