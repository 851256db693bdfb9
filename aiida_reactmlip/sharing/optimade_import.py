"""Import labelled structures from any OPTIMADE server into a ``LabelledDatasetData``.

The structures are fetched with ``optimade.client.OptimadeClient`` (every page), their DFT labels
read from the ``_reactmlip_`` provider fields (energy eV, forces eV/Å, stress eV/Å^3 ASE Voigt), and
one new node is stored that records where it came from (attribute ``optimade_source``: URL,
filter, entry ids, provider, API version, time). Everything is checked before anything is
stored: a server that lacks the label fields, a malformed filter or an entry without labels is
refused with an :class:`OptimadeImportError` naming the problem, and nothing is written.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from typing import Any

import numpy as np

__all__ = ("LABEL_FIELDS", "OptimadeImportError", "fetch_structures", "frames_from_entries", "import_optimade")

_PREFIX = "_reactmlip_"

#: Provider fields the importer needs from a server: without them there are no labels to import.
LABEL_FIELDS = (f"{_PREFIX}energy", f"{_PREFIX}forces")

#: Fields requested from the server.
RESPONSE_FIELDS = (
    "lattice_vectors", "cartesian_site_positions", "species_at_sites", "species", "dimension_types", "nsites",
    f"{_PREFIX}energy", f"{_PREFIX}forces", f"{_PREFIX}stress", f"{_PREFIX}dataset_uuid", f"{_PREFIX}frame_index",
    f"{_PREFIX}source_uuid", f"{_PREFIX}system", f"{_PREFIX}role", f"{_PREFIX}name", f"{_PREFIX}frame_info",
)


class OptimadeImportError(ValueError):
    """An OPTIMADE import that cannot be done; the message names the server, filter or entry at fault."""


def _base_url(url: str) -> str:
    """The server's base URL without a trailing ``/`` or version segment (``/v1``, ``/v1.2``, ``/v1.2.0``)."""
    url = url.strip().rstrip("/")
    if not re.match(r"^https?://", url):
        raise OptimadeImportError(f"not an http(s) URL: {url!r}")
    return re.sub(r"/v\d+(\.\d+){0,2}$", "", url)


def _server_properties(base_url: str, timeout: float) -> dict[str, Any]:
    """The ``properties`` of ``/v1/info/structures`` (the fields the server says it serves)."""
    import requests

    info_url = f"{base_url}/v1/info/structures"
    try:
        response = requests.get(info_url, timeout=timeout)
    except requests.RequestException as exception:
        raise OptimadeImportError(f"cannot reach the OPTIMADE server at {info_url}: {exception}") from exception
    if response.status_code != 200:
        raise OptimadeImportError(f"{info_url} answered HTTP {response.status_code}: {response.text[:300]}")
    try:
        return dict(response.json()["data"]["properties"])
    except (ValueError, KeyError, TypeError) as exception:
        raise OptimadeImportError(f"{info_url} is not an OPTIMADE info response: {response.text[:300]}") from exception


