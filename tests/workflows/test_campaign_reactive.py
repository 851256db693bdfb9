"""Campaign keys for the reactive extras: relax_minima, relax_settings, dft_neb, mlip_neb_settings."""

import pathlib

import pytest

from aiida_reactmlip.specs.campaign import (
    CampaignSpec,
    SystemRequest,
    campaign_configurations,
    check_dft_neb,
    fixed_atoms_of,
    load_campaign,
    neb_end_structure,
)

WORKCHAINS = pathlib.Path(__file__).parents[2] / "workchains"


def growth_campaign_with_dft_neb(tmp_path):
    """workchains/cu-adatom-cu111.yaml with its dft_neb fcc -> hcp given again (the later key wins)."""
    text = (WORKCHAINS / "cu-adatom-cu111.yaml").read_text()
    text += ("dft_neb: {initial: cu-adatom-cu111-fcc, final: cu-adatom-cu111-hcp, num_images: 3, "
             "interpolation: idpp, climbing_image: true}\n")
    (tmp_path / "neb.yaml").write_text(text)
    return load_campaign(tmp_path / "neb.yaml")


def test_shipped_campaigns_relax_minima_and_a_dft_neb_between_growth_end_states(tmp_path):
    for name in ("h2-dissociation", "h-on-cu111", "cu-adatom-cu111"):
        assert load_campaign(WORKCHAINS / f"{name}.yaml").relax_minima, name
    spec = growth_campaign_with_dft_neb(tmp_path)
    assert spec.dft_neb["initial"] == "cu-adatom-cu111-fcc" and spec.dft_neb["final"] == "cu-adatom-cu111-hcp"
    initial, final = check_dft_neb(spec, "test")
    assert len(initial) == len(final) == 13
    # the end states differ by the adatom's hop only (fcc -> hcp hollow, 1.48 Å on Cu(111) at a = 3.63 Å)
    moved = ((initial.positions - final.positions) ** 2).sum(axis=1) ** 0.5
    assert (moved > 1e-6).sum() == 1 and moved.max() == pytest.approx(3.63 / 2**0.5 / 3**0.5, abs=0.01)


def test_relax_minima_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\nsystems: [h2-dissociation]\nmodels: [chgnet-0.3.0]\n")
    assert load_campaign(path).relax_minima  # campaign files: on unless `relax_minima: false`
    path.write_text("name: x\nsystems: [h2-dissociation]\nmodels: [chgnet-0.3.0]\nrelax_minima: false\n")
    assert not load_campaign(path).relax_minima
    # built in code (reactmlip demo): off unless asked
    assert not CampaignSpec(name="x", systems=[SystemRequest("h2-dissociation")], models=["chgnet-0.3.0"]).relax_minima


def test_builder_constraints_become_fixed_atoms():
    spec = load_campaign(WORKCHAINS / "h-on-cu111.yaml")
    fixed = {atoms.info["name"]: fixed_atoms_of(atoms) for atoms in campaign_configurations(spec)}
    assert fixed["cu111-slab"] == fixed["h-cu111-fcc"] == [0, 1, 2, 3]  # the bottom layer of the 2x2x3 slab
    assert fixed["h2-gas"] == []


BASE = "name: x\nsystems: [cu-adatom-cu111]\nmodels: [chgnet-0.3.0]\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dft_neb: {initial: cu-adatom-cu111-fcc}\n", "dft_neb needs 'final'"),
        ("dft_neb: {initial: cu-adatom-cu111-fcc, final: nowhere}\n", "dft_neb final 'nowhere' is not a configuration"),
        ("dft_neb: {initial: cu-adatom-cu111-fcc, final: cu-adatom-cu111-hcp, images: 3}\n",
         r"unknown dft_neb key\(s\) images"),
        ("dft_neb: {initial: cu-adatom-cu111-fcc, final: cu-adatom-cu111-hcp, num_images: 2}\n",
         "num_images counts the end states and must be >= 3"),
        ("dft_neb: {initial: cu111-slab, final: cu-adatom-cu111-hcp}\n", "same atoms in the same order"),
        ("dft_neb: [cu-adatom-cu111-fcc]\n", "'dft_neb' must be a mapping"),
        ("relax_minima: maybe\n", "'relax_minima' must be true or false"),
        ("relax_settings: 0.05\n", "'relax_settings' must be a mapping"),
        ("evaluate_settings: cuda\n", "'evaluate_settings' must be a mapping"),
        ("evaluate_settings: {device: cuda, processes: 4}\n",
         r"unknown evaluate_settings key\(s\) processes; known: device, batch_size, mode, compute_stress, workers"),
    ],
)
def test_bad_reactive_keys_refused(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(BASE + text)
    with pytest.raises(ValueError, match=message):
        load_campaign(path)


def test_neb_end_states_have_one_kind_per_element(aiida_profile, tmp_path):
    """The slab builders tag layers (StructureData kinds Cu, Cu1, ...); neb.x needs one kind per element."""
    from aiida.orm import StructureData

    from aiida_reactmlip.workflows.dft_neb import _check_end_states

    spec = growth_campaign_with_dft_neb(tmp_path)
    initial, final = check_dft_neb(spec, "test")
    assert len(StructureData(ase=initial).kinds) > 1  # the labelled structure: one kind per layer tag
    ends = [neb_end_structure(atoms, {"system": "cu-adatom-cu111", "multiplicity": 1}) for atoms in (initial, final)]
    assert [kind.name for kind in ends[0].kinds] == ["Cu"]
    assert _check_end_states(*ends) is None
    assert ends[1].base.extras.get("system") == "cu-adatom-cu111"
    for structure, atoms in zip(ends, (initial, final)):
        assert abs(structure.get_ase().positions - atoms.positions).max() < 1e-10  # (stored: JSON round trip)


def test_campaign_builder_carries_neb_options_fixed_atoms_and_evaluate_settings(tmp_path, aiida_profile):
    """What the growth campaign with a dft_neb hands to reactmlip.benchmark (no process is run)."""
    import json

    from aiida_reactmlip.specs.campaign import campaign_builder
    from aiida_reactmlip.workflows.dft_neb import band_fixed_atoms

    text = (WORKCHAINS / "cu-adatom-cu111.yaml").read_text().replace("models: all", "models: [chgnet-0.3.0]")
    text += ("dft_neb: {initial: cu-adatom-cu111-fcc, final: cu-adatom-cu111-hcp, num_images: 3}\n"
             "evaluate_settings: {workers: 1, device: cpu}\n")
    (tmp_path / "c.yaml").write_text(text)
    spec = load_campaign(tmp_path / "c.yaml")
    builder = campaign_builder(spec)
    assert builder.evaluate_settings.get_dict() == {"workers": 1, "device": "cpu"}
    assert builder.dft_neb.relax_end_states.value is True  # the campaign default
    initial = builder.dft_neb.initial
    # the 2x2x3 slab's bottom layer (4 Cu) fixed by the builder reaches neb.x through the extra
    assert json.loads(initial.base.extras.get("fixed_atoms")) == [0, 1, 2, 3]
    assert band_fixed_atoms(initial) == [0, 1, 2, 3]
    assert {kind.name for kind in initial.kinds} == {"Cu"}  # one kind per element for neb.x
    assert set(builder.models) == {"chgnet_0_3_0"}
