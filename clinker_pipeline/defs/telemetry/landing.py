"""The landing store: one Parquet file per ingested batch, written before anything is acked.

The ingestor acknowledges a QoS 1 message to the broker only once its batch is on disk, so the
store is the one place where "received" becomes "safe": a file appears complete or not at all
(temporary file, fsync, rename, fsync of the directory), and a crash at any point before the
rename makes the broker redeliver instead of losing the batch. Batch ids sort by landing time, so
the Dagster sensor can keep a cursor of the newest batch it has seen.

Layout under the root: `batches/{batch_id}.parquet` (landed messages, also written empty for a
batch holding only dead letters, so every batch shows up in one listing) and
`dead_letter/{batch_id}.parquet` (malformed messages, when the batch had any).
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

    import duckdb
    import numpy as np
    import pandas as pd

    from clinker_pipeline.defs.telemetry.payloads import DeadLetter, LandedMessage

LANDED_COLUMNS: tuple[str, ...] = (
    "message_id",
    "topic",
    "family",
    "plant",
    "vehicle",
    "sensor",
    "ts",
    "received_at",
    "payload",
    "batch_id",
    "client_id",
)
DEAD_LETTER_COLUMNS: tuple[str, ...] = (
    "received_at",
    "topic",
    "payload",
    "payload_b64",
    "reason",
    "batch_id",
    "client_id",
)
_TIMESTAMP_COLUMNS = frozenset({"ts", "received_at"})
_BATCH_ID = re.compile(r"[0-9]{20}-[A-Za-z0-9_-]+-[0-9]{6}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_SUFFIX = ".parquet"
_TMP_MARK = ".tmp-"

#: Per-process batch sequence; batch ids also carry the time and the client id, so two
#: processes (or two stores in one process) never collide.
_SEQ = itertools.count()
_LAST_NS = 0
_ID_LOCK = threading.Lock()


@dataclass(frozen=True)
class BatchInfo:
    batch_id: str
    path: Path
    messages: int
    dead_letters: int


def new_batch_id(client_id: str) -> str:
    """`{time_ns:020d}-{client id as [A-Za-z0-9_-]}-{seq:06d}`, strictly increasing per process
    even if the wall clock steps back, so a sensor cursor on batch ids never skips a batch of
    this process."""
    global _LAST_NS
    with _ID_LOCK:
        now = max(time.time_ns(), _LAST_NS + 1)
        _LAST_NS = now
        seq = next(_SEQ) % 1_000_000
    safe = _UNSAFE.sub("_", client_id) or "ingestor"
    return f"{now:020d}-{safe}-{seq:06d}"


class LandingStore:
    """Reader and writer of the landing directory (no Dagster here: the ingestor, the assets and
    the sensor all use this class)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.batches_dir = self.root / "batches"
        self.dead_letter_dir = self.root / "dead_letter"
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None

    def __repr__(self) -> str:
        return f"LandingStore({str(self.root)!r})"

    # -- writing ----------------------------------------------------------------------------

    def write_batch(
        self,
        messages: Sequence[LandedMessage],
        dead: Sequence[DeadLetter],
        client_id: str,
    ) -> BatchInfo:
        """Write one batch durably; when this returns, the batch survives a crash or power cut.

        The dead letters go first: the batch file is what readers list, so once it is visible
        its dead letters are too.
        """
        batch_id = new_batch_id(client_id)
        self.batches_dir.mkdir(parents=True, exist_ok=True)
        if dead:
            self.dead_letter_dir.mkdir(parents=True, exist_ok=True)
            columns = {
                "received_at": _naive_utc([d.received_at for d in dead]),
                "topic": _strings([d.topic for d in dead]),
                "payload": _strings([d.payload for d in dead]),
                "payload_b64": _strings([d.payload_b64 for d in dead]),
                "reason": _strings([d.reason for d in dead]),
            }
            self._write(columns, self.dead_letter_dir, batch_id, client_id, DEAD_LETTER_COLUMNS)
        columns = {
            "message_id": _strings([m.message_id for m in messages]),
            "topic": _strings([m.topic for m in messages]),
            "family": _strings([m.family for m in messages]),
            "plant": _strings([m.plant for m in messages]),
            "vehicle": _strings([m.vehicle for m in messages]),
            "sensor": _strings([m.sensor for m in messages]),
            "ts": _naive_utc([m.ts for m in messages]),
            "received_at": _naive_utc([m.received_at for m in messages]),
            "payload": _strings([m.payload for m in messages]),
        }
        path = self._write(columns, self.batches_dir, batch_id, client_id, LANDED_COLUMNS)
        return BatchInfo(batch_id, path, len(messages), len(dead))

    def _write(
        self,
        data: dict[str, np.ndarray],
        directory: Path,
        batch_id: str,
        client_id: str,
        columns: Sequence[str],
    ) -> Path:
        """One Parquet file from one pandas frame, typed by the SELECT (not by DuckDB's guess
        from the values, which cannot tell a column of NULLs is text)."""
        import pandas as pd

        rows = len(next(iter(data.values())))
        data["batch_id"] = _strings([batch_id] * rows)
        data["client_id"] = _strings([client_id] * rows)
        landing_frame = pd.DataFrame(data, copy=False)  # noqa: F841 (read by the SQL below)
        final = directory / f"{batch_id}{_SUFFIX}"
        tmp = directory / f".{batch_id}{_SUFFIX}{_TMP_MARK}{os.getpid()}"
        select = ", ".join(
            f"CAST({c} AS {'TIMESTAMP' if c in _TIMESTAMP_COLUMNS else 'VARCHAR'}) AS {c}"
            for c in columns
        )
        target = str(tmp).replace("'", "''")
        try:
            with self._lock:
                # DuckDB finds `landing_frame` among this function's locals (its replacement scan
                # of pandas frames): cheaper than register/unregister, which cost as much again.
                self._connection().execute(
                    f"COPY (SELECT {select} FROM landing_frame) TO '{target}' (FORMAT parquet)"
                )
            _fsync_path(tmp)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_path(directory, directory=True)
        return final

    def remove_stale_temp_files(self, max_age_s: float = 3600.0) -> int:
        """Delete temporary files left by a writer that crashed mid-write. Only old ones: another
        ingestor sharing the directory may be writing a young one right now."""
        removed = 0
        cutoff = time.time() - max_age_s
        for directory in (self.batches_dir, self.dead_letter_dir):
            if not directory.is_dir():
                continue
            for entry in os.scandir(directory):
                if _TMP_MARK in entry.name and entry.stat().st_mtime < cutoff:
                    Path(entry.path).unlink(missing_ok=True)
                    removed += 1
        return removed

    # -- reading ----------------------------------------------------------------------------

    def list_batches(self, after: str | None = None) -> list[str]:
        """Complete batches, oldest first; with `after`, only those whose id sorts after it."""
        if not self.batches_dir.is_dir():
            return []
        ids = [
            entry.name[: -len(_SUFFIX)]
            for entry in os.scandir(self.batches_dir)
            if entry.name.endswith(_SUFFIX) and not entry.name.startswith(".")
        ]
        if after is not None:
            ids = [b for b in ids if b > after]
        return sorted(ids)

    def read_batch(self, batch_id: str) -> pd.DataFrame:
        path = self.batches_dir / f"{_checked(batch_id)}{_SUFFIX}"
        if not path.exists():
            raise FileNotFoundError(f"landing batch {batch_id} not found in {self.batches_dir}")
        return self._read(path)

    def read_dead_letters(self, batch_id: str) -> pd.DataFrame:
        path = self.dead_letter_dir / f"{_checked(batch_id)}{_SUFFIX}"
        if not path.exists():
            return _empty(DEAD_LETTER_COLUMNS)
        return self._read(path)

    def recent_message_ids(self, batches: int = 50) -> set[str]:
        """Message ids of the newest `batches` batches (of every client): what a restarted
        ingestor may be sent again for messages it landed but had not yet acknowledged."""
        newest = self.list_batches()[-batches:] if batches > 0 else []
        if not newest:
            return set()
        paths = [str(self.batches_dir / f"{b}{_SUFFIX}") for b in newest]
        with self._lock:
            rows = (
                self._connection()
                .execute("SELECT message_id FROM read_parquet(?)", [paths])
                .fetchall()
            )
        return {r[0] for r in rows}

    def _read(self, path: Path) -> pd.DataFrame:
        with self._lock:
            return self._connection().execute("SELECT * FROM read_parquet(?)", [str(path)]).df()

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            import duckdb

            # One thread: batches are small, and the ingestor's network thread needs the CPU.
            self._con = duckdb.connect(config={"threads": 1})
            # The SELECT casts every column, so DuckDB need not sample object columns for types.
            self._con.execute("SET pandas_analyze_sample=0")
        return self._con

    def warm_up(self) -> None:
        """Import pandas and DuckDB and open the connection now: a long-running writer should pay
        that second at start-up, not while the first batch (and the broker) waits."""
        import numpy  # noqa: F401
        import pandas  # noqa: F401

        with self._lock:
            self._connection()

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None


def _naive_utc(values: list[datetime]) -> np.ndarray:
    """Timezone-aware datetimes -> naive UTC microseconds (what the Parquet TIMESTAMP columns
    hold). Through epoch seconds: ten times faster than pandas' parsing of datetime objects, and
    a float64 still resolves a microsecond for dates up to year 2200."""
    import numpy as np

    seconds = np.fromiter((v.timestamp() for v in values), dtype="float64", count=len(values))
    return np.round(seconds * 1e6).astype("int64").view("datetime64[us]")


def _strings(values: list[str | None]) -> np.ndarray:
    """An object array without pandas' per-value type inference (the SELECT types it)."""
    import numpy as np

    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(
        {
            c: pd.Series(dtype="datetime64[us]" if c in _TIMESTAMP_COLUMNS else "object")
            for c in columns
        }
    )


def _checked(batch_id: str) -> str:
    """Batch ids become file names: refuse anything that is not one (no path tricks)."""
    if not _BATCH_ID.fullmatch(batch_id):
        raise ValueError(f"{batch_id!r} is not a landing batch id")
    return batch_id


def _fsync_path(path: Path, *, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
