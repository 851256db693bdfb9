"""The barrier loops of docs/active-learning.md ("The barrier loop"): docs/results/barrier-loops.json and its block.

    .venv/bin/python -m benchmarks.barrier_loop run [--reaction NAME]   # the loops of a reaction (H + H2: ~90 min)
    .venv/bin/python -m benchmarks.barrier_loop run --kind check-first  # add one loop file's loops to the entry
    .venv/bin/python -m benchmarks.barrier_loop table                   # regenerates the block of docs/active-learning.md
    .venv/bin/python -m benchmarks.barrier_loop archive                 # an AiiDA archive of every loop (results/)
    .venv/bin/python -m benchmarks.barrier_loop refresh                 # the JSON's numbers again from its nodes

For each reaction of ``REACTIONS`` (default: all), ``run`` calls ``reactmlip loop run`` on its three loop files
(``loop-<r>-barrier.yaml``: the saddle check + one committee pick per round, and its random baseline;
``loop-<r>-saddle.yaml``: the saddle check alone; ``loop-<r>-check-first.yaml``: the check labelled first, the pick
only when it fails, and its random baseline) over the reaction's seeds, caching off; reads every loop back
from the graph (DFT labels used until the saddle check passed, the check of every round); gets the DFT barrier the
final MLIP barriers are compared with (H + H2: a DFT NEB, ``reactmlip.dft_neb`` with neb.x at the loops' protocol,
end states and number of images; NH3: the DFT energies of the validation fixture's band, whose middle image is the
planar saddle by symmetry); and writes that reaction's entry of the JSON (numbers, node UUIDs, command, commit,
machine, load) and the block between ``<!-- barrier-loops:start -->`` and ``<!-- barrier-loops:end -->``. The
paired comparisons are :func:`aiida_reactmlip.metrics.statistics.paired_comparison` (Wilcoxon, bootstrap CI).
``--kind KIND`` runs one loop file only and adds its loops to the reaction's entry (the DFT barrier and the other
loops kept, the run's own provenance beside the entry's), e.g. the check-first loops against the recorded ones.
"""

from __future__ import annotations

import json
import time

from aiida_reactmlip.report.docs_blocks import REPO_ROOT, markdown_table, provenance, write_block
from benchmarks._docs_run import load_nodes, provenance_sentence, reported_pks, run_reactmlip, write_record

RESULT_JSON = REPO_ROOT / "docs" / "results" / "barrier-loops.json"
DOCS = REPO_ROOT / "docs" / "active-learning.md"
BLOCK = "barrier-loops"
COMMAND = "python -m benchmarks.barrier_loop run"
#: DFT single points per transition state of the anchor (Cheula, Andersen & Kitchin 2026), on average.
ANCHOR_LABELS = 8
#: reaction -> its loop files (stem prefix), seeds, title and the DFT barrier to compare with (``neb``: a DFT NEB;
#: ``fixture``: the middle image of the validation fixture's band, a saddle by symmetry).
REACTIONS = {
    "h-h2-exchange": {"prefix": "loop-h3", "seeds": list(range(10)), "title": "H + H2 -> H2 + H", "dft": "neb"},
    "nh3-inversion": {"prefix": "loop-nh3", "seeds": list(range(10)), "title": "NH3 umbrella inversion",
                      "dft": "fixture"},
}
STRATEGIES = ("saddle", "saddle+committee", "saddle+random", "check-first+committee", "check-first+random")
#: The loop files of a reaction (``workchains/<prefix>-<kind>.yaml``).
KINDS = ("barrier", "saddle", "check-first")
#: Paired comparisons of the labels to convergence, where both strategies ran.
PAIRS = (("saddle+committee", "saddle+random"), ("saddle+committee", "saddle"), ("saddle+random", "saddle"),
         ("check-first+committee", "saddle+committee"), ("check-first+random", "saddle+random"),
         ("check-first+committee", "check-first+random"), ("check-first+committee", "saddle"))


def loop_files(reaction: str, kinds=KINDS) -> list:
    prefix = REACTIONS[reaction]["prefix"]
    return [REPO_ROOT / "workchains" / f"{prefix}-{kind}.yaml" for kind in kinds]


