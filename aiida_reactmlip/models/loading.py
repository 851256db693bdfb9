"""Build ASE calculators from model files and read what a model file covers.

Pure module (no aiida).  torch and the MLIP packages are imported lazily inside the functions, so
``import aiida_reactmlip.models`` stays fast.
"""

from __future__ import annotations

import functools
import pathlib
import threading
from collections.abc import Iterable
from typing import Any

import numpy as np

from aiida_reactmlip.hashing import sha256_file

from ._torch_compat import allow_e3nn_constants
from .errors import ElementNotCoveredError, ModelLoadError, ModelNotAvailableError
from .registry import FAMILIES, get_model_spec, locate_model_file

__all__ = [
    "DEFAULT_VACUUM",
    "check_elements",
    "describe_model_file",
    "ensure_cell",
    "is_periodic_3d",
    "load_calculator",
    "load_calculator_by_name",
    "normalize_family",
]

#: vacuum (A) on each side when a non-periodic frame is put in a box for a model that needs a cell
DEFAULT_VACUUM = 10.0

_FAMILY_ALIASES = {
    "chgnet": "chgnet",
    "sevenn": "sevenn",
    "sevennet": "sevenn",
    "7net": "sevenn",
    "mace": "mace",
}


def normalize_family(family: str) -> str:
    """Canonical family name (``chgnet``, ``sevenn``, ``mace``); accepts ``sevennet``/``7net``."""
    key = str(family).strip().lower()
    if key not in _FAMILY_ALIASES:
        raise ValueError(f"unknown model family {family!r}; known families: {', '.join(FAMILIES)}")
    return _FAMILY_ALIASES[key]


# ---------------------------------------------------------------------------------------------
# geometry helpers
# ---------------------------------------------------------------------------------------------


def is_periodic_3d(atoms) -> bool:
    """True if ``atoms`` is periodic along all three cell vectors and has a non-degenerate cell."""
    return bool(np.all(atoms.pbc)) and abs(float(np.linalg.det(np.asarray(atoms.cell)))) > 1e-8


def ensure_cell(atoms, vacuum: float = DEFAULT_VACUUM):
    """A copy of ``atoms`` that a model needing a full 3D lattice (CHGNet) can use unchanged.

    - 3D-periodic frames are returned as a plain copy.
    - Fully non-periodic frames (molecules, clusters) are centred in a *cubic* box with at least
      ``vacuum`` A on every side, and made periodic: with ``vacuum`` well above the model's
      cutoff the periodic images do not see each other, so energies and forces are those of the
      isolated system.
    - Partially periodic frames (slabs, pbc like ``(True, True, False)``): along each non-periodic
      axis whose cell vector is missing (zero) the atoms get ``vacuum`` on both sides; an existing
      cell vector is kept as it is (the same periodic cell the DFT labels were computed in).
    """
    boxed = atoms.copy()
    boxed.calc = None
    pbc = np.asarray(boxed.pbc, dtype=bool)
    if is_periodic_3d(boxed):
        return boxed
    if not pbc.any():
        positions = boxed.get_positions()
        extent = positions.max(axis=0) - positions.min(axis=0) if len(boxed) else np.zeros(3)
        length = float(extent.max()) + 2.0 * vacuum
        boxed.set_cell(np.eye(3) * length, scale_atoms=False)
        centre = 0.5 * (positions.max(axis=0) + positions.min(axis=0)) if len(boxed) else np.zeros(3)
        boxed.translate(np.full(3, 0.5 * length) - centre)
        boxed.pbc = True
        return boxed
    cell_lengths = boxed.cell.lengths()
    missing = tuple(int(i) for i in range(3) if not pbc[i] and cell_lengths[i] < 1e-8)
    if missing:
        boxed.center(vacuum=vacuum, axis=missing)
    if abs(float(np.linalg.det(np.asarray(boxed.cell)))) < 1e-8:
        raise ValueError(
            f"cannot build a 3D cell for a frame with pbc={pbc.tolist()} and cell "
            f"{np.asarray(atoms.cell).tolist()}: a periodic direction has no cell vector"
        )
    boxed.pbc = True
    return boxed


# ---------------------------------------------------------------------------------------------
# loading model objects
# ---------------------------------------------------------------------------------------------


def _resolve(model_file) -> pathlib.Path:
    path = pathlib.Path(model_file).expanduser()
    if not path.is_file():
        raise ModelNotAvailableError(f"model file {str(path)!r} does not exist or is not a file")
    return path.resolve()


def _file_key(path: pathlib.Path) -> tuple[str, int, int]:
    stat = path.stat()
    return (str(path), stat.st_mtime_ns, stat.st_size)


