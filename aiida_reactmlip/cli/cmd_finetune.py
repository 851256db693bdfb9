"""``reactmlip finetune``: fine-tune a universal model on DFT labels; run a learning-curve study; show results."""

from __future__ import annotations

import pathlib
import time

import click

from .root import cmd_root, with_profile
from .run_file import check_finished, console_echo, file_options, load_node_or_fail, make_console, run_file


@cmd_root.group("finetune")
def cmd_finetune():
    """Fine-tune universal MLIPs on a few DFT labels, and measure how many it takes (learning curves)."""


def _model(identifier: str):
    """A stored MlipModelData from a pk/UUID or a registry model name."""
    from aiida_reactmlip.data.model import MlipModelData

    if not identifier.isdigit() and not (len(identifier) == 36 and identifier.count("-") == 4):
        from aiida_reactmlip import provision
        from aiida_reactmlip.models import UnknownModelError

        try:
            return provision.ensure_registry_models([identifier])[identifier]
        except UnknownModelError as exception:
            raise click.ClickException(str(exception)) from exception
    return load_node_or_fail(identifier, MlipModelData, "model")


def _dataset(identifier: str, what: str):
    from aiida_reactmlip.data.dataset import LabelledDatasetData

    return load_node_or_fail(identifier, LabelledDatasetData, what)


def _parse_value(text: str):
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def print_learning_curve(curve: dict, console, title: str = "") -> None:
    """The learning-curve table (meV, meV/atom, meV/Å, %) of a study, one row per model and budget."""
    from rich.table import Table

    from aiida_reactmlip.report.finetune_report import format_table

    head, cells = format_table(curve["rows"])
    table = Table(title=title or "Learning curves: held-out error against the number of DFT labels")
    for header in head:
        table.add_column(header, justify="right")
    for row in cells:
        table.add_row(*row)
    console.print(table)
    if curve.get("energy_reference"):
        console.print(f"energies: {curve['energy_reference']}; gain: error reduction against zero-shot (0 labels).")


