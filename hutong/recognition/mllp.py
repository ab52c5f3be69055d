"""The MLLP listener: HL7 v2 over TCP (a message between 0x0B and 0x1C 0x0D), one ACK per message.

``hutong serve`` starts it when ``HUTONG_MLLP_PORT`` (or ``--mllp-port``) is set. It runs its own
asyncio loop in a thread; each message is stored in the thread pool through ``hl7v2.receive``, so
the answer comes only after the commit (an ACK means the results are stored). With several worker
processes only the first one binds the port; the others log that and go on.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from hutong.recognition import hl7v2

log = logging.getLogger("hutong.recognition.mllp")
START, END = b"\x0b", b"\x1c\x0d"
MAX_MESSAGE = 16 * 1024 * 1024
IDLE_TIMEOUT_S = 300


def frame(message: bytes) -> bytes:
    """An MLLP block around ``message``."""
    return START + message + END


class MllpListener:
    """A TCP listener on ``host:port`` answering each framed message with its ACK."""

    def __init__(self, store, host: str, port: int, tenant: str | None = None):
        self.store, self.host, self.port, self.tenant = store, host, port, tenant
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: asyncio.AbstractServer | None = None
        self.thread: threading.Thread | None = None
        self.started = threading.Event()
        self.error: BaseException | None = None

    def start(self) -> bool:
        """Bind and serve in a thread; False when the port could not be bound."""
        self.thread = threading.Thread(target=self._run, name="hutong-mllp", daemon=True)
        self.thread.start()
        self.started.wait(10)
        return self.server is not None

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        try:
            self.server = self.loop.run_until_complete(
                asyncio.start_server(self._client, self.host, self.port, limit=MAX_MESSAGE + 16))
            self.port = self.server.sockets[0].getsockname()[1]
        except OSError as exc:
            self.error = exc
            self.started.set()
            log.info("MLLP port %s not bound (%s): another worker may hold it", self.port, exc.strerror)
            return
        self.started.set()
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    await asyncio.wait_for(reader.readuntil(START), IDLE_TIMEOUT_S)
                    block = await asyncio.wait_for(reader.readuntil(END), 60)
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    return
                except asyncio.LimitOverrunError:
                    log.info("MLLP message over %d bytes: connection closed", MAX_MESSAGE)
                    return
                message = block[: -len(END)]
                out = await asyncio.get_running_loop().run_in_executor(
                    None, lambda m=message: hl7v2.receive(self.store, m, via="mllp", tenant=self.tenant))
                writer.write(frame(out.ack_bytes))
                await writer.drain()
        finally:
            writer.close()

    def stop(self) -> None:
        """Close the listener and its loop."""
        if self.loop is None or self.server is None:
            return

        async def close():
            self.server.close()
            await self.server.wait_closed()

        fut = asyncio.run_coroutine_threadsafe(close(), self.loop)
        try:
            fut.result(5)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self.thread:
            self.thread.join(5)
