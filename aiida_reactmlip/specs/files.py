"""Reading the YAML files of ``workchains/`` (campaigns, fine-tuning studies, active-learning loops): one reader,
one vocabulary, and the places a file's relative paths are looked for."""

from __future__ import annotations

import pathlib
import warnings

#: Keys renamed so that every file kind says the same thing the same way: ``{file kind: {old key: new key}}``.
#: A file with an old key is still read, with a :class:`DeprecatedKeyWarning` naming the file and both keys.
RENAMED_KEYS = {"loop": {"finetune": "hyperparameters", "evaluate": "evaluate_settings"}}


class DeprecatedKeyWarning(FutureWarning):
    """A study file uses an old key that is still read; the message names the file, the old and the new key."""


def read_spec_file(path: str | pathlib.Path, kind: str, known_keys: set[str], hint: str = "") -> dict:
    """The mapping of a YAML file, checked to hold only ``known_keys``; ValueError naming the file and the key.

    ``kind`` names the file in messages ("campaign", "study", "loop") and selects its :data:`RENAMED_KEYS`
    (read under their new name, with a warning); ``hint`` is appended to the message about unknown keys.
    """
    import yaml

    path = pathlib.Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as exception:
        raise ValueError(f"{kind} file {path} does not exist") from exception
    except yaml.YAMLError as exception:
        raise ValueError(f"{kind} file {path} is not valid YAML: {exception}") from exception
    if not isinstance(data, dict):
        raise ValueError(f"{kind} file {path} must hold a mapping with keys {sorted(known_keys)}")  # noqa: TRY004
    for old, new in RENAMED_KEYS.get(kind, {}).items():
        if old not in data:
            continue
        if new in data:
            raise ValueError(f"{path}: give '{new}' only; '{old}' is its old name")
        warnings.warn(f"{path}: '{old}' is deprecated in {kind} files, write '{new}' instead",
                      DeprecatedKeyWarning, stacklevel=2)
        data[new] = data.pop(old)
    unknown = sorted(set(data) - known_keys)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known_keys))}{hint}")
    return data


def check_settings(data: dict, keys, path, known: dict | None = None) -> None:
    """ValueError unless each of ``keys`` present in ``data`` is a mapping (of keys in ``known``, when given)."""
    for key in keys:
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ValueError(f"{path}: '{key}' must be a mapping of settings, not {value!r}")
        unknown = sorted(set(value) - set(known)) if known is not None else []
        if unknown:
            raise ValueError(f"{path}: unknown {key} key(s) {', '.join(unknown)}; known: {', '.join(known)}")


def search_paths(value: str, spec_path: str | pathlib.Path | None) -> list[pathlib.Path]:
    """Where a relative path written in a study file is looked for, in order: next to the file, in the folder
    above it (the repository root of ``workchains/``), then in the working directory."""
    path = pathlib.Path(value)
    if path.is_absolute() or spec_path is None:
        return [path]
    folder = pathlib.Path(spec_path).resolve().parent
    return [folder / path, folder.parent / path, path]


def find_file(value: str, spec_path, what: str) -> pathlib.Path:
    """The first existing file of :func:`search_paths`; ValueError listing the places looked at."""
    candidates = search_paths(value, spec_path)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ValueError(f"{what} {value} not found (looked at {', '.join(map(str, candidates))})")


def check_number(data: dict, key: str, path, kind: type = int, minimum: float | None = None,
                 above: float | None = None) -> None:
    """ValueError naming the file and ``key`` unless ``data[key]`` (when present) is a ``kind`` (int: a whole
    number; float: any number) not below ``minimum`` and greater than ``above``."""
    value = data.get(key)
    if value is None:
        return
    whole = isinstance(value, int) and not isinstance(value, bool)
    number = whole or (isinstance(value, float) and value == value and abs(value) != float("inf"))
    if (kind is int and not whole) or not number:
        what = "a whole number" if kind is int else "a number"
        raise ValueError(f"{path}: '{key}' must be {what}, not {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{path}: '{key}' must be >= {minimum}, not {value!r}")
    if above is not None and not value > above:
        raise ValueError(f"{path}: '{key}' must be > {above}, not {value!r}")
