"""Real redis-server processes for tests: a standalone server on a free port, and a 3-node cluster.

Tests start their own servers when they need to stop, freeze or count commands on
one, and so never disturb the shared server at 127.0.0.1:6379 that other test runs use.
Nothing is persisted: every server runs with `--save "" --appendonly no` in a temp dir.
Imported by tests/conftest.py, so every test package can ask for `redis_server` (a
private server per test), `redis_cluster` (one cluster per session) or `shared_redis_url`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

CLUSTER_HASH_SLOTS = 16384
_STARTUP_TIMEOUT_S = 10.0


def redis_binaries_available() -> bool:
    return shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, with_cluster_bus: bool = False) -> int:
    """A port nothing listens on; with `with_cluster_bus`, port + 10000 (the cluster bus) is free too."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if not with_cluster_bus:
            return port
        if port + 10000 < 65536 and _port_is_free(port + 10000):
            return port
    raise RuntimeError("no free port found")


def _wait_until(condition: Callable[[], bool], what: str, timeout_s: float = _STARTUP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if condition():
                return
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


class ServerExited(RuntimeError):
    """The redis-server process ended while starting, typically because its port was taken."""


class RedisServerProcess:
    """One redis-server child process on 127.0.0.1:`port`; it can be stopped, frozen and started again."""

    def __init__(self, directory: Path, port: int | None = None, *, cluster: bool = False) -> None:
        self.port = port or free_port(with_cluster_bus=cluster)
        # Once a server has run on a port, a restart must come back on the same one.
        self._port_pinned = port is not None
        self.directory = directory
        self.cluster = cluster
        self._process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> RedisServerProcess:
        """Start and wait until this very process answers; a port another test run took meanwhile is replaced."""
        for _ in range(5):
            self._process = subprocess.Popen(self._command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                _wait_until(self._is_ours_and_answering, f"redis-server on port {self.port}")
            except ServerExited:
                if self._port_pinned:
                    raise
                self.port = free_port(with_cluster_bus=self.cluster)
                continue
            self._port_pinned = True
            return self
        raise RuntimeError(f"redis-server kept failing to start; see {self.directory}")

    def stop(self) -> None:
        """Kill the server (SIGKILL: an outage, not a graceful shutdown) and wait for it to exit."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self.resume()  # a frozen process must run to die
            self._process.kill()
        self._process.wait(timeout=_STARTUP_TIMEOUT_S)
        self._process = None

    def freeze(self) -> None:
        """SIGSTOP: the port still accepts connections but nothing answers, so clients time out."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def command_calls(self, command: str) -> int:
        """How many times the server ran `command` (INFO commandstats), e.g. "mget" or "script|load"."""
        with self.client() as client:
            stats = client.info("commandstats")
        return int(stats.get(f"cmdstat_{command.lower()}", {}).get("calls", 0))

    def _command(self) -> list[str]:
        command = [
            "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(self.directory),
            "--logfile", str(self.directory / f"redis-{self.port}.log"),
        ]
        if self.cluster:
            command += ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{self.port}.conf"]
        return command

    def _is_ours_and_answering(self) -> bool:
        # Other test runs start servers on free ports too: the one answering must be this process.
        assert self._process is not None
        if self._process.poll() is not None:
            raise ServerExited(f"redis-server on port {self.port} exited; see {self.directory}")
        with self.client() as client:
            return int(client.info("server")["process_id"]) == self._process.pid


class RedisClusterProcesses:
    """A real Redis Cluster of `size` primaries and no replicas, every slot covered."""

    def __init__(self, directory: Path, size: int = 3) -> None:
        self.nodes = [RedisServerProcess(directory / f"node-{index}", cluster=True) for index in range(size)]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self) -> RedisClusterProcesses:
        try:
            for node in self.nodes:
                node.start()
            subprocess.run(
                ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{node.port}" for node in self.nodes),
                 "--cluster-replicas", "0", "--cluster-yes"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30,
            )
            _wait_until(self._every_node_reports_ok, "cluster_state:ok on every node", timeout_s=30)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def command_calls(self, command: str) -> int:
        return sum(node.command_calls(command) for node in self.nodes)

    def _every_node_reports_ok(self) -> bool:
        for node in self.nodes:
            with node.client() as client:
                info = client.cluster("INFO")
            if info.get("cluster_state") != "ok" or int(info.get("cluster_slots_ok", 0)) != CLUSTER_HASH_SLOTS:
                return False
        return True


def shared_redis_url_from_env() -> str:
    """The long-running server other sessions share: a high db number of its own (override: BOOKREC_TEST_REDIS_URL)."""
    return os.environ.get("BOOKREC_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def shared_redis_available(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


# Fixtures, imported by tests/conftest.py so that every test package (adapters, API, soak) can use them.


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcesses]:
    """A 3-primary Redis Cluster this test session starts on free ports and stops at its end."""
    if not redis_binaries_available():
        pytest.skip("redis-server / redis-cli are not on PATH")
    cluster = RedisClusterProcesses(tmp_path_factory.mktemp("redis-cluster")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServerProcess]:
    """A private redis-server on a free port, for tests that stop, freeze or count commands on it."""
    if not redis_binaries_available():
        pytest.skip("redis-server is not on PATH")
    server = RedisServerProcess(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def shared_redis_url() -> str:
    """The shared long-running Redis (db 13 by default); tests on it must use unique keys and delete them."""
    url = shared_redis_url_from_env()
    if not shared_redis_available(url):
        pytest.skip(f"no Redis answers at {url}")
    return url
