"""A TCP proxy on loopback that injects network faults between the client and the local server.

Stdlib only.  Each proxied connection (a *link*) has two directions; each direction is a reader
thread (``recv`` into a queue, stamped with its due time) and a writer thread (forwards what is due).
Splitting them makes ``delay`` a true latency (every chunk arrives ``delay`` seconds after it was
read, however many are in flight) instead of a throughput limit.

Faults:

* ``delay = s``        latency added to every chunk, each direction.
* ``pause()``          black hole: nothing is forwarded either way, the sockets stay open (only an
                       application keepalive can notice); ``resume()`` forwards what was held.
* ``pause(stall=True)``  also stop reading, so the senders' socket buffers fill up (backpressure).
* ``reset()``          abort every live link with a TCP RST to both peers.
* ``fin()``            end every live link with a FIN to both peers (no WebSocket close frame).
* ``cut_after(n)``     forward ``n`` more server->client bytes, then reset (a frame cut in half).
* ``refuse()``         close the listening socket: new connections get ECONNREFUSED;
                       ``accept()`` listens on the same port again.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections import deque


class _Link:
    def __init__(self, index: int, client: socket.socket, server: socket.socket) -> None:
        self.index = index
        self.client, self.server = client, server
        self.dead = False
        self.open_directions = 2
        self.queues: dict[bool, deque[tuple[float, bytes | None]]] = {True: deque(), False: deque()}


class FaultProxy:
    """Forward ``127.0.0.1:<port>`` to ``127.0.0.1:<upstream_port>``, with faults on demand."""

    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.upstream = (host, upstream_port)
        self.delay = 0.0
        self._cond = threading.Condition()  # guards links, queues, _paused, _budget
        self._paused = False
        self._stalled = False
        self._budget: int | None = None
        self._links: list[_Link] = []
        self._threads: list[threading.Thread] = []
        self._count = 0
        self._listener: socket.socket | None = None
        self.port = 0
        self.accepted = 0

    # ------------------------------------------------------------------------------------------ lifecycle
    def start(self) -> FaultProxy:
        self.accept()
        return self

    def accept(self) -> None:
        """(Re)open the listening socket, on the same port after :meth:`refuse`."""
        listener = socket.create_server((self.host, self.port))  # SO_REUSEADDR is set on POSIX
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._spawn(self._accept_loop, listener, name="faultproxy-accept")

    def refuse(self) -> None:
        """Stop listening: connection attempts are refused until :meth:`accept`."""
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
            except OSError:
                pass
            listener.close()

    def stop(self, timeout: float = 5.0) -> None:
        self.refuse()
        self.resume()
        self.reset()
        for thread in list(self._threads):
            thread.join(timeout)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/v1/realtime"

    @property
    def live_links(self) -> int:
        with self._cond:
            return len(self._links)

    @property
    def threads_alive(self) -> int:
        return sum(t.is_alive() for t in self._threads)

    # ------------------------------------------------------------------------------------------ faults
    def pause(self, stall: bool = False) -> None:
        with self._cond:
            self._paused = True
            self._stalled = stall

    def resume(self) -> None:
        with self._cond:
            self._paused = self._stalled = False
            self._cond.notify_all()

    def cut_after(self, nbytes: int | None) -> None:
        with self._cond:
            self._budget = nbytes

    def reset(self) -> int:
        return self._each(self._rst)

    def fin(self) -> int:
        return self._each(self._fin)

    def _each(self, how) -> int:  # type: ignore[no-untyped-def]
        with self._cond:
            links, self._links = self._links, []
            for link in links:
                link.dead = True
            self._cond.notify_all()
        for link in links:
            how(link.client)
            how(link.server)
        return len(links)

    @staticmethod
    def _rst(sock: socket.socket) -> None:
        # linger 0 turns close() into a RST; SHUT_RD first wakes our reader blocked in recv()
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass
        sock.close()

    @staticmethod
    def _fin(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    # ------------------------------------------------------------------------------------------ forwarding
    def _spawn(self, target, *args, name: str) -> None:  # type: ignore[no-untyped-def]
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                self._rst(client)
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._cond:
                self._count += 1
                self.accepted += 1
                link = _Link(self._count, client, server)
                self._links.append(link)
            for downstream in (False, True):
                src, dst = (server, client) if downstream else (client, server)
                tag = f"faultproxy-{link.index}-{'down' if downstream else 'up'}"
                self._spawn(self._read, link, src, downstream, name=tag + "-read")
                self._spawn(self._write, link, dst, downstream, name=tag + "-write")

    def _read(self, link: _Link, src: socket.socket, downstream: bool) -> None:
        queue = link.queues[downstream]
        while True:
            with self._cond:
                self._cond.wait_for(lambda: not self._stalled or link.dead)
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            with self._cond:
                queue.append((time.monotonic() + self.delay, data or None))
                self._cond.notify_all()
            if not data:
                return

    def _write(self, link: _Link, dst: socket.socket, downstream: bool) -> None:
        queue = link.queues[downstream]
        while True:
            cut = False
            with self._cond:
                while True:
                    if link.dead:
                        return
                    if queue and not self._paused:
                        wait = queue[0][0] - time.monotonic()
                        if wait <= 0:
                            _, data = queue.popleft()
                            break
                        self._cond.wait(wait)  # the delay fault itself
                    else:
                        self._cond.wait()
                if downstream and data is not None and self._budget is not None:
                    data, self._budget = data[:self._budget], self._budget - min(len(data), self._budget)
                    cut = self._budget <= 0
            try:
                if data is None:  # the source sent FIN: pass it on
                    dst.shutdown(socket.SHUT_WR)
                    self._direction_done(link)
                    return
                dst.sendall(data)
            except OSError:
                self._kill(link)
                return
            if cut:
                with self._cond:
                    self._budget = None
                self._kill(link)
                return

    def _direction_done(self, link: _Link) -> None:
        with self._cond:
            link.open_directions -= 1
            finished = link.open_directions == 0 and not link.dead
            if finished:
                link.dead = True
                self._links.remove(link)
                self._cond.notify_all()
        if finished:
            link.client.close()
            link.server.close()

    def _kill(self, link: _Link) -> None:
        with self._cond:
            if link.dead:
                return
            link.dead = True
            self._links.remove(link)
            self._cond.notify_all()
        self._rst(link.client)
        self._rst(link.server)
