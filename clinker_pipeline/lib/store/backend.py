"""Where the analysts' tables live: one local DuckDB file (the default) or a DuckLake.

DuckDB allows one writing process per file, which is the ceiling of the embedded default. With
`CLINKER_STORE=ducklake` the same tables live in a DuckLake: its catalog in PostgreSQL
(`CLINKER_DUCKLAKE_CATALOG`, a libpq string or a postgresql:// URL) and its Parquet files under a
shared folder (`CLINKER_DUCKLAKE_DATA_PATH`), so workers on several processes or hosts write at the
same time and analysts attach read-only while they do. Everything that opens the store goes
through `connect()`, so the store code writes the same SQL to both.

The two DuckDB extensions it needs (ducklake, postgres) come from Python packages pinned to the
DuckDB release they were built for (`pip install -e ".[scale]"`): DuckDB loads them from the
package's folder with automatic install and load switched off, so nothing is ever downloaded from
an extension repository at run time.

The catalog's password never reaches DuckDB, logs or exceptions: it is cut out of the connection
string and handed to libpq through `PGPASSWORD` (libpq's own variable; `~/.pgpass` works too).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import duckdb

from clinker_pipeline.errors import ClinkerError

BACKENDS = ("duckdb", "ducklake")
#: The name the lake is attached under; analysts use the same one.
LAKE_ALIAS = "clinker"

T = TypeVar("T")
P = ParamSpec("P")


class StoreConfigError(ClinkerError):
    """The store settings are wrong or the lake cannot be reached; the message names the fix."""


@dataclass(frozen=True)
class StoreSettings:
    """The store's settings; `catalog` may carry a password, so it is never printed as is."""

    backend: str = "duckdb"
    database: str = "clinker.duckdb"
    catalog: str = ""
    data_path: str = ""

    @classmethod
    def from_env(
        cls, database: str | None = None, environ: Mapping[str, str] | None = None
    ) -> StoreSettings:
        env = os.environ if environ is None else environ
        return cls(
            backend=env.get("CLINKER_STORE", "duckdb").strip().lower() or "duckdb",
            database=database or env.get("CLINKER_DUCKDB_PATH", "clinker.duckdb"),
            catalog=env.get("CLINKER_DUCKLAKE_CATALOG", "").strip(),
            data_path=env.get("CLINKER_DUCKLAKE_DATA_PATH", "").strip(),
        )

    @property
    def is_lake(self) -> bool:
        return self.backend == "ducklake"

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise StoreConfigError(
                f"CLINKER_STORE must be one of {', '.join(BACKENDS)}, got {self.backend!r}"
            )
        if self.is_lake and not self.catalog:
            raise StoreConfigError(
                "CLINKER_STORE=ducklake needs CLINKER_DUCKLAKE_CATALOG "
                "(e.g. 'dbname=clinker_lake host=127.0.0.1 user=postgres')"
            )
        if self.is_lake and not self.data_path:
            raise StoreConfigError(
                "CLINKER_STORE=ducklake needs CLINKER_DUCKLAKE_DATA_PATH (a folder every worker "
                "and analyst can read, e.g. a network share)"
            )

    def describe(self) -> str:
        """For logs and metadata: the backend and where it is, without any password."""
        if self.is_lake:
            return f"ducklake {redact(self.catalog)} data {self.data_path}"
        return f"duckdb {self.database}"


def extension_directory() -> Path | None:
    """The folder DuckDB finds the packaged extensions in (`<dir>/v1.4.4/linux_amd64/...`)."""
    spec = importlib.util.find_spec("duckdb_ext")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "extensions"
        if candidate.is_dir():
            return candidate
    return None


# --- the catalog connection string ----------------------------------------------------------

_LIBPQ_PAIR = re.compile(r"\s*(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S*)")
_URL_KEYS = {"hostname": "host", "port": "port", "username": "user"}


