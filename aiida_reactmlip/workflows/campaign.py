"""Campaigns: a study described in YAML (systems, models, protocol) run as one ``reactmlip.benchmark``.

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
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
import typing as t

import yaml

KNOWN_KEYS = {"name", "category", "description", "systems", "models", "protocol", "pseudo_family", "pw_processes",
              "energy_reference"}


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


def load_campaign(path: str | pathlib.Path) -> CampaignSpec:
    """Read and check a campaign file; errors name the file and the offending key or value."""
    from aiida_reactmlip.models import get_model_spec
    from aiida_reactmlip.qe_settings import available_protocols
    from aiida_reactmlip.systems import list_systems

    path = pathlib.Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as exception:
        raise ValueError(f"campaign file {path} does not exist") from exception
    except yaml.YAMLError as exception:
        raise ValueError(f"campaign file {path} is not valid YAML: {exception}") from exception
    if not isinstance(data, dict):
        raise ValueError(f"campaign file {path} must hold a mapping with keys {sorted(KNOWN_KEYS)}")
    unknown = sorted(set(data) - KNOWN_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(KNOWN_KEYS))}")
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
    return CampaignSpec(
        name=str(data["name"]), systems=systems, models=list(data["models"]), category=data.get("category", ""),
        description=data.get("description", ""), protocol=protocol, pseudo_family=data.get("pseudo_family"),
        pw_processes=int(data.get("pw_processes", 1)), energy_reference=data.get("energy_reference", "relative:min"),
    )


def _link_key(name: str) -> str:
    key = re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()
    return key if key and not key[0].isdigit() else f"s_{key}"


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


def choose_pseudo_family(elements: t.Iterable[str], requested: str | None = None) -> str:
    """The requested family, else Debian's PBE family when it covers the elements, else PseudoDojo."""
    from aiida import orm

    from aiida_reactmlip import provision
    from aiida_reactmlip.pseudos import PSEUDODOJO_FAMILY_LABEL, ensure_pseudodojo_family

    if requested:
        return requested
    elements = set(elements)
    debian = provision.ensure_debian_pseudo_family()
    if elements <= set(debian.elements):
        return debian.label
    family = ensure_pseudodojo_family()
    missing = elements - set(family.elements)
    if missing:
        raise ValueError(f"no installed pseudopotential family covers {', '.join(sorted(missing))}")
    return orm.load_group(PSEUDODOJO_FAMILY_LABEL).label


def run_campaign(spec: CampaignSpec):
    """Store the configurations, then run ``reactmlip.benchmark`` in-process; return the WorkChain node."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_reactmlip import provision
    from aiida_reactmlip.workflows.benchmark import BenchmarkWorkChain, link_label

    configurations = campaign_configurations(spec)
    computer = provision.ensure_localhost()
    codes = provision.ensure_codes(computer)
    models = provision.ensure_registry_models(spec.models)
    elements = {symbol for atoms in configurations for symbol in atoms.get_chemical_symbols()}
    family = choose_pseudo_family(elements, spec.pseudo_family)

    structures = {}
    for atoms in configurations:
        structure = orm.StructureData(ase=atoms)
        extras = {k: v for k, v in atoms.info.items() if isinstance(v, (str, int, float, bool))}
        structure.base.extras.set_many({**extras, "campaign": spec.name})
        key = _link_key(f"{atoms.info.get('system', '')}_{atoms.info['name']}")
        structures[key] = structure.store()

    builder = BenchmarkWorkChain.get_builder()
    builder.label.structures = structures
    builder.label.pw_code = codes["pw"]
    builder.label.pseudo_family = orm.Str(family)
    builder.label.protocol = orm.Str(spec.protocol)
    builder.label.options = orm.Dict(
        {"resources": {"num_machines": 1, "num_mpiprocs_per_machine": spec.pw_processes},
         "withmpi": spec.pw_processes > 1, "max_wallclock_seconds": 3600}
    )
    builder.models = {link_label(name): node for name, node in models.items()}
    builder.runner_code = codes["runner"]
    builder.metrics_settings = orm.Dict({"energy_reference": spec.energy_reference})
    builder.metadata.label = f"campaign {spec.name}"
    builder.metadata.description = spec.description
    _, node = run_get_node(builder)
    return node