def loop_entry(node) -> dict:
    """One finished barrier loop: its strategy, seed, DFT labels used, stop reason and per-round saddle checks (eV)."""
    summary = node.outputs.summary.get_dict()
    rows = [row for row in summary["rounds"] if row.get("barrier_check_error") is not None]
    converged = summary["stop_reason"] == "barrier"
    # The loop's own strategy: round 1 of a committee loop picks at random (no labels yet to disagree on).
    strategy = ("saddle" if summary["k"] == 0
                else f"{'check-first' if summary.get('check_first') else 'saddle'}+{summary['strategy']}")
    return {
        "strategy": strategy, "seed": summary["seed"], "pk": node.pk,
        "uuid": node.uuid, "stop_reason": summary["stop_reason"], "converged": converged,
        "dft_labels": summary["n_labels"][-1], "labels_to_converge": summary["n_labels"][-1] if converged else None,
        "checks": [{key: row[key] for key in ("round", "n_labels", "mlip_barrier", "dft_saddle_barrier",
                                              "barrier_check_error")} for row in rows],
        "final_mlip_barrier": rows[-1]["mlip_barrier"] if rows else None,
        "seconds": round(sum(row.get("seconds", 0.0) for row in summary["rounds"]), 1),
    }


def comparisons(loops: list[dict], censor_at: int) -> dict:
    """Paired (by seed) comparisons of the labels to convergence between the strategies (:data:`PAIRS`)."""
    from aiida_reactmlip.metrics.statistics import paired_comparison, verdict

    by = {}
    for loop in loops:
        by.setdefault(loop["strategy"], {})[loop["seed"]] = loop["labels_to_converge"]
    result = {}
    for a, b in PAIRS:
        if a in by and b in by:
            seeds = sorted(set(by[a]) & set(by[b]))
            comparison = paired_comparison([by[a][s] for s in seeds], [by[b][s] for s in seeds], censor_at=censor_at,
                                           names=(a, b))
            comparison["verdict"] = verdict(comparison, "labels")
            result[f"{a} vs {b}"] = comparison
    return result


def dft_neb_barrier(spec: dict) -> dict:
    """neb.x between the loop's end states (not relaxed, as in the MLIP NEB), its protocol and number of images."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_reactmlip.specs.builders import structures_from_atoms
    from aiida_reactmlip.specs.codes import choose_pseudo_family
    from aiida_reactmlip.systems import get_system
    from aiida_reactmlip.workflows.dft_neb import DftNebWorkChain

    neb = spec["explore"]["neb"]
    ends = [a for a in get_system(spec["explore"]["system"]).configurations if a.info["role"] in ("initial", "final")]
    initial, final = structures_from_atoms(ends, store=True).values()
    serial = {"resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1}, "withmpi": False}
    start = time.perf_counter()
    _, node = run_get_node(
        DftNebWorkChain, initial=initial, final=final, num_images=orm.Int(int(neb["n_images"]) + 2),
        interpolation=orm.Str(neb["interpolation"]), relax_end_states=orm.Bool(False),
        code=orm.load_code("neb@localhost"), protocol=orm.Str(spec["label"]["protocol"]),
        pseudo_family=orm.Str(choose_pseudo_family({s for a in ends for s in a.get_chemical_symbols()})),
        multiplicity=orm.Int(int(ends[0].info.get("multiplicity", 1))), options=orm.Dict(serial))
    if not node.is_finished_ok:
        raise SystemExit(f"DftNebWorkChain<{node.pk}> failed: [{node.exit_status}] {node.exit_message}")
    return {"kind": "neb", "barrier": node.outputs.barrier.value, "pk": node.pk, "uuid": node.uuid,
            "n_images": int(neb["n_images"]) + 2, "seconds": round(time.perf_counter() - start, 1)}


def fixture_band_barrier(spec: dict) -> dict:
    """The DFT barrier along the validation fixture's band (group ``band``): highest image - initial state."""
    import ase.io

    from aiida_reactmlip.fixture_data import fixture_path

    name = spec["validation"]["fixture"]
    band = [a for a in ase.io.read(fixture_path(name), index=":") if a.info.get("group") == "band"]
    energies = [a.get_potential_energy() for a in band]
    return {"kind": "fixture", "barrier": float(max(energies) - energies[0]), "fixture": name,
            "n_images": len(band), "seconds": 0.0}


