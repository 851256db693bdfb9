"""Find what was computed: datasets, models, the best model for a system, the provenance of a number.

All helpers run ``QueryBuilder`` queries on the loaded AiiDA profile and return nodes or plain
dicts. Metrics are the ``Dict`` outputs of the ``reactmlip.compute_metrics`` calcfunction
(keys such as ``force_mae`` eV/Å, ``energy_mae_per_atom`` eV/atom, ``model_uuid``, ``dataset_uuid``).
"""

from __future__ import annotations

from typing import Any, Iterable

from aiida import orm

__all__ = (
    "HIGHER_IS_BETTER",
    "best_model",
    "dataset_functionals",
    "dataset_systems",
    "find_datasets",
    "find_metrics",
    "find_models",
    "provenance",
)

#: Metrics where a larger value is better; every other metric (MAE, RMSE, ...) is minimised.
HIGHER_IS_BETTER = frozenset({"force_cosine_similarity", "r2", "energy_r2", "force_r2"})


def _dataset_class():
    from aiida_reactmlip.data.dataset import LabelledDatasetData

    return LabelledDatasetData


def _model_class():
    from aiida_reactmlip.data.model import MlipModelData

    return MlipModelData


def dataset_systems(dataset) -> list[str]:
    """Sorted reactive systems named in the frames' ``system`` info of ``dataset``."""
    return sorted({str(info["system"]) for info in dataset.base.attributes.get("frame_info", []) if info.get("system")})


def dataset_functionals(dataset) -> list[str]:
    """Sorted exchange-correlation functionals of the DFT runs that labelled ``dataset`` (via each
    frame's ``source_uuid``); an imported dataset whose runs are elsewhere gives ``[]``."""
    from aiida_reactmlip.optimade.provenance import dft_settings_by_uuid

    infos = dataset.base.attributes.get("frame_info", [])
    settings = dft_settings_by_uuid([info.get("source_uuid") for info in infos])
    return sorted({str(s["functional"]) for s in settings.values() if s.get("functional")})


def find_datasets(
    elements: Iterable[str] | None = None,
    functional: str | None = None,
    system: str | None = None,
    min_frames: int | None = None,
    max_frames: int | None = None,
    exact_elements: bool = False,
) -> list:
    """Stored ``LabelledDatasetData`` nodes, oldest first, matching every criterion given.

    ``elements``: the dataset contains all of them (``exact_elements``: exactly them);
    ``functional``: one of its DFT runs used it (case-insensitive, e.g. "PBE");
    ``system``: one of its frames belongs to that reactive system; ``min_frames``/``max_frames``: size.
    """
    filters: dict[str, Any] = {}
    if min_frames is not None or max_frames is not None:
        size: dict[str, Any] = {}
        if min_frames is not None:
            size[">="] = int(min_frames)
        if max_frames is not None:
            size["<="] = int(max_frames)
        filters["attributes.n_frames"] = {"and": [{op: v} for op, v in size.items()]}
    query = orm.QueryBuilder().append(_dataset_class(), filters=filters, tag="dataset")
    query.order_by({"dataset": {"id": "asc"}})
    wanted = sorted(set(elements or []))
    results = []
    for node in query.all(flat=True):
        present = set(node.base.attributes.get("elements", []))
        if wanted and (present != set(wanted) if exact_elements else not set(wanted) <= present):
            continue
        if system is not None and system not in dataset_systems(node):
            continue
        if functional is not None and functional.lower() not in {f.lower() for f in dataset_functionals(node)}:
            continue
        results.append(node)
    return results


def _model_uuids_named(name: str) -> set[str]:
    query = orm.QueryBuilder().append(_model_class(), filters={"attributes.model_name": name}, project="uuid")
    return set(query.all(flat=True))


