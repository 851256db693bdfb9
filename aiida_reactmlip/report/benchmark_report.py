"""A report folder for a finished ``reactmlip.benchmark``: plots, leaderboard tables and an HTML page."""

from __future__ import annotations

import html
import pathlib

import numpy as np

from aiida_reactmlip.report.page import figures, page, table
from aiida_reactmlip.report.plots import (
    plot_energy_parity,
    plot_energy_profile,
    plot_force_parity,
    plot_neb_profiles,
    plot_site_energies,
)
from aiida_reactmlip.report.tables import (
    STABILITY_COLUMNS,
    format_rows,
    headers,
    neb_headers,
    neb_markdown,
    neb_rows,
    stability_markdown,
    stability_rows,
    to_csv,
    to_markdown,
)


def _groups_and_coordinates(frames):
    """Frame groups (system + composition) and a coordinate per frame (scan coordinate, else index)."""
    from aiida_reactmlip.metrics.by_system import frame_groups

    groups = frame_groups(frames)
    coordinate = np.array(
        [float(info.get("scan_coordinate", info.get("image_index", i))) for i, info in enumerate(frames.info)]
    )
    return groups, coordinate


def write_benchmark_report(node, output: str | pathlib.Path) -> dict[str, pathlib.Path]:
    """Write the report of a finished BenchmarkWorkChain ``node`` into ``output``; return the files by name.

    Contents: ``leaderboard.md``/``.csv``, ``dataset.extxyz`` (the DFT labels), one energy profile
    per group of frames (DFT against each model, relative energies in eV), energy and force parity
    plots, and ``index.html`` showing all of them. When the benchmark relaxed the DFT minima:
    ``stability.md`` (every minimum per model) and its table in the page; when it ran a DFT NEB:
    ``neb.md`` and ``neb_profile.png`` (DFT NEB, each model's NEB, each model on the DFT band). With physics-aware
    checks: ``physics.md``, their table and the diatomic-curve and NVE plots per model. One page per reaction
    (system), ``reaction_<system>.html`` with its plots (:mod:`aiida_reactmlip.report.reaction_page`), listed
    under "Reactions" in ``index.html``.
    """
    from aiida_reactmlip.metrics import reference_indices, relative_energies

    output = pathlib.Path(output)
    output.mkdir(parents=True, exist_ok=True)
    rows = node.outputs.leaderboard["rows"]
    dataset = node.outputs.dataset
    frames = dataset.frames
    reference_note = rows[0]["energy_reference"] if rows else ""
    files: dict[str, pathlib.Path] = {
        "leaderboard.md": output / "leaderboard.md",
        "leaderboard.csv": output / "leaderboard.csv",
        "dataset.extxyz": output / "dataset.extxyz",
    }
    note = (f"Energies: {reference_note}. Forces compared directly. "
            f"BenchmarkWorkChain pk {node.pk}, dataset pk {dataset.pk}.")
    files["leaderboard.md"].write_text(to_markdown(rows, title=node.label or f"benchmark {node.pk}", note=note))
    files["leaderboard.csv"].write_text(to_csv(rows))
    dataset.export_extxyz(files["dataset.extxyz"])

    groups, coordinate = _groups_and_coordinates(frames)
    ref_index = reference_indices(frames.energies, groups=groups)
    dft_rel = relative_energies(frames.energies, groups=groups, reference_index=ref_index)
    predicted_rel, predicted_forces = {}, {}
    for key, predictions in sorted(node.outputs.predictions.items()):
        name = node.outputs.metrics[key]["model_name"]
        energies = predictions.get_array("energies")
        predicted_rel[name] = relative_energies(energies, groups=groups, reference_index=ref_index)
        predicted_forces[name] = predictions.get_array("forces")

    profiles = []
    for group in sorted(set(groups)):
        mask = np.array([g == group for g in groups])
        if mask.sum() < 2:
            continue
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in group).strip("_")
        path = output / f"energy_profile_{safe}.png"
        plot_energy_profile(
            coordinate[mask], dft_rel[mask], {k: v[mask] for k, v in predicted_rel.items()}, path,
            xlabel="scan coordinate (Å) or image", title=group,
        )
        files[path.name] = path
        profiles.append(path.name)
    sites_plots = []
    reactive = {key: node.outputs.metrics[key].get_dict().get("reactive", {}) for key in node.outputs.metrics}
    systems = sorted({system for per_model in reactive.values() for system, r in per_model.items()
                      if r.get("kind") == "adsorption"})
    for system in systems:
        first = next(per_model[system] for per_model in reactive.values() if system in per_model)
        predicted_sites = {node.outputs.metrics[key]["model_name"]: per_model[system]["model_adsorption_energies_eV"]
                           for key, per_model in sorted(reactive.items()) if system in per_model}
        path = output / f"site_energies_{system}.png"
        plot_site_energies(first["sites"], first["dft_adsorption_energies_eV"], predicted_sites, path,
                           title=f"{system}: {first['definition']}")
        files[path.name] = path
        sites_plots.append(path.name)
    profiles = profiles + sites_plots
    stability = _by_model_name(node, "stability")
    neb = _by_model_name(node, "neb")
    if stability:
        files["stability.md"] = output / "stability.md"
        files["stability.md"].write_text(stability_markdown(stability))
    if neb:
        files["neb.md"] = output / "neb.md"
        files["neb.md"].write_text(neb_markdown(neb))
        first = next(iter(neb.values()))
        files["neb_profile.png"] = plot_neb_profiles(
            first["dft_relative_energies_eV"],
            {name: values["mlip_neb_relative_energies_eV"] for name, values in neb.items()},
            {name: values["model_on_dft_band_relative_energies_eV"] for name, values in neb.items()},
            output / "neb_profile.png", title="NEB: DFT against each model",
        )
        profiles.append("neb_profile.png")
    physics_html = ""
    if "physics" in node.outputs:  # the physics-aware checks: table and plots per model
        from aiida_reactmlip.report.physics import write_physics_section

        physics = {node.outputs.metrics[key]["model_name"] if key in node.outputs.metrics else key: value
                   for key, value in sorted(node.outputs.physics.items())}
        physics_files, physics_plots, physics_html = write_physics_section(physics, output)
        files.update(physics_files)
        profiles += physics_plots
    files["energy_parity.png"] = plot_energy_parity(dft_rel, predicted_rel, output / "energy_parity.png")
    files["force_parity.png"] = plot_force_parity(frames.forces, predicted_forces, output / "force_parity.png")
    files["index.html"] = output / "index.html"
    files["index.html"].write_text(_html(node, rows, reference_note, profiles, stability, neb, physics_html))
    from aiida_reactmlip.report.reaction_page import reaction_links, write_reaction_pages

    reactions = write_reaction_pages(node, output)  # one page per reaction (system), linked from the index
    files.update(reactions)
    links = reaction_links(sorted(name for name in reactions if name.endswith(".html")))
    files["index.html"].write_text(files["index.html"].read_text().replace('<div id="plots">', links + '<div id="plots">', 1))
    return files


