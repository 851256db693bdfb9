"""docs/optimade.md's ``optimade-scale`` block is the rendering of docs/results/optimade-scale.json."""

import json
import pathlib

from aiida_reactmlip.report.docs_blocks import read_block

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_scale_block_is_the_committed_json():
    from benchmarks.optimade_scale import BLOCK, render_markdown

    result = json.loads((ROOT / "docs" / "results" / "optimade-scale.json").read_text())
    assert read_block((ROOT / "docs" / "optimade.md").read_text(), BLOCK) == render_markdown(result).strip("\n"), \
        "docs/optimade.md differs from docs/results/optimade-scale.json: run `python -m benchmarks.optimade_scale " \
        "--docs-only`"


def test_scale_result_holds_the_measured_sizes():
    result = json.loads((ROOT / "docs" / "results" / "optimade-scale.json").read_text())
    steps = result["postgresql"]["steps"]
    assert [s["frames"] for s in steps] == sorted(s["frames"] for s in steps) and steps[-1]["frames"] == result["frames"]
    assert result["postgresql"]["database_dropped"] is True
    for step in steps:  # every step answered both filters, with matches
        for key, value in step["server"]["queries"].items():
            assert value["n"] == result["repeat"], key
        assert 0 < step["server"]["first_data_returned"] <= step["frames"]
    assert len(result["load_average"]) == 3 and result["command"].startswith("python -m benchmarks.optimade_scale")
