"""Campaign files with the user's own structures (`structures: {file: ...}`) beside or instead of library systems."""

import json

import ase.io
import pytest
from ase.build import add_adsorbate, fcc100, molecule

from aiida_reactmlip.specs.campaign import campaign_configurations, check_dft_neb, load_campaign


def user_file(folder):
    """H on Cu(100) as a user writes it: slab, H2, H on two sites, and a hop between two hollows."""
    slab = fcc100("Cu", size=(2, 2, 3), vacuum=6.0)
    slab.info.update(role="slab", name="cu100")
    h2 = molecule("H2", cell=[10, 10, 10], pbc=True)
    h2.center()
    h2.info.update(role="gas", name="h2")
    frames = [slab, h2]
    for site, height in (("hollow", 0.5), ("bridge", 1.1)):
        atoms = slab.copy()
        atoms.info.update(role="minimum", name=f"h-{site}")
        add_adsorbate(atoms, "H", height, site)
        frames.append(atoms)
    initial = frames[2].copy()
    initial.info.update(role="initial", name="hop-a")
    final = initial.copy()
    final.positions[-1, 0] += slab.cell[0, 0] / 2
    final.info.update(role="final", name="hop-b")
    frames += [initial, final]
    ase.io.write(folder / "h_cu100.extxyz", frames, format="extxyz")


def campaign(folder, extra=""):
    (folder / "c.yaml").write_text(
        "name: my-h-cu100\nmodels: [chgnet-0.3.0]\nprotocol: fast\n"
        "structures: {file: h_cu100.extxyz}\n" + extra)
    return folder / "c.yaml"


def test_user_structures_become_configurations(tmp_path):
    user_file(tmp_path)
    spec = load_campaign(campaign(tmp_path, "dft_neb: {initial: hop-a, final: hop-b, num_images: 3}\n"))
    assert spec.systems == [] and spec.structures[0]["system"] == "h_cu100"
    configurations = {a.info["name"]: a.info for a in campaign_configurations(spec)}
    assert configurations["cu100"]["kind"] == "slab" and configurations["h2"]["kind"] == "molecule"
    assert configurations["h-hollow"]["site"] == "hollow" and configurations["h-bridge"]["site"] == "bridge"
    assert configurations["hop-a"]["system"] == "h_cu100-path"
    assert json.loads(configurations["hop-a"]["fixed_atoms"]) == [0, 1, 2, 3]  # ASE's tags: the bottom layer
    initial, final = check_dft_neb(spec, "test")
    assert not initial.get_tags().any()  # one kind per element for neb.x


def test_library_systems_and_user_structures_together(tmp_path):
    user_file(tmp_path)
    spec = load_campaign(campaign(tmp_path, "systems: [h2-dissociation]\n"))
    systems = {a.info["system"] for a in campaign_configurations(spec)}
    assert {"h2-dissociation", "h_cu100", "h_cu100-path"} <= systems


@pytest.mark.parametrize("extra, match", [
    ("", None),
    ("dft_neb: {initial: hop-a, final: nowhere}\n", "dft_neb final 'nowhere' is not a configuration of the campaign"),
])
def test_dft_neb_names_user_frames(tmp_path, extra, match):
    user_file(tmp_path)
    if match is None:
        load_campaign(campaign(tmp_path, extra))
    else:
        with pytest.raises(ValueError, match=match):
            load_campaign(campaign(tmp_path, extra))


def test_bad_structures_refused_with_the_file(tmp_path):
    (tmp_path / "c.yaml").write_text("name: x\nmodels: [chgnet-0.3.0]\nstructures: {file: missing.extxyz}\n")
    with pytest.raises(ValueError, match="structures file missing.extxyz not found"):
        load_campaign(tmp_path / "c.yaml")
    bad = molecule("H2", cell=[10, 10, 10], pbc=True)
    bad.info["role"] = "adsorbate"
    ase.io.write(tmp_path / "bad.extxyz", [bad], format="extxyz")
    (tmp_path / "c.yaml").write_text("name: x\nmodels: [chgnet-0.3.0]\nstructures: [{file: bad.extxyz}]\n")
    with pytest.raises(ValueError, match=r"bad.extxyz: frame 0: unknown role 'adsorbate'"):
        load_campaign(tmp_path / "c.yaml")
    (tmp_path / "c.yaml").write_text("name: x\nmodels: [chgnet-0.3.0]\n")
    with pytest.raises(ValueError, match="'systems' is required \\(library systems\\), or 'structures' \\(your own file\\)"):
        load_campaign(tmp_path / "c.yaml")