def _by_model_name(node, namespace: str) -> dict[str, dict]:
    """``{model name: dict}`` of an output namespace (stability, neb) of the benchmark; empty if absent."""
    if namespace not in node.outputs:
        return {}
    return {node.outputs.metrics[key]["model_name"]: value.get_dict()
            for key, value in sorted(node.outputs[namespace].items())}


def _html(node, rows, reference_note: str, profiles: list[str], stability: dict | None = None,
          neb: dict | None = None, physics_html: str = "") -> str:
    extra = ""
    if physics_html:
        extra += ("<h2>Physics-aware checks: no DFT needed (docs/physics.md)</h2>" + physics_html
                  + "<p>Diatomic curves of the study's element pairs, NVE energy drift, a heating ramp to the "
                  "temperature at which the structure falls apart, library reaction energies [DFT].</p>")
    if neb:
        extra += ("<h2>NEB barrier: each model's own NEB against the DFT NEB</h2>"
                  + table("neb", neb_headers(), neb_rows(neb))
                  + "<p>Same end states, number of images, interpolation and climbing image as the DFT NEB; "
                  "'on DFT NEB band': the model's energies at the converged DFT images.</p>")
    if stability:
        extra += ("<h2>Structural stability: DFT minima relaxed with each model</h2>"
                  + table("stability", ["model"] + [h for _, h, _ in STABILITY_COLUMNS], stability_rows(stability))
                  + "<p>RMSD over all atoms after removing the rigid translation; bonds: 1.25 x covalent radii "
                  "with hysteresis; left site: the adsorbate's binding atom moved more than 1 &Aring; laterally "
                  "or to another high-symmetry site. Fixed atoms kept fixed.</p>")
    title = node.label or f"benchmark {node.pk}"
    return page(title, f"""<h1>{html.escape(title)}</h1>
<p>Zero-shot error of universal MLIPs against DFT (pw.x). BenchmarkWorkChain pk {node.pk},
dataset pk {node.outputs.dataset.pk} ({node.outputs.dataset.base.attributes.get("n_frames")} frames).</p>
{table("leaderboard", headers(rows), format_rows(rows))}
<p>Energies: {html.escape(reference_note)}. Forces compared component by component.</p>
{extra}
<div id="plots">{figures([*profiles, "energy_parity.png", "force_parity.png"])}</div>""")
