"""``reactmlip.benchmark``: DFT labels x universal MLIPs -> zero-shot predictions, metrics and a leaderboard."""

from __future__ import annotations

import re

from aiida import orm
from aiida.engine import ToContext, WorkChain, calcfunction, if_

from aiida_reactmlip.calculations.evaluate import EvaluateCalculation
from aiida_reactmlip.calculations.functions import compute_metrics
from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.data.model import MlipModelData
from aiida_reactmlip.workflows.label import LabelWorkChain


def link_label(name: str) -> str:
    """A model name as a valid AiiDA link label (``chgnet-0.3.0`` -> ``chgnet_0_3_0``)."""
    label = re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()
    return label if label and not label[0].isdigit() else f"m_{label}"


def _structure_elements(inputs) -> set[str]:
    if "dataset" in inputs:
        return set(inputs["dataset"].base.attributes.get("elements", []))
    structures = inputs.get("label", {}).get("structures", {})
    return {kind.symbol for structure in structures.values() for kind in structure.kinds}


def validate_inputs(inputs, _):
    """Every model must cover every element; either a dataset or structures to label must be given."""
    if "dataset" not in inputs and not inputs.get("label", {}).get("structures"):
        return "give either a labelled `dataset` or `label.structures` to label with DFT"
    models = inputs.get("models", {})
    if not models:
        return "no models given: pass at least one MlipModelData in the `models` namespace"
    elements = _structure_elements(inputs)
    for key, model in models.items():
        missing = model.covers(sorted(elements))
        if missing:
            return f"model {model.model_name} ({key}) does not cover element(s) {', '.join(missing)}"
    return None


class BenchmarkWorkChain(WorkChain):
    """Zero-shot benchmark: label configurations with DFT (or take a dataset), evaluate every model, compare."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(LabelWorkChain, namespace="label", namespace_options={"required": False, "populate_defaults": False})
        spec.input("dataset", valid_type=LabelledDatasetData, required=False,
                   help="An existing labelled dataset; if given, no DFT is run.")
        spec.input_namespace("models", valid_type=MlipModelData, dynamic=True, help="Models to benchmark.")
        spec.input("runner_code", valid_type=orm.AbstractCode, help="Code of reactmlip-runner.")
        spec.input("evaluate_settings", valid_type=orm.Dict, required=False, help="Settings for reactmlip.evaluate.")
        spec.input("metrics_settings", valid_type=orm.Dict, default=lambda: orm.Dict({"energy_reference": "relative:min"}),
                   help="Energy reference: relative:min | relative:mean | elemental_fit.")
        spec.inputs.validator = validate_inputs
        spec.outline(
            if_(cls.should_label)(cls.run_label, cls.inspect_label),
            cls.run_evaluations,
            cls.inspect_evaluations,
            cls.compute_results,
        )
        spec.output("dataset", valid_type=LabelledDatasetData)
        spec.output_namespace("predictions", valid_type=orm.ArrayData, dynamic=True)
        spec.output_namespace("metrics", valid_type=orm.Dict, dynamic=True)
        spec.output("leaderboard", valid_type=orm.Dict)
        spec.exit_code(410, "ERROR_LABELLING_FAILED", message="DFT labelling failed: {message}")
        spec.exit_code(420, "ERROR_EVALUATION_FAILED", message="Evaluation failed for model(s): {models}")

    def should_label(self):
        return "dataset" not in self.inputs

    def run_label(self):
        inputs = self.exposed_inputs(LabelWorkChain, namespace="label")
        node = self.submit(LabelWorkChain, **inputs)
        self.report(f"labelling {len(inputs['structures'])} configurations with pw.x in LabelWorkChain<{node.pk}>")
        return ToContext(label=node)

    def inspect_label(self):
        node = self.ctx.label
        if "dataset" not in node.outputs:
            return self.exit_codes.ERROR_LABELLING_FAILED.format(message=f"LabelWorkChain<{node.pk}> {node.exit_message}")
        if not node.is_finished_ok:
            self.report(f"warning: {node.exit_message}; benchmarking on the labels that exist")
        return None

    def _dataset(self):
        return self.inputs.dataset if "dataset" in self.inputs else self.ctx.label.outputs.dataset

    def run_evaluations(self):
        dataset = self._dataset()
        for key, model in sorted(self.inputs.models.items()):
            inputs = {
                "code": self.inputs.runner_code,
                "model": model,
                "dataset": dataset,
                "metadata": {"call_link_label": f"evaluate_{key}"},
            }
            if "evaluate_settings" in self.inputs:
                inputs["settings"] = self.inputs.evaluate_settings
            node = self.submit(EvaluateCalculation, **inputs)
            self.report(f"evaluating {model.model_name} on {dataset.base.attributes.get('n_frames')} frames: <{node.pk}>")
            self.to_context(**{f"evaluate_{key}": node})

    def inspect_evaluations(self):
        failed = [key for key in self.inputs.models if not self.ctx[f"evaluate_{key}"].is_finished_ok]
        if failed:
            details = ", ".join(f"{key} ({self.ctx[f'evaluate_{key}'].exit_message})" for key in failed)
            return self.exit_codes.ERROR_EVALUATION_FAILED.format(models=details)
        return None

    def compute_results(self):
        dataset = self._dataset()
        self.out("dataset", dataset)
        metrics_nodes = {}
        for key, model in sorted(self.inputs.models.items()):
            predictions = self.ctx[f"evaluate_{key}"].outputs.predictions
            metrics = compute_metrics(dataset, predictions, self.inputs.metrics_settings, model)
            self.out(f"predictions.{key}", predictions)
            self.out(f"metrics.{key}", metrics)
            metrics_nodes[key] = metrics
        self.out("leaderboard", make_leaderboard(**metrics_nodes))


LEADERBOARD_COLUMNS = (
    "energy_mae_per_atom",
    "energy_rmse_per_atom",
    "force_mae",
    "force_rmse",
    "force_cosine_similarity",
    "stress_mae",
    "adsorption_energy_mae",
    "barrier_mae",
)


@calcfunction
def make_leaderboard(**metrics: orm.Dict) -> orm.Dict:
    """Leaderboard of models sorted by force MAE (eV/Å); each row names its model and metrics node."""
    rows = []
    for key, node in metrics.items():
        values = node.get_dict()
        row = {"key": key, "model": values.get("model_name", key), "model_uuid": values.get("model_uuid"),
               "metrics_uuid": node.uuid, "energy_reference": values.get("energy_reference")}
        row.update({column: values[column] for column in LEADERBOARD_COLUMNS if column in values})
        rows.append(row)
    rows.sort(key=lambda row: (row.get("force_mae") is None, row.get("force_mae") or 0.0))
    return orm.Dict({"sorted_by": "force_mae", "rows": rows})