def reaction_record(reaction: str, nodes: list, dft: dict, spec: dict, kept: list | None = None) -> dict:
    """A reaction's entry from its finished loops (``nodes``) and the loop entries ``kept`` from an earlier run."""
    loops = (kept or []) + [loop_entry(node) for node in nodes]
    for loop in loops:
        if loop["final_mlip_barrier"] is not None:
            loop["final_error_vs_dft"] = loop["final_mlip_barrier"] - dft["barrier"]
    max_labels = int(spec["max_dft_labels"])
    return {"title": REACTIONS[reaction]["title"], "target_barrier_error": float(spec["target_barrier_error"]),
            "max_dft_labels": max_labels, "anchor_labels": ANCHOR_LABELS, "dft": dft, "loops": loops,
            "comparisons": comparisons(loops, censor_at=max_labels + 1)}


def _dft_sentence(dft: dict) -> str:
    if dft["kind"] == "neb":
        return (f"DFT NEB (neb.x, {dft['n_images']} images, the loops' protocol and fixed end states): barrier "
                f"{dft['barrier']:.3f} eV, {dft['seconds']:.0f} s, WorkChain pk {dft['pk']}.")
    return (f"DFT barrier along the fixture band `{dft['fixture']}` ({dft['n_images']} frames; its middle image is the "
            f"planar saddle by symmetry, N-H fixed at the end states' length): {dft['barrier']:.3f} eV. No DFT NEB: "
            "neb.x with nitrogen at this protocol is about an hour on 2 cores.")


def render_reaction(name: str, entry: dict) -> list[str]:
    rows = []
    for loop in sorted(entry["loops"], key=lambda x: (x["strategy"], x["seed"])):
        checks = " / ".join(f"{1000 * c['barrier_check_error']:.0f}" for c in loop["checks"])
        final = loop.get("final_error_vs_dft")
        rows.append([loop["strategy"], loop["seed"], loop["pk"],
                     loop["labels_to_converge"] if loop["converged"] else f"not within {loop['dft_labels']}",
                     checks, "-" if loop["final_mlip_barrier"] is None else f"{loop['final_mlip_barrier']:.3f}",
                     "-" if final is None else f"{1000 * final:+.0f}"])
    dft = entry["dft"]
    header = ["strategy", "seed", "pk", f"DFT labels to agree within {1000 * entry['target_barrier_error']:.0f} meV",
              "saddle check error per round (meV)", "final MLIP barrier (eV)",
              f"minus DFT {dft['barrier']:.3f} eV (meV)"]
    lines = [f"**{entry['title']}** (`{name}`)", "", markdown_table(header, rows), ""]
    by = {}
    for loop in entry["loops"]:
        by.setdefault(loop["strategy"], []).append(loop)
    for strategy, group in sorted(by.items()):
        used = [loop["labels_to_converge"] for loop in group if loop["converged"]]
        if used:
            lines.append(f"- `{strategy}`: {len(used)} of {len(group)} loops converged, with {min(used)}-{max(used)} DFT "
                         f"labels (mean {sum(used) / len(used):.1f}; the anchor: {entry['anchor_labels']} per "
                         "transition state).")
        else:
            lines.append(f"- `{strategy}`: none of {len(group)} loops converged within {entry['max_dft_labels']} labels.")
    for pair, comparison in entry["comparisons"].items():
        lines.append(f"- {pair}: {comparison['verdict']}.")
    lines += ["", _dft_sentence(dft), ""]
    added = entry.get("added", [])
    n_first = len(entry["loops"]) - sum(run["n_loops"] for run in added)
    lines += [provenance_sentence(entry, "docs/results/barrier-loops.json", f"the {n_first} loops")]
    lines += [f"Added later, the `{run['kind']}` loops. " + provenance_sentence(run, "the same JSON",
                                                                              f"its {run['n_loops']} loops")
              for run in added]
    return lines + [""]


def render(record: dict) -> str:
    """The block: per reaction one row per loop, then the per-strategy label counts, verdicts and the DFT barrier."""
    lines = []
    for name, entry in record["reactions"].items():
        lines += render_reaction(name, entry)
    return "\n".join(lines).strip("\n")


def table() -> None:
    write_block(DOCS, BLOCK, render(json.loads(RESULT_JSON.read_text())))