def _libpq_pairs(catalog: str) -> dict[str, str]:
    """`key=value` pairs of a libpq string or a postgresql:// URL, unquoted."""
    if "://" in catalog:
        url = urlsplit(catalog)
        pairs = {
            key: unquote(str(value))
            for attr, key in _URL_KEYS.items()
            if (value := getattr(url, attr, None))
        }
        if url.password:
            pairs["password"] = unquote(url.password)
        if url.path.strip("/"):
            pairs["dbname"] = unquote(url.path.strip("/"))
        pairs.update(parse_qsl(url.query))
        return pairs
    pairs = {}
    for key, value in _LIBPQ_PAIR.findall(catalog):
        if value.startswith("'") and value.endswith("'"):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        pairs[key] = value
    return pairs


def _libpq_string(pairs: dict[str, str]) -> str:
    def quote(value: str) -> str:
        if value and not re.search(r"[\s'\\]", value):
            return value
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    return " ".join(f"{key}={quote(value)}" for key, value in pairs.items())


def split_password(catalog: str) -> tuple[str, str | None]:
    """The libpq string without its password, and the password (None when there is none)."""
    pairs = _libpq_pairs(catalog)
    password = pairs.pop("password", None)
    return _libpq_string(pairs), password


def redact(catalog: str) -> str:
    return split_password(catalog)[0]


