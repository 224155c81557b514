"""TCP proxies on 127.0.0.1 that carry the replication links of the fault test, so that one
direction of one link (the connections node X opens to node Y) can be cut or slowed down.

Every proxy forwards to one node's port. All proxies run on one asyncio loop in one background
thread; the test changes a proxy's mode from its own thread through ProxySet (thread-safe).
Modes:
  pass     forward both ways
  refuse   close every connection at once (what X sees: connection refused / reset)
  drop     accept, read and discard, answer nothing (a partition: X's requests time out)
  delay    forward, holding each chunk X sends for `delay_ms` first (order kept)
Changing the mode to refuse or drop closes the connections already open, so nothing that was in
flight gets through afterwards.
"""

import asyncio
import threading

CHUNK = 65536


class _Proxy:
    def __init__(self, name, target_port):
        self.name = name
        self.target_port = target_port
        self.mode = "pass"
        self.delay_ms = 0
        self.server = None
        self.port = None
        self.conns = set()  # writers of open connections (both sides), closed on a cut
        self.tasks = set()  # connection handlers still running, cancelled at stop
        self.accepted = 0

    async def start(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def _close_all(self):
        for w in list(self.conns):
            w.close()
        self.conns.clear()

    def set_mode(self, mode, delay_ms=0):
        self.mode, self.delay_ms = mode, delay_ms
        if mode in ("refuse", "drop"):
            self._close_all()

    async def _serve(self, reader, writer):
        task = asyncio.current_task()
        self.tasks.add(task)
        try:
            await self._handle(reader, writer)
        finally:
            self.tasks.discard(task)

    async def _handle(self, reader, writer):
        self.accepted += 1
        mode = self.mode
        if mode == "refuse":
            writer.close()
            return
        self.conns.add(writer)
        if mode == "drop":
            try:
                while await reader.read(CHUNK):
                    pass
            except (ConnectionError, OSError):
                pass
            finally:
                self.conns.discard(writer)
                writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            self.conns.discard(writer)
            writer.close()
            return
        self.conns.add(up_writer)
        try:
            await asyncio.gather(self._pump(reader, up_writer, delayed=True),
                                 self._pump(up_reader, writer, delayed=False))
        finally:
            self.conns.discard(writer)
            self.conns.discard(up_writer)
            writer.close()
            up_writer.close()

    async def _pump(self, reader, writer, delayed):
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    break
                if self.mode in ("refuse", "drop"):
                    break
                if delayed and self.mode == "delay" and self.delay_ms > 0:
                    await asyncio.sleep(self.delay_ms / 1000.0)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            try:
                writer.write_eof()
            except (OSError, RuntimeError, AttributeError):
                pass

    async def stop(self):
        self._close_all()
        if self.server is not None:
            self.server.close()
        for t in list(self.tasks):
            t.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=5)
        if self.server is not None:
            await self.server.wait_closed()


class ProxySet:
    """The proxies of one cluster, keyed by (from_name, to_name): the connections from_name opens
    to to_name. Start with start(); stop() closes every socket and ends the thread."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="fault-proxies", daemon=True)
        self.proxies = {}
        self.thread.start()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def _call(self, coro, timeout=10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def add(self, src, dst, target_port):
        """A proxy for the link src -> dst; returns its port."""
        p = _Proxy(f"{src}->{dst}", target_port)
        self._call(p.start())
        self.proxies[(src, dst)] = p
        return p.port

    def set(self, src, dst, mode, delay_ms=0):
        p = self.proxies[(src, dst)]

        async def change():
            p.set_mode(mode, delay_ms)

        self._call(change())

    def heal_all(self):
        for (src, dst) in self.proxies:
            self.set(src, dst, "pass")

    def stop(self):
        for p in self.proxies.values():
            self._call(p.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
