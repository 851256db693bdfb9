"""Generated blocks in docs/: tables and figures written from a committed results JSON, never by hand.

A block is the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` in a Markdown page. The command
that measures writes ``docs/results/<file>.json`` (numbers, node UUIDs, git commit, machine, load) and
replaces the block from it; a test regenerates the block from the JSON and fails when the page differs.
Pure: no AiiDA.
"""

from __future__ import annotations

import datetime
import os
import pathlib
import platform
import subprocess

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def markers(name: str) -> tuple[str, str]:
    """The start and end comment lines of block ``name``."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def read_block(text: str, name: str) -> str:
    """The body of block ``name`` in ``text`` (between its markers, without them). KeyError if absent."""
    start, end = markers(name)
    if start not in text or end not in text:
        raise KeyError(f"the page has no block {name!r} (markers {start} ... {end})")
    return text.split(start, 1)[1].split(end, 1)[0].strip("\n")


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with the body of block ``name`` replaced by ``body``. KeyError if the markers are absent."""
    read_block(text, name)
    start, end = markers(name)
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body.strip(chr(10))}\n{end}{tail}"


def write_block(page: pathlib.Path, name: str, body: str) -> None:
    """Replace block ``name`` of the Markdown file ``page`` in place."""
    page.write_text(replace_block(page.read_text(), name, body))


def git_commit(root: pathlib.Path = REPO_ROOT) -> str | None:
    """HEAD's commit hash, or None outside a git checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def provenance(command: str) -> dict:
    """What every results JSON records beside its numbers: the command that regenerates it, when, the git commit,
    whether the checkout had uncommitted changes, the machine and its load averages (1, 5, 15 min)."""
    try:
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                                    capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        dirty = None
    return {
        "command": command,
        "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "git_dirty": dirty,
        "machine": {"logical_cores": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A GitHub Markdown table; cells are written with ``str`` (format numbers before)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|").replace("\n", " ") for cell in row) + " |"
              for row in rows]
    return "\n".join(lines)
