"""The measured campaigns of docs/campaigns.md ("Measured here"): docs/results/campaigns.json and its blocks.

    .venv/bin/python -m benchmarks.campaign_docs run [--campaign NAME ...]   # run, write the JSON and the blocks
    .venv/bin/python -m benchmarks.campaign_docs table                       # the blocks from the committed JSON
    .venv/bin/python -m benchmarks.campaign_docs archive                     # an AiiDA archive of the runs

``run`` calls ``reactmlip campaign run workchains/<NAME>.yaml`` on the default profile for each campaign (by
default the dissociation and the adsorption campaign: a few minutes each on 2 cores; the growth campaign with
its DFT NEB takes about 45 minutes and is not among them), reads the finished BenchmarkWorkChain back from the
graph (every model's metrics, the structural stability of the DFT minima, the leaderboard) and writes them with
the command, commit, machine and load. ``table`` rewrites the text between ``<!-- campaign-<NAME>:start -->`` and
``<!-- campaign-<NAME>:end -->`` of docs/campaigns.md.
"""

from __future__ import annotations

import json

from aiida_reactmlip.metrics.by_system import SITE_TIE_MEV
from aiida_reactmlip.report.docs_blocks import REPO_ROOT, markdown_table, provenance, write_block
from benchmarks._docs_run import load_nodes, reported_pks, run_reactmlip, script_main, write_record

RESULT_JSON = REPO_ROOT / "docs" / "results" / "campaigns.json"
DOCS = REPO_ROOT / "docs" / "campaigns.md"
#: campaign file (workchains/<name>.yaml) -> what its block is about
CAMPAIGNS = {"h2-dissociation": "dissociation", "h-on-cu111": "adsorption"}
COMMAND = "python -m benchmarks.campaign_docs run"


def block_name(campaign: str) -> str:
    return f"campaign-{campaign}"


def campaign_record(node) -> dict:
    """Every model's metrics, the stability of the DFT minima and the leaderboard of a finished campaign."""
    metrics = {key: {"uuid": m.uuid, **m.get_dict()} for key, m in node.outputs.metrics.items()}
    stability = ({key: {"uuid": s.uuid, **s.get_dict()} for key, s in node.outputs.stability.items()}
                 if "stability" in node.outputs else {})
    models = {key: node.inputs.models[key].model_name for key in node.inputs.models}
    return {"benchmark_pk": node.pk, "benchmark_uuid": node.uuid, "dataset_uuid": node.outputs.dataset.uuid,
            "n_frames": int(node.outputs.dataset.n_frames), "models": models, "metrics": metrics,
            "stability": stability, "leaderboard": node.outputs.leaderboard.get_dict()}


def _meV(value) -> str:
    return "-" if value is None else f"{1000 * value:.2f}"


def _sentence(entry: dict) -> str:
    prov = entry["provenance"]
    return (f"Written by `{prov['command']}` ({prov['generated']}, commit {(prov['git_commit'] or '?')[:7]}, "
            f"{prov['machine']['logical_cores']} cores, load {' / '.join(map(str, prov['load_average']))} at the end; "
            f"{entry['wall_seconds']:.0f} s for the whole campaign, {entry['n_frames']} pw.x-labelled frames): "
            f"docs/results/campaigns.json holds every number and the BenchmarkWorkChain UUID.")


def render_campaign(entry: dict) -> str:
    """The block of one campaign: the error table (best force MAE first) and what the campaign adds."""
    rows = []
    for key, m in sorted(entry["metrics"].items(), key=lambda item: item[1]["force_mae"]):
        cosine = m.get("force_cosine_similarity")
        rows.append([entry["models"][key], _meV(m.get("energy_mae_per_atom")), _meV(m.get("energy_rmse_per_atom")),
                     _meV(m.get("force_mae")), _meV(m.get("force_rmse")),
                     "-" if cosine is None else f"{cosine:.3f}"])
    lines = [markdown_table(["model", "E MAE (meV/atom)", "E RMSE (meV/atom)", "F MAE (meV/Å)", "F RMSE (meV/Å)",
                             "F cosine"], rows), ""]
    lines += _adsorption_lines(entry) + _stability_lines(entry)
    lines += ["", _sentence(entry)]
    return "\n".join(lines)


