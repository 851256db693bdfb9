"""Reactive-system library (pure ASE): named builders of tagged configurations. Lengths in Å."""

from .library import (
    CATEGORIES,
    ROLES,
    ReactiveSystem,
    get_system,
    list_systems,
    load_structure_file,
    register_system,
    system_from_file,
)
from .molecules import DIATOMICS, diatomic

__all__ = [
    "CATEGORIES",
    "DIATOMICS",
    "ROLES",
    "ReactiveSystem",
    "diatomic",
    "get_system",
    "list_systems",
    "load_structure_file",
    "register_system",
    "system_from_file",
]