def _load_chgnet(path: pathlib.Path):
    import torch
    from chgnet.model import CHGNet

    state = torch.load(str(path), map_location="cpu", weights_only=False)
    model_dict = state["model"] if isinstance(state, dict) and "model" in state else state
    kwargs: dict[str, Any] = {}
    # Files of CHGNet 0.2.0 were trained with a bias in the output MLPs, which CHGNet only builds
    # when asked (CHGNet.load does the same for its own "0.2.0" name); read it from the weights.
    if "mlp_out_bias" not in model_dict.get("model_args", {}):
        kwargs["mlp_out_bias"] = any(".mlp_out.layers.1.bias" in key for key in model_dict["state_dict"])
    model = CHGNet.from_dict(model_dict, **kwargs)
    model.eval()
    return model, None


def _load_sevenn(path: pathlib.Path):
    allow_e3nn_constants()
    import sevenn.util

    model, config = sevenn.util.model_from_checkpoint(str(path))
    model.eval()
    return model, config


def _load_mace(path: pathlib.Path):
    allow_e3nn_constants()
    import mace  # noqa: F401  (registers the classes the pickled model refers to)
    import torch

    model = torch.load(str(path), map_location="cpu", weights_only=False)
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "atomic_numbers"):
        raise ModelLoadError(f"{path} does not contain a pickled MACE model (torch.save(model, ...))")
    model.eval()
    return model, None


_LOADERS = {"chgnet": _load_chgnet, "sevenn": _load_sevenn, "mace": _load_mace}

# Loading is slow (SevenNet builds its e3nn graph for ~2 s): a model built by describe_model_file
# is handed over to the next load_calculator for the same unchanged file instead of being built
# twice (the runner checks elements first, then builds the calculator).  One slot, used once.
_HANDOFF: dict[tuple, tuple] = {}
_HANDOFF_LOCK = threading.Lock()


def _load_model(family: str, path: pathlib.Path, *, keep_for_handoff: bool = False):
    key = (family, *_file_key(path))
    with _HANDOFF_LOCK:
        cached = _HANDOFF.pop(key, None)
    if cached is not None:
        return cached
    try:
        loaded = _LOADERS[family](path)
    except ModelLoadError:
        raise
    except Exception as exc:  # any failure of the family's own loader
        raise ModelLoadError(
            f"could not load {path} as a {family} model: {type(exc).__name__}: {exc}"
        ) from exc
    if keep_for_handoff:
        with _HANDOFF_LOCK:
            _HANDOFF.clear()
            _HANDOFF[key] = loaded
    return loaded


# ---------------------------------------------------------------------------------------------
# calculators
# ---------------------------------------------------------------------------------------------


@functools.cache
def _boxing_chgnet_calculator_class():
    """CHGNetCalculator that puts non-3D-periodic frames in a box (CHGNet needs a lattice)."""
    from ase.calculators.calculator import all_changes
    from chgnet.model.dynamics import CHGNetCalculator

    class BoxingCHGNetCalculator(CHGNetCalculator):
        """CHGNet through ASE, also for molecules and clusters.

        A frame that is not periodic in 3D is evaluated in a copy boxed by :func:`ensure_cell`
        (``vacuum`` A on each side); its stress is then meaningless and is not reported.
        """

        def __init__(self, *args, vacuum: float = DEFAULT_VACUUM, **kwargs):
            super().__init__(*args, **kwargs)
            self.vacuum = vacuum

        def calculate(self, atoms=None, properties=None, system_changes=all_changes, task="efsm"):
            atoms = atoms if atoms is not None else self.atoms
            if atoms is None or is_periodic_3d(atoms):
                return super().calculate(atoms, properties, system_changes, task=task)
            # the boxed stress is meaningless: skip it (about a third of CHGNet's cost); CHGNet knows
            # no "efm" task, so magnetic moments go too for such frames
            task = {"efsm": "ef", "efs": "ef"}.get(task, task)
            super().calculate(ensure_cell(atoms, self.vacuum), properties, system_changes, task=task)
            self.atoms = atoms.copy()  # keep ASE's caching keyed on the frame the caller gave
            self.results.pop("stress", None)
            return None

    return BoxingCHGNetCalculator


def _check_dtype(family: str, dtype: str | None) -> str | None:
    if dtype is None:
        return None
    dtype = str(dtype).replace("torch.", "")
    allowed = {"chgnet": ("float32",), "sevenn": ("float32",), "mace": ("float32", "float64")}[family]
    if dtype not in allowed:
        raise ValueError(f"dtype {dtype!r} is not supported for {family} models; use one of {allowed}")
    return dtype


