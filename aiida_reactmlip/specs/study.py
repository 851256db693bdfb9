"""Fine-tuning study files (``workchains/finetune-*.yaml``) -> a ``reactmlip.finetune_study`` builder: datasets and
models stored, the runner code set up."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

from aiida import orm

from aiida_reactmlip.data.model import MlipModelData
from aiida_reactmlip.specs.builders import set_dicts
from aiida_reactmlip.specs.codes import (
    check_computer,
    local_codes,
    peek_registry_model,
    registry_model,
    run_in_process,
)
from aiida_reactmlip.specs.datasets import check_dataset_entry, peek_dataset, resolve_dataset
from aiida_reactmlip.specs.files import check_number, check_settings, find_file, read_spec_file
from aiida_reactmlip.workflows.finetune_study import FinetuneStudyWorkChain, check_budgets

STUDY_KEYS = {"name", "description", "dataset", "general_set", "models", "budgets", "split", "seed",
              "hyperparameters", "energy_reference", "general_energy_reference", "max_concurrent_jobs",
              "finetune_options", "evaluate_settings", "computer"}


@dataclasses.dataclass
class StudySpec:
    """A fine-tuning study read from ``workchains/finetune-*.yaml`` (see :func:`load_study`)."""

    name: str
    dataset: Any
    models: list
    budgets: list[int]
    description: str = ""
    general_set: Any = None
    split: dict = dataclasses.field(default_factory=dict)
    seed: int = 0
    hyperparameters: dict = dataclasses.field(default_factory=dict)
    energy_reference: str = "relative:min"
    general_energy_reference: str | None = None
    max_concurrent_jobs: int = 0
    finetune_options: dict = dataclasses.field(default_factory=dict)
    evaluate_settings: dict = dataclasses.field(default_factory=dict)
    #: AiiDA computer whose codes run the jobs (None: localhost)
    computer: str | None = None
    path: pathlib.Path | None = None

    def model_keys(self) -> list[str]:
        """The key of each model in ``base_models`` (a link label made from its name)."""
        from aiida_reactmlip.workflows.benchmark import link_label

        return [link_label(str(model.get("name") or model.get("pk")) if isinstance(model, dict) else str(model))
                for model in self.models]


def load_study(path: str | pathlib.Path) -> StudySpec:
    """Read and check a study file; errors name the file and the offending key or value.

    A study file::

        name: finetune-ch4-dissociation
        description: CHGNet, SevenNet and MACE fine-tuned on 0-20 pw.x labels of the reactive pool.
        dataset: reactive-pool          # a fixture dataset name, a dataset pk/UUID, or an .extxyz path
        general_set: general-reference-set   # optional, same forms: forgetting is measured on it
        models:                         # registry names, stored pks, or model files
          - chgnet-0.3.0
          - {file: fixtures/models/mace-fixture.model, family: mace, name: mace-fixture}
        budgets: [0, 5, 10, 20]         # numbers of DFT labels (0 = zero-shot)
        split: {test_fraction: 0.25, validation_fraction: 0.15, seed: 0}
        seed: 0                         # budget subsets and fine-tunes
        hyperparameters: {chgnet: {epochs: 30, learning_rate: 3.0e-4}}   # by family or model key
        energy_reference: relative:min
        max_concurrent_jobs: 2          # jobs at once; 0: all
    """
    from aiida_reactmlip.calculations.split import split_parameters

    path = pathlib.Path(path)
    data = read_spec_file(path, "study", STUDY_KEYS)
    for key in ("name", "dataset", "models", "budgets"):
        if data.get(key) in (None, "", []):
            raise ValueError(f"{path}: '{key}' is required")
    for key in ("dataset", "general_set"):
        if data.get(key) is not None:
            check_dataset_entry(data[key], key, path)
    check_settings(data, ("finetune_options", "evaluate_settings", "split"), path)
    check_number(data, "seed", path, int, minimum=0)
    check_number(data, "max_concurrent_jobs", path, int, minimum=0)
    if not isinstance(data["models"], list):
        raise ValueError(f"{path}: 'models' must be a list of registry names, pks or {{file, family, name}}")  # noqa: TRY004
    for model in data["models"]:
        if isinstance(model, dict):
            if "pk" not in model and not {"file", "family", "name"} <= set(model):
                raise ValueError(f"{path}: a model given as a mapping needs 'pk', or 'file', 'family' and 'name': "
                                 f"got {model}")
        elif not isinstance(model, (str, int)):
            raise ValueError(f"{path}: a model must be a registry name, a pk or a mapping, got {model!r}")  # noqa: TRY004
        elif isinstance(model, str):
            from aiida_reactmlip.models import get_model_spec

            get_model_spec(model)  # raises UnknownModelError listing the available names
    message = check_budgets(data["budgets"]) if isinstance(data["budgets"], list) else \
        f"'budgets' must be a list of label counts, e.g. [0, 5, 10] (0 = zero-shot), not {data['budgets']!r}"
    if message:
        raise ValueError(f"{path}: {message}")
    try:
        split = split_parameters(dict(data.get("split") or {}))
    except ValueError as exception:
        raise ValueError(f"{path}: split: {exception}") from exception
    hyperparameters = data.get("hyperparameters") or {}
    if not isinstance(hyperparameters, dict) or not all(isinstance(v, dict) for v in hyperparameters.values()):
        raise ValueError(f"{path}: 'hyperparameters' must map a family or model key to a mapping of values")
    return StudySpec(
        name=str(data["name"]), dataset=data["dataset"], models=list(data["models"]), budgets=list(data["budgets"]),
        description=str(data.get("description", "")), general_set=data.get("general_set"), split=split,
        seed=int(data.get("seed", 0)), hyperparameters=hyperparameters,
        energy_reference=str(data.get("energy_reference", "relative:min")),
        general_energy_reference=data.get("general_energy_reference"),
        max_concurrent_jobs=int(data.get("max_concurrent_jobs", 0)),
        finetune_options=dict(data.get("finetune_options") or {}),
        evaluate_settings=dict(data.get("evaluate_settings") or {}), computer=check_computer(data, path),
        path=path,
    )


def resolve_model(entry, spec_path=None, store: bool = True) -> MlipModelData:
    """The ``MlipModelData`` of a study's model entry: a registry name, a pk, ``{pk: N}`` or
    ``{file: PATH, family: F, name: NAME}`` (elements and cutoff read from the file; deduplicated by sha256;
    PATH looked for as :func:`~aiida_reactmlip.specs.files.search_paths` says). Stored unless ``store`` is False
    (then a model not stored yet comes back unstored); ValueError for a node that is no model, a file that is none."""
    from aiida.common.exceptions import NotExistent

    from aiida_reactmlip.models.errors import ModelError

    if isinstance(entry, str) and not entry.isdigit():
        return registry_model(entry) if store else peek_registry_model(entry)
    if isinstance(entry, (int, str)) or "pk" in entry:
        identifier = int(entry if not isinstance(entry, dict) else entry["pk"])
        try:
            node = orm.load_node(identifier)
        except NotExistent as exception:
            raise ValueError(f"model {identifier}: no node with this pk (`reactmlip models list --stored`)") \
                from exception
        if not isinstance(node, MlipModelData):
            raise ValueError(f"node {entry} is a {type(node).__name__}, not an MlipModelData")
        return node
    from aiida_reactmlip.models import describe_model_file

    file = find_file(str(entry["file"]), spec_path, "model file")
    try:
        description = describe_model_file(entry["family"], file)
    except ModelError as exception:
        raise ValueError(f"model file {file}: {exception}") from exception
    node, _ = MlipModelData.get_or_create(
        file=str(file), family=entry["family"], model_name=entry["name"], version=entry.get("version"),
        elements=description["elements"], cutoff=description.get("cutoff"), dtype=description.get("dtype"),
        source=str(file.resolve()), store=store,
    )
    return node


def study_datasets(spec: StudySpec, store: bool = True) -> dict:
    """The ``dataset`` (and ``general_set``) of a study (:func:`~aiida_reactmlip.specs.datasets.resolve_dataset`);
    unless ``store``, as :func:`~aiida_reactmlip.specs.datasets.peek_dataset` gives them (nothing stored)."""
    resolve = resolve_dataset if store else peek_dataset
    result = {"dataset": resolve(spec.dataset, spec.path)}
    if spec.general_set is not None:
        result["general_set"] = resolve(spec.general_set, spec.path)
    return result


def check_study(spec: StudySpec) -> None:
    """ValueError, before anything is stored, for a study ``reactmlip.finetune_study`` would refuse: its inputs
    built from unstored datasets and models and checked by the WorkChain's own validation."""
    builder = study_builder(spec, store=False)
    error = FinetuneStudyWorkChain.spec().inputs.validate(builder._inputs(prune=True))
    if error is not None:
        raise ValueError(f"{spec.path}: reactmlip.finetune_study refuses this study: {error.message}")