def find_models(family: str | None = None, base_model: str | None = None, name: str | None = None) -> list:
    """Stored ``MlipModelData`` nodes, oldest first.

    ``family``: e.g. "mace", "chgnet" (case-insensitive); ``base_model``: models fine-tuned from it
    (a model name such as "chgnet-0.3.0", or the base model's UUID); ``name``: the model name.
    """
    filters: dict[str, Any] = {}
    if family is not None:
        filters["attributes.family"] = family.strip().lower()
    if name is not None:
        filters["attributes.model_name"] = name
    if base_model is not None:
        uuids = _model_uuids_named(base_model) | {base_model}
        filters["attributes.base_model_uuid"] = {"in": sorted(uuids)}
    query = orm.QueryBuilder().append(_model_class(), filters=filters, tag="model")
    query.order_by({"model": {"id": "asc"}})
    return query.all(flat=True)


def find_metrics(dataset_uuids: Iterable[str] | None = None) -> list[orm.Dict]:
    """``Dict`` outputs of ``reactmlip.compute_metrics``, oldest first (optionally for some datasets only)."""
    query = orm.QueryBuilder()
    query.append(orm.CalcFunctionNode, filters={"attributes.function_name": "compute_metrics"}, tag="function")
    filters: dict[str, Any] = {}
    if dataset_uuids is not None:
        filters["attributes.dataset_uuid"] = {"in": sorted(set(dataset_uuids))}
    query.append(orm.Dict, with_incoming="function", filters=filters, tag="metrics")
    query.order_by({"metrics": {"id": "asc"}})
    return query.all(flat=True)


