"""Measure daemon faults at full size and write docs/results/reliability-daemon-faults.json and its block of
docs/reliability.md (about 5-10 minutes on 2 cores; needs PostgreSQL and RabbitMQ on localhost).

Usage, from the repository root: .venv/bin/python tests/reliability/daemon_faults_run.py [--size full|small]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import daemon_reports  # noqa: E402
from psql_profile import run_scenario, services_missing  # noqa: E402

SCENARIO = pathlib.Path(__file__).resolve().with_name("daemon_faults_scenario.py")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["full", "small"], default="full")
    args = parser.parse_args(argv)
    missing = services_missing()
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="rel_faults_") as tmp:
        result = run_scenario(SCENARIO, [str(pathlib.Path(tmp) / "repository"), "--size", args.size],
                              pathlib.Path(tmp), timeout=1800)
    command = daemon_reports.FAULTS_COMMAND + ("" if args.size == "full" else " --size small")
    daemon_reports.save(result, daemon_reports.FAULTS_JSON, command, daemon_reports.FAULTS_BLOCK)
    print(daemon_reports.render_faults(daemon_reports._load(daemon_reports.FAULTS_JSON)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
