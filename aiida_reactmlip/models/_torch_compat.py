"""Compatibility shims between torch and the MLIP packages (no aiida, no heavy imports at module load).

e3nn 0.4.4 (pulled in by sevenn and mace-torch) calls ``torch.load`` on its bundled ``constants.pt``
at import time.  That file contains pickled ``slice`` objects, which torch >= 2.6 refuses to unpickle
under its default ``weights_only=True`` policy, so ``import sevenn`` / ``import mace`` fail with an
``UnpicklingError``.  Allow-listing ``slice`` (a harmless builtin) before e3nn is imported fixes it
without switching the weights-only safety off globally (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``).
"""

from __future__ import annotations

_DONE = False


def allow_e3nn_constants() -> None:
    """Let ``torch.load(weights_only=True)`` read e3nn's ``constants.pt``.

    Idempotent and cheap after the first call; must run before ``e3nn``, ``sevenn`` or ``mace``
    is imported for the first time in the process.
    """
    global _DONE  # noqa: PLW0603
    if _DONE:
        return
    import torch

    add_safe_globals = getattr(torch.serialization, "add_safe_globals", None)
    if add_safe_globals is not None:  # torch >= 2.4; older torch does not need it
        add_safe_globals([slice])
    _DONE = True
