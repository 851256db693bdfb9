"""OPTIMADE latency: ``GET /v1/structures?filter=elements HAS "Cu"&page_limit=100`` over N labelled frames.

Stores ``frames`` labelled structures (datasets of ``per_dataset`` frames; half of the datasets are
Cu/O slab fragments, half H2/N2/CO molecules) in throw-away SQLite and PostgreSQL profiles, serves
them with :func:`aiida_reactmlip.optimade.app.create_reactmlip_app`, and serves the same structures
(exported as OPTIMADE JSONL with the same mapping) with the stock optimade server on mongomock.
Each server is called in-process (Starlette TestClient, no network): one cold request, ``warmup``
requests, then ``repeat`` timed requests; median and p95 in ms. The PostgreSQL database and both
profiles are deleted afterwards.

``python -m benchmarks.optimade_latency [--frames 10000] [--repeat 30] [--no-psql]``
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib

NAME = "optimade_latency"
DESCRIPTION = 'OPTIMADE GET /structures?filter=elements HAS "Cu": AiiDA SQLite / PostgreSQL vs stock mongomock'
DEFAULT_FRAMES = 10_000
QUERY = '/v1/structures?filter=elements HAS "Cu"&page_limit=100'
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


def _datasets(n_frames: int, per_dataset: int, seed: int = 0):
    """Frames objects: alternately Cu/O fragments (4-9 atoms, periodic) and small molecules (2 atoms)."""
    import numpy as np

    from aiida_reactmlip.frames import Frames

    rng = np.random.default_rng(seed)
    out, made, k = [], 0, 0
    while made < n_frames:
        count = min(per_dataset, n_frames - made)
        numbers, positions, cells, pbc, n_atoms = [], [], [], [], []
        for _ in range(count):
            if k % 2 == 0:
                n_cu = int(rng.integers(3, 9))
                z = [29] * n_cu + ([8] if rng.random() < 0.5 else [])
                cell, periodic = np.diag([7.5, 7.5, 15.0]), [True, True, False]
            else:
                z = [[1, 1], [7, 7], [6, 8]][int(rng.integers(0, 3))]
                cell, periodic = np.zeros((3, 3)), [False, False, False]
            numbers += z
            positions.append(rng.uniform(0, 6, (len(z), 3)))
            cells.append(cell)
            pbc.append(periodic)
            n_atoms.append(len(z))
        n_total = len(numbers)
        out.append(Frames(numbers=np.array(numbers), positions=np.concatenate(positions), cells=np.array(cells),
                          pbc=np.array(pbc), n_atoms=np.array(n_atoms), energies=rng.uniform(-200, -10, count),
                          forces=rng.normal(0, 0.1, (n_total, 3)), stress=np.full((count, 6), np.nan),
                          info=[{"system": "bench", "role": "md"} for _ in range(count)]))
        made += count
        k += 1
    return out


def _time(client, repeat: int, warmup: int) -> dict:
    import numpy as np

    t0 = time.perf_counter()
    first = client.get(QUERY)
    cold = (time.perf_counter() - t0) * 1e3
    assert first.status_code == 200, first.text[:500]
    body = first.json()
    for _ in range(warmup):
        client.get(QUERY)
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        response = client.get(QUERY)
        samples.append((time.perf_counter() - t0) * 1e3)
        assert response.status_code == 200
    return {"cold_ms": round(cold, 1), "median_ms": round(float(np.median(samples)), 1),
            "p95_ms": round(float(np.percentile(samples, 95)), 1), "data_returned": body["meta"]["data_returned"],
            "page": len(body["data"]), "repeat": repeat}


def _measure(frames: int, per_dataset: int, repeat: int, warmup: int, psql: bool) -> dict:
    """Runs inside a fresh process whose AIIDA_PATH is a temporary folder."""
    from aiida import load_profile
    from aiida.manage.configuration import create_profile, get_config
    from fastapi.testclient import TestClient

    from aiida_reactmlip.data.dataset import LabelledDatasetData
    from aiida_reactmlip.optimade.app import create_reactmlip_app, reactmlip_config
    from aiida_reactmlip.optimade.mapping import frame_to_structure_attributes, strip_provider_prefix, structure_id

    all_frames = _datasets(frames, per_dataset)
    config = get_config(create=True)
    workdir = tempfile.mkdtemp(prefix="optimade-bench-")
    result = {"frames": frames, "datasets": len(all_frames), "query": QUERY, "backends": {}}
    backends = [("aiida-sqlite", "core.sqlite_dos")] + ([("aiida-postgresql", "core.psql_dos")] if psql else [])
    stored = None
    for label, storage in backends:
        name = f"bench_optimade_{uuidlib.uuid4().hex[:8]}"
        if storage == "core.psql_dos":
            import psycopg

            with psycopg.connect(dbname="postgres", autocommit=True, **PG) as connection:
                connection.execute(f'CREATE DATABASE "{name}"')
            storage_config = {"database_engine": "postgresql_psycopg", "database_hostname": PG["host"],
                              "database_port": PG["port"], "database_username": PG["user"], "database_password": "",
                              "database_name": name, "repository_uri": f"file://{workdir}/{name}-repo"}
        else:
            storage_config = {"filepath": f"{workdir}/{name}"}
        try:
            create_profile(config, storage_backend=storage, storage_config=storage_config, name=name,
                           email="bench@localhost")
            config.store()
            load_profile(name, allow_switch=True)
            t0 = time.perf_counter()
            nodes = [LabelledDatasetData(frames=f).store() for f in all_frames]
            store_s = time.perf_counter() - t0
            stored = [(n.uuid, n.ctime, f) for n, f in zip(nodes, all_frames)]
            client = TestClient(create_reactmlip_app(name), base_url="http://example.org")
            result["backends"][label] = {**_time(client, repeat, warmup), "store_s": round(store_s, 1)}
        finally:
            from aiida.manage import get_manager

            get_manager().unload_profile()
            config.remove_profile(name)
            config.store()
            if storage == "core.psql_dos":
                import psycopg

                with psycopg.connect(dbname="postgres", autocommit=True, **PG) as connection:
                    connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                result["backends"].setdefault(label, {})["database_dropped"] = True

    # the stock optimade server on mongomock, same structures, exported as OPTIMADE JSONL
    jsonl = os.path.join(workdir, "structures.jsonl")
    with open(jsonl, "w") as handle:
        handle.write(json.dumps({"x-optimade": {"meta": {"api_version": "1.2.0"}}}) + "\n")
        for uuid, ctime, f in stored:
            for i in range(len(f)):
                attributes = frame_to_structure_attributes(f, i, {"uuid": uuid, "last_modified": ctime.isoformat()})
                entry = {"type": "structures", "id": structure_id(uuid, i), "attributes": strip_provider_prefix(attributes)}
                handle.write(json.dumps(entry) + "\n")
    from optimade.server.create_app import create_app

    stock_config = reactmlip_config(database_backend="mongomock", insert_from_jsonl=jsonl,
                                    mongo_database=f"bench_{uuidlib.uuid4().hex[:8]}", create_default_index=True)
    t0 = time.perf_counter()
    stock = TestClient(create_app(stock_config, logger_tag="stock"), base_url="http://example.org")
    load_s = time.perf_counter() - t0
    result["backends"]["stock-mongomock"] = {**_time(stock, repeat, warmup), "store_s": round(load_s, 1)}
    shutil.rmtree(workdir, ignore_errors=True)
    return result


def run(frames: int | None = None, console=None, per_dataset: int = 100, repeat: int = 30, warmup: int = 3,
        psql: bool = True, **_options) -> dict:
    """Measure in a child process with a throw-away AIIDA_PATH; returns the result dict (times in ms)."""
    frames = frames or DEFAULT_FRAMES
    with tempfile.TemporaryDirectory(prefix="optimade-bench-aiida-") as aiida_path:
        env = {**os.environ, "AIIDA_PATH": aiida_path, "REACTMLIP_OPTIMADE_LOG_DIR": aiida_path}
        args = [sys.executable, "-m", "benchmarks.optimade_latency", "--child", "--frames", str(frames),
                "--per-dataset", str(per_dataset), "--repeat", str(repeat), "--warmup", str(warmup)]
        if not psql:
            args.append("--no-psql")
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        proc = subprocess.run(args, env=env, cwd=root, capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(f"optimade_latency child failed:\n{proc.stderr[-3000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    if console is not None:
        render(result, console)
    return result


def render(result: dict, console) -> None:
    from rich.table import Table

    table = Table(title=f"{result['query']} over {result['frames']} structures ({result['datasets']} datasets)")
    for column in ("server", "median (ms)", "p95 (ms)", "cold (ms)", "data_returned", "store/load (s)"):
        table.add_column(column)
    for name, row in result["backends"].items():
        table.add_row(name, str(row.get("median_ms")), str(row.get("p95_ms")), str(row.get("cold_ms")),
                      str(row.get("data_returned")), str(row.get("store_s")))
    console.print(table)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.optimade_latency", description=DESCRIPTION)
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES)
    parser.add_argument("--per-dataset", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-psql", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        out = _measure(args.frames, args.per_dataset, args.repeat, args.warmup, not args.no_psql)
        print(json.dumps(out))
    else:
        from rich.console import Console

        res = run(args.frames, Console(width=150), per_dataset=args.per_dataset, repeat=args.repeat,
                  warmup=args.warmup, psql=not args.no_psql)
        print(json.dumps(res, indent=1))
