"""Parser of ``reactmlip.finetune``: the model file -> MlipModelData, history.json -> ArrayData, report.json -> Dict."""

from __future__ import annotations

import math
import pathlib
import re

import numpy as np
from aiida import orm

from aiida_reactmlip.calculations.finetune import resolve_family
from aiida_reactmlip.data.model import MlipModelData, sha256_of
from aiida_reactmlip.parsers.base import RunnerParser
from aiida_reactmlip.runner.contract import (
    FINETUNE_REPORT_FILE,
    HISTORY_FILE,
    MODEL_SUFFIX,
    finetuned_model_filename,
)

#: History columns always present (NaN where the trainer gave no value), in this order.
HISTORY_COLUMNS = ("epoch", "train_loss", "valid_energy_mae", "valid_force_mae")
HISTORY_UNITS = {"valid_energy_mae": "eV/atom", "valid_force_mae": "eV/Angstrom", "train_loss": "trainer loss"}


def without_nan(value):
    """``value`` with NaN and infinities replaced by None (a Dict node cannot store them)."""
    if isinstance(value, dict):
        return {k: without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nan(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def history_array(history: list[dict]) -> orm.ArrayData:
    """One array per numeric history column (HISTORY_COLUMNS first), one entry per epoch, NaN where missing."""
    columns = list(HISTORY_COLUMNS)
    for record in history:
        for key, value in record.items():
            if key not in columns and isinstance(value, (int, float)) and not isinstance(value, bool):
                columns.append(key)
    node = orm.ArrayData()
    for key in columns:
        values = []
        for record in history:
            value = record.get(key)
            values.append(float(value) if isinstance(value, (int, float)) and value is not None else np.nan)
        node.set_array(key, np.asarray(values, dtype=float))
    node.base.attributes.set("units", HISTORY_UNITS)
    node.base.attributes.set("n_epochs", len(history))
    return node


def default_model_name(base: MlipModelData | None, family: str, sha256: str) -> str:
    """``<base model name>-ft-<sha256[:8]>``, or ``<family>-scratch-<sha256[:8]>`` without a base model."""
    stem = f"{base.model_name}-ft" if base is not None else f"{family}-scratch"
    return f"{stem}-{sha256[:8]}"


def safe_filename(name: str, family: str) -> str:
    """A file name for the model: its name with odd characters replaced, and the family's suffix."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") + MODEL_SUFFIX[family]


def linked_input(node, label: str):
    """The input node of ``node`` linked as ``label``, or None."""
    from aiida.common.exceptions import NotExistent

    try:
        return node.base.links.get_incoming(link_label_filter=label).one().node
    except (NotExistent, ValueError):
        return None


class _Inputs:
    """``get(label)`` over a process node's inputs (what :func:`resolve_family` expects)."""

    def __init__(self, node):
        self.node = node

    def get(self, label: str, default=None):
        found = linked_input(self.node, label)
        return default if found is None else found


class FinetuneParser(RunnerParser):
    """Store the history and report (also of a failed training), then the model file as an MlipModelData
    linked to its base model and training data."""

    REQUIRED_FILES = (FINETUNE_REPORT_FILE, HISTORY_FILE)

    def parse_always(self):
        history = self.read_json(HISTORY_FILE)
        report = self.read_json(FINETUNE_REPORT_FILE)
        if history is not None:
            self.out("history", history_array(history.get("history", [])))
        if report is not None:
            self.out("report", orm.Dict(without_nan(report)))
        return None

    def parse_outputs(self, **kwargs):
        report = self.read_json(FINETUNE_REPORT_FILE)
        inputs = _Inputs(self.node)
        family, _ = resolve_family(inputs)
        filename = finetuned_model_filename(family)
        temporary = kwargs.get("retrieved_temporary_folder")
        path = pathlib.Path(temporary) / filename if temporary else None
        if path is None or not path.is_file():
            return self.exit_codes.ERROR_MISSING_OUTPUT.format(filename=filename)
        sha256 = sha256_of(path)
        if sha256 != report.get("sha256"):
            return self.exit_codes.ERROR_INCONSISTENT_OUTPUT.format(
                message=f"sha256 {sha256[:16]} of the retrieved file, {str(report.get('sha256'))[:16]} in the report"
            )
        info = report.get("model_info") or {}
        base = inputs.get("base_model")
        name_node = inputs.get("model_name")
        name = name_node.value if name_node is not None else default_model_name(base, family, sha256)
        model = MlipModelData(
            file=str(path),
            filename=safe_filename(name, family),
            family=family,
            model_name=name,
            version=base.version if base is not None else None,
            elements=info.get("elements"),
            cutoff=info.get("cutoff"),
            dtype=info.get("dtype"),
            source="finetune",
            base_model_uuid=base.uuid if base is not None else None,
            training_dataset_uuid=inputs.get("training").uuid,
        )
        self.out("model", model)
        return None
