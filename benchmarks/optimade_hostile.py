"""OPTIMADE hostile requests: each request of the catalogue, its answer and cost; a 2,000-request flood.

Stores ``frames`` labelled structures (datasets of 100 frames, as ``optimade_latency``) in a throw-away
SQLite profile, serves them with :func:`aiida_reactmlip.optimade.app.create_reactmlip_app` in-process
(Starlette TestClient; URLs over 60 kB straight through ASGI), warms the frame cache with one request,
then sends every request of :func:`aiida_reactmlip.optimade.hostile.catalogue` ``repeat`` times (the
slowest wall and CPU time is kept), floods the app with ``flood`` requests of
:func:`~aiida_reactmlip.optimade.hostile.flood_requests` (RSS and database connections sampled), and
compares the database fingerprint before and after everything. Writes
``docs/results/optimade-hostile.json`` and regenerates the table in ``docs/optimade.md`` from it.

``python -m benchmarks optimade_hostile [--frames 3000]``, or
``python -m benchmarks.optimade_hostile [--frames 3000] [--flood 2000] [--repeat 3] [--docs-only]``.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

NAME = "optimade_hostile"
DESCRIPTION = "OPTIMADE hostile/malformed requests: answer codes, time per request, flood memory, read-only check"
DEFAULT_FRAMES = 3_000
ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULT_JSON = ROOT / "docs" / "results" / "optimade-hostile.json"
DOCS = ROOT / "docs" / "optimade.md"


def _measure(frames: int, per_dataset: int, repeat: int, flood: int) -> dict:
    """Runs inside a fresh process (its own temporary AIIDA_PATH and profile)."""
    import dataclasses

    from ._common import cpu_busy_fraction, machine_info, temporary_profile
    from .optimade_latency import _datasets

    temporary_profile()
    from fastapi.testclient import TestClient

    from aiida_reactmlip.data.dataset import LabelledDatasetData
    from aiida_reactmlip.optimade import hostile
    from aiida_reactmlip.optimade.app import create_reactmlip_app
    from aiida_reactmlip.optimade.guard import DEFAULT_LIMITS

    t0 = time.perf_counter()
    nodes = [LabelledDatasetData(frames=f).store() for f in _datasets(frames, per_dataset)]
    store_s = time.perf_counter() - t0
    sample_id, dataset_uuid = f"{nodes[0].uuid}:1", nodes[0].uuid
    result: dict = {"frames": frames, "datasets": len(nodes), "store_s": round(store_s, 1),
                    "limits": dataclasses.asdict(DEFAULT_LIMITS), "repeat": repeat, "machine": machine_info()}
    with TestClient(create_reactmlip_app(), base_url="http://example.org") as client:
        t0 = time.perf_counter()
        assert client.get("/v1/structures?page_limit=1").status_code == 200
        result["cold_cache_s"] = round(time.perf_counter() - t0, 1)
        before = hostile.database_fingerprint()
        result["cpu_busy_fraction_before"] = cpu_busy_fraction()
        rows = hostile.run_catalogue(client, hostile.catalogue(sample_id, dataset_uuid), repeat=repeat)
        result["rows"] = rows
        result["flood"] = hostile.flood(client, hostile.flood_requests(sample_id), flood)
        after = hostile.database_fingerprint()
    result["readonly"] = {"before": before, "after": after, "unchanged": before == after}
    worst = max(rows, key=lambda row: row["wall_ms"])
    result["worst"] = {key: worst[key] for key in ("name", "status", "wall_ms", "cpu_ms")}
    result["answers_500"] = sum(1 for row in rows if row["status"] >= 500 and row["status"] != 501)
    result["problems"] = {row["name"]: row["problems"] for row in rows if row["problems"]}
    result["ok"] = result["readonly"]["unchanged"] and not result["problems"] and not result["answers_500"]
    return result


def write_docs(result: dict) -> None:
    """Replace the generated table of docs/optimade.md with the one of ``result``."""
    from aiida_reactmlip.optimade.hostile import replace_docs_block

    DOCS.write_text(replace_docs_block(DOCS.read_text(), result))


def run(frames: int | None = None, console=None, per_dataset: int = 100, repeat: int = 3, flood: int = 2000,
        **_options) -> dict:
    """Measure in a child process with a throw-away AIIDA_PATH; write the JSON and the docs table."""
    frames = frames or DEFAULT_FRAMES
    with tempfile.TemporaryDirectory(prefix="optimade-hostile-") as logs:
        env = {**os.environ, "REACTMLIP_OPTIMADE_LOG_DIR": logs}
        env.pop("AIIDA_PATH", None)
        args = [sys.executable, "-m", "benchmarks.optimade_hostile", "--child", "--frames", str(frames),
                "--per-dataset", str(per_dataset), "--repeat", str(repeat), "--flood", str(flood)]
        proc = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=3600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"optimade_hostile child failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    RESULT_JSON.parent.mkdir(parents=True, exist_ok=True)
    RESULT_JSON.write_text(json.dumps(result, indent=1) + "\n")
    write_docs(result)
    if console is not None:
        render(result, console)
    return result


def render(result: dict, console) -> None:
    from rich.table import Table

    table = Table(title=f"hostile OPTIMADE requests over {result['frames']} structures ({result['datasets']} datasets)")
    for column in ("request", "status", "wall (ms)", "CPU (ms)", "problems"):
        table.add_column(column)
    for row in result["rows"]:
        table.add_row(row["name"], str(row["status"]), f"{row['wall_ms']:.1f}", f"{row['cpu_ms']:.1f}",
                      "; ".join(row["problems"]))
    console.print(table)
    flood = result["flood"]
    console.print(f"worst request: {result['worst']}; flood: {flood['requests']} requests in {flood['seconds']} s, "
                  f"RSS {flood['rss_mib'][0]} -> {flood['rss_mib'][-1]} MiB, connections "
                  f"{flood['connections_before']} -> {flood['connections_after']}; database unchanged: "
                  f"{result['readonly']['unchanged']}")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.optimade_hostile", description=DESCRIPTION)
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES)
    parser.add_argument("--per-dataset", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--flood", type=int, default=2000)
    parser.add_argument("--docs-only", action="store_true",
                        help=f"only regenerate the docs table from {RESULT_JSON.relative_to(ROOT)}")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(args.frames, args.per_dataset, args.repeat, args.flood), default=str))
    elif args.docs_only:
        write_docs(json.loads(RESULT_JSON.read_text()))
    else:
        from rich.console import Console

        res = run(args.frames, Console(width=150), per_dataset=args.per_dataset, repeat=args.repeat, flood=args.flood)
        sys.exit(0 if res["ok"] else 1)
