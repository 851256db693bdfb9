"""``MlipModelData``: an MLIP model file with what it is, where it came from and what it covers."""

from __future__ import annotations

import io
import math
import os
import pathlib
import uuid as uuid_lib
from collections.abc import Iterable
from typing import IO, Any

from aiida.orm import Node, QueryBuilder, SinglefileData
from ase.data import atomic_numbers, chemical_symbols

from aiida_reactmlip.hashing import sha256_file as sha256_of

__all__ = ('MlipModelData', 'sha256_of')

def _attribute(name: str, doc: str | None = None) -> property:
    """A read-only property giving the node attribute ``name`` (``None`` when it is not set)."""
    return property(lambda self: self.base.attributes.get(name, None), doc=doc)


def _resolve_file(file: Any) -> Any:
    if file is None:
        raise TypeError('MlipModelData requires `file` (a path or a binary file-like object)')
    if isinstance(file, (str, os.PathLike)):
        path = pathlib.Path(file).expanduser().resolve()
        if not path.is_file():
            raise ValueError(f'model file {str(file)!r} does not exist or is not a file')
        return str(path)
    if not hasattr(file, 'read'):
        raise TypeError(f'`file` must be a path or a file-like object, got {type(file).__name__}')
    return file


def _normalize_symbols(symbols: Any) -> list[str]:
    """Unique symbols, in order, from symbols, atomic numbers, ase.Atoms, Frames or a dataset node."""
    if isinstance(symbols, str):
        symbols = [symbols]
    elif hasattr(symbols, 'symbols_set'):  # Frames
        symbols = symbols.symbols_set()
    elif hasattr(symbols, 'get_chemical_symbols'):  # ase.Atoms
        symbols = symbols.get_chemical_symbols()
    elif isinstance(symbols, Node) and hasattr(symbols, 'elements'):  # LabelledDatasetData, MlipModelData
        symbols = symbols.elements
    out: list[str] = []
    for symbol in symbols:
        if isinstance(symbol, bool):
            raise TypeError(f'not an element: {symbol!r}')
        if isinstance(symbol, int) or (hasattr(symbol, 'dtype') and getattr(symbol, 'ndim', 1) == 0):
            number = int(symbol)
            symbol = chemical_symbols[number] if 0 < number < len(chemical_symbols) else str(number)
        symbol = str(symbol)
        if symbol not in out:
            out.append(symbol)
    return out


def _check_metadata(
    family: Any, model_name: Any, version: Any, elements: Any, cutoff: Any, dtype: Any, source: Any,
    base_model_uuid: Any, training_dataset_uuid: Any,
) -> dict[str, Any]:
    """Validate and normalize the metadata; return the attributes to set (except sha256)."""
    if not isinstance(family, str) or not family.strip():
        raise ValueError(
            f'`family` must be a non-empty string (e.g. "mace", "chgnet", "sevenn"), got {family!r}'
        )
    if not isinstance(model_name, str) or not model_name.strip():
        raise ValueError(f'`model_name` must be a non-empty string, got {model_name!r}')
    if version is not None and not isinstance(version, str):
        raise ValueError(f'`version` must be a string or None, got {version!r}')
    if elements is None:
        raise TypeError('MlipModelData requires `elements` (the element symbols the model covers)')
    if isinstance(elements, str):
        raise TypeError(f'`elements` must be a list of symbols, got the string {elements!r}')
    elements = list(elements)
    bad = [e for e in elements if not isinstance(e, str) or e not in atomic_numbers or e == 'X']
    if bad:
        raise ValueError(f'`elements` contains invalid element symbols: {bad}')
    if not elements:
        raise ValueError('`elements` must not be empty')
    if cutoff is not None:
        number = isinstance(cutoff, (int, float)) and not isinstance(cutoff, bool)
        if not number or not math.isfinite(cutoff) or cutoff <= 0:
            raise ValueError(f'`cutoff` must be a positive number in Angstrom or None, got {cutoff!r}')
        cutoff = float(cutoff)
    if dtype is not None and not isinstance(dtype, str):
        raise ValueError(f'`dtype` must be a string (e.g. "float32") or None, got {dtype!r}')
    if source is not None and not isinstance(source, str):
        raise ValueError(f'`source` must be a string or None, got {source!r}')

    def as_uuid(name: str, value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, Node):
            if not value.is_stored:
                raise ValueError(f'`{name}`: the node must be stored to be referenced')
            return value.uuid
        try:
            return str(uuid_lib.UUID(str(value)))
        except ValueError as exc:
            raise ValueError(f'`{name}` must be a UUID or a stored node, got {value!r}') from exc

    return {
        'family': family.strip().lower(),
        'model_name': model_name.strip(),
        'version': version,
        'elements': sorted(set(elements)),
        'cutoff': cutoff,
        'dtype': dtype,
        'source': source,
        'base_model_uuid': as_uuid('base_model_uuid', base_model_uuid),
        'training_dataset_uuid': as_uuid('training_dataset_uuid', training_dataset_uuid),
    }


