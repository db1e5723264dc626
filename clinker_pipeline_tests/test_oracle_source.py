"""The Oracle ERP capacity source: SQL and row handling, real driver error paths, sample mode.

No Oracle database is needed except for the opt-in test at the end (ORACLE_DSN).
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import oracledb
import pytest

from clinker_pipeline.defs.erp.oracle.client import (
    BadRow,
    CapacityQuery,
    CapacityRow,
    OracleCapacitySource,
    OracleSettings,
    SampleCapacitySource,
    rows_to_capacity,
    sample_capacity_path,
    source_unavailable,
)
from clinker_pipeline.errors import InvalidPayload, SourceUnavailable

PASSWORD = "Zq7-never-SHOW-me"
timings = logging.getLogger(__name__)  # elapsed times, shown with -o log_cli=true
DESCRIPTION = [
    ("PLANT_CODE", oracledb.DB_TYPE_VARCHAR, 4, 4, None, None, False),
    ("PERIOD_START", oracledb.DB_TYPE_DATE, 23, None, None, None, False),
    ("CAPACITY_T", oracledb.DB_TYPE_NUMBER, 19, None, 14, 3, True),
    ("UOM", oracledb.DB_TYPE_VARCHAR, 3, 3, None, None, True),
]
DEC = datetime(2026, 12, 1)


def settings(**overrides: Any) -> OracleSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "service_name": "ERPPDB1",
        "username": "erp_ro",
        "password": PASSWORD,
    }
    values.update(overrides)
    return OracleSettings(**values)


# --------------------------------------------------------------------------- rows_to_capacity


def test_rows_keep_decimal_precision_and_map_by_column_name() -> None:
    reordered = [DESCRIPTION[3], DESCRIPTION[2], DESCRIPTION[1], DESCRIPTION[0]]
    rows, bad = rows_to_capacity(reordered, [("TO", Decimal("374364.125"), DEC, "1101")])
    assert bad == []
    assert rows == [CapacityRow("1101", date(2026, 12, 1), Decimal("374364.125"), "TO")]
    assert str(rows[0].capacity_t) == "374364.125"


def test_tonne_units_and_kg_conversion() -> None:
    raw = [
        ("1101", DEC, Decimal("10"), "TO"),
        ("1102", DEC, Decimal("10"), " t "),
        ("1103", DEC, Decimal("10"), "TON"),
        ("1104", DEC, Decimal("374364125.5"), "KG"),
    ]
    rows, bad = rows_to_capacity(DESCRIPTION, raw)
    assert bad == []
    assert [r.capacity_t for r in rows] == [10, 10, 10, Decimal("374364.1255")]
    assert str(rows[3].capacity_t) == "374364.1255"  # exact: scaled by a power of ten
    assert [r.uom for r in rows] == ["TO", "T", "TON", "KG"]


def test_numeric_plant_codes_dates_and_text_numbers_are_read() -> None:
    raw = [
        (Decimal("1101"), date(2027, 1, 1), "250.75", "TO"),
        (1102, "2027-02-01T00:00:00", 0, "TO"),  # zero capacity is a valid shutdown month
    ]
    rows, bad = rows_to_capacity(DESCRIPTION, raw)
    assert bad == []
    assert rows[0] == CapacityRow("1101", date(2027, 1, 1), Decimal("250.75"), "TO")
    assert rows[1] == CapacityRow("1102", date(2027, 2, 1), Decimal(0), "TO")


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ((None, DEC, Decimal(1), "TO"), "missing plant code"),
        (("  ", DEC, Decimal(1), "TO"), "missing plant code"),
        ((Decimal("1101.5"), DEC, Decimal(1), "TO"), "not a whole number"),
        (("1101", None, Decimal(1), "TO"), "missing period start"),
        (("1101", "2026-13-01", Decimal(1), "TO"), "is not a date"),
        (("1101", datetime(2026, 12, 1, 6, 30), Decimal(1), "TO"), "has a time of day"),
        (("1101", DEC, None, "TO"), "missing capacity"),
        (("1101", DEC, Decimal("-0.001"), "TO"), "negative capacity -0.001"),
        (("1101", DEC, "lots", "TO"), "is not a number"),
        (("1101", DEC, Decimal("NaN"), "TO"), "not a finite number"),
        (("1101", DEC, Decimal(1), "LB"), "unit 'LB' cannot be converted to tonnes"),
        (("1101", DEC, Decimal(1), None), "missing unit of measure"),
        (("1101", DEC, Decimal(1)), "row has 3 values for 4 columns"),
    ],
)
def test_bad_rows_carry_raw_values_and_a_reason(row: tuple, reason: str) -> None:
    rows, bad = rows_to_capacity(DESCRIPTION, [("1108", DEC, Decimal(5), "TO"), row])
    assert [r.plant_code for r in rows] == ["1108"]  # the good row is not lost with the bad one
    assert len(bad) == 1
    assert reason in bad[0].reason
    assert bad[0].raw == dict(zip([d[0] for d in DESCRIPTION], row, strict=False))


def test_all_problems_of_a_row_are_reported_together() -> None:
    _, bad = rows_to_capacity(DESCRIPTION, [(None, None, Decimal(-1), "LB")])
    assert bad[0].reason.count(";") == 3


def test_missing_column_is_an_invalid_payload() -> None:
    with pytest.raises(InvalidPayload, match=r"lack column\(s\) UOM"):
        rows_to_capacity(DESCRIPTION[:3], [("1101", DEC, Decimal(1))])


# --------------------------------------------------------------------------- SQL text and binds


def test_query_uses_binds_only_and_validated_identifiers() -> None:
    query = CapacityQuery(table="ERP.XX_CAP", plant_column="WERKS", capacity_column="CAP_QTY")
    sql, binds = query.build(date(2026, 12, 1), date(2027, 3, 1), ["1101", "1102"])
    assert sql == (
        "SELECT WERKS AS PLANT_CODE, PERIOD_START AS PERIOD_START, CAP_QTY AS CAPACITY_T, "
        "UOM AS UOM\n"
        "FROM ERP.XX_CAP\n"
        "WHERE PERIOD_START >= :period_from AND PERIOD_START < :period_to "
        "AND WERKS IN (:plant_0, :plant_1)\n"
        "ORDER BY WERKS, PERIOD_START"
    )
    assert binds == {
        "period_from": date(2026, 12, 1),
        "period_to": date(2027, 3, 1),
        "plant_0": "1101",
        "plant_1": "1102",
    }
    assert "2026" not in sql and "1101" not in sql


@pytest.mark.parametrize(
    "overrides",
    [
        {"table": "XX_CAP; DROP TABLE X"},
        {"table": '"xx_cap"'},
        {"table": "A.B.C"},
        {"plant_column": "PLANT_CODE--"},
        {"uom_column": "1UOM"},
        {"capacity_column": "X" * 129},
    ],
)
def test_identifiers_from_configuration_are_checked(overrides: dict) -> None:
    with pytest.raises(ValueError, match="not a plain Oracle identifier"):
        settings(**overrides)


@pytest.mark.parametrize(
    "overrides",
    [{"wait_timeout_ms": 0}, {"call_timeout_ms": 0}, {"pool_min": 3, "pool_max": 2}, {"port": 0}],
)
def test_unbounded_or_impossible_settings_are_refused(overrides: dict) -> None:
    with pytest.raises(ValueError):
        settings(**overrides)


def test_settings_from_dsn_and_repr_without_password() -> None:
    s = OracleSettings.from_dsn("erpdb.example.in:1522/ERPPDB1", username="u", password=PASSWORD)
    assert (s.host, s.port, s.service_name) == ("erpdb.example.in", 1522, "ERPPDB1")
    assert s.endpoint == "erpdb.example.in:1522/ERPPDB1"
    assert PASSWORD not in repr(s)
    assert PASSWORD not in repr(OracleCapacitySource(s))


# --------------------------------------------------------------------------- DB-API stand-in
# sqlite3 stands in for the Oracle connection only to prove the repository's side of the DB-API
# contract: binds passed separately from the SQL, arraysize set, fetchmany() looped until empty,
# rows mapped through cursor.description. It does NOT prove the SQL is valid Oracle SQL or that
# Oracle types (DATE, NUMBER) arrive as they do here.


class RecordingCursor:
    def __init__(self, cursor: sqlite3.Cursor, log: dict[str, list]) -> None:
        self._cursor, self._log = cursor, log

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._log["arraysize"].append(value)
        self._cursor.arraysize = value

    @property
    def description(self) -> Any:
        return self._cursor.description

    def execute(self, sql: str, binds: dict) -> None:
        self._log["execute"].append((sql, dict(binds)))
        self._cursor.execute(sql, binds)

    def fetchmany(self) -> list:
        batch = self._cursor.fetchmany()
        self._log["fetchmany"].append(len(batch))
        return batch

    def close(self) -> None:
        self._log["closed"].append(True)
        self._cursor.close()


class RecordingConnection:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.log: dict[str, list] = {"arraysize": [], "execute": [], "fetchmany": [], "closed": []}

    def cursor(self) -> RecordingCursor:
        return RecordingCursor(self.conn.cursor(), self.log)


@pytest.fixture
def sqlite_erp() -> Iterator[RecordingConnection]:
    # sqlite has no DATE type: bind dates as ISO text, which compares in date order
    sqlite3.register_adapter(date, date.isoformat)
    conn = sqlite3.connect(":memory:")
    conn.execute(
        "CREATE TABLE XX_CLINKER_CAPACITY "
        "(PLANT_CODE TEXT, PERIOD_START TEXT, CAPACITY_T TEXT, UOM TEXT)"
    )
    months = ["2026-11-01", "2026-12-01", "2027-01-01", "2027-02-01", "2027-03-01"]
    rows = [
        (f"11{i:02d}", m, f"{300000 + i * 1000 + j}.125", "TO")
        for i in range(1, 9)
        for j, m in enumerate(months)
    ]
    rows += [("1109", "2027-01-01", "412000500", "KG"), ("1110", "2027-01-01", None, "TO")]
    conn.executemany("INSERT INTO XX_CLINKER_CAPACITY VALUES (?, ?, ?, ?)", rows)
    yield RecordingConnection(conn)
    conn.close()


def test_repository_fetches_in_batches_with_binds(sqlite_erp: RecordingConnection) -> None:
    source = OracleCapacitySource(
        settings(fetch_batch=5), connection_factory=lambda: contextlib.nullcontext(sqlite_erp)
    )
    result = source.fetch(date(2026, 12, 1), date(2027, 3, 1))

    assert sqlite_erp.log["arraysize"] == [5]
    # 26 rows in the window: five full batches, one of 1, then the empty fetch that ends the loop
    assert sqlite_erp.log["fetchmany"] == [5, 5, 5, 5, 5, 1, 0]
    assert sqlite_erp.log["closed"] == [True]
    ((sql, binds),) = sqlite_erp.log["execute"]
    assert binds == {"period_from": date(2026, 12, 1), "period_to": date(2027, 3, 1)}
    assert ":period_from" in sql and "2026" not in sql

    assert len(result.rows) == 25
    assert result.rows[0] == CapacityRow("1101", date(2026, 12, 1), Decimal("301001.125"), "TO")
    assert [r.plant_code for r in result.rows] == sorted(r.plant_code for r in result.rows)
    kg = [r for r in result.rows if r.plant_code == "1109"]
    assert kg == [CapacityRow("1109", date(2027, 1, 1), Decimal("412000.500"), "KG")]
    assert result.bad_rows == [
        BadRow(
            {"PLANT_CODE": "1110", "PERIOD_START": "2027-01-01", "CAPACITY_T": None, "UOM": "TO"},
            "missing capacity",
        )
    ]
    # the strict call refuses to hand over a partial picture
    with pytest.raises(InvalidPayload, match=r"1 unusable capacity row.*missing capacity"):
        source.fetch_capacity(date(2026, 12, 1), date(2027, 3, 1))


def test_plant_filter_is_bound_not_spliced(sqlite_erp: RecordingConnection) -> None:
    source = OracleCapacitySource(
        settings(), connection_factory=lambda: contextlib.nullcontext(sqlite_erp)
    )
    evil = "1101' OR '1'='1"
    rows = source.fetch_capacity(date(2026, 12, 1), date(2027, 3, 1), plants=["1102", evil])
    assert {r.plant_code for r in rows} == {"1102"}
    assert len(rows) == 3
    sql, binds = sqlite_erp.log["execute"][0]
    assert evil not in sql and binds["plant_1"] == evil


def test_driver_errors_from_the_database_become_source_unavailable() -> None:
    """ORA errors built as the driver builds them (private oracledb API, checked on 26.1)."""
    errors = pytest.importorskip("oracledb.errors")
    _error = errors._Error

    def failing(message: str, code: int) -> Any:
        class Cursor:
            arraysize = 100

            def execute(self, *_: Any) -> None:
                err = _error(message, code=code)
                raise err.exc_type(err)

            def close(self) -> None:
                pass

        class Conn:
            def cursor(self) -> Cursor:
                return Cursor()

        return lambda: contextlib.nullcontext(Conn())

    cases = [
        ("ORA-00942: table or view does not exist", 942, "XX_CLINKER_CAPACITY does not exist"),
        ("ORA-01017: invalid username/password; logon denied", 1017, "for user erp_ro"),
    ]
    for message, code, hint in cases:
        source = OracleCapacitySource(settings(), connection_factory=failing(message, code))
        with pytest.raises(SourceUnavailable) as info:
            source.fetch_capacity(date(2026, 12, 1), date(2027, 3, 1))
        text = str(info.value)
        assert text.startswith("Oracle ERP at 127.0.0.1:1521/ERPPDB1 failed while reading")
        assert message.split(":")[0] in text and hint in text
        assert PASSWORD not in text

    timeout = errors._create_err(errors.ERR_CALL_TIMEOUT_EXCEEDED, timeout=60000)
    error = source_unavailable(timeout.exc_type(timeout), settings(call_timeout_ms=60000))
    assert "DPY-4024" in str(error) and "call_timeout_ms=60000" in str(error)


# --------------------------------------------------------------------------- real driver, loopback


class LoopbackServer:
    """A TCP server on 127.0.0.1 that refuses to speak Oracle, stopping by itself.

    mode "close": accepts and closes at once. mode "silent": accepts and never answers, holding
    the sockets until stopped or `lifetime_s` has passed, so no driver thread stays blocked.
    """

    def __init__(self, mode: str, lifetime_s: float = 15.0) -> None:
        self.mode, self.lifetime_s = mode, lifetime_s
        self.accepted = 0
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._run, name=f"loopback-{mode}", daemon=True)

    def _run(self) -> None:
        held: list[socket.socket] = []
        deadline = time.monotonic() + self.lifetime_s
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    conn, _ = self._sock.accept()
                except TimeoutError:
                    continue
                self.accepted += 1
                if self.mode == "close":
                    conn.close()
                else:
                    held.append(conn)
        finally:
            for conn in held:
                conn.close()
            self._sock.close()

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_no_password(exc: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    texts = [str(exc), repr(exc), str(exc.__cause__), repr(exc.__cause__)]
    texts += [r.getMessage() for r in caplog.records]
    assert not [t for t in texts if PASSWORD in t]


def test_refused_connection_fails_fast_with_dpy_6005(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    source = OracleCapacitySource(settings(port=port, wait_timeout_ms=2000))
    start = time.monotonic()
    with pytest.raises(SourceUnavailable) as info:
        source.fetch_capacity(date(2026, 12, 1), date(2027, 3, 1))
    elapsed = time.monotonic() - start
    source.close()
    text = str(info.value)
    assert "Oracle ERP" in text and f"127.0.0.1:{port}/ERPPDB1" in text
    assert "DPY-6005" in text and "refused" in text
    assert elapsed < 3, elapsed
    assert_no_password(info.value, caplog)
    timings.info("refused port: fetch failed after %.3f s", elapsed)


def test_server_that_closes_at_once_is_source_unavailable(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with LoopbackServer("close") as server:
        source = OracleCapacitySource(settings(port=server.port, wait_timeout_ms=2000))
        start = time.monotonic()
        with pytest.raises(SourceUnavailable) as info:
            source.fetch_capacity(date(2026, 12, 1), date(2027, 3, 1))
        elapsed = time.monotonic() - start
        source.close()
    assert server.accepted >= 1
    assert "DPY-6005" in str(info.value) and "DPY-4011" in str(info.value)
    assert elapsed < 3, elapsed
    assert_no_password(info.value, caplog)
    timings.info("closing server: fetch failed after %.3f s", elapsed)


def test_silent_server_fails_within_the_wait(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wait_s = 2.0
    with LoopbackServer("silent") as server:
        source = OracleCapacitySource(
            settings(port=server.port, wait_timeout_ms=int(wait_s * 1000), tcp_connect_timeout_s=1)
        )
        start = time.monotonic()
        with pytest.raises(SourceUnavailable) as info:
            source.fetch_capacity(date(2026, 12, 1), date(2027, 3, 1))
        elapsed = time.monotonic() - start
        # the pool's connection attempt is still blocked on the silent socket; its thread must
        # be a daemon (else the interpreter could not exit) and close() must not wait for it
        pool_threads = [t for t in threading.enumerate() if "_bg_task_func" in t.name]
        assert pool_threads and all(t.daemon for t in pool_threads)
        close_start = time.monotonic()
        source.close(timeout_s=0.5)
        close_elapsed = time.monotonic() - close_start
    assert server.accepted >= 1
    assert "DPY-4005" in str(info.value) and "wait_timeout_ms=2000" in str(info.value)
    assert wait_s - 0.5 < elapsed < wait_s + 6, elapsed
    assert close_elapsed < 1.5, close_elapsed
    assert_no_password(info.value, caplog)
    timings.info(
        "silent server: fetch failed after %.3f s, close took %.3f s", elapsed, close_elapsed
    )


SILENT_EXIT_SCRIPT = """
import socket, sys
from datetime import date
from clinker_pipeline.errors import SourceUnavailable
from clinker_pipeline.defs.erp.oracle.client import OracleCapacitySource, OracleSettings
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(1)
s = OracleSettings(host="127.0.0.1", port=server.getsockname()[1], service_name="X",
                   username="u", password="p", wait_timeout_ms=1000)
