"""A TCP relay the tests put between an agent and the real broker, to cut the link on cue.

Stopping Mosquitto alone leaves a race when it comes back: the agent may reconnect and
replay before the test's subscriber has resubscribed, and the subscriber then misses
batches the agent rightly deleted. With the relay the broker really goes down and comes
back, but the agent reaches it only once the test reopens the relay, after its own
subscriber is back.
"""

from __future__ import annotations

import socket
import threading

__all__ = ["TcpRelay"]


class TcpRelay:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target``; close() refuses and cuts."""

    def __init__(self, target: int):
        self.target = target
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()

    def open(self) -> TcpRelay:
        """Accept connections again (same port)."""
        lst = socket.socket()
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind(("127.0.0.1", self.port))
        lst.listen(64)
        self._listener = lst
        threading.Thread(target=self._accept, args=(lst,), daemon=True).start()
        return self

    def close(self) -> None:
        """Refuse new connections and cut the open ones (the agent sees the broker vanish)."""
        lst, self._listener = self._listener, None
        if lst is not None:
            try:  # wakes the thread blocked in accept(); close() alone would not (Linux)
                lst.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            lst.close()
        with self._lock:
            conns, self._conns = self._conns, set()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def _accept(self, lst: socket.socket) -> None:
        while True:
            try:
                client, _ = lst.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                client.close()  # the broker is down: the agent sees a refused session
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self._lock:
            self._conns.discard(src)
        src.close()  # each socket is the source of exactly one pump