def run_reaction(reaction: str, profile: str | None, kind: str | None = None, entry: dict | None = None) -> dict:
    """Run a reaction's loop files (``kind``: that one only, its loops added to ``entry``) and return its entry."""
    import yaml

    files = loop_files(reaction, (kind,) if kind else KINDS)
    spec = yaml.safe_load(files[0].read_text())
    seeds = REACTIONS[reaction]["seeds"]
    start = time.perf_counter()
    pks = []
    for path in files:
        stdout, _ = run_reactmlip(["loop", "run", str(path), "--no-cache", "--seeds", ",".join(map(str, seeds)),
                                   "--output", str(REPO_ROOT / "results" / path.stem)], profile)
        pks += reported_pks(stdout, "ActiveLearningWorkChain")
    nodes = load_nodes(pks, profile)
    if kind:
        if entry is None:
            raise SystemExit(f"--kind {kind}: {reaction} has no entry in {RESULT_JSON} to add its loops to; run it whole")
        run = {"kind": kind, "loop_file": str(files[0].relative_to(REPO_ROOT)), "n_loops": len(nodes),
               "provenance": provenance(f"{COMMAND} --reaction {reaction} --kind {kind}"),
               "wall_seconds": round(time.perf_counter() - start, 1)}
        kept = [loop for loop in entry["loops"] if loop.get("kind", "") != kind]
        for loop in entry["loops"]:
            loop.setdefault("kind", "")
        new = reaction_record(reaction, nodes, entry["dft"], spec, kept=kept)
        for loop in new["loops"][len(kept):]:
            loop["kind"] = kind
        added = [r for r in entry.get("added", []) if r["kind"] != kind] + [run]
        return {**entry, **new, "loop_files": sorted(set(entry["loop_files"]) | {run["loop_file"]}), "added": added}
    dft = dft_neb_barrier(spec) if REACTIONS[reaction]["dft"] == "neb" else fixture_band_barrier(spec)
    return {"provenance": provenance(f"{COMMAND} --reaction {reaction}"),
            "loop_files": [str(p.relative_to(REPO_ROOT)) for p in files], "seeds": seeds,
            "wall_seconds": round(time.perf_counter() - start, 1), **reaction_record(reaction, nodes, dft, spec)}


def refresh(profile: str | None) -> None:
    """Recompute every reaction's loops and comparisons from the nodes the JSON names (no job runs)."""
    from aiida import load_profile, orm

    load_profile(profile, allow_switch=True)
    record = json.loads(RESULT_JSON.read_text())
    for reaction, entry in record["reactions"].items():
        spec = {"target_barrier_error": entry["target_barrier_error"], "max_dft_labels": entry["max_dft_labels"]}
        nodes = [orm.load_node(loop["uuid"]) for loop in entry["loops"]]
        kinds = {loop["uuid"]: loop["kind"] for loop in entry["loops"] if "kind" in loop}
        entry.update(reaction_record(reaction, nodes, entry["dft"], spec))
        for loop in entry["loops"]:
            if loop["uuid"] in kinds:
                loop["kind"] = kinds[loop["uuid"]]
        entry["refreshed"] = provenance("python -m benchmarks.barrier_loop refresh")
    write_record(record, RESULT_JSON, table)


def _run_arguments(parser) -> None:
    parser.add_argument("--reaction", choices=sorted(REACTIONS), action="append", help="only this reaction (repeatable)")
    parser.add_argument("--kind", choices=KINDS, default=None,
                        help="run this loop file only and add its loops to the reaction's recorded entry")


def _run(profile: str | None, args) -> None:
    record = json.loads(RESULT_JSON.read_text()) if RESULT_JSON.exists() else {"reactions": {}}
    for reaction in args.reaction or list(REACTIONS):
        record["reactions"][reaction] = run_reaction(reaction, profile, args.kind, record["reactions"].get(reaction))
        record["reactions"] = {name: record["reactions"][name] for name in REACTIONS if name in record["reactions"]}
        write_record(record, RESULT_JSON, table)


def main() -> None:
    from benchmarks._docs_run import script_main

    script_main(__doc__, _run, table, RESULT_JSON, run_arguments=_run_arguments, refresh=refresh)


if __name__ == "__main__":
    main()
