"""``reactmlip setup`` and ``reactmlip status``."""

from __future__ import annotations

import click

from .root import cmd_root, load_profile_or_fail

DEMO_MODELS = ("chgnet-0.3.0", "sevennet-0")


@cmd_root.command("setup")
@click.option("--profile-name", default="reactmlip", show_default=True,
              help="Profile to create (core.sqlite_dos storage, no broker). An existing one is used as it is.")
@click.option("--models", "model_names", default=",".join(DEMO_MODELS), show_default=True,
              help="Comma-separated registry models whose bundled weights to store as MlipModelData nodes.")
def cmd_setup(profile_name, model_names):
    """Create what a fresh machine needs; safe to run again (only what is missing is created).

    \b
    * an AiiDA profile on core.sqlite_dos with no broker (processes run in-process)
    * the `localhost` computer (core.local + core.direct, mpirun allowed as root)
    * codes pw@localhost, neb@localhost (Debian's Quantum ESPRESSO) and reactmlip-runner@localhost
    * the pseudopotential family reactmlip/debian-pbe from Debian's quantum-espresso-data,
      with the cutoffs each file suggests
    * the bundled weights of the requested models, stored once (deduplicated by sha256)

    Example: reactmlip setup --models chgnet-0.3.0,sevennet-0,chgnet-0.2.0
    """
    from rich.console import Console
    from rich.table import Table

    from aiida_reactmlip.provision import provision

    names = [name.strip() for name in model_names.split(",") if name.strip()]
    report = provision(profile_name, models=names)
    table = Table(title=f"reactmlip setup (profile {profile_name})")
    for column in ("what", "label", "state"):
        table.add_column(column)
    for row in report.lines:
        table.add_row(*row)
    Console().print(table)


@cmd_root.command("status")
@click.pass_context
def cmd_status(ctx):
    """Show the profile, storage, broker, codes, pseudo families and the models available.

    Example: reactmlip -p reactmlip status
    """
    from aiida import orm
    from rich.console import Console
    from rich.table import Table

    from aiida_reactmlip.data.model import MlipModelData
    from aiida_reactmlip.models import list_models

    from .cmd_models import weights_description

    profile = load_profile_or_fail(ctx)
    console = Console()
    table = Table(title="AiiDA profile", show_header=False)
    table.add_row("profile", profile.name)
    table.add_row("storage", f"{profile.storage_backend} {profile.storage_config.get('filepath', profile.storage_config.get('database_name', ''))}")
    table.add_row("broker", profile.process_control_backend or "none (processes run in-process with `run`)")
    # QueryBuilder on AbstractCode matches every `data.core.*` node in aiida-core 2.9: filter on the type.
    codes = orm.QueryBuilder().append(orm.Data, filters={"node_type": {"like": "data.core.code.%"}}).all(flat=True)
    codes = [code for code in codes if isinstance(code, orm.AbstractCode)]
    table.add_row("codes", "\n".join(f"{c.full_label} ({c.default_calc_job_plugin})" for c in codes) or "none: run `reactmlip setup`")
    families = orm.QueryBuilder().append(orm.Group, filters={"type_string": {"like": "pseudo.family%"}}).all(flat=True)
    table.add_row("pseudo families", "\n".join(f"{f.label} ({', '.join(sorted(f.elements))})" for f in families) or "none")
    console.print(table)

    stored = {node.model_name: node for node in orm.QueryBuilder().append(MlipModelData).all(flat=True)}
    models = Table(title="Models")
    for column in ("name", "family", "weights", "stored node"):
        models.add_column(column)
    for spec in list_models():
        node = stored.pop(spec.name, None)
        models.add_row(spec.name, spec.family, weights_description(spec), f"pk {node.pk}" if node else "-")
    for name, node in stored.items():
        models.add_row(name, node.family, f"file {node.filename}", f"pk {node.pk}")
    console.print(models)
