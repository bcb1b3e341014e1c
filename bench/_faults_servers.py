"""Private servers for the fault harness, which it may restart, and cuts of its own sessions.

The shared PostgreSQL and RabbitMQ on 5432 / 5672 serve other people's tests: the
harness never restarts or stops them. For "server restart mid-stream" it starts its
own: a PostgreSQL cluster (initdb + pg_ctl, port 55432 by default) in a temporary
folder, a second RabbitMQ node (``wrkrfaults@localhost``, AMQP 5673, its own mnesia,
logs, config and no plugins), and a secantusdb wire server on a fixed port with its
data on disk, so that it can be started again on the same port with the same items.

Connection cuts touch only the harness's own sessions: PostgreSQL backends whose
``application_name`` is the harness's, RabbitMQ connections whose client-provided
``connection_name`` is.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SESSION_NAME = "wrkr_faults"
"""The ``application_name`` / ``connection_name`` of every harness connection."""
START_WAIT = 60.0


class ServerMissing(RuntimeError):
    """A private server cannot be started here (binary or user missing); says which."""


def port_open(port: int) -> bool:
    """Tell whether something accepts TCP connections on 127.0.0.1:`port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(port: int, up: bool = True, timeout: float = START_WAIT) -> None:
    """Wait (bounded) until 127.0.0.1:`port` accepts connections, or refuses them."""
    deadline = time.monotonic() + timeout
    while port_open(port) != up:
        if time.monotonic() > deadline:
            raise RuntimeError(f"port {port} still {'closed' if up else 'open'} after {timeout}s")
        time.sleep(0.05)  # a port has nothing to await; bounded by `timeout`


def _as_user(user: str) -> list[str]:
    """Run as `user` when we are root (initdb and rabbitmq refuse root or need its cookie)."""
    try:
        pwd.getpwnam(user)
    except KeyError:
        raise ServerMissing(f"there is no {user!r} user to run the private server as") from None
    return ["runuser", "-u", user, "--"] if os.geteuid() == 0 else []


def _run(command: list[str], timeout: float = START_WAIT, cwd: str | None = None) -> None:
    done = subprocess.run(command, capture_output=True, timeout=timeout, check=False, cwd=cwd)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): "
                           f"{(done.stderr or done.stdout).decode(errors='replace')[-800:]}")


class PrivatePostgres:
    """A PostgreSQL cluster of the harness's own on `port`, restartable."""

    def __init__(self, port: int = 55432) -> None:
        if not (PG_BIN / "initdb").exists():
            raise ServerMissing(f"{PG_BIN / 'initdb'} is not installed")
        self.port = port
        self.folder = Path(tempfile.mkdtemp(prefix="wrkr-faults-pg-"))
        self.user = _as_user("postgres")
        self.url = (f"postgresql://postgres@127.0.0.1:{port}/postgres"
                    f"?application_name={SESSION_NAME}")

    def _ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        _run([*self.user, str(PG_BIN / "pg_ctl"), "-D", str(self.folder / "data"), "-w",
              "-l", str(self.folder / "log"), "-o", options, *args])

    def start(self) -> None:
        if port_open(self.port):
            raise RuntimeError(f"port {self.port} is taken: pick another for the private server")
        if self.user:
            shutil.chown(self.folder, "postgres")
        _run([*self.user, str(PG_BIN / "initdb"), "-D", str(self.folder / "data"),
              "-A", "trust", "-U", "postgres"])
        self._ctl("start")

    def restart(self) -> tuple[float, float]:
        """Restart the cluster (fast shutdown); return when it went down and came up."""
        down = time.time()
        self._ctl("-m", "fast", "restart")
        wait_for_port(self.port)
        return down, time.time()

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._ctl("-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


class PrivateRabbitMQ:
    """A second RabbitMQ node, ``wrkrfaults@localhost`` on AMQP `port`, restartable.

    Other ports than the default get a node name of their own (``wrkrfaults<port>``).
    """

    def __init__(self, port: int = 5673, dist_port: int = 25673,
                 advanced: str = "[].") -> None:
        self.advanced = advanced  # the node's advanced.config: Erlang terms
        self.node = "wrkrfaults@localhost" if port == 5673 else f"wrkrfaults{port}@localhost"
        self.server = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
        if not self.server.exists():
            raise ServerMissing(f"{self.server} is not installed")
        self.port, self.dist_port = port, dist_port
        self.folder = Path(tempfile.mkdtemp(prefix="wrkr-faults-rabbitmq-"))
        self.user = _as_user("rabbitmq")
        home = Path(pwd.getpwnam("rabbitmq").pw_dir)
        if not self.user and os.geteuid() != pwd.getpwnam("rabbitmq").pw_uid:
            raise ServerMissing("a private RabbitMQ node needs root or the rabbitmq user "
                                "(its Erlang cookie)")
        self.env = {**os.environ, "HOME": str(home),  # the node's Erlang cookie lives there
                    "RABBITMQ_NODENAME": self.node, "RABBITMQ_NODE_PORT": str(port),
                    "RABBITMQ_DIST_PORT": str(dist_port),
                    "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"),
                    "RABBITMQ_LOG_BASE": str(self.folder / "log"),
                    "RABBITMQ_CONFIG_FILE": str(self.folder / "rabbitmq.conf"),
                    "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.folder / "advanced.config"),
                    "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins"),
                    "RABBITMQ_CONF_ENV_FILE": str(self.folder / "rabbitmq-env.conf"),
                    "ERL_EPMD_ADDRESS": "127.0.0.1"}
        self.url = (f"amqp://guest:guest@127.0.0.1:{port}/"
                    f"?client_properties={{'connection_name':'{SESSION_NAME}'}}")

    def _env_command(self, *command: str) -> list[str]:
        keep = [f"{key}={value}" for key, value in self.env.items() if key.startswith(
            ("RABBITMQ_", "ERL_", "HOME"))]
        return [*self.user, "env", *keep, *command]

    def ctl(self, *args: str, timeout: float = START_WAIT) -> None:
        """Run ``rabbitmqctl -n wrkrfaults@localhost ARGS`` (bounded)."""
        _run(self._env_command("/usr/lib/rabbitmq/bin/rabbitmqctl", "-q", "-n", self.node,
                               *args), timeout, cwd=self.env["HOME"])

    def start(self) -> None:
        if port_open(self.port) or port_open(self.dist_port):
            raise RuntimeError(f"port {self.port} or {self.dist_port} is taken: is a "
                               f"{self.node} node left running? (rabbitmqctl -n {self.node} stop)")
        (self.folder / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        (self.folder / "enabled_plugins").write_text("[].\n")
        (self.folder / "advanced.config").write_text(self.advanced + "\n")
        (self.folder / "rabbitmq-env.conf").write_text("")
        for path in (self.folder, *self.folder.iterdir()):
            if self.user:
                shutil.chown(path, "rabbitmq", "rabbitmq")
        _run(self._env_command(str(self.server), "-detached"), cwd=self.env["HOME"])
        deadline = time.monotonic() + START_WAIT
        while True:  # await_startup needs a node to ask: wait until the new one answers
            try:
                self.ctl("ping", timeout=15)
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        self.ctl("await_startup", "--timeout", "50")
        wait_for_port(self.port)

    def restart(self) -> tuple[float, float]:
        """Stop and start the node's RabbitMQ application; return when down and up."""
        down = time.time()
        self.ctl("stop_app")
        self.ctl("start_app")
        wait_for_port(self.port)
        return down, time.time()

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.ctl("stop")
        shutil.rmtree(self.folder, ignore_errors=True)


class WireServer:
    """A secantusdb wire server on a fixed port with its data on disk, restartable."""

    _LISTENING = re.compile(r"listening on [^\s:]+:(\d+)")

    def __init__(self, port: int = 27217) -> None:
        beside = Path(sys.executable).with_name("secantusd-py")
        found = str(beside) if beside.exists() else shutil.which("secantusd-py")
        if found is None:
            raise ServerMissing('secantusd-py is not installed (pip install "wrkr[test]")')
        self.executable, self.port = found, port
        self.folder = Path(tempfile.mkdtemp(prefix="wrkr-faults-mongo-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"mongodb://127.0.0.1:{port}/wrkr_faults"

    def start(self) -> None:
        if port_open(self.port):
            raise RuntimeError(f"port {self.port} is taken: pick another for the wire server")
        with (self.folder / "log").open("ab") as sink:
            self.process = subprocess.Popen(
                [self.executable, "--port", str(self.port), "--storage-path",
                 str(self.folder / "data"), "--sync-on-commit", "--log-level", "WARNING"],
                stdout=sink, stderr=subprocess.STDOUT)
        wait_for_port(self.port)

    def _end(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        wait_for_port(self.port, up=False)

    def restart(self) -> tuple[float, float]:
        """Stop the server (SIGTERM) and start it again on its port, its data kept."""
        down = time.time()
        self._end()
        self.start()
        return down, time.time()

    def stop(self) -> None:
        self._end()
        shutil.rmtree(self.folder, ignore_errors=True)


Server = PrivatePostgres | PrivateRabbitMQ | WireServer


def free_port() -> int:
    """A TCP port nothing listens on now (the OS's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def private_server(kind: str, *, any_port: bool = False) -> Iterator[Server]:
    """Start a private server of `kind` (postgresql, amqp, mongodb); stop it afterwards.

    With `any_port`, on free ports the OS picks rather than the fixed defaults (the
    test suite's, so that it never meets a harness run).
    """
    server: Server
    if kind == "postgresql":
        server = PrivatePostgres(free_port()) if any_port else PrivatePostgres()
    elif kind == "amqp":
        server = PrivateRabbitMQ(free_port(), free_port()) if any_port else PrivateRabbitMQ()
    else:
        server = WireServer(free_port()) if any_port else WireServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


def cut_postgres_sessions(url: str) -> int:
    """Terminate the harness's own PostgreSQL sessions (by application_name); say how many."""
    import psycopg

    with psycopg.connect(url.split("?")[0], autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND application_name = %s", [SESSION_NAME]).fetchall()
    return len(rows)


def cut_rabbitmq_connections(ctl: list[str]) -> int:
    """Close the harness's own RabbitMQ connections (by connection_name); say how many.

    `ctl` is the rabbitmqctl command line for the node (``["rabbitmqctl"]`` for the
    shared one).
    """
    listed = subprocess.run([*ctl, "-q", "list_connections", "pid", "client_properties"],
                            capture_output=True, timeout=30, check=True, text=True)
    mark = f'{{"connection_name","{SESSION_NAME}"}}'
    ours = [line.split("\t")[0] for line in listed.stdout.splitlines() if mark in line]
    for pid in ours:
        subprocess.run([*ctl, "-q", "close_connection", pid, "wrkr fault harness"],
                       capture_output=True, timeout=30, check=False)
    return len(ours)


class CuttingProxy:
    """A TCP proxy in front of a server that can cut every connection through it at once.

    For servers with no way to cut a client's session (the wire server): clients see
    their connections reset by the peer, as they would if the server dropped them.
    """

    def __init__(self, target_port: int) -> None:
        import threading

        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="cutting-proxy").start()

    def _accept(self) -> None:
        import threading

        while not self._closed:
            try:
                client, _ = self.listener.accept()
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                continue
            server.settimeout(None)
            with self._lock:
                self._open += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> int:
        """Reset every connection through the proxy; say how many client connections."""
        with self._lock:
            cut, self._open = self._open, []
        for end in cut:
            with contextlib.suppress(OSError):
                end.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                end.close()
        return len(cut) // 2

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        self.cut()
