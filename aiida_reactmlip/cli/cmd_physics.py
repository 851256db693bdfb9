"""``reactmlip physics MODEL [MODEL...] --elements H,Cu``: physics-aware checks of stored or registry models.

Each model (a registry name, ``all``, or an MlipModelData pk/UUID: base or fine-tuned) goes through one
``reactmlip.physics`` CalcJob with the default plan of :func:`aiida_reactmlip.physics.default_plan` for the
elements: diatomic curves of every pair, NVE energy conservation and a heating ramp for a small molecule and
a slab + adsorbate, and the library reactions the elements allow. Prints a table; writes ``physics.json``
(every number, node UUIDs), ``physics.md`` and PNG plots (diatomic curves and NVE traces per model).
"""

from __future__ import annotations

import json
import pathlib
import re
import time

import click

from .root import cmd_root, with_profile

CHECKS = ("diatomic", "nve", "ramp", "reaction")


def model_label(name: str, node) -> str:
    """``name`` for a registry model; ``<model name> (pk N)`` for any other node (a fine-tuned model)."""
    return name if not node.is_stored or node.model_name == name else f"{name} (pk {node.pk})"


def run_physics_checks(models: dict, plan: dict, runner_code, num_threads: int = 1, echo=print) -> dict:
    """Run one ``reactmlip.physics`` CalcJob per model on ``plan``; {label: finished CalcJobNode}."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_reactmlip.calculations.physics import PhysicsCheckCalculation
    from aiida_reactmlip.cli.interrupts import InterruptGuard
    from aiida_reactmlip.frames import Frames
    from aiida_reactmlip.specs.datasets import stored_once

    structures = None
    if plan["frames"]:
        structures = stored_once(
            Frames.from_atoms(plan["frames"]),
            label="physics-check structures",
            description="structures of `reactmlip physics` (aiida_reactmlip.physics.default_plan)",
        )
    settings = {**plan["settings"], "num_threads": num_threads}
    nodes = {}
    for label, model in models.items():
        inputs = {
            "code": runner_code,
            "model": model,
            "settings": orm.Dict(settings),
            "metadata": {"label": f"physics {label}"},
        }
        if structures is not None:
            inputs["structures"] = structures
        start = time.perf_counter()
        with InterruptGuard(echo):  # Ctrl-C stops the job and leaves no node running
            _, node = run_get_node(PhysicsCheckCalculation, **inputs)
        echo(
            f"{label}: PhysicsCheckCalculation<{node.pk}> {'ok' if node.is_finished_ok else 'FAILED'} "
            f"in {time.perf_counter() - start:.0f} s"
        )
        nodes[label] = node
    return nodes


def write_physics_outputs(nodes: dict, output: pathlib.Path, elements: list[str]) -> dict[str, pathlib.Path]:
    """``physics.json`` (metrics and UUIDs per model), ``physics.md`` and the PNG plots of finished ``nodes``."""
    from aiida_reactmlip.report.physics import physics_row, plot_diatomic_curves, plot_nve_traces, to_markdown

    output.mkdir(parents=True, exist_ok=True)
    files, rows, record = {}, [], {"elements": elements, "models": {}}
    for label, node in nodes.items():
        if not node.is_finished_ok:
            record["models"][label] = {
                "calcjob_uuid": node.uuid,
                "exit_status": node.exit_status,
                "exit_message": node.exit_message,
            }
            continue
        metrics = node.outputs.metrics.get_dict()
        arrays = {}
        for port in ("curves", "traces"):
            if port in node.outputs:
                arrays.update(
                    {k: node.outputs[port].get_array(k) for k in node.outputs[port].get_arraynames()}
                )
        stem = re.sub(r"[^A-Za-z0-9.]+", "-", label).strip("-")
        for kind, plot in (("diatomic", plot_diatomic_curves), ("nve", plot_nve_traces)):
            path = plot(metrics, arrays, output / f"physics-{kind}-{stem}.png", title=label)
            if path is not None:
                files[path.name] = path
        rows.append(physics_row(label, metrics))
        record["models"][label] = {
            "calcjob_uuid": node.uuid,
            "model_uuid": node.inputs.model.uuid,
            "model_sha256": node.inputs.model.base.attributes.get("sha256", None),
            "metrics_uuid": node.outputs.metrics.uuid,
            "curves_uuid": node.outputs.curves.uuid if "curves" in node.outputs else None,
            "traces_uuid": node.outputs.traces.uuid if "traces" in node.outputs else None,
            "structures_uuid": node.inputs.structures.uuid if "structures" in node.inputs else None,
            "metrics": metrics,
        }
    record["rows"] = rows
    files["physics.json"] = output / "physics.json"
    files["physics.json"].write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    files["physics.md"] = output / "physics.md"
    files["physics.md"].write_text(to_markdown(rows) if rows else "no model finished\n")
    return files


def print_physics_table(rows: list[dict], console) -> None:
    """The leaderboard ``rows`` as a rich table."""
    from rich.table import Table

    from aiida_reactmlip.report.physics import physics_table

    headers, cells = physics_table(rows)
    table = Table(title="physics-aware checks")
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in cells:
        table.add_row(*row)
    console.print(table)


@cmd_root.command("physics")
@click.argument("models", nargs=-1, required=True)
@click.option("--elements", required=True, help="Comma-separated elements of the study, e.g. H,Cu.")
@click.option(
    "--checks",
    default=",".join(CHECKS),
    show_default=True,
    help="Which checks: diatomic (pair curves), nve (energy conservation), ramp (heating to breaking), "
    "reaction (library reaction energies and their sign against DFT).",
)
@click.option("--quick", is_flag=True, help="MD runs 10x shorter: a smoke test, not numbers to compare.")
@click.option(
    "--num-threads",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="torch threads of each check (1 is fastest on a busy 2-core machine).",
)
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=pathlib.Path),
    default=None,
    help="Folder for physics.json, physics.md and the plots [default: results/physics-<elements>].",
)
@with_profile
def cmd_physics(models, elements, checks, quick, num_threads, output):
    """Physics-aware checks of MODELS beside their DFT errors: no DFT needed.

    MODELS are registry names (`reactmlip models list`), `all` (every model usable offline) or MlipModelData
    pks/UUIDs (fine-tuned models too). For the elements: diatomic curves of every pair (0.5-6 Å: minimum,
    well depth, smoothness, short-range repulsion, force-energy consistency), NVE energy drift of a gas molecule
    and a slab + adsorbate, a heating ramp to the temperature at which they fall apart, and the library
    reactions whose elements are all in the study (sign and error against DFT where a fixture holds DFT labels).

    \b
    Examples:
      reactmlip physics chgnet-0.3.0 sevennet-0 --elements H,Cu
      reactmlip physics all --elements C,H --checks diatomic,reaction
      reactmlip physics 1234 chgnet-0.3.0 --elements H,Cu --quick
    """
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    from aiida_reactmlip import provision
    from aiida_reactmlip.physics import default_plan

    from .cmd_benchmark import resolve_models
    from .run_file import console_echo, make_console

    console = make_console()
    echo = console_echo(console)
    element_list = [e.strip() for e in elements.split(",") if e.strip()]
    from ase.data import atomic_numbers

    unknown = [e for e in element_list if e not in atomic_numbers or e == "X"]
    if unknown or not element_list:
        raise click.ClickException(f"--elements: {', '.join(unknown) or 'nothing'} is not an element symbol; give "
                                   "comma-separated symbols such as H,Cu")
    check_list = [c.strip() for c in checks.split(",") if c.strip()]
    try:
        plan = default_plan(element_list, checks=check_list, md_scale=0.1 if quick else 1.0)
    except (ValueError, KeyError) as exception:
        raise click.ClickException(str(exception)) from exception
    from aiida_reactmlip.models import list_models

    names = [
        n for m in models for n in ([s.name for s in list_models() if s.is_bundled] if m == "all" else [m])
    ]
    resolved = resolve_models(",".join(dict.fromkeys(names)))
    needed = sorted(set(element_list) | {s for a in plan["frames"] for s in a.get_chemical_symbols()})
    problems = [
        f"{name} lacks {', '.join(missing)}"
        for name, node in resolved.items()
        if (missing := node.covers(needed))
    ]
    if problems:
        raise click.ClickException(f"the checks need elements {', '.join(needed)}: {'; '.join(problems)}")
    try:
        runner_code = orm.load_code(f"{provision.RUNNER_CODE_LABEL}@{provision.DEFAULT_COMPUTER}")
    except NotExistent as exception:
        raise click.ClickException(
            "the reactmlip-runner code is not set up: run `reactmlip setup`"
        ) from exception
    stored = provision.ensure_registry_models([name for name, node in resolved.items() if not node.is_stored])
    resolved = {name: (stored.get(name) or node) for name, node in resolved.items()}
    labelled = {model_label(name, node): node for name, node in resolved.items()}
    echo(
        f"physics checks for {', '.join(element_list)}: {', '.join(check_list)}; models: {', '.join(labelled)}"
    )
    echo(
        "structures: " + (", ".join(a.info["name"] for a in plan["frames"]) or "none (diatomic curves only)")
    )
    nodes = run_physics_checks(labelled, plan, runner_code, num_threads=num_threads, echo=echo)
    folder = output or pathlib.Path(f"results/physics-{'-'.join(element_list)}")
    files = write_physics_outputs(nodes, folder, element_list)
    rows = json.loads(files["physics.json"].read_text())["rows"]
    if rows:
        print_physics_table(rows, console)
    echo(f"results: {files['physics.json'].resolve()}")
    for name, path in files.items():
        if name.endswith(".png"):
            echo(f"plot: {path}")
    failed = [label for label, node in nodes.items() if not node.is_finished_ok]
    if failed:
        raise click.ClickException(f"the checks failed for {', '.join(failed)}: `verdi process report PK`")
