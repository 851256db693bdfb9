"""Campaign files: systems x models x protocol described in YAML, run as one ``reactmlip.benchmark``.

A campaign file (``workchains/NAME.yaml``)::

    name: h2-dissociation
    category: dissociation
    description: H2 bond scan, pw.x against CHGNet and SevenNet-0 zero-shot.
    systems:
      - h2-dissociation                      # a library name, or
      - {name: h-on-cu111, params: {size: [2, 2, 3]}, roles: [reference, final]}
    models: [chgnet-0.3.0, sevennet-0]       # or `all`: every model whose weights ship in a PyPI package
    protocol: fast                           # fast | moderate | precise
    pseudo_family: reactmlip/debian-pbe      # optional: chosen by elements when left out
    pw_processes: 1                          # MPI ranks per pw.x job
    energy_reference: relative:min
    relax_minima: true                       # relax the DFT minima with every model (structural stability)
    relax_settings: {fmax: 0.05, max_steps: 300}   # optional, reactmlip.relax settings
    dft_neb:                                 # optional: a DFT NEB (neb.x) and every model's own NEB
      initial: cu-adatom-cu111-fcc           # configuration names (info "name") of the end states
      final: cu-adatom-cu111-hcp
      num_images: 3                          # images of the band, end states included
      interpolation: idpp                    # idpp | linear
      climbing_image: true
      relax_end_states: true                 # neb.x optimises the end states with the band (first_last_opt);
                                             # atoms the slab builders fix (FixAtoms) stay fixed in every image
      path_overrides: {nstep_path: 30}       # optional neb.x PATH overrides
    mlip_neb_settings: {fmax: 0.05}          # optional reactmlip.neb settings of the models' NEB
    evaluate_settings: {device: cuda}        # optional reactmlip.evaluate settings (device, workers, mode, ...)
    structures:                              # optional: the user's own structures beside (or instead of) systems
      - {file: my_reaction.extxyz}           # roles from each frame's info: role=slab|gas|minimum|initial|final|
                                             # image|scan, group=..., fixed_atoms=... (docs/your-reaction.md);
                                             # dft_neb initial/final may name their frames
    physics: {elements: [H, Cu], checks: [diatomic, nve, ramp, reaction], quick: false}
                                             # optional: physics-aware checks of every model (docs/physics.md);
                                             # `physics: {}` checks the campaign's own elements
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re

from aiida_reactmlip.specs.builders import set_dicts
from aiida_reactmlip.specs.codes import (
    check_computer,
    choose_pseudo_family,
    dft_options,
    local_codes,
    run_in_process,
)
from aiida_reactmlip.specs.files import check_number, check_settings, read_spec_file

KNOWN_KEYS = {"name", "category", "description", "systems", "models", "protocol", "pseudo_family", "pw_processes",
              "energy_reference", "relax_minima", "relax_settings", "dft_neb", "mlip_neb_settings",
              "evaluate_settings", "physics", "structures", "computer"}
#: Keys of an entry of a campaign's ``structures``: ``file`` (extxyz or any file ASE reads; relative to the
#: campaign file), ``system`` (default: the file's stem).
STRUCTURES_KEYS = {"file", "system"}
#: Keys of a campaign's ``physics`` entry: ``elements`` (default: the campaign's), ``checks`` (default: all four),
#: ``quick`` (MD 10x shorter).
PHYSICS_KEYS = {"elements", "checks", "quick"}
#: Keys of a campaign's ``dft_neb`` entry (``initial`` and ``final`` required: configuration names).
DFT_NEB_KEYS = {"initial", "final", "num_images", "interpolation", "climbing_image", "path_overrides",
                "parameter_overrides", "max_iterations", "relax_end_states"}


@dataclasses.dataclass
class SystemRequest:
    name: str
    params: dict = dataclasses.field(default_factory=dict)
    roles: list[str] | None = None


@dataclasses.dataclass
class CampaignSpec:
    name: str
    systems: list[SystemRequest]
    models: list[str]
    category: str = ""
    description: str = ""
    protocol: str = "fast"
    pseudo_family: str | None = None
    pw_processes: int = 1
    energy_reference: str = "relative:min"
    #: relax the DFT minima with every model (campaign files default to true; see load_campaign)
    relax_minima: bool = False
    relax_settings: dict | None = None
    #: a DFT NEB between two configurations (names) and the models' own NEB: see DFT_NEB_KEYS
    dft_neb: dict | None = None
    mlip_neb_settings: dict | None = None
    #: reactmlip.evaluate runner settings of every model's evaluations (device, workers, mode, ...)
    evaluate_settings: dict | None = None
    #: physics-aware checks of every model (see PHYSICS_KEYS); None: none
    physics: dict | None = None
    #: the user's own structures: ``{"file": absolute path, "system": name}`` (see STRUCTURES_KEYS)
    structures: list = dataclasses.field(default_factory=list)
    #: AiiDA computer whose codes run every job (None: localhost; a cluster from `reactmlip setup --computer-slurm`)
    computer: str | None = None


def system_request(entry, path) -> SystemRequest:
    """A ``systems`` entry (a library name, or a mapping of name, params, roles) as a :class:`SystemRequest`;
    ValueError naming the file otherwise."""
    if isinstance(entry, str):
        return SystemRequest(entry)
    fields = {"name", "params", "roles"}
    if not isinstance(entry, dict) or "name" not in entry or set(entry) - fields:
        raise ValueError(f"{path}: a 'systems' entry is a library name or a mapping with 'name' (and 'params', "
                         f"'roles'), got {entry!r}")
    if not isinstance(entry.get("params") or {}, dict):
        raise ValueError(f"{path}: 'params' of system {entry['name']!r} must be a mapping, not {entry['params']!r}")
    return SystemRequest(**entry)


def load_campaign(path: str | pathlib.Path) -> CampaignSpec:
    """Read and check a campaign file; errors name the file and the offending key or value."""
    from aiida_reactmlip.models import get_model_spec
    from aiida_reactmlip.qe_settings import available_protocols
    from aiida_reactmlip.systems import list_systems

    path = pathlib.Path(path)
    data = read_spec_file(path, "campaign", KNOWN_KEYS, hint=(
        "; fine-tuning studies (workchains/finetune-*.yaml) run with `reactmlip finetune study`, "
        "active-learning loops (workchains/loop-*.yaml) with `reactmlip loop run`"))
    for key in ("name", "models"):
        if not data.get(key):
            raise ValueError(f"{path}: '{key}' is required")
    if not data.get("systems") and not data.get("structures"):
        raise ValueError(f"{path}: 'systems' is required (library systems), or 'structures' (your own file)")
    systems = []
    available = set(list_systems())
    if not isinstance(data.get("systems") or [], list):
        raise ValueError(f"{path}: 'systems' must be a list of library names or {{name, params, roles}}, "
                         f"not {data['systems']!r}")
    for entry in data.get("systems") or []:
        request = system_request(entry, path)
        if request.name not in available:
            raise ValueError(f"{path}: unknown system {request.name!r}; see `reactmlip systems list`")
        systems.append(request)
    if data["models"] == "all":  # every model whose weights ship inside a PyPI package
        from aiida_reactmlip.models import list_models

        data["models"] = [spec.name for spec in list_models() if spec.is_bundled]
    if isinstance(data["models"], str):
        raise ValueError(f"{path}: 'models' must be a list of names or 'all', not {data['models']!r}")
    if not isinstance(data["models"], list) or not all(isinstance(model, str) for model in data["models"]):
        raise ValueError(f"{path}: 'models' must be a list of registry names or 'all', not {data['models']!r}")
    for model in data["models"]:
        get_model_spec(model)  # raises UnknownModelError listing the available names
    protocol = data.get("protocol", "fast")
    if protocol not in available_protocols():
        raise ValueError(f"{path}: unknown protocol {protocol!r}; available: {', '.join(available_protocols())}")
    from aiida_reactmlip.calculations.evaluate import DEFAULT_SETTINGS as EVALUATE_SETTINGS

    check_settings(data, ("relax_settings", "mlip_neb_settings"), path)
    check_settings(data, ("evaluate_settings",), path, known=EVALUATE_SETTINGS)
    check_number(data, "pw_processes", path, int, minimum=1)
    for key in ("category", "description", "pseudo_family", "energy_reference"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise ValueError(f"{path}: '{key}' must be a string, not {data[key]!r}")
    if not isinstance(data.get("relax_minima", True), bool):
        raise ValueError(f"{path}: 'relax_minima' must be true or false, not {data['relax_minima']!r}")
    spec = CampaignSpec(
        name=str(data["name"]), systems=systems, models=list(data["models"]), category=data.get("category", ""),
        description=data.get("description", ""), protocol=protocol, pseudo_family=data.get("pseudo_family"),
        pw_processes=int(data.get("pw_processes", 1)), energy_reference=data.get("energy_reference", "relative:min"),
        relax_minima=data.get("relax_minima", True), relax_settings=data.get("relax_settings"),
        dft_neb=data.get("dft_neb"), mlip_neb_settings=data.get("mlip_neb_settings"),
        evaluate_settings=data.get("evaluate_settings"), physics=check_physics(data.get("physics"), path),
        structures=check_structures(data.get("structures"), path), computer=check_computer(data, path),
    )
    if spec.dft_neb is not None:
        check_dft_neb(spec, str(path))
    return spec


def check_structures(entries, path) -> list[dict]:
    """A campaign's ``structures`` entries with their files found (relative to the campaign file) and read: each
    frame's roles checked (:func:`aiida_reactmlip.user_structures.normalise_frames`); ValueError naming the
    file and the frame."""
    from aiida_reactmlip.specs.files import find_file

    if entries is None:
        return []
    if isinstance(entries, dict):
        entries = [entries]
    if not isinstance(entries, list):
        raise ValueError(f"{path}: 'structures' must be a mapping {{file: ...}} or a list of them")
    checked = []
    for entry in entries:
        if isinstance(entry, str):
            entry = {"file": entry}
        if not isinstance(entry, dict) or "file" not in entry:
            raise ValueError(f"{path}: each 'structures' entry needs 'file', got {entry!r}")
        unknown = sorted(set(entry) - STRUCTURES_KEYS)
        if unknown:
            raise ValueError(f"{path}: unknown structures key(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(STRUCTURES_KEYS))}")
        file = find_file(str(entry["file"]), path, "structures file")
        checked.append({"file": str(file.resolve()), "system": str(entry.get("system") or file.stem)})
        try:
            user_configurations(checked[-1])
        except ValueError as exception:
            raise ValueError(f"{path}: structures file {file}: {exception}") from exception
    return checked


def user_configurations(entry: dict) -> list:
    """The frames of one ``structures`` entry with the library's info (roles, fixed atoms, adsorbate, site)."""
    import ase.io

    from aiida_reactmlip.user_structures import normalise_frames

    try:
        images = ase.io.read(entry["file"], index=":")
    except Exception as exception:  # noqa: BLE001  (ASE raises many kinds)
        raise ValueError(f"ASE cannot read it: {exception}") from exception
    if not images:
        raise ValueError("it holds no structures")
    for atoms in images:
        atoms.info.setdefault("origin", pathlib.Path(entry["file"]).name)
    frames, _ = normalise_frames(images, entry["system"])
    return frames


