"""Datasets named in study files -> stored ``LabelledDatasetData`` nodes, by one rule: the same frames are the
same node (found again by the extra ``content_sha256``), whichever file kind or form names them."""

from __future__ import annotations

import hashlib
import io

from aiida import orm

from aiida_reactmlip.data.dataset import LabelledDatasetData
from aiida_reactmlip.specs.files import find_file

#: Keys of a dataset mapping: a fixture name, an extxyz path, a stored node (``dataset`` takes a pk or a UUID).
DATASET_SOURCES = ("fixture", "extxyz", "dataset", "pk", "uuid")
#: Extra holding the sha256 of a dataset's frames (as the project's extxyz writer writes them).
CONTENT_EXTRA = "content_sha256"


def check_dataset_entry(entry, what: str, path, allow_split: bool = False) -> None:
    """ValueError naming the file unless ``entry`` is a dataset entry :func:`resolve_dataset` reads: a pk, a
    UUID, an extxyz path or a fixture name, or a mapping with exactly one of :data:`DATASET_SOURCES`
    (or ``split``, where ``allow_split``: a part of the pool held out)."""
    sources = (*DATASET_SOURCES, "split") if allow_split else DATASET_SOURCES
    if isinstance(entry, dict):
        if len(set(entry) & set(sources)) != 1 or len(entry) != 1:
            raise ValueError(f"{path}: '{what}' must name exactly one of {', '.join(sources)}, got {entry!r}")
    elif isinstance(entry, bool) or not isinstance(entry, (int, str)) or entry == "":
        raise ValueError(f"{path}: '{what}' must be a pk, a UUID, an extxyz path, a fixture name or a mapping "
                         f"with one of {', '.join(sources)}, got {entry!r}")


def _source(entry) -> tuple[str, object]:
    if isinstance(entry, dict):
        kind, value = next(iter(entry.items()))
        if kind == "dataset":  # a pk or a UUID
            kind = "pk" if isinstance(value, int) or str(value).isdigit() else "uuid"
        return kind, value
    if isinstance(entry, int) or entry.isdigit():
        return "pk", int(entry)
    if entry.endswith((".extxyz", ".xyz")):
        return "extxyz", entry
    if len(entry) == 36 and entry.count("-") == 4:
        return "uuid", entry
    return "fixture", entry


def load_dataset_node(identifier) -> LabelledDatasetData:
    """The stored ``LabelledDatasetData`` of a pk or UUID; ValueError saying what the identifier is instead."""
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    try:
        node = orm.load_node(int(identifier) if isinstance(identifier, int) or str(identifier).isdigit()
                             else str(identifier))
    except (NotExistent, MultipleObjectsError) as exception:
        raise ValueError(f"no dataset with pk/UUID {identifier} in this profile (`reactmlip query datasets` lists "
                         "them)") from exception
    if not isinstance(node, LabelledDatasetData):
        raise ValueError(f"node {identifier} is a {type(node).__name__}, not a LabelledDatasetData: give a labelled "
                         "dataset (`reactmlip query datasets` lists them)")
    return node


def peek_dataset(entry, spec_path=None) -> LabelledDatasetData:
    """The dataset a dataset entry names, without storing anything: a stored node as it is, else an unstored
    node of the extxyz file's or the fixture's frames (for checks made before the first node is stored)."""
    from aiida_reactmlip.frames import read_extxyz

    kind, value = _source(entry) if not isinstance(entry, dict) or len(entry) == 1 else ("", None)
    if kind in ("pk", "uuid"):
        return load_dataset_node(value)
    if kind == "extxyz":
        return LabelledDatasetData(frames=read_extxyz(find_file(str(value), spec_path, "dataset file")))
    if kind == "fixture":
        from aiida_reactmlip.fixture_data import fixture_path

        return LabelledDatasetData(frames=read_extxyz(fixture_path(str(value))))
    raise ValueError(f"a dataset mapping needs exactly one of {', '.join(DATASET_SOURCES)}: got {entry}")


