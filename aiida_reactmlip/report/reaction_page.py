"""One HTML page per reaction (system) of a finished ``reactmlip.benchmark``.

Each page shows the DFT energy profile of the reaction with every model's profile over it, the barrier and
reaction-energy errors (paths, the DFT NEB), the adsorption energies per site by DFT and every model with
the site order, the structural stability of the reaction's minima, the errors on its frames, and every
node it quotes (DFT calculation, metrics, model, stability) by pk, linked to a provenance table at the end
of the page (pk, UUID, type, the ``verdi`` command that shows it).

:func:`reaction_data` reads the benchmark node (AiiDA); :func:`write_reaction_page` writes a page from that
plain data alone (plots with matplotlib, HTML from strings), so it is tested without a benchmark run.
"""

from __future__ import annotations

import html
import pathlib
import re

import numpy as np

from aiida_reactmlip.report.page import figures, page

__all__ = ["page_name", "reaction_data", "reaction_links", "write_reaction_page", "write_reaction_pages"]


def page_name(system: str) -> str:
    """File name of a reaction's page: ``reaction_<system>.html`` (characters other than [A-Za-z0-9-_] -> _)."""
    return f"reaction_{re.sub(r'[^A-Za-z0-9_-]+', '_', system).strip('_') or 'unnamed'}.html"


def _node_ref(node) -> dict:
    return {"pk": node.pk, "uuid": node.uuid, "type": type(node).__name__,
            "label": getattr(node, "process_label", None) or node.label or ""}


def reaction_data(node) -> dict[str, dict]:
    """Plain data of every system of the benchmark ``node``: frames (name, role, site, atoms, DFT energy eV,
    DFT max force eV/Å, the DFT calculation), energies relative to each group's DFT-lowest frame (eV) by DFT
    and each model, per-system errors, reactive metrics, stability of the system's minima, the DFT NEB when
    its band belongs to the system, and the nodes quoted."""
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    from aiida_reactmlip.metrics import reference_indices, relative_energies
    from aiida_reactmlip.metrics.by_system import frame_groups

    dataset = node.outputs.dataset
    frames = dataset.frames
    groups = frame_groups(frames)
    ref_index = reference_indices(frames.energies, groups=groups)
    dft_rel = relative_energies(frames.energies, groups=groups, reference_index=ref_index)
    benchmark_ref = _node_ref(node)
    models = {}
    for key in sorted(node.outputs.metrics):
        metrics = node.outputs.metrics[key]
        values = metrics.get_dict()
        name = values.get("model_name", key)
        predictions = node.outputs.predictions[key]
        energies = predictions.get_array("energies")
        model_node = None
        if values.get("model_uuid"):
            try:
                model_node = orm.load_node(values["model_uuid"])
            except NotExistent:
                model_node = None
        stability = node.outputs.stability[key].get_dict() if "stability" in node.outputs and \
            key in node.outputs.stability else None
        neb = node.outputs.neb[key].get_dict() if "neb" in node.outputs and key in node.outputs.neb else None
        models[name] = {
            "relative": relative_energies(energies, groups=groups, reference_index=ref_index),
            "metrics": values, "metrics_ref": _node_ref(metrics),
            "model_ref": _node_ref(model_node) if model_node is not None else None,
            "stability": stability,
            "stability_ref": _node_ref(node.outputs.stability[key]) if stability is not None else None,
            "neb": neb, "neb_ref": _node_ref(node.outputs.neb[key]) if neb is not None else None,
        }
    neb_system = None
    if "dft_neb_band" in node.outputs:
        infos = node.outputs.dft_neb_band.frame_info
        neb_system = str(infos[0].get("system", "")) if infos else ""
    result: dict[str, dict] = {}
    for index, info in enumerate(frames.info):
        system = str(info.get("system", ""))
        entry = result.setdefault(system, {"system": system, "frames": [], "benchmark": benchmark_ref,
                                           "dataset": _node_ref(dataset), "models": {}})
        start, n = frames.offsets[index], frames.n_atoms[index]
        source = None
        if info.get("source_uuid"):
            try:
                source = _node_ref(orm.load_node(info["source_uuid"]))
            except NotExistent:
                source = None
        entry["frames"].append({
            "index": index, "name": str(info.get("name", index)), "role": info.get("role"), "site": info.get("site"),
            "group": groups[index], "n_atoms": int(n), "energy_eV": float(frames.energies[index]),
            "max_force_eV_per_A": float(np.linalg.norm(frames.forces[start:start + n], axis=1).max()) if n else 0.0,
            "coordinate": float(info.get("scan_coordinate", info.get("image_index", index))),
            "dft_relative_eV": float(dft_rel[index]), "source": source,
            "model_relative_eV": {name: float(m["relative"][index]) for name, m in models.items()},
        })
    for system, entry in result.items():
        for name, m in models.items():
            values = m["metrics"]
            stability_frames = [f for f in (m["stability"] or {}).get("frames", []) if f.get("system") == system]
            entry["models"][name] = {
                "metrics_ref": m["metrics_ref"], "model_ref": m["model_ref"],
                "per_system": values.get("per_system", {}).get(system),
                "reactive": values.get("reactive", {}).get(system),
                "stability": stability_frames, "stability_ref": m["stability_ref"] if stability_frames else None,
                "neb": m["neb"] if system == neb_system else None,
                "neb_ref": m["neb_ref"] if system == neb_system else None,
            }
    return result


