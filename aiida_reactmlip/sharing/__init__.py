"""Sharing labelled datasets and finding results: static export (extxyz, OPTIMADE JSONL, MACE),
import from any OPTIMADE server, and QueryBuilder helpers (datasets, models, best model, provenance)."""

from .export import EXPORT_FORMATS, export_dataset, write_mace_extxyz, write_optimade_jsonl
from .optimade_import import OptimadeImportError, import_optimade

__all__ = ("EXPORT_FORMATS", "OptimadeImportError", "export_dataset", "import_optimade", "write_mace_extxyz",
           "write_optimade_jsonl")
