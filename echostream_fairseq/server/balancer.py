"""nginx in front of several servers, as docs/server.md configures it: one process per device
(or core), new streams to the least busy one, each websocket on its server for its lifetime.

:func:`nginx_config` writes that configuration for a private prefix (pid, logs and temp files
under one folder, so that it runs unprivileged); :func:`run_nginx` runs it in the foreground
while the context is open. Used by the balancer test and by ``bench/server_load.py --servers``.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator, Optional, Sequence

__all__ = ["find_nginx", "free_port", "nginx_config", "run_nginx"]

CONFIG = """
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log;
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    upstream echostream {{
        least_conn;
{servers}
    }}
    server {{
        listen {host}:{port};
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


def find_nginx() -> Optional[Path]:
    """The nginx binary (Debian's nginx-light puts it in /usr/sbin, often not on PATH)."""
    found = shutil.which("nginx")
    if found:
        return Path(found)
    return Path("/usr/sbin/nginx") if Path("/usr/sbin/nginx").is_file() else None


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the kernel's pick), for a balancer started next."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def nginx_config(run_dir: Path, port: int, upstream_ports: Sequence[int],
                 host: str = "127.0.0.1", connections: int = 1024) -> str:
    """The balancer's configuration: ``host:port`` in front of the servers on
    ``upstream_ports`` (on ``host``); ``connections``: per nginx worker, two per stream."""
    servers = "\n".join(f"        server {host}:{p};" for p in upstream_ports)
    return CONFIG.format(run=run_dir, port=port, host=host, servers=servers,
                         connections=connections)


@contextlib.contextmanager
def run_nginx(run_dir: Path, upstream_ports: Sequence[int], host: str = "127.0.0.1",
              connections: int = 1024, start_timeout_s: float = 10.0) -> Iterator[int]:
    """nginx in front of ``upstream_ports`` while the context is open; yields its port."""
    nginx = find_nginx()
    if nginx is None:
        raise FileNotFoundError(
            "nginx is missing: bash scripts/install_system_deps.sh installs nginx-light")
    run_dir.mkdir(parents=True, exist_ok=True)
    port = free_port(host)
    config = run_dir / "nginx.conf"
    config.write_text(nginx_config(run_dir, port, upstream_ports, host, connections))
    stderr_log = run_dir / "stderr.log"  # a file, not a pipe: a foreground nginx never closes it
    with open(stderr_log, "wb") as stderr:
        process = subprocess.Popen([str(nginx), "-p", str(run_dir), "-c", str(config),
                                    "-g", "daemon off;"],
                                   stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                socket.create_connection((host, port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    message = stderr_log.read_text(errors="replace").strip()
                    raise RuntimeError(f"nginx did not start ({config}): {message}") from None
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
