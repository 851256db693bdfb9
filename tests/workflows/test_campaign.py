"""Campaign files: every shipped one loads; bad files are refused with the key named."""

import pathlib

import pytest

from aiida_reactmlip.specs.campaign import campaign_configurations, load_campaign

#: the zero-shot benchmark campaigns (finetune-*.yaml and loop-*.yaml are other kinds of studies)
CAMPAIGNS = sorted(path for path in (pathlib.Path(__file__).parents[2] / "workchains").glob("*.yaml")
                   if not path.name.startswith(("finetune-", "loop-")))


def test_one_campaign_per_category_is_shipped():
    categories = {load_campaign(path).category for path in CAMPAIGNS}
    assert {"adsorption", "dissociation", "crystal_growth"} <= categories


@pytest.mark.parametrize("path", CAMPAIGNS, ids=lambda p: p.stem)
def test_shipped_campaigns_load_and_are_sized_for_this_machine(path):
    spec = load_campaign(path)
    configurations = campaign_configurations(spec)
    assert 2 <= len(configurations) <= 12
    assert max(len(atoms) for atoms in configurations) <= 16
    assert spec.protocol == "fast"
    # Every offline model of the registry takes part.
    assert set(spec.models) == {"chgnet-0.3.0", "chgnet-0.2.0", "chgnet-r2scan", "sevennet-0",
                                "sevennet-0-22may2024", "sevennet-l3i5"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nsystems: [h2-dissociation]\nmodels: [chgnet-0.3.0]\ncolour: red\n", "unknown key\\(s\\) colour"),
        ("name: x\nsystems: [no-such-system]\nmodels: [chgnet-0.3.0]\n", "unknown system 'no-such-system'"),
        ("name: x\nsystems: [h2-dissociation]\nmodels: [gpt-mlip]\n", "gpt-mlip.*chgnet-0.3.0"),
        ("name: x\nsystems: [h2-dissociation]\nmodels: [chgnet-0.3.0]\nprotocol: ultra\n", "unknown protocol 'ultra'"),
        ("name: x\nmodels: [chgnet-0.3.0]\n", "'systems' is required"),
        ("name: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_campaign_files_are_refused(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises((ValueError, KeyError), match=message):
        load_campaign(path)
