"""A TCP relay on loopback that delays every byte by a fixed time each way: a link between two sites
(10 ms each way is a 20 ms round trip) for benchmarks on a machine whose kernel has no netem.

Bytes keep their order and the link keeps its bandwidth: what arrives at time t is sent on at t + delay,
however much arrives meanwhile (a window as large as the socket buffers, like a long fat pipe).

    with DelayProxy("127.0.0.1", sshd_port, delay_ms=10) as proxy:
        ... connect to 127.0.0.1:proxy.port ...

Run alone for a quick check: python3 bench/delay_proxy.py TARGET_PORT DELAY_MS (prints its port).
"""
import asyncio
import collections
import socket
import sys
import threading
import time


class DelayProxy:
    def __init__(self, host, port, delay_ms):
        self.target = (host, port)
        self.delay = delay_ms / 1000.0
        self.loop = asyncio.new_event_loop()
        self.port = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        self._ready.wait(10)
        if self.port is None:
            raise RuntimeError("delay proxy did not start")
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            server.close()
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()

    async def _serve(self, client_r, client_w):
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        for w in (client_w, server_w):
            w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w))

    async def _pipe(self, reader, writer):
        """Reads as fast as data comes; a second task sends each piece on once its delay has passed."""
        pending = collections.deque()
        arrived = asyncio.Event()
        held = [0]  # bytes read but not yet sent: reading pauses above 64 MiB (the receiver is slower)

        async def send():
            while True:
                while not pending:
                    arrived.clear()
                    await arrived.wait()
                due, data = pending.popleft()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    break
                held[0] -= len(data)
                writer.write(data)
                await writer.drain()
            try:
                writer.write_eof()
            except OSError:
                pass

        sender = asyncio.ensure_future(send())
        try:
            while True:
                while held[0] > 64 << 20:
                    await asyncio.sleep(0.001)
                data = await reader.read(1 << 20)
                held[0] += len(data)
                pending.append((time.monotonic() + self.delay, data or None))
                arrived.set()
                if not data:
                    break
        except OSError:
            pending.append((time.monotonic(), None))
            arrived.set()
        try:
            await sender
        except OSError:
            pass
        writer.close()


if __name__ == "__main__":
    with DelayProxy("127.0.0.1", int(sys.argv[1]), float(sys.argv[2])) as p:
        print(p.port, flush=True)
        threading.Event().wait()