# --- connections ----------------------------------------------------------------------------


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def lake_connect(settings: StoreSettings, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake attached as `clinker` and made the default catalog."""
    settings.validate()
    extensions = extension_directory()
    if extensions is None:
        raise StoreConfigError(
            "CLINKER_STORE=ducklake needs the DuckLake extensions: pip install -e '.[scale]'"
        )
    libpq, password = split_password(settings.catalog)
    if password and not os.environ.get("PGPASSWORD"):
        os.environ["PGPASSWORD"] = password  # libpq reads it; DuckDB never sees it
    con = duckdb.connect(
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "extension_directory": str(extensions),
        }
    )
    try:
        con.execute("LOAD ducklake")
        con.execute("LOAD postgres")
        options = "READ_ONLY" if read_only else f"DATA_PATH {_quote(settings.data_path)}"
        _attach(con, f"ATTACH {_quote('ducklake:postgres:' + libpq)} AS {LAKE_ALIAS} ({options})")
        con.execute(f"USE {LAKE_ALIAS}")
    except duckdb.Error as exc:
        con.close()
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if password:
            message = message.replace(password, "***")
        raise StoreConfigError(
            f"cannot open the DuckLake at {redact(settings.catalog)}: {message}"
        ) from None
    return con


def _attach(con: duckdb.DuckDBPyConnection, sql: str, attempts: int = 6) -> None:
    """ATTACH, again when another process was creating the catalog's tables in the same moment
    (the first attach of a new lake creates them; two at once collide in PostgreSQL)."""
    for attempt in range(1, attempts + 1):
        try:
            con.execute(sql)
            return
        except duckdb.Error as exc:
            racing = "duplicate key" in str(exc) or "already exists" in str(exc)
            if attempt == attempts or not racing:
                raise
            time.sleep(0.2 * attempt * (0.5 + random.random()))


def connect(settings: StoreSettings, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """The store connection the settings name: the DuckDB file or the attached lake."""
    settings.validate()
    if settings.is_lake:
        return lake_connect(settings, read_only=read_only)
    return duckdb.connect(settings.database, read_only=read_only)


def is_lake(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether `con`'s default catalog is a DuckLake (the store code asks, not the caller)."""
    row = con.execute(
        "SELECT type FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    return bool(row and row[0] == "ducklake")


# --- what differs between the two -----------------------------------------------------------

_KEY_CLAUSE = re.compile(r"\s+(PRIMARY\s+KEY|UNIQUE)\b", re.IGNORECASE)


def portable_ddl(con: duckdb.DuckDBPyConnection, ddl: str) -> str:
    """`ddl` as this store takes it: DuckLake has no PRIMARY KEY/UNIQUE, so they are dropped
    there (the store code keeps keys unique through `upsert`, not through the constraint)."""
    return _KEY_CLAUSE.sub("", ddl) if is_lake(con) else ddl


def upsert(
    con: duckdb.DuckDBPyConnection,
    table: str,
    source: str,
    keys: tuple[str, ...],
    *,
    replace: bool = True,
    columns: Sequence[str] = (),
) -> None:
    """Insert the rows of relation `source` into `table`, replacing (or, with replace=False,
    keeping) stored rows with the same key. DuckDB: the primary key's INSERT OR REPLACE/IGNORE;
    DuckLake: DELETE + INSERT inside the caller's transaction. `columns` names the columns to
    write when `source` does not have the table's columns in the table's order."""
    target = f"{table} ({', '.join(columns)})" if columns else table
    select = ", ".join(columns) if columns else "*"
    if not is_lake(con):
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        con.execute(f"{verb} INTO {target} SELECT {select} FROM {source}").fetchall()
        return
    match = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    if replace:
        con.execute(f"DELETE FROM {table} t WHERE EXISTS (SELECT 1 FROM {source} s WHERE {match})")
        con.execute(f"INSERT INTO {target} SELECT {select} FROM {source}").fetchall()
    else:
        con.execute(
            f"INSERT INTO {target} SELECT {select} FROM {source} s "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {match})"
        ).fetchall()


#: A DuckLake commit that failed is rolled back whole. Besides "Transaction conflict", DuckLake 0.3
#: on DuckDB 1.4.4 sometimes fails the conflict check itself under concurrent writers ("Failed to
#: parse catalog entry - trailing data after quoted value"); running the unit again succeeds.
_LAKE_COMMIT_FAILED = "Failed to commit DuckLake transaction"


def is_conflict(exc: BaseException | None) -> bool:
    """A commit that lost a race with another writer (DuckLake) or another connection (DuckDB).

    The chain is searched too: after a failed COMMIT no transaction is active, so the store
    code's ROLLBACK raises "no transaction is active" with the conflict as its context.
    """
    while exc is not None:
        text = str(exc)
        if isinstance(exc, duckdb.TransactionException) and (
            "conflict" in text.lower() or _LAKE_COMMIT_FAILED in text
        ):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def retry_on_conflict(
    publish: Callable[[], T],
    *,
    attempts: int = 8,
    on_retry: Callable[[int, BaseException], None] | None = None,
) -> T:
    """Run `publish` (one whole transaction) again when its commit lost a race.

    DuckLake checks conflicts at commit: two appends to one table both land, but two writers that
    deleted from the same file, or created the same table or view, cannot both commit. The loser's
    transaction is rolled back whole, so running it again is safe; the backoff is jittered so two
    losers do not collide again.
    """
    for attempt in range(1, attempts + 1):
        try:
            return publish()
        except duckdb.Error as exc:
            if attempt == attempts or not is_conflict(exc):
                raise
            if on_retry is not None:
                on_retry(attempt, exc)
            time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")


def conflict_retried(fn: Callable[P, T]) -> Callable[P, T]:
    """For store functions that are one transaction (or idempotent statements) already: run the
    whole function again when its commit lost a race."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        return retry_on_conflict(lambda: fn(*args, **kwargs))

    return wrapper


# connections (by id) inside a transaction that `transactional` or `db.transaction` opened:
# DuckDB cannot say whether a connection is in one, and a second BEGIN aborts the first
OPEN_TRANSACTIONS: set[int] = set()


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    with contextlib.suppress(duckdb.TransactionException):  # a failed COMMIT ended it already
        con.execute("ROLLBACK")


def transactional(fn: Callable[..., T]) -> Callable[..., T]:
    """For store functions of several autocommit statements (`fn(con, ...)`): one transaction,
    so a publish lands whole or not at all, run again when its commit lost a race."""

    @functools.wraps(fn)
    def wrapper(con: duckdb.DuckDBPyConnection, *args: Any, **kwargs: Any) -> T:
        def once() -> T:
            if id(con) in OPEN_TRANSACTIONS:
                # inside the caller's transaction: join it; the caller commits (and retries)
                return fn(con, *args, **kwargs)
            con.execute("BEGIN TRANSACTION")
            OPEN_TRANSACTIONS.add(id(con))
            try:
                result = fn(con, *args, **kwargs)
                con.execute("COMMIT")
            except BaseException:
                _rollback(con)
                raise
            finally:
                OPEN_TRANSACTIONS.discard(id(con))
            return result

        return retry_on_conflict(once)

    return wrapper
