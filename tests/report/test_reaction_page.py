"""The reaction page of the benchmark report (report/reaction_page.py), opened in headless Chromium."""

import re
import subprocess

import pytest

from test_report import chromium_executable  # tests/report/test_report.py: installs Chromium if missing

from aiida_reactmlip.report.reaction_page import page_name, reaction_links, write_reaction_page


def dump_dom(path, profile_dir) -> str:
    return subprocess.run(
        [chromium_executable(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile_dir}", "--virtual-time-budget=5000", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout


def ref(pk, kind="Dict", label=""):
    return {"pk": pk, "uuid": f"00000000-0000-4000-8000-{pk:012d}", "type": kind, "label": label}


def synthetic_reaction() -> dict:
    """H on a slab: three sites (adsorption, site order), a two-step path, one relaxed minimum per model."""
    sites = ["hollow", "bridge", "top"]
    dft_ads = [-0.30, -0.10, 0.20]
    models = {}
    for k, (name, shift) in enumerate((("model-a", 0.05), ("model-b", -0.2))):
        model_ads = [e + shift * (i + 1) for i, e in enumerate(dft_ads)]
        models[name] = {
            "metrics_ref": ref(100 + k), "model_ref": ref(200 + k, "MlipModelData", name),
            "per_system": {"energy_mae": 0.02 * (k + 1), "force_mae": 0.1 * (k + 1), "force_rmse": 0.15 * (k + 1)},
            "reactive": {"kind": "adsorption", "adsorbate": "H", "definition": "E_ads(H) = E(slab+H) - E(slab) - 1/2 E(H2)",
                         "sites": sites, "dft_adsorption_energies_eV": dft_ads, "model_adsorption_energies_eV": model_ads,
                         "adsorption_energy_errors_eV": [m - d for m, d in zip(model_ads, dft_ads)],
                         "adsorption_energy_mae_eV": 0.1, "site_sites_by_dft": sites,
                         "site_sites_by_model": sites if k == 0 else ["bridge", "hollow", "top"],
                         "site_most_stable_agrees": k == 0, "site_kendall_tau": 1.0 if k == 0 else 0.33,
                         "site_n_misordered_pairs": k},
            "stability": [{"name": "h-bridge", "system": "h-slab", "rmsd_A": 0.4, "n_bonds_broken": 0, "n_bonds_formed": 1,
                           "dissociated": False, "adsorbate_site_reference": "bridge", "adsorbate_site_relaxed": "hollow",
                           "adsorbate_left_site": True, "converged": True}],
            "stability_ref": ref(300 + k), "neb": None, "neb_ref": None,
        }
    frames = []
    for i, (name, role, site, e) in enumerate((("slab", "reference", None, -100.0), ("h-hollow", "minimum", "hollow", -103.6),
                                              ("h-bridge", "minimum", "bridge", -103.4), ("h-top", "minimum", "top", -103.1))):
        frames.append({"index": i, "name": name, "role": role, "site": site, "group": "Cu12" if i == 0 else "Cu12H",
                       "n_atoms": 12 + (i > 0), "energy_eV": e, "max_force_eV_per_A": 0.1 * i, "coordinate": float(i),
                       "dft_relative_eV": 0.0 if i < 2 else e + 103.6, "source": ref(10 + i, "WorkflowNode", "PwBaseWorkChain"),
                       "model_relative_eV": {m: (0.0 if i < 2 else e + 103.6 + 0.05 * i) for m in models}})
    return {"system": "h-slab", "frames": frames, "benchmark": ref(1, "WorkChainNode", "BenchmarkWorkChain"),
            "dataset": ref(2, "LabelledDatasetData"), "models": models}


def test_page_name():
    assert page_name("h_on_cu110-path") == "reaction_h_on_cu110-path.html"
    assert page_name("a b/c") == "reaction_a_b_c.html" and page_name("") == "reaction_unnamed.html"
    assert 'href="reaction_x.html"' in reaction_links(["reaction_x.html"]) and reaction_links([]) == ""


def test_reaction_page_in_the_browser(tmp_path):
    data = synthetic_reaction()
    path = write_reaction_page(data, tmp_path)
    assert path.name == "reaction_h-slab.html"
    assert {p.name for p in tmp_path.glob("*.png")} == {"reaction_h-slab_profile_Cu12H.png", "reaction_h-slab_sites.png"}
    dom = dump_dom(path, tmp_path / "chromium-profile")
    loaded = re.search(r'data-images-loaded="(\d+)"', dom)
    total = re.search(r'data-images-total="(\d+)"', dom)
    assert loaded and total, dom[:2000]
    assert int(total.group(1)) == 2 and loaded.group(1) == total.group(1)  # profile and site energies decoded
    for element in ("adsorption", "site-order", "stability", "errors", "frames", "provenance"):
        assert f'id="{element}"' in dom, element
    # every pk on the page links to its row in the provenance table
    targets = set(re.findall(r'href="#node-([0-9a-f-]+)"', dom))
    rows = set(re.findall(r'<tr id="node-([0-9a-f-]+)"', dom))
    assert targets and targets <= rows
    assert "hollow &lt; bridge &lt; top" in dom and "bridge -&gt; hollow" in dom
    assert "verdi node show 200" in dom  # the model node of model-a


@pytest.mark.parametrize("kind", ["path"])
def test_path_and_neb_sections(tmp_path, kind):
    data = synthetic_reaction()
    for k, model in enumerate(data["models"].values()):
        model["reactive"] = {"kind": "path", "n_images": 3, "dft_barrier_eV": 0.5, "model_barrier_eV": 0.4 + 0.2 * k,
                             "barrier_error_eV": -0.1 + 0.2 * k, "dft_reaction_energy_eV": 0.0,
                             "model_reaction_energy_eV": 0.01, "reaction_energy_error_eV": 0.01,
                             "highest_image_agrees": True}
        model["neb"] = {"dft_neb_barrier_eV": 0.45, "mlip_neb_barrier_eV": 0.3, "neb_barrier_error_eV": -0.15,
                        "dft_band_barrier_error_eV": -0.05, "mlip_neb_converged": True,
                        "dft_relative_energies_eV": [0.0, 0.45, 0.0], "mlip_neb_relative_energies_eV": [0.0, 0.3, 0.0],
                        "model_on_dft_band_relative_energies_eV": [0.0, 0.4, 0.0]}
        model["neb_ref"] = ref(400 + k)
        model["stability"] = []
    path = write_reaction_page(data, tmp_path)
    text = path.read_text()
    assert 'id="path"' in text and 'id="neb"' in text and 'id="adsorption"' not in text
    assert "+0.100" in text and "-0.150" in text  # model-b's barrier error, the NEB barrier error (eV)
    assert (tmp_path / "reaction_h-slab_neb.png").exists()