def best_model(system: str, metric: str = "force_mae") -> dict[str, Any]:
    """The model with the best ``metric`` on datasets of the reactive ``system``.

    Lower is better except for :data:`HIGHER_IS_BETTER`. Returns ``{"model", "metrics", "dataset",
    "value", "metric", "ranking"}`` where ``ranking`` lists every candidate (model name, value,
    metrics uuid) best first. Raises ``ValueError`` naming the system or metric when nothing qualifies.
    """
    datasets = {node.uuid: node for node in find_datasets(system=system)}
    if not datasets:
        known = sorted({s for node in find_datasets() for s in dataset_systems(node)})
        raise ValueError(f"no labelled dataset of system {system!r}; systems with datasets: {', '.join(known) or 'none'}")
    candidates = []
    seen_keys: set[str] = set()
    for node in find_metrics(datasets):
        values = node.get_dict()
        seen_keys.update(k for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
        value = values.get(metric)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            candidates.append((float(value), node, values))
    if not candidates:
        if seen_keys:
            raise ValueError(f"no metrics node for system {system!r} has {metric!r}; "
                             f"numeric metrics available: {', '.join(sorted(seen_keys))}")
        raise ValueError(f"no model was evaluated on a dataset of system {system!r} (no compute_metrics output)")
    reverse = metric in HIGHER_IS_BETTER
    candidates.sort(key=lambda item: (-item[0] if reverse else item[0], item[1].pk))
    value, node, values = candidates[0]
    model = None
    if values.get("model_uuid"):
        model = orm.load_node(values["model_uuid"])
    ranking = [{"model_name": v.get("model_name"), "model_uuid": v.get("model_uuid"), "value": x,
                "metrics_uuid": n.uuid, "metrics_pk": n.pk, "dataset_uuid": v.get("dataset_uuid")}
               for x, n, v in candidates]
    return {"model": model, "metrics": node, "dataset": datasets[values["dataset_uuid"]], "value": value,
            "metric": metric, "ranking": ranking}


def _creator(node: orm.Node) -> orm.ProcessNode | None:
    return node.creator if hasattr(node, "creator") else None


def _node_summary(node: orm.Node | None) -> dict[str, Any] | None:
    if node is None:
        return None
    summary = {"pk": node.pk, "uuid": node.uuid, "type": type(node).__name__, "label": node.label}
    if isinstance(node, orm.ProcessNode):
        summary.update({"process_label": node.process_label, "exit_status": node.exit_status})
    return summary


def _dft_runs(dataset) -> list[dict[str, Any]]:
    from aiida_reactmlip.optimade.provenance import dft_settings_by_uuid

    infos = dataset.base.attributes.get("frame_info", [])
    settings = dft_settings_by_uuid([info.get("source_uuid") for info in infos])
    runs = []
    for index, info in enumerate(infos):
        uuid = info.get("source_uuid")
        run: dict[str, Any] = {"frame": index, "name": info.get("name"), "source_uuid": uuid}
        if uuid in settings:
            calc = orm.load_node(uuid)
            run.update({"pk": calc.pk, "process_label": calc.process_label, "exit_status": calc.exit_status,
                        "code": calc.inputs.code.full_label if "code" in calc.inputs else None,
                        **{k: settings[uuid].get(k) for k in ("dft_code", "dft_code_version", "functional",
                                                              "ecutwfc", "ecutrho", "kpoints", "pseudo_family")}})
        else:
            run["note"] = "not in this profile" if uuid else "no source recorded"
        runs.append(run)
    source = dataset.base.attributes.get("optimade_source", None)
    if source:
        for run in runs:
            run.setdefault("imported_from", source.get("url"))
    return runs


def _model_file(model) -> dict[str, Any]:
    return {"pk": model.pk, "uuid": model.uuid, "model_name": model.model_name, "family": model.family,
            "filename": model.filename, "sha256": model.sha256,
            "source": model.base.attributes.get("source", None),
            "base_model_uuid": model.base.attributes.get("base_model_uuid", None),
            "training_dataset_uuid": model.base.attributes.get("training_dataset_uuid", None)}


def provenance(node: orm.Node | int | str) -> dict[str, Any]:
    """Where a number comes from: for a metrics ``Dict``, a dataset or a model.

    - metrics: the ``compute_metrics`` call, its dataset with one entry per frame naming the pw.x run
      (pk, uuid, code, functional, cutoffs Ry, k-points), the model file (name, sha256, source) and
      the evaluation CalcJob that made the predictions;
    - dataset: its DFT runs (and ``optimade_source`` if imported);
    - model: its file, and for a fine-tuned model its base model and training dataset.
    """
    if not isinstance(node, orm.Node):
        node = orm.load_node(node)
    dataset_cls, model_cls = _dataset_class(), _model_class()
    if isinstance(node, dataset_cls):
        return {"kind": "dataset", "node": _node_summary(node), "creator": _node_summary(_creator(node)),
                "optimade_source": node.base.attributes.get("optimade_source", None), "dft_runs": _dft_runs(node)}
    if isinstance(node, model_cls):
        result = {"kind": "model", "node": _node_summary(node), "file": _model_file(node)}
        for key in ("base_model_uuid", "training_dataset_uuid"):
            uuid = node.base.attributes.get(key, None)
            if uuid:
                try:
                    other = orm.load_node(uuid)
                except Exception:  # noqa: BLE001 - a reference to a node of another profile
                    result[key.replace("_uuid", "")] = {"uuid": uuid, "note": "not in this profile"}
                else:
                    result[key.replace("_uuid", "")] = provenance(other)
        return result
    creator = _creator(node)
    if isinstance(node, orm.Dict) and creator is not None and creator.base.attributes.get("function_name", None) == "compute_metrics":
        inputs = {t.link_label: t.node for t in creator.base.links.get_incoming().all()}
        dataset, predictions, model = inputs.get("dataset"), inputs.get("predictions"), inputs.get("model")
        evaluation = _creator(predictions) if predictions is not None else None
        values = node.get_dict()
        return {
            "kind": "metrics",
            "node": _node_summary(node),
            "values": {k: v for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
            "compute_metrics": _node_summary(creator),
            "settings": inputs["settings"].get_dict() if "settings" in inputs else None,
            "dataset": {**(_node_summary(dataset) or {}), "dft_runs": _dft_runs(dataset)} if dataset else None,
            "model": _model_file(model) if isinstance(model, model_cls) else None,
            "evaluation": _node_summary(evaluation),
            "predictions": _node_summary(predictions),
        }
    raise ValueError(f"node {node.pk} is a {type(node).__name__}: provenance is traced for metrics Dicts "
                     "(outputs of reactmlip.compute_metrics), LabelledDatasetData and MlipModelData")
