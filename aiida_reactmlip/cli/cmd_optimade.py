"""``reactmlip optimade``: serve the labelled datasets of a profile through the OPTIMADE API."""

from __future__ import annotations

import click

from .root import cmd_root, with_profile


@cmd_root.group("optimade")
def cmd_optimade():
    """Share labelled datasets with the OPTIMADE API (every labelled frame is a `structures` entry)."""


@cmd_optimade.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0: all).")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
@click.option("--base-url", default=None, help="Public base URL written into `next` links (behind a proxy).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]), help="uvicorn log level.")
@with_profile
def cmd_optimade_serve(host, port, base_url, log_level):
    """Serve the profile's LabelledDatasetData frames as OPTIMADE `structures` (one process, uvicorn).

    Filters run against the database on every request, so datasets stored later are served at once.
    For production use several workers: `uvicorn --factory --workers 4
    aiida_reactmlip.optimade.app:create_reactmlip_app` with REACTMLIP_PROFILE set.

    \b
    Examples:
      reactmlip optimade serve
      reactmlip -p myprofile optimade serve --host 0.0.0.0 --port 8080
      curl 'http://127.0.0.1:5000/v1/structures?filter=elements HAS "Cu"&page_limit=5'
    """
    import uvicorn
    from aiida import get_profile

    from aiida_reactmlip.optimade.app import create_reactmlip_app

    overrides = {"base_url": base_url} if base_url else {}
    app = create_reactmlip_app(get_profile().name, **overrides)
    click.echo(f"OPTIMADE API of profile {get_profile().name!r} at http://{host}:{port}/v1/structures", err=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
