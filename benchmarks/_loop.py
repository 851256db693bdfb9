"""The plain-loop side of the ``evaluate`` benchmark, run as its own fresh process (no AiiDA).

``python -m benchmarks._loop --frames frames.npz --family chgnet --model chgnet-0.3.0 --output out.npz
[--threads T] [--start I --stop J]``

What a user's script would do: import, ``load_calculator``, then for every frame
``atoms.calc = calc; atoms.get_potential_energy(); atoms.get_forces(); atoms.get_stress()``.
A fresh process keeps the comparison with the CalcJob's runner (also a fresh process) fair: the
benchmark's own process has already imported the model packages and built the models while
provisioning them, which would make the loop's load time meaningless.

``frames.npz`` holds ``numbers`` (F, N), ``positions`` (F, N, 3), ``cells`` (F, 3, 3), ``pbc`` (F, 3):
the exact float64 coordinates the dataset node got; ``--start``/``--stop`` evaluate only the frames
``start:stop`` of it (Python slice, 0-based), so that N such processes started at once share the frames
in contiguous slices. The output holds the predictions of those frames and the timings, in seconds:
``imports_seconds`` (interpreter start to frames built), ``model_load_seconds``, ``evaluation_seconds``,
``frame_end_seconds`` (since the loop started, after each frame), ``torch_threads``, and wall-clock
stamps (``time.time()``, s since the epoch, comparable across processes) ``process_start_epoch``,
``evaluation_start_epoch``, ``evaluation_end_epoch``.
"""

from __future__ import annotations

import time

_START = time.perf_counter()
_START_EPOCH = time.time()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import sys  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._loop")
    parser.add_argument("--frames", required=True)
    parser.add_argument("--family", required=True)
    parser.add_argument("--model", required=True, help="registry model name (its bundled file is used)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", required=True)
    parser.add_argument("--start", type=int, default=None, help="first frame (0-based) of the slice")
    parser.add_argument("--stop", type=int, default=None, help="frame after the last of the slice")
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    from ase import Atoms

    from aiida_reactmlip.models import load_calculator, locate_model_file

    if args.threads:
        torch.set_num_threads(args.threads)
    data = np.load(args.frames)
    selected = range(len(data["numbers"]))[args.start:args.stop]
    frames = [
        Atoms(numbers=data["numbers"][i], positions=data["positions"][i], cell=data["cells"][i],
              pbc=data["pbc"][i])
        for i in selected
    ]
    imports_seconds = time.perf_counter() - _START

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # "CHGNet v0.3.0 initialized with ..."
        calc = load_calculator(args.family, locate_model_file(args.model))
    model_load_seconds = time.perf_counter() - start

    energies = np.empty(len(frames))
    forces = []
    stress = np.empty((len(frames), 6))
    frame_end = np.empty(len(frames))  # seconds since the loop started, after each frame
    evaluation_start_epoch = time.time()
    start = time.perf_counter()
    for i, atoms in enumerate(frames):
        atoms.calc = calc
        energies[i] = atoms.get_potential_energy()
        forces.append(atoms.get_forces())
        stress[i] = atoms.get_stress(voigt=True)
        frame_end[i] = time.perf_counter() - start
    evaluation_seconds = time.perf_counter() - start
    evaluation_end_epoch = time.time()

    np.savez(
        args.output,
        energies=energies,
        forces=np.concatenate(forces) if forces else np.zeros((0, 3)),
        stress=stress,
        imports_seconds=imports_seconds,
        model_load_seconds=model_load_seconds,
        evaluation_seconds=evaluation_seconds,
        frame_end_seconds=frame_end,
        torch_threads=torch.get_num_threads(),
        start=selected.start,
        stop=selected.stop,
        process_start_epoch=_START_EPOCH,
        evaluation_start_epoch=evaluation_start_epoch,
        evaluation_end_epoch=evaluation_end_epoch,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