def fetch_structures(url: str, filter: str, timeout: float = 30.0, max_structures: int | None = None) -> dict[str, Any]:
    """Fetch every structure matching ``filter`` from the OPTIMADE server at ``url``.

    Returns ``{"base_url", "filter", "data": [entries], "meta": {...}}``. Raises
    :class:`OptimadeImportError` when the server does not serve :data:`LABEL_FIELDS`, rejects the
    filter, or holds more matches than ``max_structures``.
    """
    from optimade.client import OptimadeClient

    from optimade.exceptions import BadRequest
    from optimade.filterparser import LarkParser

    base_url = _base_url(url)
    try:
        LarkParser().parse(filter)
    except BadRequest as exception:
        raise OptimadeImportError(f"not a valid OPTIMADE filter: {filter!r}: {exception.detail}") from exception
    properties = _server_properties(base_url, timeout)
    missing = [field for field in LABEL_FIELDS if field not in properties]
    if missing:
        provider = sorted({k.split("_")[1] for k in properties if k.startswith("_") and k.count("_") >= 2})
        raise OptimadeImportError(
            f"the OPTIMADE server at {base_url} does not serve the DFT label field(s) {', '.join(missing)} "
            f"(its /info/structures lists {len(properties)} properties; provider prefixes: "
            f"{', '.join(provider) or 'none'}); it is not a reactmlip dataset server, nothing was imported"
        )
    wanted = [field for field in RESPONSE_FIELDS if field in properties or not field.startswith(_PREFIX)]
    client = OptimadeClient(base_urls=[base_url], use_async=False, silent=True, http_timeout=timeout,
                            max_results_per_provider=-1 if max_structures is None else max_structures + 1)
    try:
        results = client.get(filter=filter, response_fields=wanted)
    except (RuntimeError, SystemExit) as exception:  # the client exits on filters it cannot parse
        raise OptimadeImportError(f"OPTIMADE query {filter!r} on {base_url} failed: {exception}") from exception
    response = results["structures"][filter][base_url]
    if response.get("errors"):
        raise OptimadeImportError(f"OPTIMADE server {base_url} refused the filter {filter!r}: "
                                  + "; ".join(str(error) for error in response["errors"]))
    data = list(response.get("data") or [])
    meta = response.get("meta") or {}
    returned = meta.get("data_returned")
    if max_structures is not None and len(data) > max_structures:
        raise OptimadeImportError(f"filter {filter!r} matches {returned or len(data)} structures on {base_url}, "
                                  f"more than max_structures={max_structures}; narrow the filter")
    if returned is not None and returned != len(data):
        raise OptimadeImportError(f"{base_url} reported {returned} matches for {filter!r} but "
                                  f"{len(data)} were downloaded; nothing was imported")
    if not data:
        raise OptimadeImportError(f"filter {filter!r} matches no structure on {base_url}; nothing was imported")
    return {"base_url": base_url, "filter": filter, "data": data, "meta": meta}


def _nan_if_none(values: Any, shape: tuple[int, ...], what: str, entry_id: str) -> np.ndarray:
    if values is None:
        return np.full(shape, np.nan)
    try:
        array = np.array([[np.nan if x is None else x for x in row] for row in values] if len(shape) == 2
                         else [np.nan if x is None else x for x in values], dtype=float)
    except (TypeError, ValueError) as exception:
        raise OptimadeImportError(f"structure {entry_id}: {what} is not numeric: {exception}") from exception
    if array.shape != shape:
        raise OptimadeImportError(f"structure {entry_id}: {what} has shape {array.shape}, expected {shape}")
    return array


def _frame_info(attributes: dict[str, Any], entry_id: str) -> dict[str, Any]:
    info: dict[str, Any] = {}
    text = attributes.get(f"{_PREFIX}frame_info")
    if text:
        try:
            info = dict(json.loads(text))
        except (ValueError, TypeError) as exception:
            raise OptimadeImportError(f"structure {entry_id}: {_PREFIX}frame_info is not a JSON object") from exception
    for key in ("name", "system", "role", "source_uuid"):
        value = attributes.get(f"{_PREFIX}{key}")
        if value is not None and key not in info:
            info[key] = value
    info["optimade_id"] = str(entry_id)
    return info


