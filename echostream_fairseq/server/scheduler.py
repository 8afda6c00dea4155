"""Many live streams, one model: the chunks that have arrived are stepped together.

Each :class:`LiveStream` buffers the audio its client sent. The scheduler's loop collects the
streams holding at least one chunk (the engine's segment, at the stream's rate) or an ended
source, and runs one :meth:`~echostream_fairseq.streaming.StreamingS2ST.step_batch` over them
(per sample rate) in a worker thread, so the event loop keeps receiving meanwhile. Outputs go
to each stream's bounded outbox as protocol events; a stream whose outbox is full (a client
that does not read) is dropped, and a dropped or disconnected stream's state is freed at once.
Every stream is stepped in whole chunks and then its remainder with ``final``, so its output
equals the same audio streamed alone in those chunks (tested).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, List

import numpy as np

from echostream_fairseq.server.protocol import ServerLimits, encode_pcm, event
from echostream_fairseq.streaming.pipeline import StepOutput, StreamingS2ST, UtteranceState

logger = logging.getLogger(__name__)

__all__ = ["BatchScheduler", "LiveStream"]


@dataclass(eq=False)
class LiveStream:
    """One client's stream: its audio not yet stepped, its engine state, its outbox."""

    id: int
    sample_rate: int
    chunk_samples: int
    state: UtteranceState
    outbox: asyncio.Queue
    on_drop: Callable[[str], None] = lambda reason: None
    pending: List[np.ndarray] = field(default_factory=list)
    pending_samples: int = 0
    received_samples: int = 0
    stepped_samples: int = 0
    ended: bool = False
    #: when each whole chunk not yet stepped had arrived (monotonic seconds), then the end
    ready_at: Deque[float] = field(default_factory=collections.deque)
    chunks_seen: int = 0

    def take(self, count: int) -> np.ndarray:
        """The first ``count`` pending samples (fewer when there are fewer)."""
        joined = np.concatenate(self.pending) if len(self.pending) > 1 else (
            self.pending[0] if self.pending else np.zeros(0, dtype=np.float32))
        taken, rest = joined[:count], joined[count:]
        self.pending = [rest] if rest.size else []
        self.pending_samples = rest.size
        self.stepped_samples += taken.size
        return taken

    @property
    def ready(self) -> bool:
        return self.pending_samples >= self.chunk_samples or self.ended


class BatchScheduler:
    """Steps every ready stream together, tick after tick.

    Args:
        engine: the model's :class:`StreamingS2ST`.
        limits: the server's :class:`ServerLimits`.
        max_batch: streams per ``step_batch`` at most (more wait for the next round).
    """

    def __init__(self, engine: StreamingS2ST, limits: ServerLimits = ServerLimits(),
                 max_batch: int = 64) -> None:
        self.engine, self.limits, self.max_batch = engine, limits, max_batch
        self.streams: Dict[int, LiveStream] = {}
        self._ids = itertools.count(1)
        self._wake = asyncio.Event()
        self.steps = 0  # step_batch calls so far
        self.largest_batch = 0
        #: seconds from a chunk's arrival (its last sample, or the end) to its outputs posted
        self.chunk_latencies: Deque[float] = collections.deque(maxlen=100_000)

    @property
    def chunk_ms(self) -> int:
        return self.engine.geometry.segment_ms

    # ------------------------------------------------------------------------- streams
    def add(self, sample_rate: int, on_drop: Callable[[str], None] = lambda reason: None
            ) -> LiveStream:
        stream = LiveStream(next(self._ids), sample_rate,
                            max(1, round(sample_rate * self.chunk_ms / 1000)),
                            self.engine.init(), asyncio.Queue(self.limits.max_pending_events),
                            on_drop)
        self.streams[stream.id] = stream
        return stream

    def feed(self, stream: LiveStream, samples: np.ndarray) -> None:
        """New audio of a stream (ignored once it ended); ends it at the length limit."""
        if stream.ended or stream.id not in self.streams:
            return
        room = int(self.limits.max_stream_seconds * stream.sample_rate) - stream.received_samples
        if samples.size > room:
            samples = samples[:max(0, room)]
            self.post(stream, event("error", message=f"stream longer than "
                                     f"{self.limits.max_stream_seconds:g} s: ended there"))
            stream.ended = True
        if samples.size:
            stream.pending.append(samples)
            stream.pending_samples += samples.size
            stream.received_samples += samples.size
            now = time.monotonic()
            while stream.chunks_seen < stream.received_samples // stream.chunk_samples:
                stream.ready_at.append(now)
                stream.chunks_seen += 1
        self._wake.set()

    def end(self, stream: LiveStream) -> None:
        stream.ended = True
        stream.ready_at.append(time.monotonic())  # the final step's own arrival
        self._wake.set()

    def remove(self, stream: LiveStream) -> None:
        """Forget a stream at once (disconnected or dropped): its state goes with it."""
        self.streams.pop(stream.id, None)

    # --------------------------------------------------------------------------- loop
    async def run(self) -> None:
        """Step ready streams until cancelled."""
        while True:
            ready = [s for s in self.streams.values() if s.ready]
            if not ready:
                self._wake.clear()
                await self._wake.wait()
                continue
            by_rate: Dict[int, List[LiveStream]] = {}
            for stream in ready[:self.max_batch]:
                by_rate.setdefault(stream.sample_rate, []).append(stream)
            for rate, group in by_rate.items():
                await self._step(group, rate)

    async def _step(self, group: List[LiveStream], rate: int) -> None:
        chunks, finals = [], []
        for stream in group:
            # whole chunks first, then the remainder (maybe empty) as the final step, whenever
            # the end arrives: the same steps as the audio streamed alone
            final = stream.ended and stream.pending_samples < stream.chunk_samples
            chunks.append(stream.take(stream.chunk_samples))
            finals.append(final)
        outs, states = await asyncio.to_thread(
            self.engine.step_batch, [s.state for s in group], chunks, rate, finals)
        self.steps += 1
        self.largest_batch = max(self.largest_batch, len(group))
        for stream, out, state, final in zip(group, outs, states, finals):
            if stream.id not in self.streams:
                continue  # dropped while its step ran
            stream.state = state
            self._dispatch(stream, out)
            if stream.ready_at:
                self.chunk_latencies.append(time.monotonic() - stream.ready_at.popleft())
            if final:
                self.remove(stream)

    def _dispatch(self, stream: LiveStream, out: StepOutput) -> None:
        source_ms = round(1000 * stream.stepped_samples / stream.sample_rate)
        if out.asr_text:
            self.post(stream, event("asr", text=out.asr_text))
        if out.target_text:
            self.post(stream, event("text", text=out.target_text, source_ms=source_ms))
        if out.speech.size:
            self.post(stream, encode_pcm(out.speech))
        for sentence in out.sentences:
            self.post(stream, event("sentence", index=sentence.index,
                                     source_text=sentence.source_text,
                                     target_text=sentence.target_text,
                                     start_ms=sentence.start_ms, end_ms=sentence.end_ms))
        if out.finished:
            self.post(stream, event("end"))

    def post(self, stream: LiveStream, message) -> None:
        """Queue a message for the stream's client; a full outbox drops the stream."""
        if stream.id not in self.streams:
            return
        try:
            stream.outbox.put_nowait(message)
        except asyncio.QueueFull:
            logger.warning("stream %d: client does not read, dropped", stream.id)
            self.remove(stream)
            stream.on_drop("slow consumer: too many unread messages")
