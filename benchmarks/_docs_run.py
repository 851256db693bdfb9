"""What the scripts that regenerate a docs/ measurement share: run a ``reactmlip`` command on a profile, find the
process it reports, and say where the numbers came from under the generated table."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys
import time


def run_reactmlip(args: list[str], profile: str | None) -> tuple[str, float]:
    """Run ``reactmlip [-p PROFILE] ARGS`` (the venv's console script), echoing its output; its stdout and wall
    seconds. Exits with the command's stderr when it fails."""
    command = [str(pathlib.Path(sys.executable).parent / "reactmlip")] + (["-p", profile] if profile else []) + args
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    print(result.stdout)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout, wall


def reported_pks(stdout: str, process: str) -> list[int]:
    """The pks of ``process`` (e.g. ``ActiveLearningWorkChain``) that a command printed as ``<process> pk N``."""
    return [int(pk) for pk in re.findall(rf"{process} pk (\d+)", stdout)]


def load_nodes(pks: list[int], profile: str | None) -> list:
    from aiida import load_profile, orm

    load_profile(profile, allow_switch=True)
    return [orm.load_node(pk) for pk in pks]


def provenance_sentence(record: dict, result_json: str, what: str) -> str:
    """"Written by `COMMAND` (when, commit, cores, load; N s wall for WHAT): RESULT_JSON holds ..."."""
    prov = record["provenance"]
    return (f"Written by `{prov['command']}` ({prov['generated']}, commit {(prov['git_commit'] or '?')[:7]}, "
            f"{prov['machine']['logical_cores']} cores, load {' / '.join(map(str, prov['load_average']))} at the end; "
            f"{record['wall_seconds']:.0f} s wall for {what}): {result_json} holds every number and the node UUIDs.")


def write_record(record: dict, result_json: pathlib.Path, table) -> None:
    """Write ``record`` as the JSON of a docs measurement, then regenerate its block with ``table()``."""
    import json

    result_json.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    table()
    print(f"wrote {result_json} and its block")


def record_uuids(record) -> list[str]:
    """Every node UUID a results record names (values of the keys ``uuid``), in order, each once."""
    found: list[str] = []

    def walk(value):
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "uuid" and isinstance(item, str):
                    found.append(item)
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(record)
    return list(dict.fromkeys(found))


def write_archive(result_json: pathlib.Path, profile: str | None, path: pathlib.Path | None = None) -> pathlib.Path:
    """An AiiDA archive of the processes a results JSON names, with their provenance (every pw.x run, model
    file, dataset and metric behind its numbers): ``verdi archive import`` it and query them back. Needs the
    profile the run wrote to. Written beside the other run outputs, under results/ (not committed: model
    files make it tens of MB)."""
    import json

    from aiida import load_profile, orm
    from aiida.tools.archive import create_archive

    load_profile(profile, allow_switch=True)
    uuids = record_uuids(json.loads(result_json.read_text()))
    nodes = [orm.load_node(uuid) for uuid in uuids]
    path = path or result_json.parents[2] / "results" / f"{result_json.stem}.aiida"
    path.parent.mkdir(parents=True, exist_ok=True)
    create_archive(nodes, filename=path, overwrite=True)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): {len(nodes)} processes named by {result_json.name} "
          "and their provenance; `verdi archive import` it")
    return path


def script_main(doc: str, run, table, result_json: pathlib.Path | None = None, *, run_arguments=None,
                refresh=None, commands: dict | None = None) -> None:
    """The command line of a docs-measurement script: ``run [--profile P]`` (the job, the JSON, the block),
    ``table`` (the block from the committed JSON) and, given ``result_json``, ``archive [--profile P]`` (an
    AiiDA archive of the nodes it names: :func:`write_archive`).

    ``run_arguments(parser)`` adds options to ``run``, which then gets ``run(profile, args)``; ``refresh(profile)``
    adds ``refresh [--profile P]`` (recompute the JSON from the nodes it names); ``commands`` adds more
    sub-commands: name -> (help, add its arguments(parser), do(args)), each with ``--profile``."""
    import argparse

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    with_profile = [sub.add_parser("run", help="run the job and write the JSON and the docs block")]
    if run_arguments is not None:
        run_arguments(with_profile[0])
    sub.add_parser("table", help="regenerate the docs block from the JSON")
    if result_json is not None:
        with_profile.append(sub.add_parser("archive", help="export the nodes the JSON names, with their provenance, "
                                           "as an AiiDA archive under results/"))
    if refresh is not None:
        with_profile.append(sub.add_parser("refresh", help="recompute the JSON's numbers from the nodes it names "
                                           "(no job runs)"))
    for name, (help_text, arguments, _) in (commands or {}).items():
        with_profile.append(sub.add_parser(name, help=help_text))
        arguments(with_profile[-1])
    for command in with_profile:
        command.add_argument("--profile", default=None, help="AiiDA profile (default: the default profile)")
    args = parser.parse_args()
    if args.what == "run":
        run(args.profile) if run_arguments is None else run(args.profile, args)
    elif args.what == "archive":
        write_archive(result_json, args.profile)
    elif args.what == "refresh":
        refresh(args.profile)
    elif args.what == "table":
        table()
    else:
        commands[args.what][2](args)


def print_table(title: str, header: list[str], rows: list[list[str]], console) -> None:
    """``rows`` under ``header`` as a rich table titled ``title`` on ``console``."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def benchmark_docs_main(doc: str, module, result_json: pathlib.Path, page: pathlib.Path,
                        options: dict[str, tuple]) -> None:
    """The command line of a benchmark whose numbers also feed a docs block: run it and print its tables;
    ``--write-docs`` also writes ``result_json`` (the results with :func:`~aiida_reactmlip.report.docs_blocks.
    provenance`: the command with every option that differs from its default) and the block ``module.BLOCK`` of
    ``page`` (``module.render_markdown``); ``--docs-only`` only regenerates the block from the JSON.

    ``options``: name -> (type, default, help), each passed to ``module.run`` as a keyword."""
    import argparse
    import json

    from aiida_reactmlip.report.docs_blocks import provenance, write_block

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, (kind, default, help_text) in options.items():
        parser.add_argument(f"--{name}", type=kind, default=default, help=help_text)
    parser.add_argument("--write-docs", action="store_true", help=f"also write {result_json.name} and the table")
    parser.add_argument("--docs-only", action="store_true", help="only regenerate the table from the committed JSON")
    args = parser.parse_args()
    if not args.docs_only:
        from rich.console import Console

        console = Console(width=150)
        values = {name: getattr(args, name) for name in options}
        result = module.run(console=console, **values)
        module.render(result, console)
        if args.write_docs:
            changed = [f"--{name} {value}" for name, value in values.items() if value != options[name][1]]
            record = {"provenance": provenance(" ".join([module.COMMAND, *changed])), **result}
            result_json.write_text(json.dumps(record, indent=1, ensure_ascii=False, default=float) + "\n")
    if args.write_docs or args.docs_only:
        write_block(page, module.BLOCK, module.render_markdown(json.loads(result_json.read_text())))
        print(f"wrote the {module.BLOCK} block of {page}")
