"""Benchmark ``bench_finetune``: wall time of one fine-tuning of each family on F frames, fixed epochs.

For each family that fine-tunes (CHGNet 0.3.0, SevenNet-0, and the MACE fixture model
``fixtures/models/mace-emt-small.model`` standing in for a MACE foundation model), one call of
:func:`aiida_reactmlip.training.finetune` (the code the ``reactmlip.finetune`` CalcJob's runner runs) on
the first F frames of the DFT-labelled reactive pool (``fixtures/datasets/ch4-dissociation-pool``, real
pw.x labels; EMT-labelled Cu + H frames when the fixture is missing), the next 10 frames for validation,
``--epochs`` epochs (default 5), otherwise each family's default hyperparameters, seed 0.

Measured: the wall time of the call (model load, graph building, training, validation each epoch,
saving), the seconds the trainer itself reports, seconds per epoch, and the package import time (paid
once per process, outside the timed call; the CalcJob's runner pays it on every job). Not a timed test:
on a shared 2-core machine, other work makes the numbers slower and noisier (reported as the CPU busy
fraction just before each measurement). Needs no AiiDA profile.
"""

from __future__ import annotations

import contextlib
import io
import pathlib
import tempfile
import time
from typing import Any

from ._common import DEFAULT_WAIT_IDLE, fmt_s, machine_info, wait_for_idle

NAME = "bench_finetune"
DESCRIPTION = "one fine-tuning of each family (CHGNet 0.3.0, SevenNet-0, MACE fixture) on F frames, fixed epochs"
DEFAULT_FRAMES = 20
DEFAULT_EPOCHS = 5
N_VALID = 10
ROOT = pathlib.Path(__file__).resolve().parent.parent
MACE_FIXTURE = ROOT / "fixtures" / "models" / "mace-emt-small.model"
#: family -> (label, how to find the base model file)
FAMILIES = {
    "chgnet": "CHGNet 0.3.0",
    "sevenn": "SevenNet-0",
    "mace": "MACE fixture (mace-emt-small)",
}
#: packages imported (untimed) before each family's measurement
IMPORTS = {"chgnet": ("chgnet.model",), "sevenn": ("sevenn",), "mace": ("mace.modules",)}


def base_model_file(family: str) -> pathlib.Path:
    """The base model of ``family``: registry weights for CHGNet / SevenNet, the fixture file for MACE."""
    if family == "mace":
        if not MACE_FIXTURE.is_file():
            raise FileNotFoundError(f"{MACE_FIXTURE} is missing: make it with fixtures/make_mace_fixture.py")
        return MACE_FIXTURE
    from aiida_reactmlip.models import locate_model_file

    return pathlib.Path(locate_model_file({"chgnet": "chgnet-0.3.0", "sevenn": "sevennet-0"}[family]))


def emt_frames(n_frames: int, seed: int = 0) -> list:
    """Rattled 2x2x2 Cu(111) slabs with one H, EMT labels (eV, eV/Å): the fallback when no fixture exists."""
    import numpy as np
    from ase.build import fcc111
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(seed)
    slab = fcc111("Cu", size=(2, 2, 2), vacuum=5.0)
    slab.append("H")
    slab.positions[-1] = slab.positions[4] + [0.0, 0.0, 1.7]
    slab.pbc = True
    frames = []
    for _ in range(n_frames):
        atoms = slab.copy()
        atoms.positions += rng.normal(0.0, 0.05, atoms.positions.shape)
        atoms.calc = EMT()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        frames.append(atoms)
    return frames


def load_frames(n_frames: int) -> tuple[list, str]:
    """``n_frames + N_VALID`` labelled frames and where they come from."""
    try:
        from aiida_reactmlip.fixture_data import POOL_FIXTURE, load_fixture_dataset

        frames = load_fixture_dataset(POOL_FIXTURE)
        if len(frames) >= n_frames + N_VALID:
            # every other frame first: the training frames then span the pool's groups
            order = list(range(0, len(frames), 2)) + list(range(1, len(frames), 2))
            return [frames[i] for i in order[: n_frames + N_VALID]], f"fixture {POOL_FIXTURE} (pw.x)"
    except (ImportError, FileNotFoundError):
        pass
    return emt_frames(n_frames + N_VALID), "EMT Cu(111)+H (fixture missing)"