def study_builder(spec: StudySpec, store: bool = True):
    """The FinetuneStudyWorkChain builder of a study (datasets and models stored unless ``store`` is False, codes
    set up)."""
    from aiida_reactmlip.workflows.benchmark import link_label

    builder = FinetuneStudyWorkChain.get_builder()
    for key, node in study_datasets(spec, store=store).items():
        builder[key] = node
    models = {key: resolve_model(entry, spec.path, store=store)
              for key, entry in zip(spec.model_keys(), spec.models)}
    builder.base_models = models
    builder.budgets = orm.List([int(b) for b in spec.budgets])
    builder.split_parameters = orm.Dict(spec.split)
    builder.seed = orm.Int(spec.seed)
    if spec.hyperparameters:
        # keys: a family (chgnet, sevenn, mace) or a model (its key or its name); the validator names bad ones
        builder.hyperparameters = {k if k in models or link_label(k) not in models else link_label(k): orm.Dict(v)
                                   for k, v in spec.hyperparameters.items()}
    builder.runner_code = local_codes(spec.computer)["runner"]
    builder.max_concurrent_jobs = orm.Int(spec.max_concurrent_jobs)
    general = {"energy_reference": spec.general_energy_reference} if spec.general_energy_reference else None
    set_dicts(builder, metrics_settings={"energy_reference": spec.energy_reference}, general_metrics_settings=general,
              finetune_options=spec.finetune_options, evaluate_settings=spec.evaluate_settings)
    builder.metadata.label = f"finetune study {spec.name}"
    builder.metadata.description = spec.description
    return builder


def run_study(spec: StudySpec):
    """Check the study (:func:`check_study`: nothing stored when refused), run it in-process
    (``aiida.engine.run_get_node``); return the FinetuneStudyWorkChain node."""
    check_study(spec)
    return run_in_process(study_builder(spec))
