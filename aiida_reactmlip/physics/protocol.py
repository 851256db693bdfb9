"""The default set of physics checks for a study's elements: which structures, which settings (pure ASE).

:func:`default_plan` picks, from the library, what fits the elements of a study:

- every diatomic pair of the elements (homonuclear and mixed);
- NVE and a heating ramp for a small gas molecule made of the study's non-metals (the one that
  covers most of them, then the smallest: H2 for H + Cu, CO for C + O + Cu, CH4 for C + H) and for
  a 2x2x3 fcc(111) slab of the study's metal with an adsorbate of its non-metals at the fcc hollow
  (``h-cu111-fcc`` for H + Cu; the clean slab when no adsorbate fits);
- the library reactions (:data:`REACTIONS`) whose elements are all in the study, with the DFT
  reaction energy where a fixture dataset holds DFT labels of both end states.

The plan is ``{"frames": [Atoms, ...], "settings": {...}}``: the frames (each with a unique
``info["name"]``; atoms a ``FixAtoms`` holds are also listed in ``info["fixed_atoms"]``, a JSON list) and the settings the ``physics`` runner task reads, which refer to the frames by
name. Sizes (:data:`NVE_PLAN`, :data:`RAMP_PLAN`) were chosen to run in minutes on 2 CPU cores
with CHGNet 0.3.0 and SevenNet-0 (docs/physics.md has the timings).
"""

from __future__ import annotations

from collections.abc import Iterable

from ase import Atoms

from .reaction import DEFAULT_REACTIONS, library_end_states

__all__ = [
    "NVE_PLAN",
    "RAMP_PLAN",
    "REACTIONS",
    "default_plan",
    "pick_molecule",
    "pick_slab",
    "reaction_frames",
]

#: NVE runs of the plan per kind of structure: start temperatures (K), time step (fs), length (ps).
#: 0.5 fs resolves the H-H stretch (8 fs period); the slab's fastest motion (H on a metal, ~30 fs) allows 1 fs.
NVE_PLAN = {
    "molecule": {"temperatures_K": [300.0, 1000.0], "timestep_fs": 0.5, "duration_ps": 1.0},
    "slab": {"temperatures_K": [300.0, 600.0], "timestep_fs": 1.0, "duration_ps": 0.5},
}
#: Heating ramps of the plan: start and end temperature (K), length (ps), time step (fs).
RAMP_PLAN = {
    "molecule": {"t_start": 300.0, "t_end": 5000.0, "duration_ps": 1.0, "timestep_fs": 0.5},
    "slab": {"t_start": 300.0, "t_end": 3000.0, "duration_ps": 0.5, "timestep_fs": 1.0},
}

#: Library reactions: name -> the system, its end-state frames (None: roles initial / final), and the
#: fixture dataset holding DFT labels of frames with the same names (None: no DFT value shipped).
REACTIONS: dict[str, dict] = {
    "h2-on-cu111": {
        "system": "h2-on-cu111",
        "initial": DEFAULT_REACTIONS["h2-on-cu111"][0],
        "final": DEFAULT_REACTIONS["h2-on-cu111"][1],
        "dft_fixture": None,
        "description": "H2 flat 2.5 Å above Cu(111) -> 2 H in neighbouring fcc hollows (library geometries)",
    },
    "ch4-dissociation": {
        "system": "ch4-dissociation",
        "initial": DEFAULT_REACTIONS["ch4-dissociation"][0],
        "final": DEFAULT_REACTIONS["ch4-dissociation"][1],
        "dft_fixture": "ch4-dissociation-pool",
        "description": "one C-H bond of CH4 stretched from 1.09 to 2.00 Å (the DFT-labelled scan of the fixture)",
    },
}


def _elements_of(atoms: Atoms) -> set[str]:
    return set(atoms.get_chemical_symbols())


def _study(elements: Iterable[str]) -> tuple[set[str], list[str], list[str]]:
    from ..systems import METALS

    wanted = {str(e).strip() for e in elements if str(e).strip()}
    metals = sorted(e for e in wanted if e in METALS)
    others = sorted(wanted - set(metals))
    return wanted, metals, others


def pick_molecule(elements: Iterable[str]) -> Atoms | None:
    """The library gas molecule for the study (see the module), named ``molecule-<formula>``; None if none fits."""
    from ..systems import GAS_MOLECULES, gas_molecule

    wanted, _, others = _study(elements)
    candidates = []
    for formula in GAS_MOLECULES:
        atoms = gas_molecule(formula)
        if _elements_of(atoms) <= wanted and len(atoms) > 1:
            candidates.append((-len(_elements_of(atoms) & set(others)), len(atoms), formula, atoms))
    if not candidates:
        return None
    *_, formula, atoms = min(candidates, key=lambda c: c[:3])
    atoms.info["name"] = f"molecule-{formula}"
    atoms.info["physics_kind"] = "molecule"
    return atoms


