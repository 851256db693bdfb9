"""Reactive-system library: named builders returning tagged configurations (pure ASE).

A ``ReactiveSystem`` holds ``ase.Atoms`` configurations, each with ``info["name"]``,
``info["role"]`` and ``info["system"]``. ``get_system(name, **params)`` builds one from the
registry; ``register_system`` adds a builder. Lengths in Å.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import ase.io
from ase import Atoms

from ..generate import bond_scan, neb_images
from .molecules import DIATOMICS, diatomic

__all__ = [
    "CATEGORIES",
    "ROLES",
    "ReactiveSystem",
    "describe_system",
    "get_system",
    "list_systems",
    "load_structure_file",
    "register_system",
    "system_from_file",
    "tag",
    "variant",
]

CATEGORIES = ("adsorption", "dissociation", "crystal_growth", "reference", "user")
#: reference: clean slab, gas molecules, bulk; initial/final: end states of a process; image: NEB images
#: between them; scan: bond scans; rattle/strain: from the generators.
ROLES = ("reference", "initial", "final", "image", "scan", "rattle", "strain")


@dataclass
class ReactiveSystem:
    """A named reactive system and its configurations.

    ``category`` in ``CATEGORIES``; every configuration must carry ``info["name"]`` (unique),
    ``info["role"]`` in ``ROLES`` and ``info["system"]`` equal to ``name`` (checked).
    ``parameters``: the builder arguments used, for provenance.
    """

    name: str
    category: str
    description: str
    configurations: list[Atoms]
    parameters: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.category not in CATEGORIES:
            raise ValueError(f"category must be one of {CATEGORIES}, got {self.category!r}")
        if not self.configurations:
            raise ValueError(f"system {self.name!r} has no configuration")
        seen = set()
        for k, atoms in enumerate(self.configurations):
            info = atoms.info
            label = info.get("name")
            if not label:
                raise ValueError(f"configuration {k} of {self.name!r} has no info['name']")
            if label in seen:
                raise ValueError(f"configuration name {label!r} appears twice in {self.name!r}")
            seen.add(label)
            if info.get("role") not in ROLES:
                raise ValueError(
                    f"configuration {label!r}: role must be one of {ROLES}, got {info.get('role')!r}"
                )
            if info.get("system") != self.name:
                raise ValueError(
                    f"configuration {label!r}: info['system'] is {info.get('system')!r}, not {self.name!r}"
                )

    def by_role(self, role: str) -> list[Atoms]:
        """Configurations whose ``info["role"]`` is ``role``."""
        return [a for a in self.configurations if a.info.get("role") == role]

    @property
    def names(self) -> list[str]:
        return [a.info["name"] for a in self.configurations]


_REGISTRY: dict[str, Callable[..., ReactiveSystem]] = {}
_ABOUT: dict[str, tuple[str, str]] = {}


def register_system(name: str, category: str | None = None, description: str = "") -> Callable:
    """Decorator registering ``builder(**params) -> ReactiveSystem`` under ``name``.

    ``category`` and a one-line ``description`` (what the system means physically) are shown by
    ``describe_system`` and ``reactmlip systems list`` without building the system.
    """
    if category is not None and category not in CATEGORIES:
        raise ValueError(f"category must be one of {CATEGORIES}, got {category!r}")

    def deco(builder: Callable[..., ReactiveSystem]):
        if name in _REGISTRY:
            raise ValueError(f"system {name!r} is already registered")
        _REGISTRY[name] = builder
        doc = (builder.__doc__ or "").strip().splitlines()
        _ABOUT[name] = (category or "", description or (doc[0] if doc else ""))
        return builder

    return deco


def list_systems(category: str | None = None) -> list[str]:
    """Names of the registered systems (of one ``category`` if given), sorted."""
    if category is not None and category not in CATEGORIES:
        raise ValueError(f"category must be one of {CATEGORIES}, got {category!r}")
    return sorted(n for n in _REGISTRY if category is None or _ABOUT[n][0] == category)


def describe_system(name: str) -> dict:
    """``{"name", "category", "description", "parameters"}`` of a registered system, without building it.

    ``parameters`` maps each builder argument to its default. Unknown name: KeyError listing the names.
    """
    if name not in _REGISTRY:
        raise KeyError(f"unknown reactive system {name!r}; available: {', '.join(list_systems())}")
    category, description = _ABOUT[name]
    params = {
        k: (None if p.default is inspect.Parameter.empty else p.default)
        for k, p in inspect.signature(_REGISTRY[name]).parameters.items()
    }
    return {"name": name, "category": category, "description": description, "parameters": params}


def get_system(name: str, **params) -> ReactiveSystem:
    """Build the registered system ``name`` with builder ``params``.

    Unknown name: KeyError listing the available names. Unknown parameter: TypeError listing
    the accepted ones.
    """
    if name not in _REGISTRY:
        raise KeyError(f"unknown reactive system {name!r}; available: {', '.join(list_systems())}")
    builder = _REGISTRY[name]
    accepted = list(inspect.signature(builder).parameters)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise TypeError(f"system {name!r} does not take {unknown}; parameters: {accepted}")
    return builder(**params)


# ---------------------------------------------------------------------- shared by the builders


def tag(atoms: Atoms, system: str, name: str, role: str, **info) -> Atoms:
    """Set ``info`` ``system``, ``name``, ``role`` (and the other ``info`` given) of ``atoms``; returns it."""
    atoms.info.update(system=system, name=name, role=role, **info)
    return atoms


def in_system(frames: list[Atoms], system: str) -> list[Atoms]:
    """``frames`` with ``info["system"]`` set to ``system``."""
    for atoms in frames:
        atoms.info["system"] = system
    return frames


def neb_path(initial: Atoms, final: Atoms, n_images: int, system: str) -> list[Atoms]:
    """The ``n_images`` IDPP images between ``initial`` and ``final`` (role ``image``) of ``system``."""
    return in_system(neb_images(initial, final, n_images=n_images, name=system), system)


def clean_slab(slab: Atoms, system: str) -> Atoms:
    """A copy of ``slab`` as the clean-slab reference of ``system``, named ``<metal><facet>-slab``."""
    return tag(slab.copy(), system, f"{slab.info['metal'].lower()}{slab.info['facet']}-slab", "reference")


def slab_parameters(slab: Atoms, size, vacuum: float) -> dict:
    """The slab's builder parameters for provenance: ``metal``, ``facet``, ``size`` (cells, cells, layers),
    ``vacuum`` (Å) and the lattice constant ``a`` (Å) used."""
    return {"metal": slab.info["metal"], "facet": slab.info["facet"], "size": [int(n) for n in size],
            "vacuum": float(vacuum), "a": slab.info["lattice_constant"]}


def scan_system(name: str, frames: list[Atoms], distances: list[float], box: float, description: str) -> ReactiveSystem:
    """A gas-phase bond scan (category ``dissociation``) at ``distances`` (Å) in a cubic ``box`` (Å)."""
    return ReactiveSystem(name=name, category="dissociation", description=description, configurations=frames,
                          parameters={"distances": distances, "box": float(box)})


def variant(builder: Callable[..., ReactiveSystem], *fixed, doc: str, drop: tuple[str, ...] = ()):
    """``builder`` with its first arguments fixed to ``fixed``: a builder that takes the other parameters
    of ``builder`` (less those in ``drop``, which keep their defaults), for :func:`register_system`."""
    signature = inspect.signature(builder)
    parameters = [p for p in list(signature.parameters.values())[len(fixed):] if p.name not in drop]
    own = signature.replace(parameters=parameters)

    def build(*args, **kwargs) -> ReactiveSystem:
        return builder(*fixed, **own.bind(*args, **kwargs).arguments)

    build.__signature__ = own
    build.__doc__ = doc
    return build


def _dissociation_builder(symbols: str):
    spec = DIATOMICS[symbols]
    system = f"{symbols.lower()}-dissociation"
    prefix = symbols.lower()

    def build(distances=spec.scan, box: float = 8.0) -> ReactiveSystem:
        distances = [float(d) for d in distances]
        molecule = diatomic(symbols, box=box)
        frames = bond_scan(molecule, 0, 1, distances, fix="center", name=prefix)
        return scan_system(system, in_system(frames, system), distances, box, (
            f"{symbols} bond scan in a {box:g} Å periodic cubic box, {len(distances)} distances "
            f"around the equilibrium {spec.bond_length} Å (multiplicity {spec.multiplicity})"
        ))

    build.__name__ = f"build_{prefix}_dissociation"
    build.__doc__ = f"{symbols} bond scan: ``distances`` (Å, default {list(spec.scan)}), cubic ``box`` (Å)."
    return build


_BOND_MEANING = {
    "H2": "the simplest covalent bond breaking; the H-H curve tests the short-range repulsion",
    "O2": "a triplet ground state: a spin-polarised bond breaking, hard for models trained near equilibrium",
    "N2": "the strongest homonuclear bond (triple bond), the first step of ammonia synthesis",
    "CO": "a polar triple bond, the first step of Fischer-Tropsch chemistry",
}
for _symbols in ("H2", "O2", "N2", "CO"):
    register_system(
        f"{_symbols.lower()}-dissociation",
        category="dissociation",
        description=f"{_symbols} gas-phase bond scan: {_BOND_MEANING[_symbols]}",
    )(_dissociation_builder(_symbols))


def load_structure_file(path) -> list[Atoms]:
    """All frames of a structure file (any format ASE reads), as a list of ``Atoms``.

    FileNotFoundError when the file does not exist; ValueError naming the file when ASE cannot
    read it or it holds no frame.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"structure file not found: {p}")
    try:
        frames = ase.io.read(p, index=":")
    except Exception as exc:  # ASE raises many types for unreadable files
        raise ValueError(f"ASE cannot read structure file {str(p)!r}: {type(exc).__name__}: {exc}") from exc
    if isinstance(frames, Atoms):
        frames = [frames]
    frames = list(frames)
    if not frames:
        raise ValueError(f"structure file {str(p)!r} holds no structure")
    return frames


def system_from_file(
    path, name: str, description: str = "", role: str | None = None, category: str = "user"
) -> ReactiveSystem:
    """A ``ReactiveSystem`` from a user's structure file.

    Each frame keeps its ``info["role"]`` when the file has one, else takes ``role`` (a
    ValueError if neither is set); names default to ``"<name>-<k>"``.
    """
    frames = load_structure_file(path)
    for k, atoms in enumerate(frames):
        atoms.info.setdefault("name", f"{name}-{k}")
        if atoms.info.get("role") is None:
            if role is None:
                raise ValueError(f"frame {k} of {str(path)!r} has no role; pass role= one of {ROLES}")
            atoms.info["role"] = role
        atoms.info["system"] = name
    return ReactiveSystem(
        name=name,
        category=category,
        description=description or f"structures read from {Path(path).name}",
        configurations=frames,
        parameters={"path": str(path)},
    )
