"""The production path: PostgreSQL storage, RabbitMQ broker, a daemon worker, a submitted pw.x WorkChain."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.daemon, pytest.mark.pwx]


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_submit_label_workchain_to_daemon_on_postgres_and_rabbitmq(tmp_path):
    assert _port_open(5432), "PostgreSQL is not running on 127.0.0.1:5432 (.ci/run starts it)"
    assert _port_open(5672), "RabbitMQ is not running on 127.0.0.1:5672 (.ci/run starts it)"
    env = dict(os.environ)
    env["AIIDA_PATH"] = str(tmp_path / "aiida")
    env["PATH"] = f"{pathlib.Path(sys.executable).parent}:{env['PATH']}"
    script = pathlib.Path(__file__).with_name("daemon_roundtrip.py")
    process = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "repository")],
        env=env, capture_output=True, text=True, timeout=600,
    )
    lines = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"no result; stdout:\n{process.stdout[-3000:]}\nstderr:\n{process.stderr[-3000:]}"
    result = json.loads(lines[-1][len("RESULT "):])

    assert result["storage"] == "core.psql_dos"
    assert result["broker"] == "core.rabbitmq"
    assert result["database_dropped"] is True
    assert result["terminated"], result
    assert result["exit_status"] == 0, result.get("report")
    assert result["process_type"] == "aiida.workflows:reactmlip.label"
    # Two frames labelled by two pw.x runs of the daemon; stretched H2 lies above the equilibrium one.
    assert result["forces_shape"] == [4, 3]
    assert result["pw_calcs_finished"] >= 2
    energies = dict(zip(result["names"], result["energies"]))
    assert -33.0 < energies["h2-0.74"] < -29.0  # eV: H2 total energy with these PAW files
    assert 0.5 < energies["h2-1.00"] - energies["h2-0.74"] < 1.5  # eV
    assert len(set(result["source_uuids"])) == 2
