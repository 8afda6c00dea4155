"""The asyncio websocket server: one model, many concurrent streams, batched steps, the page.

:func:`serve` starts a ``websockets`` server whose handler speaks the protocol of
:mod:`~echostream_fairseq.server.protocol` and hands the audio to one
:class:`~echostream_fairseq.server.scheduler.BatchScheduler`. Limits are enforced where they
cost least: the message size and the origin allow-list by ``websockets`` itself, the connection
cap at the handshake (HTTP 503), the token and the stream length by the handler and the
scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import http
import logging
from pathlib import Path
from typing import AsyncIterator, Optional

from websockets.asyncio.server import Server, ServerConnection, serve as ws_serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

from echostream_fairseq.server.protocol import (ProtocolError, ServerLimits, decode_pcm, event,
                                                parse_control)
from echostream_fairseq.server.scheduler import BatchScheduler, LiveStream
from echostream_fairseq.streaming.pipeline import StreamingS2ST

logger = logging.getLogger(__name__)

__all__ = ["StreamingServer", "serve"]

#: seconds a new connection may take to send its ``start`` message
START_TIMEOUT_S = 10.0
#: the browser page (``/``), served by the same process: nothing comes from a CDN
STATIC = Path(__file__).with_name("static")
PAGES = {"/": ("index.html", "text/html; charset=utf-8"),
         "/index.html": ("index.html", "text/html; charset=utf-8"),
         "/app.js": ("app.js", "text/javascript; charset=utf-8"),
         "/pcm-worklet.js": ("pcm-worklet.js", "text/javascript; charset=utf-8")}


class StreamingServer:
    """The handler and the scheduler of one server (see :func:`serve`)."""

    def __init__(self, engine: StreamingS2ST, limits: ServerLimits = ServerLimits(),
                 max_batch: int = 64) -> None:
        self.engine, self.limits = engine, limits
        self.scheduler = BatchScheduler(engine, limits, max_batch)
        self.connections = 0

    def process_request(self, connection: ServerConnection, request):
        """Serve the page's files to plain HTTP requests; refuse websocket connections beyond
        the cap at the handshake."""
        if request.headers.get("Upgrade", "").lower() != "websocket":
            page = PAGES.get(request.path.split("?", 1)[0])
            if page is None:
                return connection.respond(http.HTTPStatus.NOT_FOUND, "not found\n")
            name, content_type = page
            body = (STATIC / name).read_bytes()
            return Response(200, "OK", Headers([("Content-Type", content_type),
                                                ("Content-Length", str(len(body))),
                                                ("Cache-Control", "no-store")]), body)
        if self.connections >= self.limits.max_connections:
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE,
                                      f"at most {self.limits.max_connections} connections\n")
        return None

    async def handle(self, websocket: ServerConnection) -> None:
        self.connections += 1
        stream: Optional[LiveStream] = None
        sender: Optional[asyncio.Task] = None
        try:
            stream = await self._start(websocket)
            if stream is None:
                return
            sender = asyncio.create_task(self._forward(websocket, stream))
            async for message in websocket:
                self._receive(stream, message)
            # the client closed: nothing more to send it
        except ConnectionClosed:
            pass
        finally:
            self.connections -= 1
            if stream is not None:
                self.scheduler.remove(stream)  # its state is freed at once
            if sender is not None:
                sender.cancel()

    async def _start(self, websocket: ServerConnection) -> Optional[LiveStream]:
        try:
            first = await asyncio.wait_for(websocket.recv(), START_TIMEOUT_S)
            if isinstance(first, bytes):
                raise ProtocolError('send {"type": "start", "sample_rate": ...} before audio')
            message = parse_control(first)
            if message["type"] != "start":
                raise ProtocolError('the first message must be {"type": "start"}')
            if self.limits.token is not None and not hmac.compare_digest(
                    str(message.get("token", "")), self.limits.token):
                await websocket.send(event("error", message="bad or missing token"))
                await websocket.close(1008, "bad or missing token")
                return None
        except (ProtocolError, asyncio.TimeoutError) as error:
            text = str(error) or f"no start message within {START_TIMEOUT_S:g} s"
            await websocket.send(event("error", message=text))
            await websocket.close(1002, text[:120])
            return None

        def drop(reason: str) -> None:
            asyncio.get_running_loop().create_task(websocket.close(1008, reason[:120]))

        stream = self.scheduler.add(message["sample_rate"], drop)
        vocoder = self.engine.vocoder
        await websocket.send(event("ready", stream=stream.id, chunk_ms=self.scheduler.chunk_ms,
                                   speech_sample_rate=vocoder.sample_rate if vocoder else 0))
        return stream

    def _receive(self, stream: LiveStream, message) -> None:
        try:
            if isinstance(message, bytes):
                self.scheduler.feed(stream, decode_pcm(message))
            elif parse_control(message)["type"] == "end":
                self.scheduler.end(stream)
            else:
                raise ProtocolError("the stream has already started")
        except ProtocolError as error:
            self.scheduler.post(stream, event("error", message=str(error)))

    async def _forward(self, websocket: ServerConnection, stream: LiveStream) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await websocket.send(await stream.outbox.get())


@contextlib.asynccontextmanager
async def serve(engine: StreamingS2ST, host: str = "127.0.0.1", port: int = 8765,
                limits: ServerLimits = ServerLimits(), max_batch: int = 64
                ) -> AsyncIterator[tuple[StreamingServer, Server]]:
    """Run the server (and its scheduler) while the context is open; port 0 picks a free one
    (``server.sockets[0].getsockname()``)."""
    app = StreamingServer(engine, limits, max_batch)
    # browsers always send an Origin; other clients (no header) are not a browser's page
    origins = ([*limits.allowed_origins, None] if limits.allowed_origins is not None
               else None)
    scheduler = asyncio.create_task(app.scheduler.run())
    try:
        async with ws_serve(app.handle, host, port, max_size=limits.max_message_bytes,
                            origins=origins, process_request=app.process_request) as server:
            yield app, server
    finally:
        scheduler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await scheduler
