"""Several server processes on one port, each listening on a socket of its own.

uvicorn's ``--workers`` binds one socket in its parent and hands it to every child, so
each new connection goes to whichever child is waiting in ``accept`` first. Connections
that open over time spread out; a burst of keep-alive connections opened at once (a
proxy's upstream pool, the ingest bench's 64) can all land on one process while the
others idle. With ``SO_REUSEPORT`` every process binds the port itself and Linux hands
each new connection to one of the listening sockets by a hash of its addresses.

uvicorn has no option for a socket per child, so this module starts the children and
watches them: a child that dies is started again, one that fails before it serves (its
app or its bind is broken and would fail the same way again) stops the whole server,
and SIGINT or SIGTERM stops the children gracefully. Where the kernel does not spread
connections over such sockets (anything but Linux), ``serve`` keeps uvicorn's shared
socket (:func:`spreads_connections`).
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import sys
import threading
from multiprocessing.process import BaseProcess
from types import FrameType

import uvicorn
from uvicorn.config import STARTUP_FAILURE

log = logging.getLogger("parley.http.processes")

_CHECK_SECONDS = 0.5
_STOP_GRACE_SECONDS = 15.0


def spreads_connections() -> bool:
    """Whether this platform balances connections over sockets sharing a port."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT``, not yet listening.

    A child hands it to uvicorn, whose ``create_server`` listens on it only once the app
    has started: until then the kernel routes no connection to a process not ready for it.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def _serve_child(config: uvicorn.Config) -> None:
    """One server process: its own socket on the shared port, then uvicorn on it."""
    config.configure_logging()
    try:
        sock = reuse_port_socket(config.host, config.port)
    except OSError as exc:
        logging.getLogger("uvicorn.error").error(exc)
        sys.exit(STARTUP_FAILURE)
    uvicorn.Server(config).run(sockets=[sock])


class Supervisor:
    """Starts ``config.workers`` server processes and keeps them running until a signal."""

    def __init__(self, config: uvicorn.Config) -> None:
        self.config = config
        self._context = multiprocessing.get_context("spawn")
        self._children: list[BaseProcess] = []
        self._stopping = threading.Event()
        self.failed = False

    def run(self) -> None:
        """Serve until SIGINT or SIGTERM (or a child that cannot start)."""
        # Bound, never listening: the port is checked before any child starts, and no
        # connection is ever queued on this socket.
        reserved = reuse_port_socket(self.config.host, self.config.port)
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self._children = [self._start() for _ in range(self.config.workers)]
            while not self._stopping.wait(_CHECK_SECONDS):
                self._replace_dead()
        finally:
            self._stop_all()
            reserved.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping the server processes", signal.Signals(signum).name)
        self._stopping.set()

    def _start(self) -> BaseProcess:
        child = self._context.Process(target=_serve_child, args=(self.config,))
        child.start()
        return child

    def _replace_dead(self) -> None:
        for index, child in enumerate(self._children):
            if child.is_alive() or self._stopping.is_set():
                continue
            child.join()
            if child.exitcode == STARTUP_FAILURE:
                log.error("server process %s failed to start; stopping", child.pid)
                self.failed = True
                self._stopping.set()
                return
            log.warning(
                "server process %s exited with %s; starting another", child.pid, child.exitcode
            )
            self._children[index] = self._start()

    def _stop_all(self) -> None:
        for child in self._children:
            if child.is_alive():
                child.terminate()  # SIGTERM: uvicorn finishes its requests and shuts down
        for child in self._children:
            child.join(_STOP_GRACE_SECONDS)
            if child.is_alive():
                log.warning("server process %s did not stop in time; killing it", child.pid)
                child.kill()
                child.join()