class MlipModelData(SinglefileData):
    """A machine-learned interatomic potential model file and its metadata.

    Attributes: ``family`` (lower case, e.g. "mace", "chgnet", "sevenn"), ``model_name``
    (e.g. "chgnet-0.3.0"), ``version``, ``sha256`` (of the file content), ``elements`` (sorted
    symbols covered), ``cutoff`` (Angstrom or None), ``dtype``, ``source`` (where the file came
    from), ``base_model_uuid`` and ``training_dataset_uuid`` (for fine-tuned models, else None).
    """

    def __init__(
        self,
        file: str | os.PathLike | IO | None = None,
        family: str | None = None,
        model_name: str | None = None,
        version: str | None = None,
        elements: Iterable[str] | None = None,
        cutoff: float | None = None,
        dtype: str | None = None,
        source: str | None = None,
        base_model_uuid: str | Node | None = None,
        training_dataset_uuid: str | Node | None = None,
        filename: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Copy ``file`` (a path, relative allowed, or a binary file-like) into the node and set the metadata.

        The metadata is validated before anything is set; ``sha256`` is computed from the stored content.
        """
        file = _resolve_file(file)
        attributes = _check_metadata(
            family, model_name, version, elements, cutoff, dtype, source,
            base_model_uuid, training_dataset_uuid,
        )
        super().__init__(file=file, filename=filename, **kwargs)
        with self.open(mode='rb') as handle:
            attributes['sha256'] = sha256_of(handle)
        for key, value in attributes.items():
            self.base.attributes.set(key, value)

    @classmethod
    def get_or_create(
        cls,
        file: str | os.PathLike | IO,
        family: str,
        model_name: str,
        *,
        store: bool = True,
        match_name: bool = False,
        **metadata: Any,
    ) -> tuple[MlipModelData, bool]:
        """Return ``(node, created)``: the oldest stored MlipModelData with the same file sha256 and family
        (and ``model_name`` too if ``match_name``), or a new one (stored if ``store``). An existing node is
        returned as is, even if the other metadata given here differs from what it records.

        ``metadata``: the other keyword arguments of the constructor (``version``, ``elements``, ``cutoff``,
        ``dtype``, ``source``, ``base_model_uuid``, ``training_dataset_uuid``, ``filename``...).
        """
        file = _resolve_file(file)
        if not isinstance(file, str):
            content = file.read()
            file = io.BytesIO(content if isinstance(content, bytes) else content.encode('utf-8'))
        sha256 = sha256_of(file)
        if not isinstance(file, str):
            file.seek(0)
        if not isinstance(family, str) or not family.strip():
            raise ValueError(f'`family` must be a non-empty string, got {family!r}')
        query = QueryBuilder().append(
            cls,
            filters={'attributes.sha256': sha256, 'attributes.family': family.strip().lower(),
                     **({'attributes.model_name': model_name} if match_name else {})},
            tag='model',
        )
        query.order_by({'model': {'id': 'asc'}})
        existing = query.first(flat=True)
        if existing is not None:
            return existing, False
        node = cls(file=file, family=family, model_name=model_name, **metadata)
        if store:
            node.store()
        return node, True

    # ------------------------------------------------------------------ attributes
    family: str = _attribute('family', 'Model family, lower case ("chgnet", "sevenn", "mace").')
    model_name: str = _attribute('model_name', 'Name of the model (e.g. "chgnet-0.3.0").')
    version: str | None = _attribute('version')
    sha256: str = _attribute('sha256', 'Hex sha256 of the stored file.')
    cutoff: float | None = _attribute('cutoff', 'Radial cutoff in Angstrom (None if unknown).')
    dtype: str | None = _attribute('dtype')
    source: str | None = _attribute('source')
    base_model_uuid: str | None = _attribute('base_model_uuid')
    training_dataset_uuid: str | None = _attribute('training_dataset_uuid')

    @property
    def elements(self) -> list[str]:
        """Sorted element symbols the model covers."""
        return list(self.base.attributes.get('elements'))

    # ------------------------------------------------------------------ coverage
    def covers(self, symbols: Any) -> list[str]:
        """Return the symbols NOT covered by the model (empty list: all covered), in input order.

        ``symbols``: element symbols or atomic numbers, a single symbol, ase.Atoms, Frames or a dataset.
        """
        covered = set(self.elements)
        return [s for s in _normalize_symbols(symbols) if s not in covered]

    def check_elements(self, symbols: Any) -> None:
        """Raise ``ValueError`` naming the model and the element(s) it does not cover."""
        missing = self.covers(symbols)
        if missing:
            raise ValueError(
                f'model {self.model_name!r} ({self.family}) does not cover element(s) {", ".join(missing)}; '
                f'it covers {", ".join(self.elements)}'
            )