def resolve_dataset(entry, spec_path=None) -> LabelledDatasetData:
    """The stored ``LabelledDatasetData`` of a dataset entry (see :func:`check_dataset_entry`) of the study file
    ``spec_path``: a stored node as it is, an extxyz file (found by :func:`~aiida_reactmlip.specs.files.search_paths`)
    or a fixture (``fixtures/datasets``) as the oldest stored dataset with the same frames, else stored now."""
    if isinstance(entry, dict) and len(entry) != 1:
        raise ValueError(f"a dataset mapping needs exactly one of {', '.join(DATASET_SOURCES)}: got {entry}")
    kind, value = _source(entry)
    if kind in ("pk", "uuid"):
        return load_dataset_node(value)
    if kind == "extxyz":
        return stored_extxyz(find_file(str(value), spec_path, "dataset file"))
    if kind != "fixture":
        raise ValueError(f"a dataset mapping needs exactly one of {', '.join(DATASET_SOURCES)}: got {entry}")
    from aiida_reactmlip.fixture_data import fixture_path

    return stored_fixture_dataset(fixture_path(str(value)))


def content_sha256(frames) -> str:
    """sha256 of ``frames`` (:class:`~aiida_reactmlip.frames.Frames`) written as extxyz, every digit kept:
    equal for equal frames."""
    from aiida_reactmlip.frames import write_extxyz

    buffer = io.StringIO()
    write_extxyz(frames, buffer)
    return hashlib.sha256(buffer.getvalue().encode()).hexdigest()


def stored_once(frames, label: str = "", description: str = "", extras: dict | None = None) -> LabelledDatasetData:
    """The oldest stored dataset with these frames (extra ``content_sha256``), else a new one stored with
    ``label``, ``description`` and ``extras``: reading a study file again gives the same input nodes."""
    digest = content_sha256(frames)
    query = orm.QueryBuilder().append(LabelledDatasetData, filters={f"extras.{CONTENT_EXTRA}": digest}, tag="dataset")
    existing = query.order_by({"dataset": {"id": "asc"}}).first(flat=True)
    if existing is not None:
        return existing
    node = LabelledDatasetData(frames=frames, label=label, description=description).store()
    node.base.extras.set_many({**(extras or {}), CONTENT_EXTRA: digest})
    return node


def stored_extxyz(path, fixture: bool = False) -> LabelledDatasetData:
    """The dataset of an extxyz file, stored once (:func:`stored_once`); a fixture's new node is labelled with
    its name (also the extra ``fixture``)."""
    import pathlib

    from aiida_reactmlip.frames import read_extxyz

    path = pathlib.Path(path)
    frames = read_extxyz(path)
    if not fixture:
        return stored_once(frames)
    return stored_once(frames, path.stem, f"fixture dataset {path.name}", {"fixture": path.stem})


def stored_fixture_dataset(path) -> LabelledDatasetData:
    """The dataset of the fixture extxyz file ``path`` (see :func:`stored_extxyz`)."""
    return stored_extxyz(path, fixture=True)


def existing_split(pool: LabelledDatasetData, params: dict):
    """The ``train`` and ``validation`` outputs of an earlier ``split_dataset`` of ``pool`` with the same
    ``params`` (reruns share them), else None."""
    query = orm.QueryBuilder()
    query.append(LabelledDatasetData, filters={"id": pool.pk}, tag="pool")
    query.append(orm.CalcFunctionNode, with_incoming="pool", tag="split",
                 filters={"attributes.process_label": "split_dataset"})
    for (node,) in query.iterall():
        if "parameters" in node.inputs and node.inputs.parameters.get_dict() == params and node.is_finished_ok:
            return {"train": node.outputs.train, "validation": node.outputs.validation, "test": node.outputs.test}
    return None


def held_out_split(pool: LabelledDatasetData, split: dict) -> dict:
    """``{"train", "validation", "test"}`` datasets of ``pool`` with whole configuration groups held out
    (``reactmlip.split_dataset``; ``split``: validation_fraction (default 0.25), test_fraction (default 0: an
    empty test set), seed, group_by), reusing an earlier identical split."""
    from aiida_reactmlip.calculations.split import split_dataset

    params = {"test_fraction": 0.0, "validation_fraction": 0.25, "seed": 0, **split}
    existing = existing_split(pool, params)
    return existing if existing is not None else split_dataset(pool, orm.Dict(params))
