"""The ``reactmlip`` click group, also mounted as ``verdi data reactmlip``."""

from __future__ import annotations

import functools
import os

import click

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class ProfileState:
    """Which profile commands of the ``reactmlip`` script should load (``verdi`` loads its own)."""

    def __init__(self, name: str | None):
        self.name = name


def load_profile_or_fail(ctx: click.Context | None = None):
    """Load the selected (or default) AiiDA profile, or exit with what to do about it."""
    from aiida import get_profile, load_profile
    from aiida.common.exceptions import MissingConfigurationError, ProfileConfigurationError

    state = None
    if ctx is not None:
        state = ctx.find_object(ProfileState)
    name = state.name if state else None
    current = get_profile()
    if current is not None and (name is None or current.name == name):
        return current
    try:
        return load_profile(name, allow_switch=True)
    except (MissingConfigurationError, ProfileConfigurationError, Exception) as exception:  # noqa: BLE001
        raise click.ClickException(
            f"cannot load AiiDA profile {name or '(default)'}: {exception}. "
            "Create the default profile with `reactmlip setup` (or `make demo`)."
        ) from exception


def with_profile(function):
    """Decorator: load the profile before running the command."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        load_profile_or_fail(click.get_current_context())
        return function(*args, **kwargs)

    return wrapper


@click.group("reactmlip", context_settings=CONTEXT_SETTINGS)
@click.option(
    "-p",
    "--profile",
    "profile_name",
    default=lambda: os.environ.get("REACTMLIP_PROFILE"),
    help="AiiDA profile to use (default: $REACTMLIP_PROFILE, else AiiDA's default profile). "
    "Ignored under `verdi data reactmlip`, where verdi's own -p applies.",
)
@click.pass_context
def cmd_root(ctx, profile_name):
    """Can I trust a universal MLIP for my reaction, and how few DFT calculations does it take to fix it?

    \b
    Start here:
      reactmlip setup            create the profile, computer, codes, pseudopotentials
      reactmlip status           what is configured and which models are available
      reactmlip demo             H2 bond scan: pw.x labels vs CHGNet and SevenNet-0
      reactmlip models list      universal MLIPs usable offline
      reactmlip dataset --help   import, export and inspect labelled datasets
    """
    ctx.obj = ProfileState(profile_name)


from . import cmd_campaign, cmd_dataset, cmd_demo, cmd_label, cmd_models, cmd_optimade, cmd_report, cmd_setup, cmd_share, cmd_systems  # noqa: E402,F401
from . import cmd_finetune  # noqa: E402,F401
from . import cmd_loop  # noqa: E402,F401
from . import cmd_benchmark  # noqa: E402,F401
from . import cmd_physics  # noqa: E402,F401
from . import cmd_processes  # noqa: E402,F401
