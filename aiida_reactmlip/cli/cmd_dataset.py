"""``reactmlip dataset``: import, export and inspect labelled datasets."""

from __future__ import annotations

import click

from .root import cmd_root, with_profile
from .run_file import load_node_or_fail


def _load_dataset(pk):
    from aiida_reactmlip.data.dataset import LabelledDatasetData

    return load_node_or_fail(pk, LabelledDatasetData)


def check_output_file(output) -> None:
    """A click error unless ``output`` can be written: its folder exists and it is not a folder itself."""
    import pathlib

    path = pathlib.Path(output)
    folder = path.parent if str(path.parent) else pathlib.Path(".")
    if not folder.is_dir():
        raise click.ClickException(f"cannot write {output}: the folder {folder} does not exist; create it first "
                                   f"(mkdir -p {folder}) or give another path")
    if path.is_dir():
        raise click.ClickException(f"cannot write {output}: it is a folder; give a file name")


@cmd_root.group("dataset")
def cmd_dataset():
    """Labelled datasets (frames with DFT energies, forces, stress)."""


@cmd_dataset.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--label", default=None, help="Label of the new node (default: the file name).")
@with_profile
def cmd_dataset_import(file, label):
    """Store an extended XYZ file as a LabelledDatasetData (exact round trip of every number).

    Energies in eV, forces in eV/Å, stress in eV/Å^3 (ASE conventions). A malformed file is refused
    with the line number of the problem, and nothing is stored.

    Example: reactmlip dataset import labels.extxyz --label cu-o-adsorption
    """
    import pathlib

    from aiida_reactmlip.data.dataset import LabelledDatasetData

    try:
        node = LabelledDatasetData.from_extxyz(file)
    except (ValueError, OSError) as exception:
        raise click.ClickException(str(exception)) from exception
    if not node.n_frames:
        raise click.ClickException(f"{file} holds no frames: nothing to store (an extended XYZ file with at least "
                                   "one frame, energies in eV and forces in eV/Å)")
    node.label = label or pathlib.Path(file).name
    node.store()
    click.echo(f"stored LabelledDatasetData<{node.pk}> {node.label}: {node.base.attributes.get('n_frames')} frames, "
               f"elements {', '.join(node.base.attributes.get('elements', []))}")


@cmd_dataset.command("export")
@click.argument("pk")
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["extxyz", "optimade-jsonl", "mace"]), default="extxyz",
              show_default=True,
              help="extxyz: exact extended XYZ; optimade-jsonl: OPTIMADE JSON Lines for a stock optimade server; "
                   "mace: extxyz with REF_energy/REF_forces/REF_stress/config_type for mace_run_train.")
@with_profile
def cmd_dataset_export(pk, output, fmt):
    """Write a dataset to a file (energies eV, forces eV/Å, stress eV/Å^3; every float exact).

    \b
    Examples:
      reactmlip dataset export 42 labels.extxyz
      reactmlip dataset export 42 labels.jsonl --format optimade-jsonl
      reactmlip dataset export 42 train.xyz --format mace   # mace_run_train --train_file=train.xyz
    """
    node = _load_dataset(pk)
    check_output_file(output)
    try:
        if fmt == "extxyz":
            node.export_extxyz(output)
        else:
            from aiida_reactmlip.sharing.export import export_dataset

            export_dataset(node, output, fmt)
    except (ValueError, OSError) as exception:
        raise click.ClickException(f"cannot export {node.pk} as {fmt} to {output}: {exception}") from exception
    click.echo(f"wrote {node.base.attributes.get('n_frames')} frames to {output} ({fmt})")


@cmd_dataset.command("show")
@click.argument("pk")
@with_profile
def cmd_dataset_show(pk):
    """Summarise a dataset: frames, elements, energies (eV), max force (eV/Å), source of each label.

    Example: reactmlip dataset show 42
    """
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    node = _load_dataset(pk)
    frames = node.frames
    table = Table(title=f"LabelledDatasetData<{node.pk}> {node.label}: {len(frames)} frames, "
                        f"elements {', '.join(frames.symbols_set())}")
    for column in ("#", "name", "atoms", "energy (eV)", "max |F| (eV/Å)", "stress", "source"):
        table.add_column(column)
    for i in range(len(frames)):
        start, n = frames.offsets[i], frames.n_atoms[i]
        forces = frames.forces[start : start + n]
        fmax = np.linalg.norm(forces, axis=1).max() if np.isfinite(forces).all() and n else float("nan")
        info = frames.info[i]
        table.add_row(str(i), str(info.get("name", "")), str(n), f"{frames.energies[i]:.6f}", f"{fmax:.4f}",
                      "yes" if np.isfinite(frames.stress[i]).all() else "-", str(info.get("source_uuid", ""))[:8])
    Console().print(table)