def frames_from_entries(entries: list[dict[str, Any]]):
    """A :class:`~aiida_reactmlip.frames.Frames` from OPTIMADE ``structures`` entries with ``_reactmlip_`` labels.

    Null lattice vectors become zero rows; null labels become NaN. Each frame's info keeps the
    original info (``_reactmlip_frame_info`` if served, else name/system/role/source_uuid) plus
    ``optimade_id``. Raises :class:`OptimadeImportError` naming the first bad entry.
    """
    from ase.data import atomic_numbers

    from aiida_reactmlip.frames import Frames

    numbers, positions, cells, pbc, n_atoms, energies, forces, stress, infos = [], [], [], [], [], [], [], [], []
    for entry in entries:
        entry_id = str(entry.get("id"))
        attributes = entry.get("attributes") or {}
        absent = [field for field in LABEL_FIELDS if field not in attributes]
        if absent:
            raise OptimadeImportError(f"structure {entry_id} lacks the field(s) {', '.join(absent)}; nothing was imported")
        if attributes[f"{_PREFIX}energy"] is None and attributes[f"{_PREFIX}forces"] is None:
            raise OptimadeImportError(f"structure {entry_id} has neither a DFT energy nor forces; nothing was imported")
        sites = attributes.get("species_at_sites")
        species = {s["name"]: s for s in attributes.get("species") or []}
        position = attributes.get("cartesian_site_positions")
        if not sites or position is None:
            raise OptimadeImportError(f"structure {entry_id} lacks species_at_sites or cartesian_site_positions")
        z = []
        for name in sites:
            symbols = species.get(name, {}).get("chemical_symbols", [name])
            if len(symbols) != 1 or symbols[0] not in atomic_numbers or symbols[0] == "X":
                raise OptimadeImportError(f"structure {entry_id}: site species {name!r} is not a single element "
                                          f"({symbols}); disordered or virtual sites cannot be labelled frames")
            z.append(atomic_numbers[symbols[0]])
        n = len(z)
        lattice = attributes.get("lattice_vectors") or [[None] * 3] * 3
        cell = np.array([[0.0 if x is None else x for x in row] for row in lattice], dtype=float)
        dimension_types = attributes.get("dimension_types") or [0, 0, 0]
        energy = attributes[f"{_PREFIX}energy"]
        numbers.extend(z)
        positions.append(_nan_if_none(position, (n, 3), "cartesian_site_positions", entry_id))
        cells.append(cell)
        pbc.append([bool(d) for d in dimension_types])
        n_atoms.append(n)
        energies.append(np.nan if energy is None else float(energy))
        forces.append(_nan_if_none(attributes[f"{_PREFIX}forces"], (n, 3), f"{_PREFIX}forces", entry_id))
        stress.append(_nan_if_none(attributes.get(f"{_PREFIX}stress"), (6,), f"{_PREFIX}stress", entry_id))
        infos.append(_frame_info(attributes, entry_id))
    try:
        return Frames(numbers=np.array(numbers, dtype=np.int64), positions=np.concatenate(positions),
                      cells=np.array(cells), pbc=np.array(pbc), n_atoms=np.array(n_atoms),
                      energies=np.array(energies), forces=np.concatenate(forces), stress=np.array(stress), info=infos)
    except ValueError as exception:
        raise OptimadeImportError(f"the fetched structures do not form a valid dataset: {exception}") from exception


def _sort_key(entry: dict[str, Any]) -> tuple:
    attributes = entry.get("attributes") or {}
    index = attributes.get(f"{_PREFIX}frame_index")
    return (str(attributes.get(f"{_PREFIX}dataset_uuid") or ""), index if isinstance(index, int) else math.inf,
            str(entry.get("id")))


def import_optimade(url: str, filter: str, label: str | None = None, store: bool = True, timeout: float = 30.0,
                    max_structures: int | None = None):
    """Fetch ``filter`` from the OPTIMADE server at ``url`` and return a new ``LabelledDatasetData``.

    Frames are ordered by (``_reactmlip_dataset_uuid``, ``_reactmlip_frame_index``, id), so a whole
    dataset comes back in its original order. The node's attribute ``optimade_source`` records
    ``url``, ``filter``, ``ids`` (the OPTIMADE entry ids, in frame order), ``provider``,
    ``api_version``, ``retrieved_at`` (UTC ISO) and ``dataset_uuids`` (the remote datasets).
    The node is stored only if ``store`` and only once everything checked out.
    """
    from aiida_reactmlip.data.dataset import LabelledDatasetData

    fetched = fetch_structures(url, filter, timeout=timeout, max_structures=max_structures)
    entries = sorted(fetched["data"], key=_sort_key)
    frames = frames_from_entries(entries)
    meta = fetched["meta"]
    source = {
        "kind": "optimade",
        "url": fetched["base_url"],
        "filter": filter,
        "ids": [str(entry["id"]) for entry in entries],
        "provider": (meta.get("provider") or {}).get("prefix"),
        "api_version": meta.get("api_version"),
        "retrieved_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "dataset_uuids": sorted({str(e["attributes"].get(f"{_PREFIX}dataset_uuid")) for e in entries
                                 if e["attributes"].get(f"{_PREFIX}dataset_uuid")}),
    }
    node = LabelledDatasetData(frames=frames)
    node.base.attributes.set("optimade_source", source)
    node.label = label or f"optimade: {filter}"[:255]
    node.description = f"Imported from {fetched['base_url']} with filter {filter!r} ({len(entries)} structures)"
    if store:
        node.store()
    return node
