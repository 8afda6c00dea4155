"""The websocket server on loopback: many streams batched without cross-talk, and its faults."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest

from _fairseq_cli import corpus_dir
from echostream_fairseq.data.audio import read_wav
from echostream_fairseq.server.app import serve
from echostream_fairseq.server.protocol import ServerLimits, decode_pcm, encode_pcm
from echostream_fairseq.streaming import StreamingS2ST
from test_streaming_pipeline import corpus_wavs
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

RATE = 16000


@pytest.fixture(scope="module")
def engine(talkative_engine) -> StreamingS2ST:
    return talkative_engine


@pytest.fixture(scope="module")
def sources(tiny_corpus) -> List[np.ndarray]:
    """Eight different inputs: the two wavs, parts of them, and them joined."""
    first, second = (read_wav(w)[0] for w in corpus_wavs(corpus_dir(tiny_corpus)))
    joined = np.concatenate([first, np.zeros(RATE // 4, np.float32), second])
    return [first, second, joined, first[:RATE], second[RATE // 3:], joined[::-1].copy(),
            np.concatenate([second, first]), first[RATE // 2:]]


def _quantised(samples: np.ndarray) -> np.ndarray:
    """What the protocol carries: 16-bit PCM and back."""
    return decode_pcm(encode_pcm(samples))


def _solo(engine: StreamingS2ST, samples: np.ndarray) -> Dict[str, Any]:
    """The stream alone, in the scheduler's steps: whole chunks, then the rest as final."""
    chunk = round(RATE * engine.geometry.segment_ms / 1000)
    samples = _quantised(samples)
    state, outs = engine.init(), []
    whole = len(samples) // chunk * chunk
    for start in range(0, whole, chunk):
        out, state = engine.step(state, samples[start:start + chunk], RATE)
        outs.append(out)
    out, state = engine.step(state, samples[whole:], RATE, final=True)
    outs.append(out)
    speech = np.concatenate([o.speech for o in outs])
    return {"text": " ".join(o.target_text for o in outs if o.target_text),
            "asr": " ".join(o.asr_text for o in outs if o.asr_text),
            "sentences": [s.target_text for o in outs for s in o.sentences],
            "speech": _quantised(speech)}


async def _read_until_end(ws) -> Dict[str, Any]:
    """Everything the server sends a stream up to its ``end`` event, by kind."""
    texts, asr, sentences, speech, errors = [], [], [], [], []
    async for message in ws:
        if isinstance(message, bytes):
            speech.append(decode_pcm(message))
            continue
        item = json.loads(message)
        if item["type"] == "end":
            break
        if item["type"] == "text":
            texts.append(item["text"])
        elif item["type"] == "asr":
            asr.append(item["text"])
        elif item["type"] == "sentence":
            sentences.append(item["target_text"])
        elif item["type"] == "error":
            errors.append(item["message"])
        else:
            raise AssertionError(item)
    return {"text": " ".join(texts), "asr": " ".join(asr), "sentences": sentences,
            "errors": errors,
            "speech": np.concatenate(speech) if speech else np.zeros(0, np.float32)}


async def _client(url: str, samples: np.ndarray, piece: int = 3000, pause_s: float = 0.0,
                  token: str = "") -> Dict[str, Any]:
    """Send a stream in pieces, then end; collect everything the server sends back."""
    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "start", "sample_rate": RATE, "token": token}))
        ready = json.loads(await ws.recv())
        assert ready["type"] == "ready", ready
        pcm = encode_pcm(samples)
        for start in range(0, len(pcm), 2 * piece):
            await ws.send(pcm[start:start + 2 * piece])
            if pause_s:
                await asyncio.sleep(pause_s)
        await ws.send(json.dumps({"type": "end"}))
        got = await _read_until_end(ws)
    assert not got["errors"], got["errors"]
    return got


def _url(server) -> str:
    host, port = server.sockets[0].getsockname()[:2]
    return f"ws://{host}:{port}"


