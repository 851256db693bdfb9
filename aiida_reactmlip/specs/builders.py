"""Inputs and builders from ASE Atoms: StructureData carrying the frames' info as extras, and convenience
builders of ``reactmlip.label`` and ``reactmlip.dft_neb`` on the default localhost codes."""

from __future__ import annotations

import re
import typing as t

from aiida import orm


def scalar_info(info: dict) -> dict:
    """The entries of an ``atoms.info`` that AiiDA extras keep (str, int, float, bool; no ``_private`` key)."""
    return {k: v for k, v in info.items() if isinstance(v, (str, int, float, bool)) and not k.startswith("_")}


def set_dicts(namespace, **values) -> None:
    """Set each non-empty mapping of ``values`` as a Dict input of the builder ``namespace`` (empty ones: left
    out, the WorkChain's defaults apply)."""
    for name, value in values.items():
        if value:
            namespace[name] = orm.Dict(dict(value))


def stored_structure(atoms, store: bool = True) -> orm.StructureData:
    """A StructureData of ``atoms`` with :func:`scalar_info` of its info (multiplicity, role, ...) as extras;
    stored unless ``store`` is False (a process launched with it stores it once its inputs are valid)."""
    structure = orm.StructureData(ase=atoms)
    structure.base.extras.set_many(scalar_info(atoms.info))
    return structure.store() if store else structure


def structures_from_atoms(atoms_list: t.Iterable, names: t.Iterable[str] | None = None,
                          store: bool = False) -> dict[str, orm.StructureData]:
    """StructureData (:func:`stored_structure`) from ASE Atoms, keyed by valid link labels made from ``names`` or
    ``info['name']`` or the index. Unstored unless ``store``: the process they are passed to stores them when it
    starts, so inputs it refuses leave nothing in the database."""
    result = {}
    names = list(names) if names is not None else None
    for index, atoms in enumerate(atoms_list):
        raw = names[index] if names is not None else str(atoms.info.get("name", f"frame_{index:04d}"))
        key = re.sub(r"\W", "_", raw).strip("_") or f"frame_{index:04d}"
        if key[0].isdigit():
            key = f"s_{key}"
        if key in result:
            key = f"{key}_{index}"
        result[key] = stored_structure(atoms, store=store)
    return result


def structures_from_group(group) -> dict[str, orm.StructureData]:
    """The StructureData of an AiiDA group (or group label/pk), keyed by node label (made a valid link label), else pk."""
    group = group if isinstance(group, orm.Group) else orm.load_group(group)
    nodes = [n for n in group.nodes if isinstance(n, orm.StructureData)]
    if not nodes:
        raise ValueError(f"group {group.label!r} holds no StructureData")
    structures: dict[str, orm.StructureData] = {}
    for node in nodes:
        key = re.sub(r"\W", "_", node.label).strip("_") if node.label else ""
        key = f"pk_{node.pk}" if not key or key[0].isdigit() or key in structures else key
        structures[key] = node
    return structures


def _default_code(label: str, code):
    from aiida_reactmlip import provision

    return code or orm.load_code(f"{label}@{provision.DEFAULT_COMPUTER}")


def _default_family(pseudo_family: str | None) -> orm.Str:
    from aiida_reactmlip import provision

    return orm.Str(pseudo_family or provision.DEBIAN_FAMILY_LABEL)


def get_label_builder(structures, protocol: str = "fast", pw_code=None, pseudo_family: str | None = None):
    """A ``reactmlip.label`` builder: ``structures`` maps names to ASE Atoms or StructureData, or is an AiiDA group
    (or group label) of StructureData (keys from the node labels, else ``pk``); pw.x code and pseudopotential
    family default to those ``reactmlip setup`` installs."""
    from aiida_reactmlip import provision
    from aiida_reactmlip.workflows.label import LabelWorkChain

    if isinstance(structures, (str, orm.Group)):
        structures = structures_from_group(structures)
    builder = LabelWorkChain.get_builder()
    converted = {}
    for name, s in structures.items():
        if isinstance(s, orm.StructureData):
            converted[name] = s
        else:
            converted.update(structures_from_atoms([s], [name]))
    builder.structures = converted
    builder.pw_code = _default_code(provision.PW_CODE_LABEL, pw_code)
    builder.pseudo_family = _default_family(pseudo_family)
    builder.protocol = orm.Str(protocol)
    return builder


def get_neb_builder(initial, final, protocol: str = "fast", num_images: int = 7, code=None,
                    pseudo_family: str | None = None):
    """A ``reactmlip.dft_neb`` builder from ASE Atoms or StructureData end states (``info['multiplicity']`` kept
    as extra); neb.x code and pseudopotential family default to those ``reactmlip setup`` installs."""
    from aiida_reactmlip import provision
    from aiida_reactmlip.workflows.dft_neb import DftNebWorkChain

    builder = DftNebWorkChain.get_builder()
    builder.initial = initial if isinstance(initial, orm.StructureData) else stored_structure(initial)
    builder.final = final if isinstance(final, orm.StructureData) else stored_structure(final)
    builder.code = _default_code(provision.NEB_CODE_LABEL, code)
    builder.pseudo_family = _default_family(pseudo_family)
    builder.protocol = orm.Str(protocol)
    builder.num_images = orm.Int(num_images)
    return builder