def _fmt(value, spec: str = "{:+.3f}") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return spec.format(value)


def _link(ref: dict | None) -> str:
    if not ref:
        return "-"
    return f'<a class="pk" href="#node-{ref["uuid"]}" title="{html.escape(ref["uuid"])}">pk {ref["pk"]}</a>'


def _html_table(element_id: str, head: list[str], rows: list[list[str]]) -> str:
    """Like :func:`~aiida_reactmlip.report.page.table`, but the cells are HTML already (links)."""
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>" for cells in rows)
    return f'<table id="{element_id}"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>'


def _plots(data: dict, output: pathlib.Path, stem: str) -> list[str]:
    from aiida_reactmlip.report.plots import plot_energy_profile, plot_neb_profiles, plot_site_energies

    names = []
    frames = data["frames"]
    model_names = list(data["models"])
    by_group: dict[str, list[dict]] = {}
    for frame in frames:
        by_group.setdefault(frame["group"], []).append(frame)
    for group, members in sorted(by_group.items()):
        if len(members) < 2:
            continue
        coordinate = np.array([f["coordinate"] for f in members])
        if len({*coordinate}) < len(coordinate):
            coordinate = np.arange(len(members), dtype=float)
        path = output / f"{stem}_profile_{re.sub(r'[^A-Za-z0-9_-]+', '_', group).strip('_')}.png"
        plot_energy_profile(coordinate, np.array([f["dft_relative_eV"] for f in members]),
                            {m: np.array([f["model_relative_eV"][m] for f in members]) for m in model_names}, path,
                            xlabel="scan coordinate (Å), image or frame", title=f"{data['system']}: {group}")
        names.append(path.name)
    adsorption = {m: v["reactive"] for m, v in data["models"].items()
                  if v["reactive"] and v["reactive"].get("kind") == "adsorption"}
    if adsorption:
        first = next(iter(adsorption.values()))
        path = output / f"{stem}_sites.png"
        plot_site_energies(first["sites"], first["dft_adsorption_energies_eV"],
                           {m: r["model_adsorption_energies_eV"] for m, r in adsorption.items()}, path,
                           title=f"{data['system']}: {first['definition']}")
        names.append(path.name)
    neb = {m: v["neb"] for m, v in data["models"].items() if v.get("neb")}
    if neb:
        first = next(iter(neb.values()))
        path = output / f"{stem}_neb.png"
        plot_neb_profiles(first["dft_relative_energies_eV"],
                          {m: v["mlip_neb_relative_energies_eV"] for m, v in neb.items()},
                          {m: v["model_on_dft_band_relative_energies_eV"] for m, v in neb.items()},
                          path, title=f"{data['system']}: DFT NEB against each model")
        names.append(path.name)
    return names


