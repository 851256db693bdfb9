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

    from aiida_reactmlip.models.errors import ModelLoadError

    try:
        description = describe_model_file(family, file)
    except ModelLoadError as exception:  # the loader's own message names the file and the family
        raise click.ClickException(f"{exception}; is it a {family} model file (--family)? Nothing was stored.") \
            from exception
    except Exception as exception:  # noqa: BLE001  (any other loader failure, reported)
        raise click.ClickException(f"{file} could not be loaded as a {family} model: {exception}. Nothing was "
                                   "stored.") from exception
    node, created = MlipModelData.get_or_create(
        file, family=family, model_name=model_name, version=version, elements=description["elements"],
        cutoff=description.get("cutoff"), dtype=description.get("dtype"), source=f"user file {file}",
    )
    state = "stored" if created else "already stored"
    click.echo(f"{state}: MlipModelData<{node.pk}> {node.model_name} ({len(node.elements)} elements, sha256 {node.sha256[:16]})")


# ------------------------------------------------------------------------------ show and export


def load_model_node(identifier: str):
    """The MlipModelData with this pk or UUID, or a ClickException saying what the identifier is instead."""
    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    from aiida_reactmlip.data.model import MlipModelData

    try:
        node = orm.load_node(int(identifier) if str(identifier).isdigit() else identifier)
    except (NotExistent, MultipleObjectsError, ValueError) as exception:
        raise click.ClickException(f"no node with pk or UUID {identifier!r}: {exception}") from exception
    if not isinstance(node, MlipModelData):
        raise click.ClickException(
            f"node {identifier} is a {type(node).__name__}, not a model (MlipModelData); "
            "`reactmlip models list --stored` lists the stored models"
        )
    return node


def _node_by_uuid(uuid: str | None):
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    if not uuid:
        return None
    try:
        return orm.load_node(uuid=uuid)
    except NotExistent:
        return None


def model_provenance(node) -> dict:
    """Where a model came from: the process that created it, its base model and training data (None if none).

    ``creator``: (process label, pk) of the creating process; ``base_model``/``training_dataset``: the
    node when it is in this profile, else its UUID string; ``report``: the fine-tuning report, if any.
    """
    creator = node.creator
    report = None
    if creator is not None and "report" in creator.outputs:
        report = creator.outputs.report.get_dict()
    result = {"creator": creator, "report": report}
    for key, uuid in (("base_model", node.base_model_uuid), ("training_dataset", node.training_dataset_uuid)):
        result[key] = _node_by_uuid(uuid) or uuid
    return result


def provenance_lines(node) -> list[str]:
    """Human-readable lines: base model, training dataset, creating process, and the fine-tuning settings."""
    info = model_provenance(node)
    lines = []
    base = info["base_model"]
    if base is None:
        lines.append("base model:       none (not a fine-tuned model)" if node.source != "finetune"
                     else "base model:       none (trained from scratch)")
    elif isinstance(base, str):
        lines.append(f"base model:       UUID {base} (not in this profile)")
    else:
        lines.append(f"base model:       {base.model_name} ({base.family}, pk {base.pk}, sha256 {base.sha256[:16]})")
    data = info["training_dataset"]
    if data is None:
        lines.append("training dataset: none recorded")
    elif isinstance(data, str):
        lines.append(f"training dataset: UUID {data} (not in this profile)")
    else:
        n_frames = data.base.attributes.get("n_frames", "?")
        elements = ", ".join(data.base.attributes.get("elements", []))
        lines.append(f"training dataset: pk {data.pk}, {n_frames} frame(s), elements {elements}")
    creator = info["creator"]
    if creator is not None:
        lines.append(f"created by:       {creator.process_label} pk {creator.pk}")
    report = info["report"]
    if report:
        hp = report.get("hyperparameters", {})
        final = report.get("final", {}) or {}
        lines.append(
            f"fine-tuning:      {report.get('n_train')} training / {report.get('n_valid')} validation frame(s), "
            f"{hp.get('epochs')} epoch(s), learning rate {hp.get('learning_rate')}, seed {hp.get('seed')}, "
            f"{float(report.get('seconds') or 0):.1f} s"
        )
        if final.get("valid_energy_mae") is not None:
            lines.append(f"last epoch:       validation energy MAE {final['valid_energy_mae']:.5f} eV/atom, "
                         f"force MAE {final.get('valid_force_mae', float('nan')):.5f} eV/Å")
    return lines


@cmd_models.command("show")
@click.argument("identifier", metavar="PK")
@with_profile
def cmd_models_show(identifier):
    """Show a stored model: what it is, what it covers and where it came from (PK or UUID).

    \b
    Example:
      reactmlip models show 1234
    """
    node = load_model_node(identifier)
    with node.open(mode="rb") as handle:
        size = handle.seek(0, 2)
    click.echo(f"MlipModelData<{node.pk}> {node.model_name}")
    click.echo(f"family:           {node.family}")
    click.echo(f"version:          {node.version}")
    click.echo(f"file:             {node.filename} ({size} bytes)")
    click.echo(f"sha256:           {node.sha256}")
    click.echo(f"elements:         {len(node.elements)}: {', '.join(node.elements)}")
    click.echo(f"cutoff:           {node.cutoff} Å")
    click.echo(f"dtype:            {node.dtype}")
    click.echo(f"source:           {node.source}")
    click.echo(f"uuid:             {node.uuid}")
    for line in provenance_lines(node):
        click.echo(line)


@cmd_models.command("export")
@click.argument("identifier", metavar="PK")
@click.argument("path", required=False, type=click.Path(dir_okay=True, writable=True))
@click.option("--force", is_flag=True, help="Overwrite PATH if it exists.")
@with_profile
def cmd_models_export(identifier, path, force):
    """Write a stored model's file (a fine-tuned one, for instance) to PATH and say where it came from.

    PATH defaults to the model's file name in the current directory; a directory gets the file under the
    model's file name. The sha256 of the written file is checked against the node's.

    \b
    Examples:
      reactmlip models export 1234
      reactmlip models export 1234 models/
      reactmlip models export 1234 cu-h-finetuned.pth.tar
    """
    import pathlib
    import shutil

    from aiida_reactmlip.hashing import sha256_file

    node = load_model_node(identifier)
    target = pathlib.Path(path) if path else pathlib.Path.cwd() / node.filename
    if target.is_dir():
        target = target / node.filename
    if target.exists() and not force:
        raise click.ClickException(f"{target} exists: give another PATH or --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    with node.open(mode="rb") as source, open(tmp, "wb") as handle:
        shutil.copyfileobj(source, handle, 1 << 20)
    digest = sha256_file(tmp)
    if digest != node.sha256:
        tmp.unlink()
        raise click.ClickException(
            f"the written file has sha256 {digest}, the node records {node.sha256}: not exported"
        )
    tmp.replace(target)
    click.echo(f"wrote {target} ({target.stat().st_size} bytes)")
    click.echo(f"sha256:           {node.sha256}")
    click.echo(f"model:            {node.model_name} ({node.family}, MlipModelData pk {node.pk}, uuid {node.uuid})")
    for line in provenance_lines(node):
        click.echo(line)
    click.echo(f"use it:           aiida_reactmlip.models.load_calculator({node.family!r}, {str(target)!r}); "
               f"elsewhere: reactmlip models add {target.name} --family {node.family} --name {node.model_name}")
