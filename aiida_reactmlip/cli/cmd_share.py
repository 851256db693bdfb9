"""Sharing: ``reactmlip dataset import-optimade`` and the ``reactmlip query`` group."""

from __future__ import annotations

import json

import click

from .cmd_dataset import cmd_dataset
from .root import cmd_root, with_profile


@cmd_dataset.command("import-optimade")
@click.argument("url")
@click.argument("filter")
@click.option("--label", default=None, help="Label of the new node (default: 'optimade: FILTER').")
@click.option("--max-structures", type=click.IntRange(min=1), default=None,
              help="Refuse (store nothing) if the filter matches more structures than this.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="HTTP timeout per request (s).")
@with_profile
def cmd_dataset_import_optimade(url, filter, label, max_structures, timeout):
    """Fetch structures with DFT labels from an OPTIMADE server and store them as a LabelledDatasetData.

    The server must serve the provider fields _reactmlip_energy (eV) and _reactmlip_forces (eV/Å)
    (a reactmlip server, or a stock optimade server loaded with `reactmlip dataset export --format
    optimade-jsonl`). The new node records the URL, the filter and the entry ids. Nothing is stored
    if the server, the filter or any structure is unsuitable.

    \b
    Example:
      reactmlip dataset import-optimade http://127.0.0.1:5000 'elements HAS "H" AND nsites<=2'
    """
    from aiida_reactmlip.sharing.optimade_import import OptimadeImportError, import_optimade

    try:
        node = import_optimade(url, filter, label=label, timeout=timeout, max_structures=max_structures)
    except (OptimadeImportError, ValueError) as exception:
        raise click.ClickException(str(exception)) from exception
    click.echo(f"stored LabelledDatasetData<{node.pk}> {node.label}: {node.n_frames} frames, "
               f"elements {', '.join(node.elements)}, from {node.base.attributes.get('optimade_source')['url']}")


@cmd_root.group("query")
def cmd_query():
    """Find datasets, models, the best model for a system and where a number comes from."""


def _echo_rows(rows, columns, as_json):
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    Console(width=200).print(table)


@cmd_query.command("datasets")
@click.option("-e", "--elements", default=None, help="Comma-separated symbols the dataset must contain, e.g. Cu,O,H.")
@click.option("--exact", is_flag=True, help="Elements must be exactly those given.")
@click.option("--functional", default=None, help="XC functional of the DFT labels, e.g. PBE.")
@click.option("--system", default=None, help="Reactive system, e.g. h2-dissociation.")
@click.option("--min-frames", type=click.IntRange(min=0), default=None)
@click.option("--max-frames", type=click.IntRange(min=0), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@with_profile
def cmd_query_datasets(elements, exact, functional, system, min_frames, max_frames, as_json):
    """Labelled datasets by elements, DFT functional, reactive system or size.

    \b
    Example:
      reactmlip query datasets --elements H --functional PBE --system h2-dissociation --min-frames 5
    """
    from aiida_reactmlip.sharing.queries import dataset_functionals, dataset_systems, find_datasets

    symbols = [s.strip() for s in elements.split(",") if s.strip()] if elements else None
    nodes = find_datasets(elements=symbols, functional=functional, system=system, min_frames=min_frames,
                          max_frames=max_frames, exact_elements=exact)
    rows = [{"pk": n.pk, "uuid": n.uuid, "label": n.label, "frames": n.n_frames, "elements": ",".join(n.elements),
             "systems": ",".join(dataset_systems(n)), "functional": ",".join(dataset_functionals(n))} for n in nodes]
    _echo_rows(rows, ["pk", "label", "frames", "elements", "systems", "functional", "uuid"], as_json)


@cmd_query.command("models")
@click.option("--family", default=None, help="Model family: mace, chgnet, sevenn, ...")
@click.option("--base-model", default=None, help="Fine-tuned from this model (name or UUID).")
@click.option("--name", default=None, help="Model name, e.g. chgnet-0.3.0.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@with_profile
def cmd_query_models(family, base_model, name, as_json):
    """Stored MLIP models by family, base model or name.

    \b
    Example:
      reactmlip query models --family chgnet
      reactmlip query models --base-model chgnet-0.3.0
    """
    from aiida_reactmlip.sharing.queries import find_models

    rows = [{"pk": m.pk, "uuid": m.uuid, "model_name": m.model_name, "family": m.family, "sha256": m.sha256[:12],
             "base_model_uuid": m.base.attributes.get("base_model_uuid", None),
             "training_dataset_uuid": m.base.attributes.get("training_dataset_uuid", None)}
            for m in find_models(family=family, base_model=base_model, name=name)]
    _echo_rows(rows, ["pk", "model_name", "family", "sha256", "base_model_uuid", "uuid"], as_json)


@cmd_query.command("best-model")
@click.argument("system")
@click.option("--metric", default="force_mae", show_default=True,
              help="Metric key of the compute_metrics Dict: force_mae (eV/Å), energy_mae_per_atom (eV/atom), ...")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@with_profile
def cmd_query_best_model(system, metric, as_json):
    """The best model for a reactive system by a metric (lower is better; cosine similarity: higher).

    \b
    Example:
      reactmlip query best-model h2-dissociation --metric energy_mae_per_atom
    """
    from aiida_reactmlip.sharing.queries import best_model

    try:
        result = best_model(system, metric)
    except ValueError as exception:
        raise click.ClickException(str(exception)) from exception
    if as_json:
        click.echo(json.dumps({"system": system, "metric": metric, "value": result["value"],
                               "model_uuid": result["model"].uuid if result["model"] else None,
                               "metrics_uuid": result["metrics"].uuid, "ranking": result["ranking"]}, indent=2))
        return
    name = result["ranking"][0]["model_name"]
    click.echo(f"best for {system} by {metric}: {name} = {result['value']:.6g} "
               f"(metrics Dict<{result['metrics'].pk}>, dataset <{result['dataset'].pk}>)")
    _echo_rows(result["ranking"], ["model_name", "value", "metrics_pk", "dataset_uuid"], False)


@cmd_query.command("provenance")
@click.argument("pk")
@click.option("--json", "as_json", is_flag=True, help="Print the full JSON tree.")
@with_profile
def cmd_query_provenance(pk, as_json):
    """Where a number comes from: the DFT runs and the model file behind a metrics Dict, dataset or model.

    \b
    Example:
      reactmlip query provenance 123        # pk of a metrics Dict from reactmlip.compute_metrics
    """
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    from aiida_reactmlip.sharing.queries import provenance

    try:
        tree = provenance(orm.load_node(pk))
    except NotExistent as exception:
        raise click.ClickException(f"no node with pk/uuid {pk}") from exception
    except ValueError as exception:
        raise click.ClickException(str(exception)) from exception
    if as_json:
        click.echo(json.dumps(tree, indent=2, default=str))
        return
    click.echo(f"{tree['kind']} {tree['node']['type']}<{tree['node']['pk']}> {tree['node']['uuid']}")
    if tree["kind"] == "metrics":
        values = ", ".join(f"{k}={v:.6g}" for k, v in sorted(tree["values"].items()))
        click.echo(f"  values: {values}")
        click.echo(f"  computed by {tree['compute_metrics']['process_label']}<{tree['compute_metrics']['pk']}>")
        if tree["model"]:
            m = tree["model"]
            click.echo(f"  model file: {m['model_name']} ({m['family']}) {m['filename']} sha256 {m['sha256']} "
                       f"MlipModelData<{m['pk']}>")
        if tree["evaluation"]:
            click.echo(f"  predictions by {tree['evaluation']['process_label']}<{tree['evaluation']['pk']}>")
    dataset = tree.get("dataset") if tree["kind"] == "metrics" else tree
    if tree["kind"] == "model":
        f = tree["file"]
        click.echo(f"  file {f['filename']} sha256 {f['sha256']} source {f['source']}")
        return
    if dataset:
        node = dataset.get("node", dataset)
        click.echo(f"  dataset LabelledDatasetData<{node['pk']}> {node.get('label') or ''}: DFT runs")
        for run in dataset["dft_runs"]:
            if "pk" in run:
                click.echo(f"    frame {run['frame']} {run['name'] or ''}: {run['process_label']}<{run['pk']}> "
                           f"{run['dft_code']} {run['dft_code_version'] or ''} {run['functional'] or ''} "
                           f"ecutwfc {run['ecutwfc']} Ry k {run['kpoints']} code {run['code']}")
            else:
                click.echo(f"    frame {run['frame']} {run['name'] or ''}: {run['source_uuid']} ({run['note']})")