def pick_slab(elements: Iterable[str]) -> Atoms | None:
    """The slab + adsorbate for the study (see the module); None when no library metal is in the study."""
    from ..systems import ADSORBATES, get_system

    wanted, metals, others = _study(elements)
    if not metals:
        return None
    metal = metals[0]
    fitting = [a for a in ADSORBATES if set(Atoms(ADSORBATES[a][0]).get_chemical_symbols()) <= set(others)]
    if not fitting:
        system = get_system(f"h-on-{metal.lower()}111")
        slab = [
            a for a in system.configurations if a.info["role"] == "reference" and len(set(a.numbers)) == 1
        ][0]
    else:
        adsorbate = min(
            fitting, key=lambda a: (-len(set(Atoms(ADSORBATES[a][0]).get_chemical_symbols())), len(a), a)
        )
        system = get_system(f"{adsorbate.lower()}-on-{metal.lower()}111")
        slab = [a for a in system.configurations if a.info["name"].endswith("-fcc")][0]
    slab = slab.copy()
    slab.info["physics_kind"] = "slab"
    return slab


def reaction_frames(name: str) -> dict:
    """End states of the library reaction ``name`` and its DFT reaction energy when a fixture labels both.

    With a DFT fixture the fixture's own frames are used (the exact geometries DFT saw). Returns
    ``{"initial": Atoms, "final": Atoms, "dft_reaction_energy": eV or None, "dft_source": str or None}``.
    """
    spec = REACTIONS[name]
    dft, source = None, None
    if spec["dft_fixture"]:
        from ..fixture_data import load_fixture_dataset

        frames = {a.info.get("name"): a for a in load_fixture_dataset(spec["dft_fixture"])}
        initial, final = frames[spec["initial"]], frames[spec["final"]]
        dft = float(final.get_potential_energy() - initial.get_potential_energy())
        source = f"fixtures/datasets/{spec['dft_fixture']}.extxyz: {spec['initial']}, {spec['final']} (pw.x)"
        initial, final = initial.copy(), final.copy()
        initial.calc = final.calc = None
    else:
        initial, final = library_end_states(spec["system"], spec["initial"], spec["final"])
    for atoms, role in ((initial, "initial"), (final, "final")):
        atoms.info = {key: value for key, value in atoms.info.items() if key in ("name", "system", "role")}
        atoms.info["name"] = f"{name}-{role}" if atoms.info.get("name") is None else atoms.info["name"]
    return {"initial": initial, "final": final, "dft_reaction_energy": dft, "dft_source": source}


def _carry_fixed_atoms(atoms: Atoms) -> None:
    """Write the indices a ``FixAtoms`` constraint holds into ``info["fixed_atoms"]`` (a JSON list string),
    the convention frames files use (extxyz keeps no constraints)."""
    import json

    from ase.constraints import FixAtoms

    fixed = sorted({int(i) for c in atoms.constraints if isinstance(c, FixAtoms) for i in c.get_indices()})
    if fixed:
        atoms.info["fixed_atoms"] = json.dumps(fixed)


def default_plan(
    elements: Iterable[str],
    *,
    checks: Iterable[str] = ("diatomic", "nve", "ramp", "reaction"),
    md_scale: float = 1.0,
) -> dict:
    """Frames and runner settings of the default physics checks for ``elements`` (see the module).

    ``md_scale`` multiplies the length of every MD run (0.1: a smoke test whose numbers are not to compare).
    """
    if not md_scale > 0:
        raise ValueError(f"md_scale must be > 0, got {md_scale}")
    elements = list(dict.fromkeys(str(e).strip() for e in elements if str(e).strip()))
    if not elements:
        raise ValueError("default_plan needs at least one element")
    checks = set(checks)
    unknown = checks - {"diatomic", "nve", "ramp", "reaction"}
    if unknown:
        raise ValueError(f"unknown physics check(s) {sorted(unknown)}; known: diatomic, nve, ramp, reaction")
    frames: list[Atoms] = []
    settings: dict = {
        "elements": elements if "diatomic" in checks else [],
        "nve": [],
        "ramp": [],
        "reactions": [],
    }
    if checks & {"nve", "ramp"}:
        for kind, atoms in (("molecule", pick_molecule(elements)), ("slab", pick_slab(elements))):
            if atoms is None:
                continue
            frames.append(atoms)
            if "nve" in checks:
                entry = {"frame": atoms.info["name"], **NVE_PLAN[kind]}
                entry["duration_ps"] *= md_scale
                settings["nve"].append(entry)
            if "ramp" in checks:
                entry = {"frame": atoms.info["name"], **RAMP_PLAN[kind]}
                entry["duration_ps"] *= md_scale
                settings["ramp"].append(entry)
    if "reaction" in checks:
        wanted = set(elements)
        for name, spec in REACTIONS.items():
            ends = reaction_frames(name)
            if not _elements_of(ends["initial"]) <= wanted:
                continue
            frames += [ends["initial"], ends["final"]]
            settings["reactions"].append(
                {
                    "name": name,
                    "initial": ends["initial"].info["name"],
                    "final": ends["final"].info["name"],
                    "dft_reaction_energy": ends["dft_reaction_energy"],
                    "dft_source": ends["dft_source"],
                }
            )
    for atoms in frames:
        _carry_fixed_atoms(atoms)
    names = [a.info["name"] for a in frames]
    if len(set(names)) != len(names):
        raise ValueError(f"frame names of the plan are not unique: {names}")
    return {"frames": frames, "settings": settings}
