"""Two servers behind nginx (Debian's nginx-light) on loopback, as docs/server.md configures it:
each stream stays on one server for its lifetime and gets its own output; both servers serve."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any, Dict

from echostream_fairseq.server.app import serve
from test_server import _client, _solo, sources  # noqa: F401  (sources: a fixture)

NGINX = shutil.which("nginx") or (Path("/usr/sbin/nginx") if Path("/usr/sbin/nginx").is_file()
                                  else None)

CONFIG = """
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    upstream echostream {{
        least_conn;
        server 127.0.0.1:{first};
        server 127.0.0.1:{second};
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://echostream;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header Origin $http_origin;
            proxy_read_timeout 3600s;
        }}
    }}
}}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_servers_behind_nginx_each_serve_whole_streams(talkative_engine, sources,  # noqa: F811
                                                          tmp_path):
    engine = talkative_engine
    assert NGINX, "nginx is missing: bash scripts/install_system_deps.sh installs nginx-light"
    expected = [_solo(engine, samples)["text"] for samples in sources[:6]]

    async def main() -> Dict[str, Any]:
        async with serve(engine, port=0) as (first, first_server), \
                serve(engine, port=0) as (second, second_server):
            port = _free_port()
            (tmp_path / "nginx.conf").write_text(CONFIG.format(
                run=tmp_path, port=port, first=first_server.sockets[0].getsockname()[1],
                second=second_server.sockets[0].getsockname()[1]))
            nginx = subprocess.Popen([str(NGINX), "-p", str(tmp_path), "-c",
                                      str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                for _ in range(100):
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                        break
                    except OSError:
                        await asyncio.sleep(0.05)
                results = await asyncio.gather(*[
                    _client(f"ws://127.0.0.1:{port}/ws", samples, piece=1600, pause_s=0.02)
                    for samples in sources[:6]])
            finally:
                nginx.terminate()
                nginx.wait(10)
            return {"texts": [r["text"] for r in results],
                    "steps": (first.scheduler.steps, second.scheduler.steps)}

    result = asyncio.run(main())
    assert result["texts"] == expected
    assert all(steps > 0 for steps in result["steps"]), result["steps"]  # both served
