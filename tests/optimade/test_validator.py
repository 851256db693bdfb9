"""The real `optimade-validator` (optimade 1.5) against the served API: in-process and over HTTP on loopback."""

import socket
import threading
import time

import pytest


def _check(validator):
    validator.validate_implementation()
    results = validator.results
    messages = results.failure_messages + results.internal_failure_messages + results.optional_failure_messages
    assert results.failure_count == 0, messages
    assert results.internal_failure_count == 0, messages
    assert results.optional_failure_count == 0, messages
    assert results.success_count >= 50  # the mandatory tests did run (56 with optimade 1.5)
    return results


def test_validator_in_process(app, datasets):
    from fastapi.testclient import TestClient
    from optimade.validator import ImplementationValidator

    with TestClient(app, base_url="http://example.org", raise_server_exceptions=False) as client:
        _check(ImplementationValidator(client=client, verbosity=-1, run_optional_tests=True))


@pytest.fixture
def loopback_server(app):
    """uvicorn serving the app on a free 127.0.0.1 port in a thread of this process (same profile)."""
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_validator_over_http(loopback_server, datasets):
    from optimade.validator import ImplementationValidator

    _check(ImplementationValidator(base_url=loopback_server, verbosity=-1, run_optional_tests=True))
