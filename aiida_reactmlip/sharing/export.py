"""Static export of a ``LabelledDatasetData``: extxyz, OPTIMADE JSON Lines, MACE training extxyz.

- ``extxyz``: the project's exact extended XYZ (``energy`` eV, ``forces`` eV/Å, ``stress`` eV/Å^3).
- ``optimade-jsonl``: an OPTIMADE JSON Lines file (header, ``info`` lines, one ``structures`` entry per
  frame) that a stock optimade-python-tools server loads with ``insert_from_jsonl``. DFT labels are
  provider fields ``_reactmlip_energy`` (eV), ``_reactmlip_forces`` (eV/Å), ``_reactmlip_stress``
  (eV/Å^3, Voigt xx yy zz yz xz xy); missing labels are ``null``.
- ``mace``: extended XYZ with the keys ``mace_run_train`` (mace-torch 0.3.x) reads by default:
  ``REF_energy`` (eV), ``REF_forces`` (eV/Å), ``REF_stress`` (eV/Å^3, symmetric 3x3) and
  ``config_type``. Missing labels are left out, so MACE gives them zero weight.

Every float is written exactly (shortest round-trip repr); the whole text is built before the
file is written, so an error leaves no half-written file.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterator, TextIO

import numpy as np
from ase.data import chemical_symbols

from aiida_reactmlip.extxyz import format_float, info_token
from aiida_reactmlip.frames import Frames, write_extxyz

__all__ = (
    "EXPORT_FORMATS",
    "MACE_KEYS",
    "OPTIMADE_API_VERSION",
    "PROVIDER",
    "provider_fields",
    "export_dataset",
    "frame_to_optimade_attributes",
    "optimade_entries",
    "stock_server_config",
    "write_mace_extxyz",
    "write_optimade_jsonl",
)

#: Formats of :func:`export_dataset` (and ``reactmlip dataset export --format``).
EXPORT_FORMATS = ("extxyz", "optimade-jsonl", "mace")

#: The keys mace-torch 0.3.16 reads by default (``mace.tools.default_keys.DefaultKeys``).
MACE_KEYS = {"energy": "REF_energy", "forces": "REF_forces", "stress": "REF_stress", "config_type": "config_type"}

#: OPTIMADE API version stated in the JSONL header.
OPTIMADE_API_VERSION = "1.2.0"

#: Provider description for an optimade ``ServerConfig``.
PROVIDER = {
    "prefix": "reactmlip",
    "name": "aiida-reactmlip",
    "description": "DFT-labelled configurations for fine-tuning machine-learned interatomic potentials",
    "homepage": "https://github.com/aiida-reactmlip",
}

_PREFIX = f"_{PROVIDER['prefix']}_"


def _extra_fields() -> list[dict[str, Any]]:
    return [
        {"name": "dataset_label", "type": "string", "description": "Label of the LabelledDatasetData node."},
        {"name": "frame_info", "type": "string",
         "description": "JSON object of every per-frame info entry (exact round trip on import)."},
    ]


def provider_fields() -> list[dict[str, Any]]:
    """Provider fields of ``structures`` in the JSONL export (names without the prefix).

    Those of the live server (:data:`aiida_reactmlip.optimade.mapping.PROVIDER_FIELDS`) plus
    ``dataset_label`` and ``frame_info`` (the frame's whole info dict as JSON, for an exact import).
    """
    from aiida_reactmlip.optimade.mapping import PROVIDER_FIELDS as SERVER_FIELDS

    return [dict(field) for field in SERVER_FIELDS] + _extra_fields()


def frame_to_optimade_attributes(frames: Frames, i: int, dataset_uuid: str, dataset_label: str = "",
                                 last_modified: str | None = None, dft: dict[str, Any] | None = None,
                                 ) -> dict[str, Any]:
    """OPTIMADE ``structures`` attributes of frame ``i``: the live server's mapping
    (:func:`aiida_reactmlip.optimade.mapping.frame_to_structure_attributes`: energy eV, forces eV/Å,
    stress eV/Å^3, DFT settings ``dft``) plus ``_reactmlip_dataset_label`` and ``_reactmlip_frame_info``.
    """
    from aiida_reactmlip.optimade.mapping import frame_to_structure_attributes

    attributes = frame_to_structure_attributes(
        frames, i, {"uuid": dataset_uuid, "last_modified": last_modified}, dft=dft
    )
    attributes[f"{_PREFIX}dataset_label"] = dataset_label or None
    attributes[f"{_PREFIX}frame_info"] = json.dumps(frames.info[i], sort_keys=True)
    return attributes


def _node_frames(dataset: Any) -> tuple[Frames, str, str, str | None]:
    """(frames, uuid, label, last_modified ISO) of a LabelledDatasetData, or of bare Frames (a random uuid)."""
    if isinstance(dataset, Frames):
        import uuid

        return dataset, str(uuid.uuid4()), "", None
    import datetime

    mtime = getattr(dataset, "mtime", None) or getattr(dataset, "ctime", None)
    stamp = None
    if mtime is not None:  # UTC, millisecond precision, as MongoDB stores dates
        stamp = mtime.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return dataset.frames, dataset.uuid, dataset.label or "", stamp


def optimade_entries(dataset: Any, with_dft: bool = True) -> Iterator[dict[str, Any]]:
    """One OPTIMADE ``structures`` resource (``id``, ``type``, ``attributes``) per frame of ``dataset``.

    ``id`` is the live server's ``<dataset uuid>:<frame index>``. With ``with_dft`` (and a stored
    dataset) the DFT settings of each frame's source calculation are filled in from the provenance.
    """
    from aiida_reactmlip.optimade.mapping import structure_id

    frames, uuid, label, last_modified = _node_frames(dataset)
    settings: dict[str, dict[str, Any]] = {}
    if with_dft and not isinstance(dataset, Frames):
        from aiida_reactmlip.optimade.provenance import dft_settings_by_uuid

        settings = dft_settings_by_uuid([info.get("source_uuid") for info in frames.info])
    for i in range(len(frames)):
        dft = settings.get(str(frames.info[i].get("source_uuid")))
        attributes = frame_to_optimade_attributes(frames, i, uuid, label, last_modified, dft=dft)
        yield {"type": "structures", "id": structure_id(uuid, i), "attributes": attributes}


def _jsonl_text(dataset: Any) -> str:
    from optimade.models import StructureResource

    header = {"x-optimade": {"meta": {"api_version": OPTIMADE_API_VERSION}}}
    properties = {}
    for field in provider_fields():
        properties[f"{_PREFIX}{field['name']}"] = {
            key: field[key] for key in ("type", "description", "unit") if field.get(key) is not None
        }
    lines = [json.dumps(header), json.dumps({"type": "info", "id": "structures", "properties": properties})]
    for entry in optimade_entries(dataset):
        # optimade's pydantic model checks every standard field before anything is written.
        StructureResource(**entry)
        if entry["attributes"].get("last_modified"):
            entry["attributes"]["last_modified"] = {"$date": entry["attributes"]["last_modified"]}
        lines.append(json.dumps(entry, allow_nan=False, ensure_ascii=False))
    return "\n".join(lines) + "\n"


def _write_text(text: str, path_or_fileobj: str | os.PathLike | TextIO) -> None:
    if hasattr(path_or_fileobj, "write"):
        path_or_fileobj.write(text)
        return
    with open(path_or_fileobj, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def write_optimade_jsonl(dataset: Any, path_or_fileobj: str | os.PathLike | TextIO) -> int:
    """Write ``dataset`` (LabelledDatasetData or Frames) as OPTIMADE JSON Lines; return the entry count.

    Line 1 is the ``x-optimade`` header, line 2 the ``info`` of ``structures`` (the provider fields
    and their units), then one ``structures`` entry per frame, each validated by optimade's pydantic
    ``StructureResource``. ``last_modified`` is written as MongoDB extended JSON
    (``{"$date": "...Z"}``), the form optimade-python-tools' ``insert_from_jsonl`` (bson) turns into
    a date that ``last_modified`` filters compare against.
    """
    text = _jsonl_text(dataset)
    _write_text(text, path_or_fileobj)
    return text.count("\n") - 2


def _config_type(info: dict[str, Any]) -> str:
    for key in ("config_type", "role"):
        value = info.get(key)
        if isinstance(value, str) and value:
            return value
    return "Default"


def _mace_frame_text(frames: Frames, i: int) -> str:
    sl = frames.atoms_slice(i)
    cell, pbc = frames.cells[i], frames.pbc[i]
    has_f = bool(frames.has_forces[i]) and bool(np.isfinite(frames.forces[sl]).all())
    header = []
    if np.any(cell) or pbc.any():
        header.append('Lattice="' + " ".join(format_float(x) for x in cell.reshape(-1).tolist()) + '"')
    header.append("Properties=species:S:1:pos:R:3" + (f":{MACE_KEYS['forces']}:R:3" if has_f else ""))
    if frames.has_energy[i]:
        header.append(f"{MACE_KEYS['energy']}={format_float(frames.energies[i])}")
    if np.isfinite(frames.stress[i]).all():
        xx, yy, zz, yz, xz, xy = frames.stress[i].tolist()
        full = [xx, xy, xz, xy, yy, yz, xz, yz, zz]
        header.append(f'{MACE_KEYS["stress"]}="' + " ".join(format_float(x) for x in full) + '"')
    header.append('pbc="' + " ".join("T" if p else "F" for p in pbc.tolist()) + '"')
    info = dict(frames.info[i])
    info["config_type"] = _config_type(info)
    for key, value in info.items():
        header.append(f"{key}={info_token(key, value)}")
    lines = [str(int(frames.n_atoms[i])), " ".join(header)]
    symbols = [chemical_symbols[z] for z in frames.numbers[sl].tolist()]
    positions = frames.positions[sl].tolist()
    forces = frames.forces[sl].tolist() if has_f else [[] for _ in symbols]
    for symbol, position, force in zip(symbols, positions, forces):
        lines.append(" ".join([symbol, *(format_float(x) for x in position), *(format_float(x) for x in force)]))
    return "\n".join(lines) + "\n"


def write_mace_extxyz(dataset: Any, path_or_fileobj: str | os.PathLike | TextIO) -> int:
    """Write ``dataset`` as a ``mace_run_train`` training file; return the number of frames.

    Keys: ``REF_energy`` (eV), ``REF_forces`` (eV/Å), ``REF_stress`` (eV/Å^3, full symmetric 3x3),
    ``config_type`` (the frame's ``config_type`` or ``role`` info, else ``Default``); the other info
    entries (name, system, source_uuid, ...) are kept. Labels a frame lacks are left out.
    """
    frames = dataset if isinstance(dataset, Frames) else dataset.frames
    text = "".join(_mace_frame_text(frames, i) for i in range(len(frames)))
    _write_text(text, path_or_fileobj)
    return len(frames)


def export_dataset(dataset: Any, path: str | os.PathLike, fmt: str = "extxyz") -> int:
    """Write ``dataset`` to ``path`` in format ``fmt`` (one of :data:`EXPORT_FORMATS`); return the frame count."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    if fmt == "optimade-jsonl":
        return write_optimade_jsonl(dataset, path)
    if fmt == "mace":
        return write_mace_extxyz(dataset, path)
    frames = dataset if isinstance(dataset, Frames) else dataset.frames
    write_extxyz(frames, path)
    return len(frames)


def stock_server_config(jsonl_path: str | os.PathLike, base_url: str | None = None, **kwargs: Any):
    """An optimade ``ServerConfig`` for a stock mongomock server serving a JSONL export.

    The provider fields are declared under their full ``_reactmlip_`` names: the JSONL entries
    carry them so (as an API response does) and insert_from_jsonl stores them as they are, so
    the stock mapper must not strip the prefix. The server then lists them in
    ``/info/structures`` and accepts them in ``response_fields`` and filters.
    """
    from optimade.server.config import ServerConfig

    settings = {
        "insert_test_data": False,
        "insert_from_jsonl": os.fspath(os.path.abspath(jsonl_path)),
        "database_backend": "mongomock",
        "provider": PROVIDER,
        "provider_fields": {"structures": [{**field, "name": f"{_PREFIX}{field['name']}"}
                                           for field in provider_fields()]},
        "base_url": base_url,
        **kwargs,
    }
    return ServerConfig(**settings)
