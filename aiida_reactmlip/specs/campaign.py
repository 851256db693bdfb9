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
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re

from aiida_reactmlip.specs.builders import set_dicts
from aiida_reactmlip.specs.codes import choose_pseudo_family, dft_options, local_codes, run_in_process
from aiida_reactmlip.specs.files import check_settings, read_spec_file

KNOWN_KEYS = {"name", "category", "description", "systems", "models", "protocol", "pseudo_family", "pw_processes",
              "energy_reference", "relax_minima", "relax_settings", "dft_neb", "mlip_neb_settings",
              "evaluate_settings"}
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


def load_campaign(path: str | pathlib.Path) -> CampaignSpec:
    """Read and check a campaign file; errors name the file and the offending key or value."""
    from aiida_reactmlip.models import get_model_spec
    from aiida_reactmlip.qe_settings import available_protocols
    from aiida_reactmlip.systems import list_systems

    path = pathlib.Path(path)
    data = read_spec_file(path, "campaign", KNOWN_KEYS, hint=(
        "; fine-tuning studies (workchains/finetune-*.yaml) run with `reactmlip finetune study`, "
        "active-learning loops (workchains/loop-*.yaml) with `reactmlip loop run`"))
    for key in ("name", "systems", "models"):
        if not data.get(key):
            raise ValueError(f"{path}: '{key}' is required")
    systems = []
    available = set(list_systems())
    for entry in data["systems"]:
        request = SystemRequest(entry) if isinstance(entry, str) else SystemRequest(**entry)
        if request.name not in available:
            raise ValueError(f"{path}: unknown system {request.name!r}; see `reactmlip systems list`")
        systems.append(request)
    if data["models"] == "all":  # every model whose weights ship inside a PyPI package
        from aiida_reactmlip.models import list_models

        data["models"] = [spec.name for spec in list_models() if spec.is_bundled]
    if isinstance(data["models"], str):
        raise ValueError(f"{path}: 'models' must be a list of names or 'all', not {data['models']!r}")
    for model in data["models"]:
        get_model_spec(model)  # raises UnknownModelError listing the available names
    protocol = data.get("protocol", "fast")
    if protocol not in available_protocols():
        raise ValueError(f"{path}: unknown protocol {protocol!r}; available: {', '.join(available_protocols())}")
    from aiida_reactmlip.calculations.evaluate import DEFAULT_SETTINGS as EVALUATE_SETTINGS

    check_settings(data, ("relax_settings", "mlip_neb_settings"), path)
    check_settings(data, ("evaluate_settings",), path, known=EVALUATE_SETTINGS)
    if not isinstance(data.get("relax_minima", True), bool):
        raise ValueError(f"{path}: 'relax_minima' must be true or false, not {data['relax_minima']!r}")
    spec = CampaignSpec(
        name=str(data["name"]), systems=systems, models=list(data["models"]), category=data.get("category", ""),
        description=data.get("description", ""), protocol=protocol, pseudo_family=data.get("pseudo_family"),
        pw_processes=int(data.get("pw_processes", 1)), energy_reference=data.get("energy_reference", "relative:min"),
        relax_minima=data.get("relax_minima", True), relax_settings=data.get("relax_settings"),
        dft_neb=data.get("dft_neb"), mlip_neb_settings=data.get("mlip_neb_settings"),
        evaluate_settings=data.get("evaluate_settings"),
    )
    if spec.dft_neb is not None:
        check_dft_neb(spec, str(path))
    return spec


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
    codes = local_codes()
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
    builder.metadata.label = f"campaign {spec.name}"
    builder.metadata.description = spec.description
    return builder
