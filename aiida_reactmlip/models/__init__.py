"""Registry of universal MLIPs usable offline: name -> weights file -> ASE calculator.

:mod:`.registry`: the known models and where their weights lie; :mod:`.loading`: a model file -> an
ASE calculator or its description (elements, cutoff in Å, sha256); :mod:`.errors`: what goes wrong.
Pure package (never imports aiida).  Importing it is cheap: torch and the MLIP packages are only
imported inside the functions that need them.

>>> from aiida_reactmlip.models import locate_model_file, load_calculator, describe_model_file
>>> path = locate_model_file("sevennet-0")
>>> describe_model_file("sevenn", path)["cutoff"]
5.0
"""

from ._torch_compat import allow_e3nn_constants
from .errors import (
    ElementNotCoveredError,
    ModelError,
    ModelLoadError,
    ModelNotAvailableError,
    UnknownModelError,
)
from .loading import (
    DEFAULT_VACUUM,
    check_elements,
    describe_model_file,
    ensure_cell,
    is_periodic_3d,
    load_calculator,
    load_calculator_by_name,
    normalize_family,
)
from .registry import (
    FAMILIES,
    MACE_UPSTREAM_FILES,
    ModelSpec,
    get_model_spec,
    list_models,
    locate_model_file,
)

__all__ = [
    "DEFAULT_VACUUM",
    "FAMILIES",
    "MACE_UPSTREAM_FILES",
    "ElementNotCoveredError",
    "ModelError",
    "ModelLoadError",
    "ModelNotAvailableError",
    "ModelSpec",
    "UnknownModelError",
    "allow_e3nn_constants",
    "check_elements",
    "describe_model_file",
    "ensure_cell",
    "get_model_spec",
    "is_periodic_3d",
    "list_models",
    "load_calculator",
    "load_calculator_by_name",
    "locate_model_file",
    "normalize_family",
]
