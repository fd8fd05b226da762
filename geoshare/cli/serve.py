"""``geoshare serve``: run the API with uvicorn."""

from __future__ import annotations

import typer
import uvicorn


def serve(
    host: str = typer.Option("127.0.0.1", help="interface to bind"),
    port: int = typer.Option(8000, help="TCP port"),
    workers: int = typer.Option(2, min=1, help="worker processes; they share nothing but the database"),
) -> None:
    """Serve the HTTP API."""
    uvicorn.run(
        "geoshare.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=False,
        # a worker's first import (geospatial libraries, cold disk cache) can take several seconds on a
        # busy machine; uvicorn's 5 s default would kill and restart it as unresponsive
        timeout_worker_healthcheck=30,
    )