@cmd_finetune.command("run")
@click.option("--model", "model_id", required=True, help="Base model: a registry name (chgnet-0.3.0) or a pk/UUID.")
@click.option("--training", "training_id", required=True, help="pk/UUID of the training LabelledDatasetData.")
@click.option("--validation", "validation_id", default=None, help="pk/UUID of the validation LabelledDatasetData.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="A hyperparameter (repeatable), e.g. --param epochs=30 --param learning_rate=3e-4.")
@click.option("--name", "model_name", default=None, help="Name of the fine-tuned model (default: <base>-ft<N>).")
@click.option("--device", default=None, help="Device of the training (cpu, cuda); default: the family's.")
@with_profile
def cmd_finetune_run(model_id, training_id, validation_id, params, model_name, device):
    """Fine-tune one model on one training set and print the new model.

    The job runs through reactmlip.finetune_base: a training that diverges is retried with half the learning
    rate (at most 3 times), a job killed by the scheduler once. Ctrl-C stops it cleanly.

    \b
    Examples:
      reactmlip finetune run --model chgnet-0.3.0 --training 812 --validation 813 --param epochs=30
      reactmlip finetune run --model 57 --training 812 --param learning_rate=3e-4 --param seed=1
    The new model is an MlipModelData linked to its base model and training set: use it with
    `reactmlip models export PK`, reactmlip.evaluate, relax or neb like any registry model.
    """
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_reactmlip.specs.codes import local_codes
    from aiida_reactmlip.workflows.restart import FinetuneBaseWorkChain, failure_reason

    from .interrupts import InterruptGuard

    console = make_console(160)
    base = _model(model_id)
    training = _dataset(training_id, "training set")
    parameters = {}
    for item in params:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--param")
        key, value = item.split("=", 1)
        parameters[key.strip()] = _parse_value(value.strip())
    if device:
        parameters["device"] = device
    inputs = {"code": local_codes()["runner"], "base_model": base, "training": training,
              "model_name": orm.Str(model_name or f"{base.model_name}-ft{training.n_frames}")}
    if validation_id:
        inputs["validation"] = _dataset(validation_id, "validation set")
    if parameters:
        inputs["parameters"] = orm.Dict(parameters)
    console.print(f"fine-tuning {base.model_name} (pk {base.pk}) on {training.n_frames} frames (pk {training.pk})")
    start = time.perf_counter()
    try:
        with InterruptGuard(lambda text: console.print(text, markup=False, highlight=False, soft_wrap=True)):
            _, node = run_get_node(FinetuneBaseWorkChain, finetune=inputs)
    except ValueError as exception:
        raise click.ClickException(str(exception)) from exception
    if not node.is_finished_ok:
        raise click.ClickException(f"FinetuneBaseWorkChain<{node.pk}> failed: {failure_reason(node)}. "
                                   f"Inspect with `verdi process report {node.pk}`.")
    jobs = [child for child in node.called if isinstance(child, orm.CalcJobNode) and child.is_finished_ok]
    if len(node.called) > 1:
        console.print(f"after {len(node.called) - 1} retry(ies): see `verdi process report {node.pk}`")
    _show_finetune(jobs[-1], console)
    console.print(f"wall time {time.perf_counter() - start:.1f} s")


def _show_finetune(node, console) -> None:
    from rich.table import Table

    model = node.outputs.model
    report = node.outputs.report.get_dict()
    console.print(f"[bold]FinetuneCalculation<{node.pk}>[/bold]: {node.inputs.base_model.model_name} "
                  f"(pk {node.inputs.base_model.pk}) on {report.get('n_train')} training / "
                  f"{report.get('n_valid')} validation frames, {report.get('seconds', 0.0):.1f} s")
    console.print(f"model: MlipModelData<{model.pk}> {model.model_name} ({model.family}), sha256 {model.sha256}")
    console.print(f"hyperparameters: {report.get('hyperparameters')}")
    history = node.outputs.history
    names = [n for n in ("epoch", "train_loss", "valid_energy_mae", "valid_force_mae") if n in history.get_arraynames()]
    table = Table(title="training history (validation MAE in meV/atom and meV/Å)")
    for name in names:
        table.add_column(name, justify="right")
    arrays = {n: history.get_array(n) for n in names}
    for i in range(len(arrays[names[0]]) if names else 0):
        cells = []
        for name in names:
            value = float(arrays[name][i])
            cells.append(f"{int(value)}" if name == "epoch" else
                         f"{1000 * value:.1f}" if name.startswith("valid") else f"{value:.4g}")
        table.add_row(*cells)
    console.print(table)
    console.print(f"export: reactmlip models export {model.pk}")


@cmd_finetune.command("study")
@file_options("study")
@click.pass_context
def cmd_finetune_study(ctx, file, output, dry_run):
    """Run a fine-tuning study from a YAML file and print its learning-curve table.

    \b
    Base models x label budgets: every model is fine-tuned on nested subsets of N DFT labels of the
    pool's training split and evaluated on its held-out test split (N = 0: zero-shot) and on a general
    set (forgetting). The report (plots, tables, index.html) goes to --output.
    Examples:
      reactmlip finetune study workchains/finetune-ch4-dissociation.yaml
      reactmlip finetune study workchains/finetune-ch4-dissociation.yaml --dry-run
    """
    from aiida_reactmlip.report.finetune_report import write_finetune_report
    from aiida_reactmlip.specs.study import load_study, run_study

    console = make_console(160)
    echo = console_echo(console)

    def describe(spec):
        budgets = [b for b in spec.budgets if b > 0]
        console.print(f"[bold]study {spec.name}[/bold]: models {', '.join(map(str, spec.models))}; budgets "
                      f"{spec.budgets}; {len(spec.models) * len(budgets)} fine-tunes; dataset {spec.dataset}"
                      + (f"; general set {spec.general_set}" if spec.general_set else ""))

    def report(spec, node):
        check_finished(node)
        print_learning_curve(node.outputs.learning_curve.get_dict(), console, title=f"study {spec.name}")
        echo(f"\nFinetuneStudyWorkChain pk {node.pk}")
        return write_finetune_report(node, pathlib.Path(output or f"results/{spec.name}"))

    run_file(ctx, file, dry_run, echo, load=load_study, describe=describe, run=run_study, report=report)


@cmd_finetune.command("show")
@click.argument("pk")
@with_profile
def cmd_finetune_show(pk):
    """Show a study (its learning curves), a fine-tune job (its history) or a fine-tuned model (its lineage).

    \b
    Examples:
      reactmlip finetune show 1203     # a reactmlip.finetune_study WorkChain
      reactmlip finetune show 1180     # a reactmlip.finetune CalcJob or the MlipModelData it made
    """
    from aiida import orm

    from aiida_reactmlip.data.model import MlipModelData

    console = make_console(160)
    node = load_node_or_fail(pk)
    process_type = getattr(node, "process_type", None) or ""
    if process_type.endswith("reactmlip.finetune_study"):
        if "learning_curve" not in node.outputs:
            raise click.ClickException(f"study <{node.pk}> has no learning curve: [{node.exit_status}] "
                                       f"{node.exit_message or node.process_state}")
        print_learning_curve(node.outputs.learning_curve.get_dict(), console, title=node.label)
        split = node.outputs.split.get_dict()
        console.print(f"split: {len(split['train'])} train, {len(split['validation'])} validation, "
                      f"{len(split['test'])} test frames; report: reactmlip report {node.pk}")
        if "models" in node.outputs:
            for key, per_budget in sorted(node.outputs.models.items()):
                pks = ", ".join(f"{b.replace('budget_', 'N=')}: {m.pk}" for b, m in sorted(
                    per_budget.items(), key=lambda item: int(item[0].split("_")[1])))
                console.print(f"fine-tuned {key} models (pk): {pks}")
        return
    if isinstance(node, MlipModelData):
        console.print(f"MlipModelData<{node.pk}> {node.model_name} ({node.family}), sha256 {node.sha256}, "
                      f"source {node.source}")
        if node.base_model_uuid:
            base = orm.load_node(node.base_model_uuid)
            training = orm.load_node(node.training_dataset_uuid) if node.training_dataset_uuid else None
            console.print(f"fine-tuned from {base.model_name} (pk {base.pk})"
                          + (f" on dataset pk {training.pk} ({training.n_frames} frames)" if training else ""))
        if node.creator is not None and node.creator.process_type.endswith("reactmlip.finetune"):
            _show_finetune(node.creator, console)
        return
    if process_type.endswith("reactmlip.finetune"):
        if not node.is_finished_ok:
            raise click.ClickException(f"FinetuneCalculation<{node.pk}> did not finish ok: [{node.exit_status}] "
                                       f"{node.exit_message}")
        _show_finetune(node, console)
        return
    raise click.ClickException(f"node {pk} is a {type(node).__name__} ({process_type or 'no process'}): give a "
                               "reactmlip.finetune_study, a reactmlip.finetune job or a fine-tuned MlipModelData")