def test_builder_carries_user_info_to_the_labels_and_the_neb(tmp_path, aiida_profile):
    from aiida_reactmlip.specs.campaign import campaign_builder
    from aiida_reactmlip.workflows.dft_neb import band_fixed_atoms

    user_file(tmp_path)
    spec = load_campaign(campaign(tmp_path, "dft_neb: {initial: hop-a, final: hop-b, num_images: 3}\n"))
    builder = campaign_builder(spec)
    extras = {key: s.base.extras.all for key, s in builder.label.structures.items()}
    slab = extras["h_cu100_cu100"]
    assert slab["kind"] == "slab" and slab["role"] == "reference" and json.loads(slab["fixed_atoms"]) == [0, 1, 2, 3]
    assert extras["h_cu100_h_hollow"]["adsorbate"] == "H" and extras["h_cu100_h_hollow"]["minimum"] is True
    assert band_fixed_atoms(builder.dft_neb.initial) == [0, 1, 2, 3]
    assert builder.dft_neb.relax_end_states.value is True


@pytest.mark.pwx
@pytest.mark.mlip
@pytest.mark.slow
def test_campaign_run_with_a_user_file_and_its_dft_neb(tmp_path, codes, pseudo_family, registry_models):
    """`reactmlip campaign run` on a user's own file (H + H2 exchange, written with ASE): pw.x labels, a DFT NEB
    with neb.x between the file's initial and final states (end states optimised), SevenNet-0's own NEB, and the
    reaction page of the report. A molecule keeps this near a few minutes; a slab runs the same way."""
    import re

    from ase import Atoms
    from click.testing import CliRunner

    from aiida_reactmlip.cli import cmd_root

    def h3(r_ab, r_bc):
        return Atoms("H3", positions=[[3, 3, 4.5 - r_ab], [3, 3, 4.5], [3, 3, 4.5 + r_bc]], cell=[6, 6, 9], pbc=True)

    initial, final = h3(0.75, 2.0), h3(2.0, 0.75)
    initial.info.update(role="initial", name="h2-h")
    final.info.update(role="final", name="h-h2")
    ase.io.write(tmp_path / "exchange.extxyz", [initial, final], format="extxyz")
    (tmp_path / "c.yaml").write_text(
        "name: user-exchange\nmodels: [sevennet-0]\nprotocol: fast\nrelax_minima: false\n"
        "structures: {file: exchange.extxyz}\n"
        "dft_neb: {initial: h2-h, final: h-h2, num_images: 3, interpolation: linear,\n"
        "          parameter_overrides: {SYSTEM: {ecutrho: 120.0}}}\n")
    result = CliRunner().invoke(cmd_root, ["campaign", "run", str(tmp_path / "c.yaml"), "--output", str(tmp_path / "r")],
                                catch_exceptions=False, env={"REACTMLIP_LOG_DIR": str(tmp_path / "logs"), "COLUMNS": "200"})
    print(result.output)
    assert result.exit_code == 0, result.output
    assert "[REPORT]" not in result.output and "log: " in result.output
    node_pk = int(re.search(r"BenchmarkWorkChain pk (\d+)", result.output).group(1))
    from aiida import orm

    node = orm.load_node(node_pk)
    neb = node.outputs.neb["sevennet_0"].get_dict()
    assert 0.0 < neb["dft_neb_barrier_eV"] < 0.42  # PBE under the exact 0.42 eV of H + H2
    (dft_neb,) = [n for n in node.called if n.process_label == "DftNebWorkChain"]
    assert dft_neb.inputs.relax_end_states.value is True
    pages = {p.name for p in (tmp_path / "r").glob("reaction_*.html")}
    assert any('id="neb"' in (tmp_path / "r" / p).read_text() for p in pages), pages
