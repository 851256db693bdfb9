"""Command line: ``reactmlip ...`` and ``verdi data reactmlip ...`` (one click group, ``root``), one module per
command group (``cmd_*``); ``run_file`` holds the steps shared by the commands that run a study file."""
from .root import cmd_root

__all__ = ("cmd_root",)
