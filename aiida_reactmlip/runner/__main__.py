"""``reactmlip-runner`` (also ``python -m aiida_reactmlip.runner``): the command line and :func:`main`.

Usage::

    reactmlip-runner evaluate --input input.json   # aiida_reactmlip.runner.evaluate
    reactmlip-runner evaluate_many --input input.json   # several models x frame sets, each loaded once
    reactmlip-runner relax --input input.json      # aiida_reactmlip.runner.optimise
    reactmlip-runner neb --input input.json        # aiida_reactmlip.runner.optimise
    reactmlip-runner md --input input.json         # aiida_reactmlip.runner.md
    reactmlip-runner finetune --input input.json   # aiida_reactmlip.runner.finetune
    reactmlip-runner physics --input input.json    # aiida_reactmlip.runner.physics

Whatever happens, ``status.json`` beside ``input.json`` records the exit status and message (see
:mod:`aiida_reactmlip.runner.contract`). A task module is imported only when its command runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from aiida_reactmlip.runner.contract import EXIT_CODES, EXIT_EVALUATION, EXIT_OK, RunnerError

#: command -> (help, description, runner module, its function); the commands of :data:`OWN_INPUT` read their own
#: input file, the others get it read by :func:`aiida_reactmlip.runner.files.read_task_input`.
COMMANDS = {
    "evaluate": ("energies, forces and stress of every frame of an extxyz file",
                 "Evaluate an MLIP on every frame of an extxyz file (see aiida_reactmlip.runner.evaluate).",
                 "evaluate", "run_evaluate"),
    "evaluate_many": ("several models on several frame sets in one process, each model loaded once",
                      "Evaluate every model on every frame set, loading each model and reading each frame file "
                      "once (see aiida_reactmlip.runner.evaluate). Example input.json: "
                      '{"models": {"a": {"family": "chgnet", "model_file": "a.pth.tar"}, "b": {"family": "chgnet", '
                      '"model_file": "b.pth.tar"}}, "frames": {"pool": "pool.extxyz"}, "settings": {"device": "cpu"}}',
                      "evaluate", "run_evaluate_many"),
    "relax": ("relax every frame with the MLIP (ASE optimiser, fixed atoms kept fixed)",
              "Relax every frame of an extxyz file with the MLIP. Example input.json: "
              '{"family": "chgnet", "model_name": "chgnet-0.3.0", "frames_file": "frames.extxyz", '
              '"optimizer": "BFGS", "fmax": 0.05, "max_steps": 200, "fixed_atoms": {"0": [0, 1]}}',
              "optimise", "run_relax"),
    "neb": ("climbing-image NEB between two end states (or along a given band) with the MLIP",
            "Climbing-image NEB with the MLIP (ase.mep.NEB). Example input.json: "
            '{"family": "chgnet", "model_name": "chgnet-0.3.0", "frames_file": "ends.extxyz", "n_images": 5, '
            '"climb": true, "fmax": 0.05, "max_steps": 300, "relax_endpoints": true, "interpolation": "idpp"}',
            "optimise", "run_neb"),
    "finetune": ("fine-tune a model (CHGNet, SevenNet, MACE) on training frames, validated on validation frames",
                 "Fine-tune an MLIP on labelled frames (see aiida_reactmlip.runner.finetune).",
                 "finetune", "run_finetune"),
    "md": ("molecular dynamics with the MLIP (ASE Langevin or NVT Berendsen, seeded); frames kept as a pool",
           "MLIP molecular dynamics from each start frame (see aiida_reactmlip.runner.md).",
           "md", "run_md"),
    "physics": ("physics-aware checks: diatomic curves, NVE energy conservation, heating ramp, reaction sign",
                "Physics-aware checks of an MLIP (see aiida_reactmlip.runner.physics).",
                "physics", "run_physics"),
}

OWN_INPUT = ("finetune", "evaluate_many")


def build_parser() -> argparse.ArgumentParser:
    """The ``reactmlip-runner`` argument parser: one sub-command per task, each with ``--input``."""
    parser = argparse.ArgumentParser(
        prog="reactmlip-runner",
        description="Evaluate a machine-learning interatomic potential on a set of frames (no AiiDA needed).",
        epilog="exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items()),
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command, (help_text, description, _, _) in COMMANDS.items():
        task = sub.add_parser(command, help=help_text, description=description)
        task.add_argument("--input", "-i", required=True, help="JSON file with the run parameters")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``reactmlip-runner``; returns the exit status (see ``contract.EXIT_CODES``)."""
    from aiida_reactmlip.runner.files import read_task_input, write_status

    args = build_parser().parse_args(argv)
    _, _, module, function = COMMANDS[args.command]
    try:
        run = getattr(importlib.import_module(f"aiida_reactmlip.runner.{module}"), function)
        run(args.input if args.command in OWN_INPUT else read_task_input(args.input, args.command))
    except RunnerError as exc:
        print(f"reactmlip-runner: error: {exc}", file=sys.stderr, flush=True)
        write_status(args.input, exc.exit_code, str(exc))
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - any other failure is an evaluation failure, reported
        traceback.print_exc()
        write_status(args.input, EXIT_EVALUATION, f"{type(exc).__name__}: {exc}")
        return EXIT_EVALUATION
    write_status(args.input, EXIT_OK, "ok")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
