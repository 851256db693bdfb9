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


@cmd_optimade.command("index")
@click.option("--rebuild", is_flag=True, help="Empty the index first and index every dataset again.")
@with_profile
def cmd_optimade_index(rebuild):
    """Build or update the per-frame OPTIMADE index of the profile (tables reactmlip_optimade_* in its database).

    The server also catches up on its own (at start and on each request: datasets stored or deleted since),
    so this command is for building the index of a large profile before the first `serve`, or after a
    change of the index format. Only the index tables are written; AiiDA's own tables are only read.

    \b
    Examples:
      reactmlip optimade index
      reactmlip -p myprofile optimade index --rebuild
    """
    import time

    from aiida_reactmlip.optimade.index import FrameIndex

    index = FrameIndex()
    if rebuild:
        index.drop()
    start = time.perf_counter()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if done == total or now - last[0] > 2:
            last[0] = now
            click.echo(f"  indexed {done:,}/{total:,} datasets ({now - start:.0f} s)", err=True)

    added = index.catch_up(progress=progress)  # ends with ANALYZE when it added or removed datasets
    size = index.size_bytes()
    size_text = f", {size / 2**20:.1f} MiB on disk" if size else ""
    click.echo(f"OPTIMADE index: {len(index.datasets):,} datasets, {index.total_frames:,} frames "
               f"({added:,} datasets added in {time.perf_counter() - start:.1f} s{size_text})")
