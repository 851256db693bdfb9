"""What every reactmlip-runner parser shares: the runner's status.json and its exit codes."""

from __future__ import annotations

import json

from aiida.parsers import Parser

#: Written by the runner beside its input (see aiida_reactmlip.calculations.runner.write_status).
from aiida_reactmlip.calculations.runner import STATUS_FILE

#: Runner exit codes -> CalcJob exit code labels (every runner CalcJob defines these labels).
RUNNER_EXIT_CODES = {
    10: "ERROR_RUNNER_INPUT",
    11: "ERROR_ELEMENT_NOT_COVERED",
    12: "ERROR_MODEL_LOAD",
    13: "ERROR_RUNNER_FAILED",
    14: "ERROR_NOT_CONVERGED",
    15: "ERROR_TRAINING_DIVERGED",
}


def runner_status(parser: Parser) -> tuple[int, str]:
    """(exit code, message) from the retrieved status.json; (0, '') when the runner wrote none."""
    retrieved = parser.retrieved
    if STATUS_FILE not in retrieved.base.repository.list_object_names():
        return 0, ""
    status = json.loads(retrieved.base.repository.get_object_content(STATUS_FILE))
    return int(status.get("exit_code", 0)), status.get("message", "no message")
