"""``geoshare serve``: run the API with uvicorn, optionally behind the nginx front cache."""

from __future__ import annotations

import os
import shutil
import socket
from enum import StrEnum
from pathlib import Path

import typer
import uvicorn

from geoshare.access.ratelimit import LimitConfig
from geoshare.front.nginx import FrontConfig, NginxFront
from geoshare.settings import get_settings


class Front(StrEnum):
    none = "none"
    nginx = "nginx"


def serve(
    host: str = typer.Option("127.0.0.1", help="interface to bind"),
    port: int = typer.Option(8000, help="TCP port"),
    workers: int = typer.Option(2, min=1, help="worker processes; they share nothing but the database"),
    front: Front = typer.Option(
        Front.none,
        help="nginx: nginx listens on --port and serves repeat public tiles from its cache (audited); "
        "the API listens on a local port behind it",
    ),
    front_dir: Path = typer.Option(Path(".run/front"), help="the front's configuration, cache and logs"),
    front_cache_size: str = typer.Option("4g", help="the front cache's largest size on disk"),
) -> None:
    """Serve the HTTP API."""
    nginx: NginxFront | None = None
    api_host, api_port = host, port
    if front is Front.nginx:
        api_host, api_port = "127.0.0.1", _free_port()
        cfg = _front_config(host, port, f"{api_host}:{api_port}", workers, front_dir, front_cache_size)
        os.environ["GEOSHARE_FRONT_LOG"] = str(cfg.hit_log.resolve())  # the workers inherit these
        os.environ["GEOSHARE_FRONT_PID"] = str(cfg.pid_file.resolve())
        os.environ["GEOSHARE_FRONT_GATE"] = str(cfg.gate_dir.resolve())
        shutil.rmtree(cfg.gate_dir, ignore_errors=True)  # a previous run's gate: the workers reopen it
        try:
            nginx = NginxFront(cfg)
            nginx.start()
        except RuntimeError as exc:
            raise typer.BadParameter(str(exc), param_hint="--front") from exc
        typer.echo(
            f"nginx front on http://{host}:{port} (cache in {front_dir / 'cache'}); API on port {api_port}"
        )
    # X-Forwarded-For is believed from nginx alone when it fronts the API (it writes the one address
    # it found), else from the configured proxies only; never from anyone who happens to send it
    trusted = ["127.0.0.1"] if nginx is not None else list(get_settings().trusted_proxies)
    try:
        uvicorn.run(
            "geoshare.api.app:create_app",
            factory=True,
            host=api_host,
            port=api_port,
            workers=workers,
            log_level="info",
            access_log=False,
            proxy_headers=bool(trusted),
            forwarded_allow_ips=trusted or None,
            # a worker's first import (geospatial libraries, cold disk cache) can take several seconds
            # on a busy machine; uvicorn's 5 s default would kill and restart it as unresponsive
            timeout_worker_healthcheck=30,
        )
    finally:
        if nginx is not None:
            nginx.stop()


def _front_config(host: str, port: int, upstream: str, workers: int, root: Path, size: str) -> FrontConfig:
    settings = get_settings()
    limits = LimitConfig.from_settings(settings)
    return FrontConfig(
        listen_host=host,
        listen_port=port,
        upstream=upstream,
        root=root,
        cache_max_size=size,
        # the app's limit is per address and worker: the front allows what the workers together allow
        anonymous_per_minute=limits.anonymous_per_minute * workers if limits.enabled else 0,
        upload_max_bytes=settings.upload_max_bytes,
        trusted_proxies=settings.trusted_proxies,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
