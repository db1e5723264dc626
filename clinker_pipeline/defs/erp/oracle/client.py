"""Monthly clinker production capacity from the Oracle ERP (python-oracledb, thin mode).

Three layers, so each can be tested without a database:

* `CapacityQuery` builds the SQL text. Table and column names come from configuration and are
  checked against the plain Oracle identifier syntax (identifiers cannot be bind variables);
  every value goes through a bind variable.
* `rows_to_capacity` turns DB-API rows plus `cursor.description` into `CapacityRow`s and a
  `BadRow` (raw record + reason) for each row it cannot use: nothing is dropped silently.
* `OracleCapacitySource` does the I/O through a lazily created connection pool whose waits are
  all bounded, and turns driver errors into `SourceUnavailable` messages a planner can act on.

`SampleCapacitySource` serves bundled rows stored in the driver's shape, through the same parser,
so the pipeline runs end to end without an ERP.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

import oracledb

from clinker_pipeline.errors import InvalidPayload, SourceUnavailable
from clinker_pipeline.lib.http import scrub

log = logging.getLogger(__name__)

SOURCE = "Oracle ERP"

# Oracle's unquoted identifier syntax (letters, digits, _ $ #; 128 bytes since 12.2). Quoted
# identifiers are refused on purpose: they would let configuration smuggle SQL text.
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_$#]{0,127}")

# Names the query gives the selected columns, whatever the ERP calls them, so the parser does
# not depend on configuration. Oracle upper-cases unquoted aliases; lookups ignore case.
PLANT_CODE, PERIOD_START, CAPACITY_T, UOM = "PLANT_CODE", "PERIOD_START", "CAPACITY_T", "UOM"
RESULT_COLUMNS = (PLANT_CODE, PERIOD_START, CAPACITY_T, UOM)

# Units the ERP may report, with their factor to tonnes as a power of ten (exact in Decimal).
TONNE_UNITS = {"TO": 0, "T": 0, "TON": 0, "KG": -3}

# Oracle's limit on the number of expressions in one IN list.
MAX_IN_LIST = 1000


def _identifier(value: str, what: str, *, qualified: bool = False) -> str:
    parts = value.split(".") if qualified else [value]
    if len(parts) > 2 or not all(_IDENTIFIER.fullmatch(p) for p in parts):
        raise ValueError(
            f"{what} {value!r} is not a plain Oracle identifier "
            "(letter first, then letters, digits, _ $ #; max 128 characters"
            + ("; optionally OWNER.TABLE)" if qualified else ")")
        )
    return value


@dataclass(frozen=True)
class OracleSettings:
    """Where the capacity table is and how long each step may take.

    Every wait is bounded: a pool in TIMEDWAIT mode bounds getting a connection (including a
    server that accepts TCP and never answers), `call_timeout_ms` bounds each round trip.
    """

    host: str
    service_name: str
    username: str
    password: str = field(repr=False)
    port: int = 1521
    pool_min: int = 0
    pool_max: int = 2
    wait_timeout_ms: int = 10_000
    call_timeout_ms: int = 60_000
    tcp_connect_timeout_s: float = 10.0
    fetch_batch: int = 1000
    table: str = "XX_CLINKER_CAPACITY"
    plant_column: str = "PLANT_CODE"
    period_column: str = "PERIOD_START"
    capacity_column: str = "CAPACITY_T"
    uom_column: str = "UOM"

    def __post_init__(self) -> None:
        _identifier(self.table, "table", qualified=True)
        for name in ("plant_column", "period_column", "capacity_column", "uom_column"):
            _identifier(getattr(self, name), name)
        if not self.host or not self.service_name:
            raise ValueError("Oracle ERP settings need a host and a service_name")
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} is not a TCP port")
        if not 0 <= self.pool_min <= self.pool_max or self.pool_max < 1:
            raise ValueError(f"pool size min={self.pool_min} max={self.pool_max} is not valid")
        # 0 would mean "wait forever" to the driver, which is exactly what these settings prevent
        for name in ("wait_timeout_ms", "call_timeout_ms", "tcp_connect_timeout_s", "fetch_batch"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @classmethod
    def from_dsn(
        cls, dsn: str, *, username: str, password: str, **overrides: Any
    ) -> OracleSettings:
        """Settings from an Easy Connect string or descriptor, as DBAs usually hand them out."""
        params = oracledb.ConnectParams()
        try:
            params.parse_connect_string(dsn)
        except oracledb.Error as exc:
            raise ValueError(f"cannot read the Oracle DSN: {exc.args[0].full_code}") from None
        if not params.host or not params.service_name:
            raise ValueError("the Oracle DSN must name a host and a service name")
        return cls(
            host=params.host,
            port=params.port or 1521,
            service_name=params.service_name,
            username=username,
            password=password,
            **overrides,
        )

    @property
    def endpoint(self) -> str:
        """host:port/service, the credential-free name used in messages and logs."""
        return f"{self.host}:{self.port}/{self.service_name}"


@dataclass(frozen=True)
class CapacityQuery:
    """The capacity SELECT for one configured table; values only ever as bind variables."""

    table: str = "XX_CLINKER_CAPACITY"
    plant_column: str = "PLANT_CODE"
    period_column: str = "PERIOD_START"
    capacity_column: str = "CAPACITY_T"
    uom_column: str = "UOM"

    def __post_init__(self) -> None:
        _identifier(self.table, "table", qualified=True)
        for name in ("plant_column", "period_column", "capacity_column", "uom_column"):
            _identifier(getattr(self, name), name)

    @classmethod
    def from_settings(cls, settings: OracleSettings) -> CapacityQuery:
        return cls(
            table=settings.table,
            plant_column=settings.plant_column,
            period_column=settings.period_column,
            capacity_column=settings.capacity_column,
            uom_column=settings.uom_column,
        )

    def build(
        self, period_from: date, period_to: date, plants: Sequence[str] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """SQL text and its binds for [period_from, period_to), optionally for some plants.

        The window is half-open so consecutive windows never count a month twice.
        """
        if not period_from < period_to:
            raise ValueError(f"period_from {period_from} must be before period_to {period_to}")
        binds: dict[str, Any] = {"period_from": period_from, "period_to": period_to}
        where = [
            f"{self.period_column} >= :period_from",
            f"{self.period_column} < :period_to",
        ]
        if plants is not None:
            plants = list(plants)
            if not plants:
                raise ValueError("plants, when given, must name at least one plant")
            if len(plants) > MAX_IN_LIST:
                raise ValueError(f"at most {MAX_IN_LIST} plants per query, got {len(plants)}")
            names = [f"plant_{i}" for i in range(len(plants))]
            binds.update({n: str(p) for n, p in zip(names, plants, strict=True)})
            where.append(f"{self.plant_column} IN ({', '.join(':' + n for n in names)})")
        sql = (
            f"SELECT {self.plant_column} AS {PLANT_CODE}, {self.period_column} AS {PERIOD_START}, "
            f"{self.capacity_column} AS {CAPACITY_T}, {self.uom_column} AS {UOM}\n"
            f"FROM {self.table}\n"
            f"WHERE {' AND '.join(where)}\n"
            f"ORDER BY {self.plant_column}, {self.period_column}"
        )
        return sql, binds


@dataclass(frozen=True)
class CapacityRow:
    """Capacity of one plant for the month starting at `period_start`.

    `capacity_t` is always in tonnes; `uom` is the unit the ERP reported (upper-cased), kept so
    a converted KG row can be traced back.
    """

    plant_code: str
    period_start: date
    capacity_t: Decimal
    uom: str


@dataclass(frozen=True)
class BadRow:
    """A row the planner cannot use, with the raw values to show in the quarantine."""

    raw: dict[str, Any]
    reason: str


@dataclass(frozen=True)
class CapacityFetch:
    rows: list[CapacityRow]
    bad_rows: list[BadRow]


def _column_index(description: Sequence[Sequence[Any]]) -> dict[str, int]:
    names = [str(col[0]) for col in description]
    index = {name.upper(): i for i, name in enumerate(names)}
    missing = [c for c in RESULT_COLUMNS if c not in index]
    if missing:
        raise InvalidPayload(
            f"{SOURCE} capacity rows lack column(s) {', '.join(missing)}; got {', '.join(names)}"
        )
    return index


def _plant(value: Any) -> tuple[str | None, str | None]:
    if value is None or isinstance(value, bool):
        return None, "missing plant code" if value is None else f"plant code {value!r} is not text"
    if isinstance(value, int | Decimal | float):
        # a NUMBER plant column arrives as a number; 1101 and Decimal('1101') are the same plant
        try:
            as_int = int(value)
        except (ValueError, OverflowError):
            return None, f"plant code {value!r} is not a plant number"
        if as_int != value:
            return None, f"plant code {value!r} is not a whole number"
        return str(as_int), None
    text = str(value).strip()
    return (text, None) if text else (None, "missing plant code")


def _period(value: Any) -> tuple[date | None, str | None]:
    if value is None:
        return None, "missing period start"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None, f"period start {value!r} is not a date"
    if isinstance(value, datetime):
        # Oracle DATE carries a time; a month start with a time of day is a data-entry error
        if value.timetz().replace(tzinfo=None) != time(0):
            return None, f"period start {value.isoformat()} has a time of day"
        return value.date(), None
    if isinstance(value, date):
        return value, None
    return None, f"period start {value!r} is not a date"


def _capacity(value: Any) -> tuple[Decimal | None, str | None]:
    if value is None:
        return None, "missing capacity"
    if isinstance(value, bool):
        return None, f"capacity {value!r} is not a number"
    try:
        # str() of a float is its shortest repr, so 0.1 stays 0.1 instead of its binary expansion
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        return None, f"capacity {value!r} is not a number"
    if not number.is_finite():
        return None, f"capacity {value!r} is not a finite number"
    if number < 0:
        return None, f"negative capacity {number}"
    return number, None


def _unit(value: Any) -> tuple[str | None, str | None]:
    text = "" if value is None else str(value).strip().upper()
    if not text:
        return None, "missing unit of measure"
    if text not in TONNE_UNITS:
        return None, f"unit {value!r} cannot be converted to tonnes (known: TO, T, TON, KG)"
    return text, None


def rows_to_capacity(
    description: Sequence[Sequence[Any]], rows: Sequence[Sequence[Any]]
) -> tuple[list[CapacityRow], list[BadRow]]:
    """Capacity rows from DB-API rows, and a reason for every row that cannot be used.

    Pure so the mapping is tested against rows shaped exactly like the cursor's, without a
    database. Columns are found by their `description` names, not by position.
    """
    index = _column_index(description)
    names = [str(col[0]) for col in description]
    good: list[CapacityRow] = []
    bad: list[BadRow] = []
    for row in rows:
        raw = dict(zip(names, row, strict=False))
        if len(row) != len(names):
            bad.append(BadRow(raw, f"row has {len(row)} values for {len(names)} columns"))
            continue
        plant, plant_problem = _plant(row[index[PLANT_CODE]])
        period, period_problem = _period(row[index[PERIOD_START]])
        capacity, capacity_problem = _capacity(row[index[CAPACITY_T]])
        unit, unit_problem = _unit(row[index[UOM]])
        problems = [p for p in (plant_problem, period_problem, capacity_problem, unit_problem) if p]
        if problems:
            bad.append(BadRow(raw, "; ".join(problems)))
            continue
        assert plant is not None and period is not None and capacity is not None and unit
        good.append(CapacityRow(plant, period, capacity.scaleb(TONNE_UNITS[unit]), unit))
    return good, bad


def _strict(fetch: CapacityFetch) -> list[CapacityRow]:
    if fetch.bad_rows:
        shown = "; ".join(f"{b.reason} in {b.raw}" for b in fetch.bad_rows[:3])
        more = f" (and {len(fetch.bad_rows) - 3} more)" if len(fetch.bad_rows) > 3 else ""
        raise InvalidPayload(
            f"{SOURCE} returned {len(fetch.bad_rows)} unusable capacity row(s): {shown}{more}. "
            "Fix them in the ERP, or read them with fetch() to quarantine them."
        )
    return fetch.rows


def _hint(code: str, settings: OracleSettings) -> str:
    hints = {
        "DPY-6005": "no Oracle session could be opened; check host, port, firewall and that "
        "the listener is up",
        "DPY-6001": "the listener does not know this service; check service_name",
        "DPY-4005": f"no connection within wait_timeout_ms={settings.wait_timeout_ms}: the "
        "server accepted TCP but did not answer, or every pooled connection "
        f"(pool_max={settings.pool_max}) was busy",
        "DPY-4024": f"one round trip took longer than call_timeout_ms={settings.call_timeout_ms}; "
        "the query or the network is too slow",
        "DPY-4011": "the database or network closed the connection; retry later",
        "ORA-00942": f"table {settings.table} does not exist or user {settings.username} may "
        "not SELECT from it",
        "ORA-00904": f"a configured column name does not exist in {settings.table}",
        "ORA-01017": f"invalid username or password for user {settings.username}; check the "
        "configured credentials",
        "ORA-28000": f"the account {settings.username} is locked",
        "ORA-12514": "the listener does not know this service; check service_name",
    }
    return hints.get(code, "see the Oracle error above")


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def source_unavailable(
    exc: oracledb.Error, settings: OracleSettings, doing: str = "reading capacity"
) -> SourceUnavailable:
    """A SourceUnavailable naming the source, endpoint and driver code, never the password.

    Public so other Oracle readers in the pipeline report errors the same way.
    """
    err = exc.args[0] if exc.args else None
    code = getattr(err, "full_code", "") or type(exc).__name__
    text = str(getattr(err, "message", None) or exc)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("Help:")]
    if lines and lines[0].startswith(f"{code}:"):
        lines[0] = lines[0][len(code) + 1 :].strip()
    # only the driver's text is foreign; a short password must not blank "data" out of "database"
    detail = scrub(" / ".join(lines), [settings.password])
    message = (
        f"{SOURCE} at {settings.endpoint} failed while {doing}: {code}: {detail}. "
        f"{_capitalized(_hint(code, settings))}."
    )
    return SourceUnavailable(message)


def _number_as_decimal(cursor: Any, metadata: Any) -> Any:
    # tonnages must not pass through binary floats; scoped to our connections, not
    # oracledb.defaults, so other Oracle users in the process keep their behaviour
    if metadata.type_code is oracledb.DB_TYPE_NUMBER:
        return cursor.var(Decimal, arraysize=cursor.arraysize)
    return None


def _in_daemon_thread(fn: Callable[[], Any], timeout_s: float) -> tuple[bool, Any]:
    """(finished, result): a driver call that may hang must never hold the caller or the exit."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:
            box["error"] = exc

    worker = threading.Thread(target=run, name="oracle-erp-helper", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        return False, None
    if "error" in box:
        raise box["error"]
    return True, box.get("result")


ConnectionFactory = Callable[[], AbstractContextManager[Any]]


class OracleCapacitySource:
    """Reads capacity rows from the ERP table, with every wait bounded.

    `connection_factory` replaces the Oracle pool with any DB-API connection (a context manager
    yielding it); tests use it to check the row handling without an Oracle database.
    """

    def __init__(
        self, settings: OracleSettings, connection_factory: ConnectionFactory | None = None
    ) -> None:
        self.settings = settings
        self.query = CapacityQuery.from_settings(settings)
        self._factory = connection_factory or self._pooled_connection
        self._pool: oracledb.ConnectionPool | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OracleCapacitySource({self.settings.endpoint}, table={self.settings.table})"

    def __enter__(self) -> OracleCapacitySource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _get_pool(self) -> oracledb.ConnectionPool:
        with self._lock:
            if self._pool is None:
                s = self.settings

                def create() -> oracledb.ConnectionPool:
                    return oracledb.create_pool(
                        user=s.username,
                        password=s.password,
                        host=s.host,
                        port=s.port,
                        service_name=s.service_name,
                        min=s.pool_min,
                        max=s.pool_max,
                        increment=1,
                        getmode=oracledb.POOL_GETMODE_TIMEDWAIT,
                        wait_timeout=s.wait_timeout_ms,
                        tcp_connect_timeout=s.tcp_connect_timeout_s,
                    )

                # The thin pool opens connections in its own non-daemon thread, and a server
                # that accepts TCP but never answers holds that thread (and so the process
                # exit, and pool.close()) for minutes. Threads inherit daemon status from
                # their creator, so creating the pool in a daemon thread keeps them daemonic.
                log.debug("creating the %s connection pool for %s", SOURCE, s.endpoint)
                finished, pool = _in_daemon_thread(create, timeout_s=s.wait_timeout_ms / 1000)
                if not finished:
                    raise SourceUnavailable(
                        f"{SOURCE} at {s.endpoint}: creating the connection pool took longer "
                        f"than wait_timeout_ms={s.wait_timeout_ms}."
                    )
                self._pool = pool
            return self._pool

    @contextmanager
    def _pooled_connection(self) -> Iterator[oracledb.Connection]:
        pool = self._get_pool()
        # TIMEDWAIT: returns DPY-4005 after wait_timeout_ms even when the server is silent
        with pool.acquire() as conn:
            conn.call_timeout = self.settings.call_timeout_ms
            conn.outputtypehandler = _number_as_decimal
            yield conn

    def fetch(
        self, period_from: date, period_to: date, plants: Sequence[str] | None = None
    ) -> CapacityFetch:
        """Usable rows and the quarantined ones for [period_from, period_to)."""
        sql, binds = self.query.build(period_from, period_to, plants)
        s = self.settings
        log.debug(
            "reading capacity from %s table %s for %s..%s",
            s.endpoint,
            s.table,
            period_from,
            period_to,
        )
        doing = "connecting"
        try:
            with self._factory() as conn:
                doing = "reading capacity"
                cursor = conn.cursor()
                try:
                    cursor.arraysize = s.fetch_batch
                    cursor.execute(sql, binds)
                    description = cursor.description
                    raw_rows: list[Sequence[Any]] = []
                    while batch := cursor.fetchmany():  # fetchmany() takes arraysize rows
                        raw_rows.extend(batch)
                finally:
                    cursor.close()
        except oracledb.Error as exc:
            error = source_unavailable(exc, s, doing)
            log.warning("%s", error)
            raise error from exc
        if description is None:
            raise InvalidPayload(
                f"{SOURCE} at {s.endpoint}: the capacity query returned no columns"
            )
        rows, bad = rows_to_capacity(description, raw_rows)
        log.info("%s %s: %d capacity rows, %d unusable", SOURCE, s.endpoint, len(rows), len(bad))
        for b in bad:
            log.warning("%s capacity row quarantined: %s (%s)", SOURCE, b.reason, b.raw)
        return CapacityFetch(rows, bad)

    def fetch_capacity(
        self, period_from: date, period_to: date, plants: Sequence[str] | None = None
    ) -> list[CapacityRow]:
        """Capacity rows for [period_from, period_to); InvalidPayload if any row is unusable.

        Strict because a silently missing capacity row would plan a plant at zero output; use
        `fetch()` to get the unusable rows for a quarantine instead.
        """
        return _strict(self.fetch(period_from, period_to, plants))

    def close(self, timeout_s: float = 5.0) -> None:
        """Close the pool, without waiting longer than timeout_s for a stuck connection attempt."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is None:
            return
        finished, _ = _in_daemon_thread(lambda: pool.close(force=True), timeout_s)
        if not finished:
            log.warning(
                "%s pool for %s did not close within %.0f s (a connection attempt still waits "
                "for the server); left to finish in the background",
                SOURCE,
                self.settings.endpoint,
                timeout_s,
            )


def sample_capacity_path() -> Path:
    return Path(
        str(resources.files("clinker_pipeline.defs.erp.oracle") / "samples" / "capacity.json")
    )


def _decode(type_name: str, value: Any) -> Any:
    """JSON value -> what python-oracledb would have returned for that column type."""
    if value is None:
        return None
    if type_name == "DB_TYPE_NUMBER":
        return Decimal(str(value))
    if type_name in ("DB_TYPE_DATE", "DB_TYPE_TIMESTAMP"):
        return datetime.fromisoformat(str(value))
    if type_name in ("DB_TYPE_VARCHAR", "DB_TYPE_CHAR", "DB_TYPE_NVARCHAR", "DB_TYPE_NCHAR"):
        return str(value)
    raise InvalidPayload(f"sample capacity file: column type {type_name!r} is not supported")


class SampleCapacitySource:
    """Bundled capacity rows in the driver's shape, for runs without an ERP."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else sample_capacity_path()

    def __repr__(self) -> str:
        return f"SampleCapacitySource({self.path})"

    def _read(self) -> tuple[list[list[Any]], list[tuple[Any, ...]]]:
        try:
            payload = json.loads(self.path.read_text(encoding="utf-8"))
            description = payload["description"]
            types = [str(col[1]) for col in description]
            rows = [
                tuple(_decode(t, v) for t, v in zip(types, row, strict=False))
                + tuple(row[len(types) :])
                for row in payload["rows"]
            ]
        except OSError as exc:
            raise SourceUnavailable(f"sample capacity file {self.path}: {exc.strerror}") from exc
        except (ValueError, KeyError, TypeError, IndexError, InvalidOperation) as exc:
            raise InvalidPayload(
                f"sample capacity file {self.path} is not in the documented shape: {exc!r}"
            ) from exc
        return description, rows

    def fetch(
        self, period_from: date, period_to: date, plants: Sequence[str] | None = None
    ) -> CapacityFetch:
        CapacityQuery().build(period_from, period_to, plants)  # same argument checks as Oracle
        description, raw_rows = self._read()
        rows, bad = rows_to_capacity(description, raw_rows)
        wanted = None if plants is None else {str(p) for p in plants}
        rows = [
            r
            for r in rows
            if period_from <= r.period_start < period_to
            and (wanted is None or r.plant_code in wanted)
        ]
        rows.sort(key=lambda r: (r.plant_code, r.period_start))
        return CapacityFetch(rows, bad)

    def fetch_capacity(
        self, period_from: date, period_to: date, plants: Sequence[str] | None = None
    ) -> list[CapacityRow]:
        """Same contract as `OracleCapacitySource.fetch_capacity`."""
        return _strict(self.fetch(period_from, period_to, plants))

    def close(self) -> None:
        """Nothing to release; present so both sources are interchangeable."""
