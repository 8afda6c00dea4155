"""Two servers behind nginx (Debian's nginx-light) on loopback, as docs/server.md configures it:
each stream stays on one server for its lifetime and gets its own output; both servers serve."""

from __future__ import annotations

import asyncio
from typing import Any, Dict

from echostream_fairseq.server.app import serve
from echostream_fairseq.server.balancer import run_nginx
from test_server import _client, _solo, sources  # noqa: F401  (sources: a fixture)


def test_two_servers_behind_nginx_each_serve_whole_streams(
        talkative_engine, sources, tmp_path):  # noqa: F811  (sources: the fixture)
    engine = talkative_engine
    expected = [_solo(engine, samples)["text"] for samples in sources[:6]]

    async def main() -> Dict[str, Any]:
        async with serve(engine, port=0) as (first, first_server), \
                serve(engine, port=0) as (second, second_server):
            upstreams = [server.sockets[0].getsockname()[1]
                         for server in (first_server, second_server)]
            with run_nginx(tmp_path, upstreams) as port:
                results = await asyncio.gather(*[
                    _client(f"ws://127.0.0.1:{port}/ws", samples, piece=1600, pause_s=0.02)
                    for samples in sources[:6]])
            return {"texts": [r["text"] for r in results],
                    "steps": (first.scheduler.steps, second.scheduler.steps)}

    result = asyncio.run(main())
    assert result["texts"] == expected
    assert all(steps > 0 for steps in result["steps"]), result["steps"]  # both served