def _sections(data: dict) -> str:
    models = data["models"]
    parts = []
    paths = {m: v["reactive"] for m, v in models.items() if v["reactive"] and v["reactive"].get("kind") == "path"}
    if paths:
        first = next(iter(paths.values()))
        rows = [[html.escape(m), _fmt(r["dft_barrier_eV"]), _fmt(r["model_barrier_eV"]), _fmt(r["barrier_error_eV"]),
                 _fmt(r["dft_reaction_energy_eV"]), _fmt(r["model_reaction_energy_eV"]),
                 _fmt(r["reaction_energy_error_eV"]), _fmt(r["highest_image_agrees"]), _link(models[m]["metrics_ref"])]
                for m, r in paths.items()]
        parts.append(f"<h2>Barrier and reaction energy along the DFT path ({first['n_images']} frames)</h2>"
                     + _html_table("path", ["model", "DFT barrier (eV)", "model barrier (eV)", "barrier error (eV)",
                                            "DFT reaction energy (eV)", "model reaction energy (eV)",
                                            "reaction energy error (eV)", "same highest image", "metrics"], rows)
                     + "<p>Energies of each method relative to its own initial state; errors are model - DFT.</p>")
    neb = {m: v["neb"] for m, v in models.items() if v.get("neb")}
    if neb:
        rows = []
        for m, v in neb.items():
            rows.append([html.escape(m), _fmt(v.get("dft_neb_barrier_eV")), _fmt(v.get("mlip_neb_barrier_eV")),
                         _fmt(v.get("neb_barrier_error_eV")), _fmt(v.get("dft_band_barrier_error_eV")),
                         _fmt(v.get("mlip_neb_converged")), _link(models[m]["neb_ref"])])
        parts.append("<h2>DFT NEB (neb.x) against each model's own NEB</h2>"
                     + _html_table("neb", ["model", "DFT NEB barrier (eV)", "model NEB barrier (eV)",
                                           "NEB barrier error (eV)", "error on the DFT band (eV)", "model NEB converged",
                                           "comparison"], rows))
    adsorption = {m: v["reactive"] for m, v in models.items()
                  if v["reactive"] and v["reactive"].get("kind") == "adsorption"}
    if adsorption:
        first = next(iter(adsorption.values()))
        sites = first["sites"]
        head = ["site", "DFT (eV)"] + [f"{m} (eV)" for m in adsorption] + [f"{m} error (eV)" for m in adsorption]
        rows = []
        for k, site in enumerate(sites):
            rows.append([html.escape(site), _fmt(first["dft_adsorption_energies_eV"][k])]
                        + [_fmt(r["model_adsorption_energies_eV"][r["sites"].index(site)]) for r in adsorption.values()]
                        + [_fmt(r["adsorption_energy_errors_eV"][r["sites"].index(site)]) for r in adsorption.values()])
        order_rows = [[html.escape(m), html.escape(" < ".join(r.get("site_sites_by_dft", []))),
                       html.escape(" < ".join(r.get("site_sites_by_model", []))), _fmt(r.get("site_most_stable_agrees")),
                       _fmt(r.get("site_kendall_tau"), "{:+.2f}"), _fmt(r.get("site_n_misordered_pairs"), "{}"),
                       _fmt(r.get("adsorption_energy_mae_eV"), "{:.3f}"), _link(models[m]["metrics_ref"])]
                      for m, r in adsorption.items()]
        parts.append(f"<h2>Adsorption energies of {html.escape(first['adsorbate'])}</h2>"
                     + _html_table("adsorption", head, rows)
                     + f"<p>{html.escape(first['definition'])}; each method with its own slab and gas energies.</p>"
                     + "<h2>Site order</h2>"
                     + _html_table("site-order", ["model", "DFT order (most stable first)", "model order",
                                                  "most stable site agrees", "Kendall tau", "pairs misordered",
                                                  "E_ads MAE (eV)", "metrics"], order_rows))
    stability_rows = []
    for m, v in models.items():
        for frame in v["stability"]:
            site = frame.get("adsorbate_site_relaxed")
            site_text = f"{frame.get('adsorbate_site_reference')} -> {site}" if site is not None else "-"
            stability_rows.append([html.escape(m), html.escape(str(frame.get("name"))), _fmt(frame.get("rmsd_A"), "{:.3f}"),
                                   _fmt(frame.get("n_bonds_broken"), "{}"), _fmt(frame.get("n_bonds_formed"), "{}"),
                                   _fmt(frame.get("dissociated")), html.escape(site_text),
                                   _fmt(frame.get("adsorbate_left_site")), _fmt(frame.get("converged")),
                                   _link(v["stability_ref"])])
    if stability_rows:
        parts.append("<h2>Structural stability: the reaction's DFT minima relaxed by each model</h2>"
                     + _html_table("stability", ["model", "minimum", "RMSD (Å)", "bonds broken", "bonds formed",
                                                 "dissociated", "site", "left site", "converged", "stability"],
                                   stability_rows))
    error_rows = []
    for m, v in models.items():
        s = v["per_system"] or {}
        note = s.get("error") or s.get("energy_note") or ""
        error_rows.append([html.escape(m), _fmt(s.get("energy_mae"), "{:.3f}"), _fmt(s.get("force_mae"), "{:.3f}"),
                           _fmt(s.get("force_rmse"), "{:.3f}"), html.escape(note), _link(v["metrics_ref"]),
                           _link(v["model_ref"])])
    parts.append("<h2>Errors on this reaction's frames</h2>"
                 + _html_table("errors", ["model", "energy MAE (eV, relative)", "force MAE (eV/Å)", "force RMSE (eV/Å)",
                                          "note", "metrics", "model"], error_rows))
    return "".join(parts)