def test_eight_concurrent_streams_each_get_their_own_solo_output(engine, sources):
    expected = [_solo(engine, samples) for samples in sources]
    assert all(e["text"] for e in expected) and max(len(e["sentences"]) for e in expected) >= 3

    async def main() -> Tuple[list, int]:
        async with serve(engine, port=0) as (app, server):
            results = await asyncio.gather(*[
                _client(_url(server), samples, piece=1000 + 700 * i, pause_s=0.002 * (i % 3))
                for i, samples in enumerate(sources)])
            return results, app.scheduler.largest_batch

    results, largest = asyncio.run(main())
    assert largest > 1, "the streams should have been stepped together"
    for index, (got, want) in enumerate(zip(results, expected)):
        assert (got["text"], got["asr"], got["sentences"]) == \
            (want["text"], want["asr"], want["sentences"]), index
        assert got["speech"].shape == want["speech"].shape, index
        np.testing.assert_allclose(got["speech"], want["speech"], atol=2.5 / 32768,
                                   err_msg=str(index))


def test_bad_messages_get_error_events_and_the_stream_goes_on(engine, sources):
    async def main() -> Dict[str, Any]:
        async with serve(engine, port=0) as (app, server):
            url = _url(server)
            async with connect(url) as ws:  # audio before start: refused, closed
                await ws.send(b"\x00\x01")
                first = json.loads(await ws.recv())
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
            async with connect(url) as ws:
                await ws.send(json.dumps({"type": "start", "sample_rate": RATE}))
                await ws.recv()
                await ws.send(b"\x00\x01\x02")           # odd length
                await ws.send("{not json")
                await ws.send(json.dumps({"type": "start", "sample_rate": RATE}))
                await ws.send(encode_pcm(sources[0]))
                await ws.send(json.dumps({"type": "end"}))
                errors = (await _read_until_end(ws))["errors"]
            return {"first": first, "errors": errors, "left": len(app.scheduler.streams)}

    result = asyncio.run(main())
    assert result["first"]["type"] == "error" and "start" in result["first"]["message"]
    assert len(result["errors"]) == 3, result["errors"]
    assert "even number of bytes" in result["errors"][0]
    assert "not JSON" in result["errors"][1] and "already started" in result["errors"][2]
    assert result["left"] == 0


def test_limits_oversized_frames_disconnects_the_cap_and_tokens(engine, sources):
    limits = ServerLimits(max_connections=2, max_message_bytes=64 * 1024, token="s3cret")

    async def main() -> Dict[str, Any]:
        seen: Dict[str, Any] = {}
        async with serve(engine, port=0, limits=limits) as (app, server):
            url = _url(server)
            start = json.dumps({"type": "start", "sample_rate": RATE, "token": "s3cret"})
            async with connect(url) as ws:  # a wrong token
                await ws.send(json.dumps({"type": "start", "sample_rate": RATE, "token": "x"}))
                seen["token"] = json.loads(await ws.recv())
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
            async with connect(url, max_size=None) as ws:  # an oversized frame: 1009
                await ws.send(start)
                await ws.recv()
                await ws.send(b"\x00" * (128 * 1024))
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await ws.recv()
                seen["oversized"] = closed.value.rcvd.code if closed.value.rcvd else None
            first, second = await connect(url), await connect(url)
            for ws in (first, second):
                await ws.send(start)
                await ws.recv()
                await ws.send(encode_pcm(sources[2][:RATE]))
            try:
                await connect(url)  # over the cap: refused at the handshake
            except InvalidStatus as error:
                seen["cap"] = error.response.status_code
            await first.close()  # a disconnect mid-stream frees its state at once
            for _ in range(100):
                if len(app.scheduler.streams) == 1:
                    break
                await asyncio.sleep(0.02)
            seen["after_disconnect"] = len(app.scheduler.streams)
            await second.close()
            seen["served_after"] = await _client(url, sources[3], token="s3cret")
        return seen

    seen = asyncio.run(main())
    assert seen["token"]["type"] == "error" and "token" in seen["token"]["message"]
    assert seen["oversized"] == 1009
    assert seen["cap"] == 503
    assert seen["after_disconnect"] == 1
    assert seen["served_after"]["text"] == _solo(engine, sources[3])["text"]


