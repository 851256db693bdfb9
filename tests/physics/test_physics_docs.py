"""docs/physics.md's tables are generated from docs/results/physics.json, never typed."""

import json
import pathlib

from aiida_reactmlip.report.docs_blocks import read_block
from aiida_reactmlip.report.physics import docs_table

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_physics_tables_match_their_json():
    record = json.loads((ROOT / "docs" / "results" / "physics.json").read_text())
    text = (ROOT / "docs" / "physics.md").read_text()
    assert {"C-H", "H-Cu"} <= set(record["studies"])
    for name, study in record["studies"].items():
        assert read_block(text, f"physics-table:{name}") == docs_table(study), (
            f"docs/physics.md table {name} differs from docs/results/physics.json: "
            "run `.venv/bin/python benchmarks/physics_checks.py table`"
        )
        # every model of the study has a row, and every row names a model of the study
        assert sorted(row["model"] for row in study["rows"]) == sorted(study["models"])
