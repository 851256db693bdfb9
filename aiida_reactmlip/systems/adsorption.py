"""Adsorption of H, O, N, C, OH, CO on fcc(111) and fcc(100) of Cu, Ni, Pt, Rh (pure ASE/numpy).

Each system ``<adsorbate>-on-<metal><facet>`` (e.g. ``o-on-pt111``) holds the clean slab and the gas
molecules of the adsorption-energy definition (role ``reference``) and the adsorbate on every distinct
site (role ``final``: the product of gas + slab -> adsorbate/slab). Energies in eV, lengths in Å.

Adsorption energies are defined against gas-phase molecules, never against isolated atoms:

    E_ads(X) = E(slab+X) - E(slab) - sum_m c_m E(m)

with the default references (``REFERENCE_SCHEMES``): H: 1/2 H2; O: H2O - H2; N: 1/2 N2;
C: CH4 - 2 H2; OH: H2O - 1/2 H2; CO: CO. O is referenced to water, not O2, because PBE overbinds O2
by about 1 eV; ``scheme={"O2": 0.5}`` gives the O2 reference. Negative E_ads: binding is favourable.
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

from ase import Atoms

from .library import ReactiveSystem, clean_slab, register_system, slab_parameters, tag, variant
from .molecules import GAS_MOLECULES, gas_molecule
from .surfaces import ADSORBATES, FACETS, METALS, fcc_slab, find_sites, place_adsorbate

__all__ = [
    "REFERENCE_SCHEMES",
    "AdsorptionEnergy",
    "adsorption_energy",
    "adsorption_system",
    "definition",
]

#: Gas-phase reference of each adsorbate: {molecule: coefficient}; the coefficients times the
#: molecules' compositions add up to the adsorbate's composition.
REFERENCE_SCHEMES: dict[str, dict[str, float]] = {
    "H": {"H2": 0.5},
    "O": {"H2O": 1.0, "H2": -1.0},
    "N": {"N2": 0.5},
    "C": {"CH4": 1.0, "H2": -2.0},
    "OH": {"H2O": 1.0, "H2": -0.5},
    "CO": {"CO": 1.0},
}

_MEANING = {
    "H": "the intermediate of hydrogen evolution and of every hydrogenation",
    "O": "the intermediate of oxygen reduction and of oxidation catalysis",
    "N": "the intermediate of ammonia synthesis (N2 dissociation product)",
    "C": "carbon of coking and carbide formation (Fischer-Tropsch, methane reforming)",
    "OH": "hydroxyl, the intermediate of water splitting and oxygen reduction",
    "CO": "CO of CO oxidation and catalyst poisoning (PBE's CO/Pt(111) site puzzle: top is seen, hollow is predicted)",
}


def _composition(formula: str) -> Counter:
    return Counter(Atoms(formula).get_chemical_symbols())


def _scheme(adsorbate: str, scheme: dict | None) -> dict[str, float]:
    if scheme is None:
        if adsorbate not in REFERENCE_SCHEMES:
            raise KeyError(
                f"no default reference for adsorbate {adsorbate!r}; known: {sorted(REFERENCE_SCHEMES)}"
            )
        scheme = REFERENCE_SCHEMES[adsorbate]
    total: Counter = Counter()
    for mol, coef in scheme.items():
        for el, n in _composition(mol).items():
            total[el] += coef * n
    target = _composition(adsorbate)
    elements = set(total) | set(target)
    if any(abs(total[e] - target[e]) > 1e-9 for e in elements):
        got = {e: total[e] for e in sorted(elements) if abs(total[e]) > 1e-9}
        raise ValueError(f"reference scheme {scheme} has composition {got}, not that of {adsorbate!r}")
    return dict(scheme)


def definition(adsorbate: str, scheme: dict | None = None) -> str:
    """The adsorption-energy definition as text, e.g. ``"E_ads(O) = E(slab+O) - E(slab) - [E(H2O) - E(H2)]"``."""
    terms = []
    for k, (mol, coef) in enumerate(_scheme(adsorbate, scheme).items()):
        mag = abs(coef)
        factor = "" if mag == 1 else ("1/2 " if mag == 0.5 else f"{mag:g} ")
        sign = ("- " if coef < 0 else "+ ") if k else ("-" if coef < 0 else "")
        terms.append(f"{sign}{factor}E({mol})")
    return f"E_ads({adsorbate}) = E(slab+{adsorbate}) - E(slab) - [{' '.join(terms)}]"


class AdsorptionEnergy(NamedTuple):
    """An adsorption energy (eV) and the definition it follows."""

    energy: float
    definition: str


def adsorption_energy(
    e_slab_ads: float, e_slab: float, references: dict, adsorbate: str, scheme: dict | None = None
) -> AdsorptionEnergy:
    """Adsorption energy (eV) of ``adsorbate`` from total energies (eV) of the slab with and without it.

    ``references``: total energies (eV) of the gas molecules, e.g. ``{"H2": -31.7, "H2O": -466.2}``;
    ``scheme``: {molecule: coefficient} (default ``REFERENCE_SCHEMES[adsorbate]``). Returns
    ``AdsorptionEnergy(energy, definition)``. KeyError naming a missing reference molecule.
    """
    scheme = _scheme(adsorbate, scheme)
    missing = [m for m in scheme if m not in references]
    if missing:
        raise KeyError(
            f"adsorption energy of {adsorbate} needs the energy of {missing}; given: {sorted(references)}"
        )
    e_ref = sum(coef * float(references[mol]) for mol, coef in scheme.items())
    return AdsorptionEnergy(float(e_slab_ads) - float(e_slab) - e_ref, definition(adsorbate, scheme))


def adsorption_system(
    adsorbate: str,
    metal: str, facet: str = "111", size=(2, 2, 3), vacuum: float = 6.0, a: float | None = None,  # fcc_slab's
    sites=None,
    box: float = 10.0,
    scheme: dict | None = None,
) -> ReactiveSystem:
    """``adsorbate`` on every distinct site of ``metal``(``facet``), the clean slab and the gas references.

    ``sites``: kinds to keep (default all found: top, bridge, fcc, hcp on 111; top, bridge, hollow on
    100). Adsorbed frames: ``info`` ``adsorbate``, ``site``, ``height`` (Å above the top-layer plane),
    ``adsorption_energy_definition``, ``dipole_correction_recommended=True`` (adsorbate on one side only).
    """
    name = f"{adsorbate.lower()}-on-{metal.lower()}{facet}"
    scheme = _scheme(adsorbate, scheme)
    text = definition(adsorbate, scheme)
    slab = fcc_slab(metal, facet, size=size, vacuum=vacuum, a=a)
    found = find_sites(slab)
    kinds = list(found) if sites is None else list(sites)
    unknown = [k for k in kinds if k not in found]
    if unknown:
        raise ValueError(f"{metal}({facet}) has no {unknown} site; its sites: {list(found)}")
    spin = bool(slab.info.get("spin_polarised"))
    configs = [clean_slab(slab, name)]
    for mol in scheme:
        gas = gas_molecule(mol, box=box)
        if spin:
            gas.info["spin_polarised"] = True
        configs.append(tag(gas, name, f"{mol.lower()}-gas", "reference"))
    for kind in kinds:
        configs.append(tag(place_adsorbate(slab, adsorbate, found[kind]), name,
                           f"{adsorbate.lower()}-{metal.lower()}{facet}-{kind}", "final",
                           adsorption_energy_definition=text, dipole_correction_recommended=True))
    n1, n2, nl = (int(n) for n in size)
    return ReactiveSystem(
        name=name,
        category="adsorption",
        description=(
            f"{adsorbate} on {metal}({facet}), {n1}x{n2} cell, {nl} layers: {_MEANING[adsorbate]}. "
            f"Sites {', '.join(kinds)}; {text}"
        ),
        configurations=configs,
        parameters={
            "adsorbate": adsorbate,
            **slab_parameters(slab, size, vacuum),
            "sites": kinds,
            "box": float(box),
            "scheme": scheme,
            "adsorption_energy_definition": text,
        },
    )


for _ads in ADSORBATES:
    for _metal in METALS:
        for _facet in FACETS:
            register_system(
                f"{_ads.lower()}-on-{_metal.lower()}{_facet}",
                category="adsorption",
                description=f"{_ads} on {_metal}({_facet}) at every site: {_MEANING[_ads]}",
            )(variant(adsorption_system, _ads, _metal, _facet,
                      doc=f"{_ads} on {_metal}({_facet}); see ``adsorption_system`` for the parameters."))

assert set(GAS_MOLECULES) >= {m for s in REFERENCE_SCHEMES.values() for m in s}