def _provenance(data: dict) -> str:
    refs: dict[str, tuple[dict, str]] = {}

    def add(ref, what):
        if ref:
            refs.setdefault(ref["uuid"], (ref, what))

    add(data["benchmark"], "the benchmark")
    add(data["dataset"], "the DFT labels (dataset)")
    for frame in data["frames"]:
        add(frame["source"], f"DFT (pw.x) of {frame['name']}")
    for m, v in data["models"].items():
        add(v["metrics_ref"], f"metrics of {m}")
        add(v["model_ref"], f"model {m}")
        add(v["stability_ref"], f"stability of {m}")
        add(v.get("neb_ref"), f"NEB comparison of {m}")
    rows = "".join(
        f'<tr id="node-{ref["uuid"]}"><td>{ref["pk"]}</td><td>{html.escape(ref["type"])}</td>'
        f"<td>{html.escape(ref['label'])}</td><td>{html.escape(what)}</td><td>{ref['uuid']}</td>"
        f"<td><code>verdi node show {ref['pk']}</code></td></tr>"
        for ref, what in refs.values())
    return ('<h2>Provenance: every node on this page</h2><table id="provenance"><thead><tr><th>pk</th><th>type</th>'
            "<th>label</th><th>what</th><th>UUID</th><th>inspect</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def write_reaction_page(data: dict, output: str | pathlib.Path) -> pathlib.Path:
    """Write ``reaction_<system>.html`` (and its plots) for one entry of :func:`reaction_data` into ``output``."""
    output = pathlib.Path(output)
    output.mkdir(parents=True, exist_ok=True)
    name = page_name(data["system"])
    plots = _plots(data, output, name[: -len(".html")])
    frame_rows = [[html.escape(f["name"]), html.escape(str(f["role"] or "-")), html.escape(str(f["site"] or "-")),
                   str(f["n_atoms"]), f"{f['energy_eV']:.4f}", f"{f['max_force_eV_per_A']:.3f}",
                   f"{f['dft_relative_eV']:+.3f}"]
                  + [f"{f['model_relative_eV'][m]:+.3f}" for m in data["models"]] + [_link(f["source"])]
                  for f in data["frames"]]
    title = f"Reaction {data['system'] or '(no system)'}"
    body = f"""<h1>{html.escape(title)}</h1>
<p><a href="index.html">&larr; leaderboard and all plots</a>. BenchmarkWorkChain {_link(data['benchmark'])},
dataset {_link(data['dataset'])}: {len(data['frames'])} frame(s) of this reaction, {len(data['models'])} model(s).</p>
<h2>Energy profile: DFT and every model</h2>
<div id="plots">{figures(plots)}</div>
{_sections(data)}
<h2>Frames (DFT labels)</h2>
{_html_table("frames", ["frame", "role", "site", "atoms", "DFT energy (eV)", "DFT max force (eV/Å)",
                        "DFT relative (eV)"] + [f"{m} relative (eV)" for m in data["models"]] + ["DFT calculation"],
             frame_rows)}
<p>Relative energies: each frame minus the lowest-DFT-energy frame of its group (same frame for DFT and model).</p>
{_provenance(data)}"""
    path = output / name
    path.write_text(page(title, body))
    return path


def write_reaction_pages(node, output: str | pathlib.Path) -> dict[str, pathlib.Path]:
    """One page per system of the benchmark ``node`` in ``output``: ``{file name: path}`` (plots included)."""
    output = pathlib.Path(output)
    files = {}
    for system, data in sorted(reaction_data(node).items()):
        before = set(output.iterdir()) if output.exists() else set()
        path = write_reaction_page(data, output)
        for new in set(output.iterdir()) - before:
            files[new.name] = new
        files[path.name] = path
    return files


def reaction_links(names: list[str]) -> str:
    """The index page's list of reaction pages (``names``: page file names)."""
    if not names:
        return ""
    items = "".join(f'<li><a href="{html.escape(n)}">{html.escape(n[len("reaction_"):-len(".html")])}</a></li>'
                    for n in names)
    return f'<h2>Reactions</h2><ul id="reactions">{items}</ul>'

