"""Run the bad-input catalogue and write ``docs/results/reliability-bad-inputs.json`` and the block
``reliability-bad-inputs`` of ``docs/reliability.md``.

Run: ``.venv/bin/python tests/reliability/make_bad_inputs_table.py`` (``-m tests.reliability...`` does not
work here: a package in the environment is called ``tests``). The catalogue runs
in pytest's temporary AiiDA profile (the same fixtures as ``tests/reliability/test_bad_inputs.py``: codes,
pseudopotential family, SevenNet-0), so the user's profile is never touched.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
RESULT_JSON = ROOT / "docs" / "results" / "reliability-bad-inputs.json"
DOCS_PAGE = ROOT / "docs" / "reliability.md"
BLOCK = "reliability-bad-inputs"
COMMAND = ".venv/bin/python tests/reliability/make_bad_inputs_table.py"
#: Set by :func:`main` for the pytest run it starts: the module fixture ``write_results_when_asked`` then writes.
WRITE_ENV = "REACTMLIP_BAD_INPUTS_WRITE"


def short_message(message: str, width: int = 160) -> str:
    """What the user read, on one line: from click's last ``Error:`` line on (progress and usage lines before it
    dropped, the prefix too; AiiDA's generic "Error occurred validating port 'inputs':" as well), squeezed to
    ``width`` characters."""
    lines = message.strip().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Error: ")]
    text = " ".join(lines[starts[-1]:])[len("Error: "):] if starts else " ".join(lines)
    text = re.sub(r"\s+", " ", text.replace("Error occurred validating port 'inputs': ", "")).strip()
    return text if len(text) <= width else text[: width - 1] + "…"


def render(result: dict) -> str:
    """The docs block: a summary line and one table row per case."""
    from aiida_reactmlip.report.docs_blocks import markdown_table

    rows = result["rows"]
    refused = sum(row["refused"] for row in rows)
    unchanged = sum(row["nodes_before"] == row["nodes_after"] for row in rows)
    by_surface = {s: sum(row["surface"] == s for row in rows) for s in ("cli", "api", "optimade")}
    head = (f"{len(rows)} bad inputs ({by_surface['cli']} CLI, {by_surface['api']} Python API, "
            f"{by_surface['optimade']} OPTIMADE): {refused} refused with the expected message and no traceback, "
            f"database unchanged after {unchanged}. From `{result['provenance']['command']}` "
            f"(`docs/results/reliability-bad-inputs.json`, commit {str(result['provenance']['git_commit'])[:10]}).")

    def short(row: dict) -> str:
        code = "" if row["exit_code"] is None else f" (exit {row['exit_code']})" if row["surface"] == "cli" else \
            f" (HTTP {row['exit_code']})"
        text = short_message(row["message"]).replace("`", "'")
        return f"`{text}`{code}"

    table = markdown_table(
        ["case", "surface", "what was wrong", "what the user got", "database unchanged"],
        [[row["id"], row["surface"], row["wrong"], short(row),
          "yes" if row["nodes_before"] == row["nodes_after"] else f"no ({row['nodes_after'] - row['nodes_before']:+d})"]
         for row in rows])
    return f"{head}\n\n{table}"


def write(rows: list[dict]) -> dict:
    """Write the JSON (provenance + rows) and the docs block; return the result."""
    from aiida_reactmlip.report.docs_blocks import provenance, write_block

    result = {"provenance": provenance(COMMAND), "rows": rows}
    RESULT_JSON.parent.mkdir(parents=True, exist_ok=True)
    RESULT_JSON.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    write_block(DOCS_PAGE, BLOCK, render(result))
    return result


def main() -> int:
    """Run the catalogue in pytest's temporary profile with writing switched on."""
    import pytest

    os.environ[WRITE_ENV] = "1"
    os.chdir(ROOT)
    code = pytest.main(["-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "reliability" / "test_bad_inputs.py"),
                        "-k", "refused or covers"])
    print(f"wrote {RESULT_JSON} and the block {BLOCK} of {DOCS_PAGE}" if RESULT_JSON.exists() else "nothing written")
    return int(code)


if __name__ == "__main__":
    if __package__ in (None, ""):
        sys.path.insert(0, str(ROOT))
    sys.exit(main())
