"""Spin by default: which configurations a DFT label must run spin-polarised (pure; ASE ``Atoms`` in).

The universal MLIPs were trained on spin-polarised PBE (Materials Project): labelling a Ni slab or an
O2 molecule without spin makes the comparison unfair. :func:`choose_spin` decides per configuration:

``auto`` (the default)
    spin-polarised when the structure contains Cr, Mn, Fe, Co or Ni (periodic: free total
    magnetisation), or is an isolated molecule/atom with an odd number of electrons (a doublet) or O2
    (a triplet); closed shell otherwise.
``on``
    every periodic structure spin-polarised with a free magnetisation; isolated molecules as in ``auto``
    (a closed-shell molecule stays a singlet: with fixed occupations there is no free magnetisation).
``off``
    no spin polarisation, except an isolated molecule/atom with an odd electron count, which has no
    closed-shell state (fixed occupations need ``tot_magnetization``): it stays a doublet.

A configuration's own info wins over every mode: ``multiplicity`` (2S+1) fixes the spin state,
``spin_polarised`` (bool) switches the polarisation on (free magnetisation; molecules get their
auto multiplicity) or off.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from aiida_reactmlip.qe_settings import MAGNETIC_ELEMENTS, dimensionality

#: The values of ``--spin`` / the ``spin`` input of ``reactmlip.label``.
SPIN_MODES = ("auto", "off", "on")


@dataclasses.dataclass(frozen=True)
class SpinChoice:
    """How to run one configuration.

    ``polarised``: nspin 2. ``multiplicity``: the fixed 2S+1 of an isolated molecule/atom (None where the
    magnetisation is free or there is no spin). ``reason``: one line for the console and the docs.
    """

    polarised: bool
    multiplicity: int | None
    reason: str

    @property
    def free(self) -> bool:
        """Spin-polarised with the total magnetisation left to pw.x (periodic systems)."""
        return self.polarised and self.multiplicity is None


def electron_count(atoms) -> int:
    """Total number of electrons of the neutral configuration (sum of atomic numbers). Its parity equals that
    of the valence electrons of any pseudopotential set, since cores hold an even number of electrons."""
    return int(np.sum(atoms.get_atomic_numbers()))


def _is_o2(atoms) -> bool:
    return len(atoms) == 2 and all(symbol == "O" for symbol in atoms.get_chemical_symbols())


def _molecule_multiplicity(atoms) -> tuple[int, str]:
    """The default 2S+1 of an isolated molecule/atom: 2 for an odd electron count, 3 for O2, else 1."""
    n = electron_count(atoms)
    if n % 2:
        return 2, f"isolated, {n} electrons (odd): doublet"
    if _is_o2(atoms):
        return 3, "O2: triplet ground state"
    return 1, f"isolated, {n} electrons (even): closed shell"


def choose_spin(atoms, mode: str = "auto", info: dict | None = None) -> SpinChoice:
    """Decide the spin treatment of one configuration (see the module docstring).

    :param atoms: the configuration (ASE ``Atoms``; ``pbc`` and vacuum decide molecule vs periodic).
    :param mode: ``auto``, ``off`` or ``on``.
    :param info: per-frame settings (default ``atoms.info``): ``multiplicity``, ``spin_polarised``.
    :raises ValueError: unknown ``mode``.
    """
    if mode not in SPIN_MODES:
        raise ValueError(f"unknown spin mode {mode!r}; choose one of {', '.join(SPIN_MODES)}")
    info = atoms.info if info is None else info
    multiplicity = info.get("multiplicity")
    if multiplicity is not None:
        multiplicity = int(multiplicity)
        if multiplicity > 1:
            return SpinChoice(True, multiplicity, f"multiplicity {multiplicity} from the frame's info")
        return SpinChoice(False, None, "multiplicity 1 from the frame's info")
    isolated = dimensionality(atoms) == 0
    explicit = info.get("spin_polarised")
    if isolated:
        mult, why = _molecule_multiplicity(atoms)
        if mult == 2:
            return SpinChoice(True, 2, why)
        if explicit is not None:
            if explicit and mult > 1:
                return SpinChoice(True, mult, f"spin_polarised from the frame's info; {why}")
            return SpinChoice(False, None, f"spin_polarised={bool(explicit)} from the frame's info; {why}")
        if mode == "off" or mult == 1:
            return SpinChoice(False, None, why if mode != "off" else "--spin off")
        return SpinChoice(True, mult, why)
    if explicit is not None:
        return SpinChoice(bool(explicit), None, f"spin_polarised={bool(explicit)} from the frame's info")
    if mode == "on":
        return SpinChoice(True, None, "--spin on")
    if mode == "off":
        return SpinChoice(False, None, "--spin off")
    magnetic = sorted(set(atoms.get_chemical_symbols()) & set(MAGNETIC_ELEMENTS))
    if magnetic:
        return SpinChoice(True, None, f"contains {', '.join(magnetic)}: free magnetisation")
    return SpinChoice(False, None, "no magnetic element")