def test_a_client_that_never_reads_is_dropped_and_the_others_are_served(engine, sources):
    limits = ServerLimits(max_pending_events=16)  # a step posts a few messages per stream
    long_input = np.concatenate([sources[6]] * 12)

    async def main() -> Dict[str, Any]:
        async with serve(engine, port=0, limits=limits) as (app, server):
            url = _url(server)
            lazy = await connect(url, max_queue=1)  # reads nothing after ready
            await lazy.send(json.dumps({"type": "start", "sample_rate": RATE}))
            lazy_id = json.loads(await lazy.recv())["stream"]
            pcm = encode_pcm(long_input)
            for start in range(0, len(pcm), 64000):
                await lazy.send(pcm[start:start + 64000])
            await lazy.send(json.dumps({"type": "end"}))
            for _ in range(1500):  # up to 30 s
                if lazy_id not in app.scheduler.streams:
                    break
                await asyncio.sleep(0.02)
            dropped = lazy_id not in app.scheduler.streams
            other = await _client(url, sources[3])
            await lazy.close()
            return {"dropped": dropped, "other": other, "code": lazy.close_code}

    result = asyncio.run(main())
    assert result["dropped"]
    assert result["other"]["text"] == _solo(engine, sources[3])["text"]


def test_a_server_restart_under_load_closes_its_streams_and_the_next_one_serves(engine,
                                                                               sources):
    async def main() -> Dict[str, Any]:
        async with serve(engine, port=0) as (app, server):
            url = _url(server)
            # real-time pace: 0.1 s of audio every 0.1 s, each input longer than 2 s
            clients = [asyncio.create_task(_client(url, sources[i], piece=1600, pause_s=0.1))
                       for i in (2, 5, 6, 2)]
            await asyncio.sleep(0.5)  # streams under way
        outcomes = await asyncio.gather(*clients, return_exceptions=True)
        host, port = url.rsplit(":", 1)
        async with serve(engine, host="127.0.0.1", port=int(port)) as (fresh, _):
            again = await _client(url, sources[1])
            left = len(fresh.scheduler.streams)
        return {"outcomes": outcomes, "again": again, "left": left}

    result = asyncio.run(main())
    assert all(isinstance(o, ConnectionClosed) and o.rcvd.code == 1001  # going away
               for o in result["outcomes"]), result["outcomes"]
    assert result["again"]["text"] == _solo(engine, sources[1])["text"]
    assert result["left"] == 0


def test_the_serve_command_serves_and_stops_on_sigterm(tiny_corpus, talkative_checkpoint,
                                                       engine, sources):
    import os
    import re
    import signal
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "echostream_fairseq.cli.serve", "--checkpoint",
         str(talkative_checkpoint), "--data-dir", str(corpus_dir(tiny_corpus)), "--port", "0",
         "--max-sentence-ms", "1200", "--num-threads", "1"],
        stderr=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        port = None
        for line in process.stderr:
            found = re.search(r"serving on ws://127\.0\.0\.1:(\d+)", line)
            if found:
                port = int(found.group(1))
                break
        assert port, "the server should say where it serves"
        got = asyncio.run(_client(f"ws://127.0.0.1:{port}", sources[3]))
        assert got["text"] == _solo(engine, sources[3])["text"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.wait()


def test_the_serve_command_refuses_an_open_bind_without_a_token(talkative_checkpoint):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "echostream_fairseq.cli.serve", "--checkpoint",
         str(talkative_checkpoint), "--host", "0.0.0.0"],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --host 0.0.0.0 serves beyond this machine: give --token"]


def test_origins_outside_the_list_are_refused_and_long_streams_are_ended(engine, sources):
    limits = ServerLimits(allowed_origins=("http://127.0.0.1:8000",), max_stream_seconds=0.5)

    async def main() -> Dict[str, Any]:
        seen: Dict[str, Any] = {}
        async with serve(engine, port=0, limits=limits) as (_, server):
            url = _url(server)
            try:
                await connect(url, origin="http://elsewhere.example")
            except InvalidStatus as error:
                seen["foreign"] = error.response.status_code
            async with connect(url, origin="http://127.0.0.1:8000") as ws:
                await ws.send(json.dumps({"type": "start", "sample_rate": RATE}))
                await ws.recv()
                await ws.send(encode_pcm(sources[2]))  # longer than 0.5 s
                await ws.send(json.dumps({"type": "end"}))
                got = await _read_until_end(ws)
            seen["errors"], seen["text"] = got["errors"], got["text"]
        return seen

    seen = asyncio.run(main())
    assert seen["foreign"] == 403
    assert seen["errors"] == ["stream longer than 0.5 s: ended there"]
    assert seen["text"] == _solo(engine, sources[2][:RATE // 2])["text"]
