"""Shared test helpers: where the public dataset is, and copies of instances to corrupt."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clinker_pipeline.lib.http import HttpPolicy

REPO = Path(__file__).resolve().parents[1]


def shared_datasets_dir() -> Path:
    """`../shared/datasets` next to the repo, or `$CLINKER_SHARED_DIR/datasets` when set.

    CLINKER_SHARED_DIR may also point straight at the datasets folder.
    """
    env = os.environ.get("CLINKER_SHARED_DIR")
    if env:
        base = Path(env).expanduser().resolve()
        return base / "datasets" if (base / "datasets").is_dir() else base
    return REPO.parent / "shared" / "datasets"


def dataset(name: str) -> Path:
    """A public dataset folder; skips the test with the reason when it is absent."""
    path = shared_datasets_dir() / name
    if not path.exists():
        pytest.skip(f"../shared/datasets not found: {path} does not exist")
    return path


def copy_instance(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def dagster_process_env(work: Path) -> dict[str, str]:
    """Environment for a `dagster`/`clinker` subprocess with its own DAGSTER_HOME (SQLite,
    the repo's dagster.yaml) and DuckDB file under `work`."""
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CLINKER_DUCKDB_PATH": str(work / "clinker.duckdb"),
    }
    for name in ("DAGSTER_POSTGRES_URL", "DAGSTER_PG_HOST"):
        env.pop(name, None)
    return env


def venv_command(name: str) -> str:
    """A console script of this project (the venv's, when not on PATH)."""
    return shutil.which(name) or str(REPO / ".venv" / "bin" / name)


def all_log_records(caplog: Any) -> list[logging.LogRecord]:
    """Every record of the test (setup and call included, not only the current phase), less the
    loopback server's own access log (werkzeug prints request lines with their query)."""
    records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
    return [r for r in records if r.name != "werkzeug"]


#: A policy for loopback tests: the same retry code paths, without the waiting.
FAST_POLICY = HttpPolicy(
    retries=2,
    backoff_factor=0.01,
    backoff_jitter=0,
    backoff_max=0.05,
    connect_timeout=1,
    read_timeout=3,
    deadline_s=5,
)
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def hermetic_http(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, secrets: Iterable[str]
) -> Iterator[None]:
    """Body of a feed test file's autouse fixture: no proxy between the client and 127.0.0.1,
    and afterwards no log record of any phase may carry a secret."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    caplog.set_level(logging.DEBUG)
    yield
    secrets = [s for s in secrets if s]
    for record in all_log_records(caplog):
        text = record.getMessage() + (record.exc_text or "")
        for secret in secrets:
            assert secret not in text, f"secret leaked into log record {record.name}"
