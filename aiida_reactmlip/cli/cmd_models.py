"""``reactmlip models``: the universal MLIPs usable offline, and model files a user adds."""

from __future__ import annotations

import click

from .root import cmd_root, with_profile


def weights_description(spec) -> str:
    """Where a registry model's weights come from, or how to supply them."""
    from aiida_reactmlip.models import ModelNotAvailableError, locate_model_file

    try:
        locate_model_file(spec.name)
    except ModelNotAvailableError:
        return "not bundled: `reactmlip models add FILE`"
    return f"bundled in {spec.bundled_in}"


@cmd_root.group("models")
def cmd_models():
    """Universal MLIPs: list the registry, store a model file."""


@cmd_models.command("list")
@click.option("--stored/--registry", default=False, help="Show stored MlipModelData nodes instead of the registry.")
@with_profile
def cmd_models_list(stored):
    """List the models of the registry (name, family, where the weights come from) or the stored nodes.

    \b
    Examples:
      reactmlip models list
      reactmlip models list --stored
    """
    from aiida import orm
    from rich.console import Console
    from rich.table import Table

    from aiida_reactmlip.data.model import MlipModelData
    from aiida_reactmlip.models import list_models

    console = Console()
    if stored:
        table = Table(title="Stored MlipModelData")
        for column in ("pk", "name", "family", "version", "elements", "cutoff (Å)", "sha256"):
            table.add_column(column)
        for node in orm.QueryBuilder().append(MlipModelData, tag="m").order_by({"m": "id"}).all(flat=True):
            table.add_row(str(node.pk), node.model_name, node.family, str(node.version), str(len(node.elements)),
                          str(node.cutoff), node.sha256[:16])
        console.print(table)
        return
    table = Table(title="Model registry")
    for column in ("name", "family", "version", "weights", "training data"):
        table.add_column(column)
    for spec in list_models():
        table.add_row(spec.name, spec.family, str(spec.version), weights_description(spec), spec.training_data)
    console.print(table)


@cmd_models.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--family", type=click.Choice(["mace", "chgnet", "sevenn"]), required=True, help="Model family.")
@click.option("--name", "model_name", required=True, help="Model name, e.g. mace-mp-0 or my-finetuned-cu.")
@click.option("--version", default="", help="Version string recorded on the node.")
@with_profile
def cmd_models_add(file, family, model_name, version):
    """Store a model file as MlipModelData (the same file stored twice is found, not duplicated).

    The elements covered and the cutoff are read from the model itself.

    Example: reactmlip models add 2023-12-03-mace-128-L1_epoch-199.model --family mace --name mace-mp-0
    """
    from aiida_reactmlip.data.model import MlipModelData
    from aiida_reactmlip.models import describe_model_file

    try:
        description = describe_model_file(family, file)
    except Exception as exception:  # noqa: BLE001
        raise click.ClickException(f"{file} could not be loaded as a {family} model: {exception}") from exception
    node, created = MlipModelData.get_or_create(
        file, family=family, model_name=model_name, version=version, elements=description["elements"],
        cutoff=description.get("cutoff"), dtype=description.get("dtype"), source=f"user file {file}",
    )
    state = "stored" if created else "already stored"
    click.echo(f"{state}: MlipModelData<{node.pk}> {node.model_name} ({len(node.elements)} elements, sha256 {node.sha256[:16]})")
