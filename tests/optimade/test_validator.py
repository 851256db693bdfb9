"""The real `optimade-validator` (optimade 1.5) against the served API: in-process and over HTTP on loopback."""



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


def test_validator_over_http(loopback_server, datasets):
    from optimade.validator import ImplementationValidator

    _check(ImplementationValidator(base_url=loopback_server, verbosity=-1, run_optional_tests=True))