def load_calculator(family: str, model_file, device: str = "cpu", dtype: str | None = None):
    """An ASE calculator for the model in ``model_file`` of ``family`` (chgnet, sevenn, mace).

    - CHGNet: a ``chgnet.model.dynamics.CHGNetCalculator`` (subclass that boxes molecules);
      float32 only.
    - SevenNet: ``sevenn.calculator.SevenNetCalculator`` on the checkpoint; float32 only.
    - MACE: ``mace.calculators.MACECalculator``, ``dtype`` float64 unless ``"float32"`` is asked.

    Raises :class:`ModelNotAvailableError` (a ``FileNotFoundError``) when the file is missing and
    :class:`ModelLoadError` when the family's code cannot load it.
    """
    family = normalize_family(family)
    dtype = _check_dtype(family, dtype)
    path = _resolve(model_file)
    model, config = _load_model(family, path)
    try:
        if family == "chgnet":
            cls = _boxing_chgnet_calculator_class()
            return cls(model=model, use_device=device)
        if family == "sevenn":
            from sevenn.calculator import SevenNetCalculator

            calc = SevenNetCalculator(model=model, file_type="model_instance", device=device)
            calc.sevennet_config = config
            return calc
        from mace.calculators import MACECalculator

        return MACECalculator(models=model, device=device, default_dtype=dtype or "float64")
    except Exception as exc:
        raise ModelLoadError(
            f"could not build the {family} calculator for {path}: {type(exc).__name__}: {exc}"
        ) from exc


def load_calculator_by_name(name: str, model_file=None, device: str = "cpu", dtype: str | None = None):
    """:func:`load_calculator` for a registered model; ``model_file`` overrides where its weights are."""
    spec = get_model_spec(name)
    path = model_file if model_file is not None else locate_model_file(name)
    return load_calculator(spec.family, path, device=device, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# describing a model file
# ---------------------------------------------------------------------------------------------


def _symbols_from_numbers(numbers: Iterable[int]) -> list[str]:
    from ase.data import chemical_symbols

    return [chemical_symbols[int(z)] for z in sorted({int(z) for z in numbers})]


def _n_parameters(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def _dtype_name(model) -> str:
    return str(next(model.parameters()).dtype).replace("torch.", "")


@functools.lru_cache(maxsize=64)
def _describe_cached(family: str, path_str: str, mtime_ns: int, size: int) -> dict:
    path = pathlib.Path(path_str)
    model, config = _load_model(family, path, keep_for_handoff=True)
    info: dict[str, Any] = {"family": family}
    if family == "chgnet":
        num_z = int(model.atom_embedding.embedding.num_embeddings)  # embedding row i <-> Z = i + 1
        info["elements"] = _symbols_from_numbers(range(1, num_z + 1))
        info["cutoff"] = float(model.model_args["atom_graph_cutoff"])
        info["bond_graph_cutoff"] = float(model.model_args["bond_graph_cutoff"])
        info["is_intensive"] = bool(model.is_intensive)
    elif family == "sevenn":
        from ase.data import atomic_numbers

        info["elements"] = _symbols_from_numbers(atomic_numbers[s] for s in config["chemical_species"])
        info["cutoff"] = float(config["cutoff"])
        info["model_version"] = str(config.get("version", ""))
    else:
        info["elements"] = _symbols_from_numbers(int(z) for z in model.atomic_numbers)
        info["cutoff"] = float(model.r_max)
        info["heads"] = list(getattr(model, "heads", None) or ["Default"])
    info["n_elements"] = len(info["elements"])
    info["dtype"] = _dtype_name(model)
    info["n_parameters"] = _n_parameters(model)
    info["sha256"] = sha256_file(path)
    info["size_bytes"] = size
    return info


def describe_model_file(family: str, model_file) -> dict:
    """What a model file covers, read from the model itself (slow once, then cached in-process).

    Returns ``elements`` (symbols ordered by atomic number), ``n_elements``, ``cutoff`` (A),
    ``dtype`` of the stored weights, ``n_parameters``, ``sha256``, ``size_bytes``, ``family`` and
    family-specific extras (CHGNet ``bond_graph_cutoff``/``is_intensive``, SevenNet
    ``model_version``, MACE ``heads``).  The cache key is the path with its mtime and size.
    """
    family = normalize_family(family)
    path = _resolve(model_file)
    info = _describe_cached(family, *_file_key(path))
    return {key: (list(value) if isinstance(value, list) else value) for key, value in info.items()}


def check_elements(model_name: str, covered_elements: Iterable[str], symbols: Iterable) -> None:
    """Raise :class:`ElementNotCoveredError` if any of ``symbols`` is not in ``covered_elements``.

    ``symbols`` may be chemical symbols or atomic numbers; the message names the uncovered
    element(s) and the model and lists what the model covers.
    """
    from ase.data import atomic_numbers, chemical_symbols

    def as_symbol(item) -> str:
        if isinstance(item, (int, np.integer)):
            return chemical_symbols[int(item)] if 0 <= int(item) < len(chemical_symbols) else f"Z={int(item)}"
        return str(item)

    covered = [as_symbol(s) for s in covered_elements]
    covered_set = set(covered)
    wanted = {as_symbol(s) for s in symbols}
    missing = sorted(wanted - covered_set, key=lambda s: (atomic_numbers.get(s, 10_000), s))
    if missing:
        covered_sorted = sorted(covered_set, key=lambda s: (atomic_numbers.get(s, 10_000), s))
        raise ElementNotCoveredError(
            f"model {model_name} does not cover element(s) {', '.join(missing)}; "
            f"it covers {len(covered_sorted)} elements: {', '.join(covered_sorted)}",
            model=model_name,
            elements=tuple(missing),
        )
