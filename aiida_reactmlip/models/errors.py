"""Exceptions of the model registry (pure Python, no aiida)."""

from __future__ import annotations


class ModelError(Exception):
    """Base class of the errors raised by :mod:`aiida_reactmlip.models`."""


class UnknownModelError(ModelError, KeyError):
    """A model name that is not in the registry; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would otherwise print the repr of its argument
        return str(self.args[0]) if self.args else ""


class ModelNotAvailableError(ModelError, FileNotFoundError):
    """A known model whose weights are not on this machine; the message says how to supply them."""


class ModelLoadError(ModelError, RuntimeError):
    """A model file that exists but could not be loaded by its family's code."""


class ElementNotCoveredError(ModelError, ValueError):
    """A structure contains element(s) the model was not trained on."""

    def __init__(self, message: str, *, model: str = "", elements: tuple[str, ...] = ()):
        super().__init__(message)
        self.model = model
        self.elements = tuple(elements)
