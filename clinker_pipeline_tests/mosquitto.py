"""A private Mosquitto broker per test: its own port, config, persistence file and log.

Tests that stop or restart a broker, or that must not see other traffic, cannot use the shared
system broker on 1883. This one runs `mosquitto -c <tmp>/mosquitto.conf` on a free loopback
port with persistence on, so `stop()` (SIGTERM: Mosquitto saves its database on the way out)
followed by `start()` on the same port is a real broker restart that keeps persistent sessions
and their queued messages; `kill()` (SIGKILL) is a crash that keeps only the last autosave.

`users={"name": "password"}` turns anonymous access off and writes a password file (with
`mosquitto_passwd`), for tests of credentials.

Use the `private_broker` fixture (import it into the test module, or list this module in
`pytest_plugins` of the root conftest); it skips only when the `mosquitto` binary is absent.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

#: Where Debian puts the binary, which is not on a normal user's PATH.
_SEARCH = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin")


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    for directory in _SEARCH:
        candidate = Path(directory) / "mosquitto"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MosquittoBroker:
    """One private broker; `start()`, `stop()` and `kill()` may be called in any order."""

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        binary: str | None = None,
        max_queued_messages: int = 0,
        max_inflight_messages: int = 0,
        autosave_interval: int = 1800,
        users: dict[str, str] | None = None,
        extra_config: str = "",
    ) -> None:
        self.binary = binary or mosquitto_binary()
        if self.binary is None:
            raise FileNotFoundError("the mosquitto binary is not installed")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.config_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(exist_ok=True)
        lines = [
            "persistence true",
            f"persistence_location {self.data_dir}/",
            "persistence_file mosquitto.db",
            f"autosave_interval {autosave_interval}",
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'false' if users else 'true'}",
            # 0 = no limit: a subscriber that is offline during a test must not lose messages
            # to the 1000-message default.
            f"max_queued_messages {max_queued_messages}",
            f"max_inflight_messages {max_inflight_messages}",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if users:
            lines.append(f"password_file {self._password_file(users)}")
        if os.geteuid() == 0:
            # Run as root, Mosquitto would switch to the `mosquitto` user, who cannot write the
            # test's temporary directory.
            lines.append(f"user {getpass.getuser()}")
        self.config_path.write_text("\n".join(lines) + "\n" + extra_config)
        self.process: subprocess.Popen | None = None

    def _password_file(self, users: dict[str, str]) -> Path:
        tool = shutil.which("mosquitto_passwd") or str(
            Path(self.binary).parent / "mosquitto_passwd"
        )
        if not Path(tool).exists() and not shutil.which(tool):
            raise FileNotFoundError("mosquitto_passwd is not installed")
        path = self.workdir / "passwords"
        path.write_text("")
        for user, password in users.items():
            subprocess.run([tool, "-b", str(path), user, password], check=True, timeout=10)
        path.chmod(0o600)
        return path

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 10.0) -> MosquittoBroker:
        """Start (again, on the same port) and wait until it accepts connections."""
        if self.running:
            return self
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with code {self.process.returncode} on port {self.port}:\n"
                    f"{self.log_tail()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait: a clean shutdown that writes the persistence file."""
        if not self.running:
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"mosquitto did not stop within {timeout} s") from None

    def kill(self) -> None:
        """SIGKILL: a crash; only what the last autosave wrote survives."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def restart(self) -> MosquittoBroker:
        self.stop()
        return self.start()

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A started private broker, killed after the test."""
    if mosquitto_binary() is None:
        pytest.skip("the mosquitto binary is not installed (apt-get install mosquitto)")
    broker = MosquittoBroker(tmp_path / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()