def run(frames: int | None = None, console=None, wait_idle: float | None = None, epochs: int | None = None,
        models: list[str] | None = None, **_: Any) -> dict[str, Any]:
    """``models``: the families to measure (``--models chgnet,mace``; default all three)."""
    from aiida_reactmlip.training import finetune

    families = models
    unknown = sorted(set(families or []) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown family(ies) {', '.join(unknown)}; this benchmark knows {', '.join(FAMILIES)}")

    n_frames = frames or DEFAULT_FRAMES
    epochs = epochs or DEFAULT_EPOCHS
    wait = DEFAULT_WAIT_IDLE if wait_idle is None else wait_idle
    images, source = load_frames(n_frames)
    train, valid = images[:n_frames], images[n_frames:]
    log = console.print if console is not None else print
    machine = machine_info()
    results: dict[str, Any] = {}
    for family in families or list(FAMILIES):
        entry: dict[str, Any] = {"model": FAMILIES[family]}
        try:
            model_file = base_model_file(family)
        except Exception as exc:  # noqa: BLE001 - report, go on with the next family
            entry["error"] = str(exc)
            results[family] = entry
            continue
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            for module in IMPORTS[family]:
                __import__(module)
        entry["import_seconds"] = time.perf_counter() - start
        entry["cpu"] = wait_for_idle(wait, log=log) if wait else None
        with tempfile.TemporaryDirectory(prefix=f"bench-finetune-{family}-") as workdir:
            start = time.perf_counter()
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    result = finetune(family, model_file, train, valid, workdir, epochs=epochs, seed=0, num_threads=2)
            except Exception as exc:  # noqa: BLE001
                entry["error"] = f"{type(exc).__name__}: {exc}"
                results[family] = entry
                continue
            entry["wall_seconds"] = time.perf_counter() - start
            entry["trainer_seconds"] = float(result.seconds)
            entry["seconds_per_epoch"] = entry["wall_seconds"] / epochs
            entry["epochs_done"] = len(result.history)
            last = result.history[-1] if result.history else {}
            entry["last_valid_force_mae_eV_per_A"] = last.get("valid_force_mae")
            entry["model_bytes"] = pathlib.Path(result.model_file).stat().st_size
            entry["hyperparameters"] = {k: v for k, v in result.hyperparameters.items()
                                        if isinstance(v, (int, float, str, bool)) or v is None}
        results[family] = entry
        log(f"{family}: {entry.get('wall_seconds', float('nan')):.1f} s")
    return {
        "parameters": {"n_frames": n_frames, "n_valid": len(valid), "epochs": epochs, "frames_source": source,
                       "n_atoms_per_frame": sorted({len(a) for a in train})},
        "results": results,
        "machine": machine,
        "ok": all("error" not in entry for entry in results.values()),
    }


def render(result: dict[str, Any], console) -> None:
    from rich.table import Table

    params = result["parameters"]
    table = Table(title=(f"one fine-tuning on {params['n_frames']} frames ({params['frames_source']}, "
                         f"{params['n_atoms_per_frame']} atoms), {params['epochs']} epochs, "
                         f"{params['n_valid']} validation frames, {result['machine']['cpu_count']} CPU cores"),
                  title_justify="left")
    for column in ("family", "base model", "wall s", "trainer s", "s/epoch", "import s", "CPU busy before",
                   "valid F MAE (meV/Å)"):
        table.add_column(column, justify="right")
    for family, entry in result["results"].items():
        if "error" in entry:
            table.add_row(family, entry["model"], f"[red]{entry['error'][:60]}[/]", "", "", "", "", "")
            continue
        busy = (entry.get("cpu") or {}).get("busy_fraction")
        mae = entry.get("last_valid_force_mae_eV_per_A")
        table.add_row(family, entry["model"], fmt_s(entry["wall_seconds"], 1), fmt_s(entry["trainer_seconds"], 1),
                      fmt_s(entry["seconds_per_epoch"], 2), fmt_s(entry["import_seconds"], 1),
                      "n/a" if busy is None else f"{100 * busy:.0f}%", "-" if mae is None else f"{1000 * mae:.0f}")
    console.print(table)
