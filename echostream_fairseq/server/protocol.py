"""The websocket protocol of ``echostream-serve`` (docs/server.md), and the server's limits.

Client -> server:

* a JSON text message ``{"type": "start", "sample_rate": 16000}`` first (the rate of the PCM
  that follows; the server resamples; optional ``"token"`` when the server wants one);
* binary messages of little-endian 16-bit mono PCM at that rate, any length;
* ``{"type": "end"}``: the source is over; the server flushes and answers ``end``.

Server -> client, JSON text messages:

* ``{"type": "ready", "stream": ID, "chunk_ms": C, "speech_sample_rate": R}`` after ``start``;
* ``{"type": "asr", "text": ...}``: new words of the source-language ASR;
* ``{"type": "text", "text": ..., "source_ms": S}``: new target words, written once the server
  had received S ms of source;
* ``{"type": "sentence", "index", "source_text", "target_text", "start_ms", "end_ms"}``: a
  sentence ended (its whole translation);
* ``{"type": "end"}`` after the last output; ``{"type": "error", "message": ...}`` for a bad
  message (the stream goes on) or before the server closes the connection;

and binary messages: the target speech, 16-bit mono PCM at ``speech_sample_rate``, as it is
made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np

__all__ = ["ProtocolError", "ServerLimits", "decode_pcm", "encode_pcm", "event", "parse_control"]

PCM_SCALE = 32768.0


class ProtocolError(ValueError):
    """A client message the server cannot use; its text goes back in an ``error`` event."""


@dataclass(frozen=True)
class ServerLimits:
    """What one server accepts (secure defaults; docs/server.md).

    Attributes:
        max_connections: concurrent connections; more are refused at the handshake (HTTP 503).
        max_message_bytes: the largest websocket message; a larger one closes that connection
            (1009, message too big).
        max_stream_seconds: source audio per stream; beyond it the stream is ended.
        max_pending_events: server messages queued for a client that does not read; beyond it
            the client is dropped (slow consumer), so one reader cannot hold the server's memory.
        allowed_origins: browser ``Origin`` headers accepted (None: any, and requests without
            one); the server binds 127.0.0.1 unless told otherwise.
        token: when set, ``start`` must carry it (for binds beyond loopback).
    """

    max_connections: int = 64
    max_message_bytes: int = 1 << 20
    max_stream_seconds: float = 3600.0
    max_pending_events: int = 256
    allowed_origins: Optional[Tuple[str, ...]] = None
    token: Optional[str] = None

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_message_bytes", "max_pending_events"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_stream_seconds <= 0:
            raise ValueError(f"max_stream_seconds must be > 0, got {self.max_stream_seconds}")


def parse_control(text: str) -> Dict[str, Any]:
    """A client's JSON control message, checked: ``start`` (with a positive integer
    ``sample_rate``) or ``end``."""
    try:
        message = json.loads(text)
    except json.JSONDecodeError as error:
        raise ProtocolError(f"control message is not JSON: {error.msg} at {error.pos}") from None
    if not isinstance(message, dict) or message.get("type") not in ("start", "end"):
        raise ProtocolError('control message must be an object with "type" "start" or "end"')
    if message["type"] == "start":
        rate = message.get("sample_rate", 16000)
        if isinstance(rate, bool) or not isinstance(rate, int) or not 4000 <= rate <= 192000:
            raise ProtocolError(f"sample_rate must be an integer from 4000 to 192000 Hz, "
                                f"got {rate!r}")
        message["sample_rate"] = rate
    return message


def decode_pcm(data: bytes) -> np.ndarray:
    """16-bit little-endian PCM -> float32 samples in [-1, 1)."""
    if len(data) % 2:
        raise ProtocolError(f"audio message of {len(data)} bytes: 16-bit PCM has an even "
                            "number of bytes")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / PCM_SCALE


def encode_pcm(samples: np.ndarray) -> bytes:
    """float samples -> 16-bit little-endian PCM (clipped)."""
    clipped = np.clip(np.asarray(samples, dtype=np.float32) * PCM_SCALE, -32768, 32767)
    return clipped.astype("<i2").tobytes()


def event(kind: str, **fields: Any) -> str:
    """A server event as its JSON text."""
    return json.dumps({"type": kind, **fields}, ensure_ascii=False)
