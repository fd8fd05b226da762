"""Entry point: ``geoshare db upgrade``, ``geoshare serve``, ``geoshare layer …``, ``geoshare demo …``."""

from __future__ import annotations

import typer

from geoshare.cli import (
    access,
    address,
    agreement,
    db,
    demo,
    export,
    geocode,
    imagery,
    layer,
    places,
    quota,
    serve,
    tiles,
)

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="GeoShare: the city's shared map platform.",
)
app.add_typer(db.app, name="db")
app.add_typer(layer.app, name="layer")
app.add_typer(demo.app, name="demo")
app.add_typer(address.app, name="address")
app.add_typer(places.app, name="places")
app.add_typer(access.department_app, name="department")
app.add_typer(access.key_app, name="key")
access.department_app.command("limits")(quota.limits)
app.add_typer(imagery.app, name="imagery")
app.add_typer(agreement.app, name="agreement")
layer.app.command("export")(export.export_cmd)
app.add_typer(tiles.app, name="tiles")
app.command("package")(tiles.package_cmd)
app.command("serve")(serve.serve)
app.command("geocode")(geocode.geocode_cmd)
app.command("geocode-batch")(geocode.geocode_batch_cmd)
