"""Reading the YAML files of ``workchains/``: campaigns, fine-tuning studies and active-learning loops."""

from __future__ import annotations

import pathlib


def read_spec_file(path: str | pathlib.Path, kind: str, known_keys: set[str], hint: str = "") -> dict:
    """The mapping of a YAML file, checked to hold only ``known_keys``; ValueError naming the file and the key.

    ``kind`` names the file in messages ("campaign", "study", "loop"); ``hint`` is appended to the message
    about unknown keys.
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
    unknown = sorted(set(data) - known_keys)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known_keys))}{hint}")
    return data