def check_physics(physics, where) -> dict | None:
    """A campaign's ``physics`` entry checked (ValueError naming the problem); None when absent."""
    if physics is None:
        return None
    if not isinstance(physics, dict):
        raise ValueError(f"{where}: 'physics' must be a mapping with keys {sorted(PHYSICS_KEYS)} (or {{}})")
    unknown = sorted(set(physics) - PHYSICS_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown physics key(s) {', '.join(unknown)}; known: {', '.join(sorted(PHYSICS_KEYS))}")
    from aiida_reactmlip.physics import default_plan

    try:
        default_plan(physics.get("elements") or ["H"], checks=physics.get("checks", ("diatomic",)))
    except (ValueError, KeyError) as exception:
        raise ValueError(f"{where}: physics: {exception}") from exception
    return dict(physics)


def physics_inputs(spec: CampaignSpec, elements) -> dict:
    """``physics_settings`` and (when the checks use frames) ``physics_structures`` of the benchmark for the
    campaign's ``physics`` entry (the default plan of :func:`aiida_reactmlip.physics.default_plan`)."""
    from aiida import orm

    from aiida_reactmlip.frames import Frames
    from aiida_reactmlip.physics import default_plan
    from aiida_reactmlip.specs.datasets import stored_once

    physics = spec.physics
    plan = default_plan(physics.get("elements") or sorted(elements),
                        checks=physics.get("checks", ("diatomic", "nve", "ramp", "reaction")),
                        md_scale=0.1 if physics.get("quick") else 1.0)
    inputs = {"physics_settings": orm.Dict({**plan["settings"], "num_threads": 1})}
    if plan["frames"]:
        inputs["physics_structures"] = stored_once(Frames.from_atoms(plan["frames"]), label="physics-check structures",
                                                   description=f"physics-aware checks of campaign {spec.name}")
    return inputs


def check_dft_neb(spec: CampaignSpec, where: str) -> tuple:
    """The (initial, final) ASE Atoms of the campaign's ``dft_neb``; ValueError naming the problem."""
    neb = spec.dft_neb
    if not isinstance(neb, dict):
        raise ValueError(f"{where}: 'dft_neb' must be a mapping with keys {sorted(DFT_NEB_KEYS)}")
    unknown = sorted(set(neb) - DFT_NEB_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown dft_neb key(s) {', '.join(unknown)}; known: {', '.join(sorted(DFT_NEB_KEYS))}")
    configurations = {atoms.info.get("name"): atoms for atoms in campaign_configurations(spec)}
    ends = []
    for key in ("initial", "final"):
        if not neb.get(key):
            raise ValueError(f"{where}: dft_neb needs '{key}': the name of a configuration of the campaign")
        if neb[key] not in configurations:
            raise ValueError(f"{where}: dft_neb {key} {neb[key]!r} is not a configuration of the campaign; "
                             f"known: {', '.join(sorted(map(str, configurations)))}")
        ends.append(configurations[neb[key]])
    initial, final = ends
    if len(initial) != len(final) or list(initial.numbers) != list(final.numbers):
        raise ValueError(f"{where}: the dft_neb end states {neb['initial']!r} and {neb['final']!r} must have the "
                         "same atoms in the same order")
    if int(neb.get("num_images", 5)) < 3:
        raise ValueError(f"{where}: dft_neb num_images counts the end states and must be >= 3")
    return initial, final


def _link_key(name: str) -> str:
    key = re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()
    return key if key and not key[0].isdigit() else f"s_{key}"


def fixed_atoms_of(atoms) -> list[int]:
    """Indices fixed by the ``FixAtoms`` constraints of ``atoms`` (the slab builders fix the bottom layers)."""
    from ase.constraints import FixAtoms

    return sorted({int(i) for c in atoms.constraints if isinstance(c, FixAtoms) for i in c.get_indices()})


def neb_end_structure(atoms, extras: dict):
    """A stored StructureData of an NEB end state with one kind per element, carrying ``extras``.

    The slab builders tag their layers, which StructureData turns into kinds (Cu, Cu1, Cu2, ...); neb.x
    images here need one kind per element. Positions, cell and pbc are those of ``atoms``.
    """
    from aiida import orm

    untagged = atoms.copy()
    untagged.set_tags(0)
    structure = orm.StructureData(ase=untagged).store()
    structure.base.extras.set_many(extras)
    return structure


def campaign_configurations(spec: CampaignSpec) -> list:
    """ASE Atoms of every configuration the campaign labels, in order (pure; no AiiDA)."""
    from aiida_reactmlip.systems import get_system

    configurations = []
    for request in spec.systems:
        system = get_system(request.name, **request.params)
        for atoms in system.configurations:
            if request.roles is None or atoms.info.get("role") in request.roles:
                configurations.append(atoms)
    for entry in spec.structures:
        configurations.extend(user_configurations(entry))
    return configurations


def run_campaign(spec: CampaignSpec):
    """Store the configurations, then run ``reactmlip.benchmark`` in-process; return the WorkChain node."""
    return run_in_process(campaign_builder(spec))


def campaign_builder(spec: CampaignSpec):
    """The ``reactmlip.benchmark`` builder of a campaign, its configurations stored as StructureData (with
    their builders' fixed atoms as the ``fixed_atoms`` extra) and the codes, models and family provisioned."""
    from aiida import orm

    from aiida_reactmlip import provision
    from aiida_reactmlip.workflows.benchmark import BenchmarkWorkChain, link_label

    configurations = campaign_configurations(spec)
    codes = local_codes(spec.computer)
    models = provision.ensure_registry_models(spec.models)
    elements = {symbol for atoms in configurations for symbol in atoms.get_chemical_symbols()}
    family = choose_pseudo_family(elements, spec.pseudo_family)

    structures, by_name = {}, {}
    for atoms in configurations:
        structure = orm.StructureData(ase=atoms)
        extras = {k: v for k, v in atoms.info.items() if isinstance(v, (str, int, float, bool))}
        fixed = fixed_atoms_of(atoms)
        if fixed:  # the builder's constraint, for the models' relaxation of the DFT minima
            extras["fixed_atoms"] = json.dumps(fixed)
        structure.base.extras.set_many({**extras, "campaign": spec.name})
        key = _link_key(f"{atoms.info.get('system', '')}_{atoms.info['name']}")
        structures[key] = structure.store()
        by_name.setdefault(atoms.info["name"], (atoms, extras))

    builder = BenchmarkWorkChain.get_builder()
    builder.label.structures = structures
    builder.label.pw_code = codes["pw"]
    builder.label.pseudo_family = orm.Str(family)
    builder.label.protocol = orm.Str(spec.protocol)
    builder.label.options = dft_options(spec.pw_processes, 3600)
    builder.models = {link_label(name): node for name, node in models.items()}
    builder.runner_code = codes["runner"]
    builder.relax_minima = orm.Bool(spec.relax_minima)
    set_dicts(builder, metrics_settings={"energy_reference": spec.energy_reference},
              evaluate_settings=spec.evaluate_settings, relax_settings=spec.relax_settings)
    if spec.dft_neb:
        neb = spec.dft_neb
        for end in ("initial", "final"):
            atoms, extras = by_name[neb[end]]
            builder.dft_neb[end] = neb_end_structure(atoms, {**extras, "campaign": spec.name})
        builder.dft_neb.code = codes["neb"]
        builder.dft_neb.pseudo_family = orm.Str(family)
        builder.dft_neb.protocol = orm.Str(spec.protocol)
        builder.dft_neb.num_images = orm.Int(int(neb.get("num_images", 5)))
        builder.dft_neb.interpolation = orm.Str(neb.get("interpolation", "idpp"))
        builder.dft_neb.climbing_image = orm.Bool(bool(neb.get("climbing_image", True)))
        builder.dft_neb.relax_end_states = orm.Bool(bool(neb.get("relax_end_states", True)))
        builder.dft_neb.max_iterations = orm.Int(int(neb.get("max_iterations", 3)))
        set_dicts(builder.dft_neb, path_overrides=neb.get("path_overrides"),
                  parameter_overrides=neb.get("parameter_overrides"))
        builder.dft_neb.options = dft_options(spec.pw_processes, 7200)
        set_dicts(builder, mlip_neb_settings=spec.mlip_neb_settings)
    if spec.physics is not None:
        for key, value in physics_inputs(spec, elements).items():
            builder[key] = value
    builder.metadata.label = f"campaign {spec.name}"
    builder.metadata.description = spec.description
    return builder