def _adsorption_lines(entry: dict) -> list[str]:
    """Per adsorption system: the adsorption energy of each site (eV) by DFT and by each model, and how each
    model ranks the sites."""
    out = []
    systems = sorted({system for m in entry["metrics"].values() for system, r in (m.get("reactive") or {}).items()
                      if r.get("kind") == "adsorption"})
    for system in systems:
        per_model = {entry["models"][key]: m["reactive"][system] for key, m in entry["metrics"].items()
                     if system in (m.get("reactive") or {})}
        first = next(iter(per_model.values()))
        sites = first["sites"]
        head = ["", *[f"E_ads {site} (eV)" for site in sites], "E_ads MAE (eV)", "most stable site",
                "Kendall tau", "pairs in the wrong order"]
        rows = [["DFT", *[f"{e:+.3f}" for e in first["dft_adsorption_energies_eV"]], "-", first["site_most_stable_dft"],
                 "-", "-"]]
        for name, r in sorted(per_model.items(), key=lambda item: item[1]["adsorption_energy_mae_eV"]):
            tau = r.get("site_kendall_tau")
            rows.append([name, *[f"{e:+.3f}" for e in r["model_adsorption_energies_eV"]],
                         f"{r['adsorption_energy_mae_eV']:.3f}", r["site_most_stable_model"],
                         "-" if tau is None else f"{tau:.2f}",
                         f"{r['site_n_misordered_pairs']} of {r['site_n_pairs']}"])
        out += [f"`{system}`, {first['adsorbate']} ({first['definition']}):", "", markdown_table(head, rows), "",
                f"Pairs of sites closer than {SITE_TIE_MEV:g} meV by DFT are a tie (the DFT precision of the fast "
                "protocol, `metrics.by_system.SITE_TIE_MEV`): neither counted as a wrong order nor as a wrong "
                "favourite; Kendall tau counts every pair.", ""]
    return out


def _stability_lines(entry: dict) -> list[str]:
    """One sentence on the structural stability of the DFT minima (``relax_minima``), when the campaign asked:
    which minima a model's relaxation changed (a bond broken or formed, an adsorbate off its site) and the
    largest RMSD from the DFT geometry."""
    stability = {entry["models"].get(key, key): s for key, s in entry["stability"].items()}
    if not stability:
        return []
    n_minima = max(s["summary"]["n_minima"] for s in stability.values())
    changed = {name: s["changed"] for name, s in sorted(stability.items()) if s["changed"]}
    kept = sorted(name for name, s in stability.items() if not s["changed"])
    verdict = ("no model changed any of them (no bond broken or formed, no adsorbate off its site)" if not changed
               else "changed (a bond broken or formed, or an adsorbate off its site): "
               + "; ".join(f"{name}: {', '.join(minima)}" for name, minima in changed.items())
               + (f"; none by {', '.join(kept)}" if kept else ""))
    rmsd = "; ".join(f"{name} {s['summary']['rmsd_max_A']:.3f} Å" for name, s in
                     sorted(stability.items(), key=lambda item: item[1]["summary"]["rmsd_max_A"]))
    return [f"- Structural stability (`relax_minima`: the {n_minima} DFT minim{'um' if n_minima == 1 else 'a'} "
            f"relaxed by every model): {verdict}. Largest RMSD from the DFT geometry: {rmsd}."]


def table() -> None:
    record = json.loads(RESULT_JSON.read_text())
    for campaign, entry in record["campaigns"].items():
        write_block(DOCS, block_name(campaign), render_campaign(entry))


def _run_arguments(parser) -> None:
    parser.add_argument("--campaign", choices=sorted(CAMPAIGNS), action="append",
                        help="only this campaign (repeatable; default: all of them)")


def run(profile: str | None, args) -> None:
    record = json.loads(RESULT_JSON.read_text()) if RESULT_JSON.exists() else {"campaigns": {}}
    for campaign in args.campaign or list(CAMPAIGNS):
        stdout, wall = run_reactmlip(["campaign", "run", str(REPO_ROOT / "workchains" / f"{campaign}.yaml")], profile)
        (node,) = load_nodes(reported_pks(stdout, "BenchmarkWorkChain")[-1:], profile)
        record["campaigns"][campaign] = {"provenance": provenance(f"{COMMAND} --campaign {campaign}"),
                                         "campaign_file": f"workchains/{campaign}.yaml", "wall_seconds": round(wall, 1),
                                         **campaign_record(node)}
        record["campaigns"] = {name: record["campaigns"][name] for name in CAMPAIGNS if name in record["campaigns"]}
        write_record(record, RESULT_JSON, table)


def main() -> None:
    script_main(__doc__, run, table, RESULT_JSON, run_arguments=_run_arguments)


if __name__ == "__main__":
    main()
