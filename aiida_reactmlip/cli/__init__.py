"""Command line: ``reactmlip ...`` and ``verdi data reactmlip ...`` (one click group)."""
from .root import cmd_root

__all__ = ("cmd_root",)
