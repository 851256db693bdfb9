"""The walk-through of docs/your-reaction.md, run for real, and the page's numbers rendered from its JSON.

    .venv/bin/python docs/results/your_reaction.py run      # write the user's file, then the two commands
    .venv/bin/python docs/results/your_reaction.py render   # docs/your-reaction.md tables from the JSON

``run`` builds the user's file with ASE (the lines the page shows), runs ``reactmlip label`` and
``reactmlip benchmark`` as a user would (subprocesses, the default AiiDA profile or ``--profile``),
and writes ``docs/results/your-reaction.json``: every number the page quotes, the node UUIDs, the git
commit, the machine and its load average. ``render`` replaces the part of docs/your-reaction.md between
``<!-- results:begin -->`` and ``<!-- results:end -->`` with tables made from that JSON only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import re
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
JSON_PATH = ROOT / "docs" / "results" / "your-reaction.json"
PAGE = ROOT / "docs" / "your-reaction.md"
BIN = pathlib.Path(sys.executable).parent
FILE = "h_on_cu110.extxyz"


def write_user_file(folder: pathlib.Path) -> pathlib.Path:
    """H on Cu(110), a facet the systems library does not ship: the user's file, as docs/your-reaction.md
    writes it (a 2x2 cell, 3 layers; H on four sites at hand-chosen heights; H2 and the clean slab)."""
    import ase.io
    from ase.build import add_adsorbate, fcc110, molecule

    slab = fcc110("Cu", size=(2, 2, 3), vacuum=6.0)
    slab.info.update(role="slab", name="cu110")
    h2 = molecule("H2", cell=[10, 10, 10], pbc=True)
    h2.center()
    h2.info.update(role="gas", name="h2")
    frames = [slab, h2]
    for site, height in [("hollow", 0.6), ("longbridge", 0.9), ("shortbridge", 1.1), ("ontop", 1.55)]:
        atoms = slab.copy()
        atoms.info.update(role="minimum", name=f"h-{site}", site=site)
        add_adsorbate(atoms, "H", height, site)
        frames.append(atoms)
    path = folder / FILE
    ase.io.write(path, frames, format="extxyz")
    return path


def run_command(args: list[str], folder: pathlib.Path, env: dict) -> dict:
    start = time.perf_counter()
    load_before = os.getloadavg()
    result = subprocess.run([str(BIN / "reactmlip"), *args], cwd=folder, env=env, capture_output=True, text=True)
    return {"command": "reactmlip " + " ".join(args), "returncode": result.returncode,
            "wall_s": round(time.perf_counter() - start, 1), "load_average_before": load_before,
            "load_average_after": os.getloadavg(), "stdout": result.stdout, "stderr_tail": result.stderr[-3000:]}


def collect(label_run: dict, benchmark_run: dict) -> dict:
    """Numbers and UUIDs from the nodes the two commands printed."""
    import numpy as np
    from aiida import load_profile, orm

    load_profile(os.environ.get("REACTMLIP_PROFILE"), allow_switch=True)
    label = orm.load_node(int(re.search(r"LabelWorkChain<(\d+)>", label_run["stdout"]).group(1)))
    dataset = label.outputs.dataset
    frames = dataset.frames
    dft = []
    for i, info in enumerate(frames.info):
        start, n = frames.offsets[i], frames.n_atoms[i]
        dft.append({"name": info.get("name"), "role": info.get("role"), "site": info.get("site"),
                    "n_atoms": int(n), "energy_eV": float(frames.energies[i]),
                    "max_force_eV_per_A": float(np.linalg.norm(frames.forces[start:start + n], axis=1).max()),
                    "source_uuid": info.get("source_uuid")})
    benchmark = orm.load_node(int(re.search(r"BenchmarkWorkChain pk (\d+)", benchmark_run["stdout"]).group(1)))
    models = {}
    for key, metrics in benchmark.outputs.metrics.items():
        values = metrics.get_dict()
        reactive = {system: r for system, r in values.get("reactive", {}).items()}
        models[values.get("model_name", key)] = {
            "metrics_uuid": metrics.uuid, "model_uuid": values.get("model_uuid"),
            "energy_mae_per_atom_eV": values.get("energy_mae_per_atom"), "force_mae_eV_per_A": values.get("force_mae"),
            "force_rmse_eV_per_A": values.get("force_rmse"), "adsorption_energy_mae_eV": values.get("adsorption_energy_mae"),
            "reactive": reactive,
            "stability": benchmark.outputs.stability[key].get_dict().get("summary")
            if "stability" in benchmark.outputs and key in benchmark.outputs.stability else None,
        }
    return {"label_workchain": {"pk": label.pk, "uuid": label.uuid, "exit_status": label.exit_status},
            "dataset": {"pk": dataset.pk, "uuid": dataset.uuid, "n_frames": dataset.n_frames},
            "dft_frames": dft,
            "benchmark_workchain": {"pk": benchmark.pk, "uuid": benchmark.uuid, "exit_status": benchmark.exit_status},
            "leaderboard": benchmark.outputs.leaderboard.get_dict()["rows"], "models": models}


def cmd_run(args) -> None:
    folder = pathlib.Path(args.workdir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "REACTMLIP_LOG_DIR": str(folder / "logs"),
           "COLUMNS": "160"}
    if args.profile:
        env["REACTMLIP_PROFILE"] = args.profile
        os.environ["REACTMLIP_PROFILE"] = args.profile
    write_user_file(folder)
    label = run_command(["label", FILE, "--protocol", "fast", "--mpiprocs", str(args.mpiprocs),
                         "-o", "h_on_cu110_dft.extxyz"] + ([] if args.cache else ["--no-cache"]), folder, env)
    print(label["stdout"], label["stderr_tail"][-500:])
    if label["returncode"] != 0:
        raise SystemExit("reactmlip label failed")
    benchmark = run_command(["benchmark", "h_on_cu110_dft.extxyz", "--models", "all", "--output", "report"],
                            folder, env)
    print(benchmark["stdout"], benchmark["stderr_tail"][-500:])
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout)
    data = {
        "generated": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "git_commit": commit, "git_dirty": dirty,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "processor": platform.processor() or platform.machine()},
        "commands": [label, benchmark],
        **collect(label, benchmark),
    }
    JSON_PATH.write_text(json.dumps(data, indent=1, default=float) + "\n")
    print(f"wrote {JSON_PATH}")


def _mev(value) -> str:
    return "-" if value is None else f"{1000 * value:.0f}"


def render_tables(data: dict) -> str:
    """The results part of docs/your-reaction.md, from the JSON only."""
    lines = [f"Run on {data['generated']}, git commit `{data['git_commit'][:10]}`"
             f"{' (with uncommitted changes)' if data['git_dirty'] else ''}, {data['machine']['cpus']} CPUs "
             f"({data['machine']['platform']}). Generated by `.venv/bin/python docs/results/your_reaction.py "
             "render` from [results/your-reaction.json](results/your-reaction.json).", ""]
    lines += ["| command | wall time | load average (1 min) before / after |", "| --- | ---: | ---: |"]
    for run in data["commands"]:
        lines.append(f"| `{run['command']}` | {run['wall_s']:.0f} s | {run['load_average_before'][0]:.1f} / "
                     f"{run['load_average_after'][0]:.1f} |")
    lines += ["", f"DFT labels (LabelWorkChain `{data['label_workchain']['uuid']}`, dataset "
                  f"`{data['dataset']['uuid']}`):", "",
              "| frame | role | atoms | E (eV) | max force (eV/Å) |", "| --- | --- | ---: | ---: | ---: |"]
    for frame in data["dft_frames"]:
        lines.append(f"| {frame['name']} | {frame['role']} | {frame['n_atoms']} | {frame['energy_eV']:.4f} | "
                     f"{frame['max_force_eV_per_A']:.3f} |")
    lines += ["", f"Zero-shot errors (BenchmarkWorkChain `{data['benchmark_workchain']['uuid']}`), sorted by force MAE:",
              "", "| model | F MAE (meV/Å) | E MAE (meV/atom) | E_ads MAE (meV) | most stable site agrees | "
                  "minima changed on relaxation |", "| --- | ---: | ---: | ---: | --- | ---: |"]
    for row in data["leaderboard"]:
        model = data["models"].get(row["model"], {})
        agrees = [r.get("site_most_stable_agrees") for r in model.get("reactive", {}).values() if r.get("kind") == "adsorption"]
        stability = model.get("stability") or {}
        lines.append(f"| {row['model']} | {_mev(row.get('force_mae'))} | {_mev(row.get('energy_mae_per_atom'))} | "
                     f"{_mev(row.get('adsorption_energy_mae'))} | {'yes' if agrees and all(agrees) else 'no' if agrees else '-'} | "
                     f"{stability.get('n_changed', '-')}/{stability.get('n_minima', '-')} |")
    adsorption = next((r for m in data["models"].values() for r in m["reactive"].values() if r.get("kind") == "adsorption"),
                      None)
    if adsorption:
        sites = adsorption["sites"]
        lines += ["", f"Adsorption energies (eV), {adsorption['definition']}:", "",
                  "| site | DFT | " + " | ".join(data["models"]) + " |", "| --- | ---: |" + " ---: |" * len(data["models"])]
        for k, site in enumerate(sites):
            cells = []
            for model in data["models"].values():
                r = next((r for r in model["reactive"].values() if r.get("kind") == "adsorption"), None)
                cells.append(f"{r['model_adsorption_energies_eV'][r['sites'].index(site)]:+.3f}" if r else "-")
            lines.append(f"| {site} | {adsorption['dft_adsorption_energies_eV'][k]:+.3f} | " + " | ".join(cells) + " |")
    if adsorption and data["leaderboard"]:
        best = data["leaderboard"][0]
        agree = [name for name, model in data["models"].items()
                 if any(r.get("site_most_stable_agrees") for r in model["reactive"].values() if r.get("kind") == "adsorption")]
        lines += ["", f"Reading: the smallest force error is {best['model']}'s ({_mev(best.get('force_mae'))} meV/Å); "
                      f"DFT puts H most stable at the {adsorption.get('site_sites_by_dft', adsorption['sites'])[0]} site, and "
                      f"{', '.join(agree) if agree else 'no model'} agree{'s' if len(agree) == 1 else ''} on it. "
                      "The frames are hand-placed, not DFT minima (see the DFT max forces), so the stability column "
                      "counts how many of them each model changes when it relaxes them."]
    return "\n".join(lines)


def cmd_render(_args) -> None:
    data = json.loads(JSON_PATH.read_text())
    text = PAGE.read_text()
    begin, end = "<!-- results:begin -->", "<!-- results:end -->"
    if begin not in text or end not in text:
        raise SystemExit(f"{PAGE} lacks the {begin} ... {end} markers")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    PAGE.write_text(f"{head}{begin}\n{render_tables(data)}\n{end}{tail}")
    print(f"rendered {PAGE}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="write the file, run `reactmlip label` and `reactmlip benchmark`, write the JSON")
    run.add_argument("--workdir", default="results/your-reaction", help="folder for the files and the report")
    run.add_argument("--profile", default=None, help="AiiDA profile (default: the default profile)")
    run.add_argument("--mpiprocs", type=int, default=1, help="MPI processes per pw.x job")
    run.add_argument("--cache", action="store_true", help="let `reactmlip label` reuse earlier pw.x runs (its "
                     "default); without it every label is computed again, so the wall time is the real one")
    run.set_defaults(func=cmd_run)
    render = sub.add_parser("render", help="docs/your-reaction.md tables from the JSON")
    render.set_defaults(func=cmd_render)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