try:
    OracleCapacitySource(s).fetch_capacity(date(2026, 12, 1), date(2027, 1, 1))
except SourceUnavailable:
    sys.exit(3)
"""


def test_silent_server_does_not_keep_the_process_alive() -> None:
    """Without close() and with the server never letting go, the interpreter still exits.

    The thin pool's connection thread would otherwise block interpreter exit for minutes.
    """
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", SILENT_EXIT_SCRIPT], capture_output=True, text=True, timeout=20
    )
    elapsed = time.monotonic() - start
    assert done.returncode == 3, done.stderr
    assert elapsed < 8, elapsed
    timings.info("silent server, separate process: exited after %.3f s", elapsed)


# --------------------------------------------------------------------------- sample mode


def test_sample_source_matches_the_sample_instance() -> None:
    instance = Path(__file__).resolve().parents[1] / "clinker_pipeline/sample_data/instance"
    months = {1: date(2026, 12, 1), 2: date(2027, 1, 1), 3: date(2027, 2, 1)}
    with (instance / "ClinkerCapacity.csv").open(newline="") as f:
        expected = {
            (f"11{r['IU CODE'][-2:]}", months[int(r["TIME PERIOD"])]): Decimal(r["CAPACITY"])
            for r in csv.DictReader(f)
        }
    source = SampleCapacitySource()
    assert source.path == sample_capacity_path()
    rows = source.fetch_capacity(date(2026, 12, 1), date(2027, 3, 1))
    assert len(rows) == 24
    assert {(r.plant_code, r.period_start): r.capacity_t for r in rows} == expected
    assert {r.uom for r in rows} == {"TO"}
    assert all(isinstance(r.capacity_t, Decimal) for r in rows)
    assert len(source.fetch_capacity(date(2027, 1, 1), date(2027, 2, 1), plants=["1101"])) == 1


def test_sample_file_with_bad_rows_reports_them(tmp_path: Path) -> None:
    path = tmp_path / "capacity.json"
    path.write_text(
        '{"description": [["PLANT_CODE", "DB_TYPE_VARCHAR", 4, 4, null, null, false],'
        '["PERIOD_START", "DB_TYPE_DATE", 23, null, null, null, false],'
        '["CAPACITY_T", "DB_TYPE_NUMBER", 19, null, 14, 3, true],'
        '["UOM", "DB_TYPE_VARCHAR", 3, 3, null, null, true]],'
        '"rows": [["1101", "2026-12-01T00:00:00", "1000.5", "TO"],'
        '["1102", "2026-12-01T00:00:00", "-1", "TO"]]}'
    )
    result = SampleCapacitySource(path).fetch(date(2026, 12, 1), date(2027, 1, 1))
    assert result.rows == [CapacityRow("1101", date(2026, 12, 1), Decimal("1000.5"), "TO")]
    assert [b.reason for b in result.bad_rows] == ["negative capacity -1"]


# --------------------------------------------------------------------------- opt-in: real Oracle


def test_real_oracle_database_when_configured() -> None:
    dsn = os.environ.get("ORACLE_DSN")
    if not dsn:
        pytest.skip("ORACLE_DSN not set: no Oracle database here")
    user, password = os.environ.get("ORACLE_USERNAME"), os.environ.get("ORACLE_PASSWORD")
    if not user or not password:
        pytest.skip("ORACLE_USERNAME / ORACLE_PASSWORD not set: cannot log on to ORACLE_DSN")
    overrides = (
        {"table": os.environ["ORACLE_CAPACITY_TABLE"]}
        if os.environ.get("ORACLE_CAPACITY_TABLE")
        else {}
    )
    s = OracleSettings.from_dsn(dsn, username=user, password=password, **overrides)
    with OracleCapacitySource(s) as source:
        result = source.fetch(date(2000, 1, 1), date(2100, 1, 1))
    assert all(isinstance(r.capacity_t, Decimal) for r in result.rows)
    assert all(isinstance(r.period_start, date) for r in result.rows)
