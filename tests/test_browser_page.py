"""The server's page in a real browser: headless Chromium (Debian's package), driven through the
DevTools protocol, with a fake microphone fed from a German test wav."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator

import numpy as np
import pytest
from websockets.sync.client import connect as cdp_connect

from _fairseq_cli import corpus_dir
from echostream_fairseq.data.audio import read_wav
from echostream_fairseq.server.app import serve
from echostream_fairseq.streaming import StreamingS2ST
from test_server import _solo
from test_streaming_pipeline import corpus_wavs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def engine(talkative_engine) -> StreamingS2ST:
    """The tests' talkative engine, or the model ``ECHOSTREAM_PAGE_MODEL`` names (the README's
    screenshot is the shipped model's: docs/server.md)."""
    model = os.environ.get("ECHOSTREAM_PAGE_MODEL")
    if not model:
        return talkative_engine
    from echostream_fairseq.streaming import PipelineConfig

    return StreamingS2ST.from_checkpoint(model, None, PipelineConfig())


@pytest.fixture(scope="module")
def server_url(engine) -> Iterator[str]:
    """The server, on its own event loop in a thread, for the browser to reach."""
    loop = asyncio.new_event_loop()
    started: Dict[str, Any] = {}
    ready = threading.Event()
    stop = asyncio.Event()

    async def run() -> None:
        async with serve(engine, port=0) as (_, server):
            started["port"] = server.sockets[0].getsockname()[1]
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    assert ready.wait(30), "the server did not start"
    yield f"http://127.0.0.1:{started['port']}"
    loop.call_soon_threadsafe(stop.set)
    thread.join(30)


class Browser:
    """Headless Chromium and one page, commanded over the DevTools protocol."""

    def __init__(self, profile: Path, fake_audio: Path) -> None:
        assert CHROMIUM, "Chromium is missing: bash scripts/install_system_deps.sh installs it"
        self.process = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
             f"--use-file-for-fake-audio-capture={fake_audio}",
             "--autoplay-policy=no-user-gesture-required", "--remote-debugging-port=0",
             f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        for _ in range(300):
            if port_file.is_file() and port_file.read_text().strip():
                break
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
            page = next(t for t in json.load(reply) if t["type"] == "page")
        self.cdp = cdp_connect(page["webSocketDebuggerUrl"], max_size=None)
        self._id = 0

    def call(self, method: str, **params: Any) -> Dict[str, Any]:
        self._id += 1
        self.cdp.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.cdp.recv(timeout=60))
            if reply.get("id") == self._id:
                assert "error" not in reply, reply
                return reply["result"]

    def eval(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", expression=expression,
                         returnByValue=True)["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {expression}: page says "
                             f"{self.eval('document.body.innerText')!r}")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for("document.body && document.body.dataset.state === 'idle'", 30)

    def screenshot(self, path: Path) -> None:
        self.call("Emulation.setDeviceMetricsOverride", width=1000, height=760,
                  deviceScaleFactor=1, mobile=False)
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        self.cdp.close()
        self.process.kill()
        self.process.wait()


@pytest.fixture
def browser(tmp_path, tiny_corpus) -> Iterator[Browser]:
    wav = corpus_wavs(corpus_dir(tiny_corpus))[0]
    session = Browser(tmp_path / "profile", wav)
    yield session
    session.close()


def _page_text(browser: Browser, element: str) -> str:
    return " ".join(browser.eval(f"document.getElementById('{element}').textContent").split())


def test_a_wav_sent_from_the_page_shows_the_text_it_gives_offline(browser, server_url, engine,
                                                                  tiny_corpus, tmp_path):
    wav = corpus_wavs(corpus_dir(tiny_corpus))[1]
    browser.open(server_url + "/")
    document = browser.call("DOM.getDocument")["root"]["nodeId"]
    node = browser.call("DOM.querySelector", nodeId=document, selector="#file")["nodeId"]
    browser.call("DOM.setFileInputFiles", nodeId=node, files=[str(wav)])
    browser.wait_for("document.body.dataset.state === 'done'", 60)
    samples, rate = read_wav(wav)
    expected = _solo(engine, samples)
    assert _page_text(browser, "target") == expected["text"]
    assert _page_text(browser, "source") == expected["asr"]
    sentences = browser.eval("[...document.querySelectorAll('#sentences li')]"
                             ".map(li => li.textContent)")
    assert sentences == expected["sentences"]
    heard = float(_page_text(browser, "speech").split()[0])
    assert heard == pytest.approx(expected["speech"].size / engine.vocoder.sample_rate, abs=0.06)
    shot = Path(os.environ.get("ECHOSTREAM_SCREENSHOT", tmp_path / "page.png"))
    browser.screenshot(shot)
    assert shot.stat().st_size > 10_000


def test_the_fake_microphone_streams_through_the_page(browser, server_url):
    """The microphone path (getUserMedia, the AudioWorklet at the browser's rate, downsampled
    to 16 kHz): the page shows text and plays speech. Its text is not compared with the wav's
    offline text: the fake device plays the file through the browser's audio stack (resampled,
    looped, started at an arbitrary point), so the samples differ."""
    browser.open(server_url + "/?seconds=4")
    browser.eval("document.getElementById('mic').click()")
    browser.wait_for("document.body.dataset.state === 'done'", 60)
    assert _page_text(browser, "target")
    assert _page_text(browser, "source")
    assert float(_page_text(browser, "speech").split()[0]) > 0
    assert np.isfinite(float(_page_text(browser, "latency").split()[0]))
