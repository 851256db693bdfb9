"""``reactmlip systems``: the reactive-system library (pure ASE; needs no AiiDA profile)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .root import cmd_root

#: Formats that hold many frames in one file; others get one file per configuration.
_MULTI_FRAME = {"extxyz": "extxyz", "xyz": "xyz", "traj": "traj"}
_SUFFIX = {"cif": "cif", "vasp": "vasp", "espresso-in": "pwi", "json": "json", "proteindatabank": "pdb"}


def _parse_params(items) -> dict:
    params = {}
    for item in items:
        if "=" not in item:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--set")
        key, value = item.split("=", 1)
        try:
            params[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[key.strip()] = value
    return params


@cmd_root.group("systems")
def cmd_systems():
    """The library of reactive systems: adsorption, dissociation, crystal growth."""


@cmd_systems.command("list")
@click.option(
    "--category",
    type=click.Choice(["adsorption", "dissociation", "crystal_growth"]),
    help="Only the systems of this category.",
)
def cmd_systems_list(category):
    """List the registered reactive systems with their category and physical meaning.

    \b
    Examples:
      reactmlip systems list
      reactmlip systems list --category crystal_growth
    """
    from aiida_reactmlip.systems import describe_system, list_systems

    names = list_systems(category)
    width = max(len(n) for n in names)
    for name in names:
        about = describe_system(name)
        click.echo(f"{name:<{width}}  {about['category']:<14}  {about['description']}")
    click.echo(f"{len(names)} systems; `reactmlip systems show NAME` lists and writes the configurations.")


@cmd_systems.command("show")
@click.argument("name")
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the configurations into this folder.",
)
@click.option(
    "--format",
    "fmt",
    default="extxyz",
    show_default=True,
    help="Any ASE writer: extxyz/xyz/traj write one file with all frames; cif, vasp, espresso-in, "
    "json ... one file per configuration.",
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Builder parameter (value read as JSON), e.g. --set 'size=[3,3,4]' --set n_images=7.",
)
def cmd_systems_show(name, output, fmt, settings):
    """Build system NAME: print its configurations (name, role, formula, atoms) and optionally write them.

    \b
    Examples:
      reactmlip systems show o-on-pt111
      reactmlip systems show h2-on-cu111 --output h2cu --format extxyz
      reactmlip systems show cu-adatom-cu111 --set n_images=5 -o hop --format cif
    """
    import ase.io

    from aiida_reactmlip.systems import describe_system, get_system, list_systems, validate_configurations

    if name not in list_systems():
        raise click.ClickException(
            f"unknown reactive system {name!r}; available:\n  " + "\n  ".join(list_systems())
        )
    params = _parse_params(settings)
    try:
        system = get_system(name, **params)
        validate_configurations(system.configurations)
    except TypeError as exc:
        raise click.ClickException(f"{exc}") from exc
    except (ValueError, KeyError) as exc:
        raise click.ClickException(
            f"{name}: {exc}; parameters: {describe_system(name)['parameters']}"
        ) from exc
    click.echo(f"{system.name} ({system.category}): {system.description}")
    width = max(len(n) for n in system.names)
    for atoms in system.configurations:
        extra = {
            k: atoms.info[k] for k in ("site", "height", "multiplicity", "scan_coordinate") if k in atoms.info
        }
        extra_text = "  ".join(
            f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in extra.items()
        )
        click.echo(
            f"  {atoms.info['name']:<{width}}  {atoms.info['role']:<9}  "
            f"{atoms.get_chemical_formula():<10} {len(atoms):>3} atoms  {extra_text}".rstrip()
        )
    if output is None:
        return
    output.mkdir(parents=True, exist_ok=True)
    frames = [_for_writing(a) for a in system.configurations]
    try:
        if fmt in _MULTI_FRAME:
            path = output / f"{system.name}.{_MULTI_FRAME[fmt]}"
            ase.io.write(path, frames, format=fmt)
            written = [path]
        else:
            written = []
            for atoms in frames:
                path = output / f"{atoms.info['name']}.{_SUFFIX.get(fmt, fmt)}"
                ase.io.write(path, atoms, format=fmt)
                written.append(path)
    except Exception as exc:  # ASE raises many types for formats it cannot write
        raise click.ClickException(f"ASE cannot write format {fmt!r}: {type(exc).__name__}: {exc}") from exc
    click.echo(f"wrote {len(system.configurations)} configurations to {len(written)} file(s) in {output}")


def _for_writing(atoms):
    """A copy whose info holds only scalars and strings (extxyz writes those losslessly)."""
    new = atoms.copy()
    new.info = {k: v for k, v in atoms.info.items() if isinstance(v, (str, int, float, bool))}
    return new
