"""Reuse a pw.x that finished although AiiDA never parsed it (its run was interrupted or killed).

A PwCalculation whose node ended killed or excepted (or stays Waiting after its runner died) may still have a
complete pw.x output in its folder: its job finished in the seconds before the interrupt, before AiiDA
retrieved it, or it ran on as an orphan after a hard kill. Such a calculation is imported, not run again,
when:

- its folder is on this host (``core.local`` transport) and no process works in it any more;
- ``aiida.out`` there ends with pw.x's ``JOB DONE``;
- the ``aiida.in`` there is byte for byte the input AiiDA wrote for that node (in the node's repository).

The import is a PwCalculation with the same inputs plus ``remote_folder`` (AiiDA's import of a completed job:
retrieve and parse, nothing runs). It gets the caching hash of the original node, so the next run with AiiDA
caching enabled for ``quantumespresso.pw`` (``reactmlip label`` by default) takes it from the cache instead of
starting pw.x. Both nodes record each other (extras :data:`SALVAGED_AS`, :data:`SALVAGED_FROM`).
"""

from __future__ import annotations

import os
import typing as t

from .interrupts import OWNER_EXTRA, is_local, job_running, owner_alive

PW_CALCULATION = "aiida.calculations:quantumespresso.pw"
#: On the original node: UUID of the finished import; on the import: UUID of the original node.
SALVAGED_AS = "reactmlip_salvaged_as"
SALVAGED_FROM = "reactmlip_salvaged_from"
#: On an original node whose folder was checked and holds no complete output (never checked again).
SALVAGE_CHECKED = "reactmlip_salvage_checked"
JOB_DONE = "JOB DONE"


def candidates() -> list:
    """PwCalculation nodes not checked yet that ended killed or excepted, or that nobody runs any more (their
    owner process is gone), with a remote folder on this host."""
    from aiida import orm

    query = orm.QueryBuilder().append(
        orm.CalcJobNode,
        filters={
            "process_type": PW_CALCULATION,
            "attributes.process_state": {"in": ["killed", "excepted", "created", "waiting", "running"]},
        },
    )
    found = []
    for (node,) in query.iterall():
        extras = node.base.extras
        if extras.get(SALVAGED_AS, None) or extras.get(SALVAGE_CHECKED, None):
            continue
        if not node.is_terminated and owner_alive(extras.get(OWNER_EXTRA, None)) is not False:
            continue  # a run that may still be going on (or one we cannot tell): leave it alone
        if "remote_folder" in node.outputs and is_local(node):
            found.append(node)
    return sorted(found, key=lambda n: n.pk)


def why_not_reusable(node) -> str | None:
    """None when the folder of PwCalculation ``node`` holds a finished pw.x run of exactly its input, else why
    not. Permanent reasons start with 'no' (the folder will not change any more)."""
    if job_running(node):
        return "its pw.x still runs"
    workdir = node.outputs.remote_folder.get_remote_path()
    output = os.path.join(workdir, node.get_option("output_filename") or "aiida.out")
    input_name = node.get_option("input_filename") or "aiida.in"
    try:
        with open(output, encoding="utf8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return "no pw.x output in its folder"
    if JOB_DONE not in text[-4000:]:
        return f"no '{JOB_DONE}' in {output} (pw.x did not finish)"
    try:
        with open(os.path.join(workdir, input_name), "rb") as handle:
            remote_input = handle.read()
        stored_input = node.base.repository.get_object_content(input_name, mode="rb")
    except (OSError, FileNotFoundError):
        return f"no {input_name} to compare with"
    if remote_input != stored_input:
        return f"no match: {input_name} in the folder differs from the one AiiDA wrote"
    return None


def import_finished(node):
    """Import the finished pw.x run in the folder of ``node`` as a new PwCalculation (retrieve + parse only);
    give it ``node``'s caching hash when it finished ok. Returns the new node."""
    from aiida import orm
    from aiida.manage import get_manager
    from aiida.manage.caching import disable_caching
    from aiida.orm.nodes.caching import NodeCaching

    builder = node.get_builder_restart()
    builder.remote_folder = node.outputs.remote_folder
    builder.metadata.description = (
        f"pw.x run of {node.process_label}<{node.pk}> ({node.process_state.value}) "
        "that finished after its run stopped: imported from its folder, not rerun"
    )
    with disable_caching():
        process = get_manager().get_runner().instantiate_process(builder)
        perform_import = process._perform_import

        async def perform_import_with_folder():
            # AiiDA's import attaches no `remote_folder` output, which a calculation taken from the cache
            # needs
            # (PwBaseWorkChain exposes it as a required output): attach one naming the same folder.
            folder = process.inputs.remote_folder
            process.out(
                "remote_folder",
                orm.RemoteData(computer=folder.computer, remote_path=folder.get_remote_path()),
            )
            return await perform_import()

        process._perform_import = perform_import_with_folder  # this one instance only
        process.execute()
    imported = process.node
    imported.base.extras.set(SALVAGED_FROM, node.uuid)
    node.base.extras.set(SALVAGED_AS, imported.uuid)
    if imported.is_finished_ok:
        original_hash = node.base.caching.get_hash() or node.base.caching.compute_hash()
        imported.base.extras.set(NodeCaching._HASH_EXTRA_KEY, original_hash)
    return imported


def salvage_finished_pw(echo: t.Callable[[str], None] | None = None) -> dict[str, list]:
    """Import every candidate's finished pw.x run (see the module docstring).

    :returns: {"imported": [(original, import) ...], "skipped": [(original, why) ...]}
    """
    imported, skipped = [], []
    for node in candidates():
        reason = why_not_reusable(node)
        if reason is None:
            try:
                new = import_finished(node)
            except Exception as exception:  # noqa: BLE001  (a parser that fails on this output: run pw.x again)
                node.base.extras.set(SALVAGE_CHECKED, f"no reuse: the import failed ({exception})")
                skipped.append((node, f"the import failed: {exception}"))
                continue
            imported.append((node, new))
            if echo:
                state = "reusable" if new.is_finished_ok else f"parsed with exit status {new.exit_status}"
                echo(
                    f"pw.x of {node.process_label}<{node.pk}> finished after its run stopped: imported as "
                    f"{new.process_label}<{new.pk}> ({state})"
                )
            continue
        skipped.append((node, reason))
        if reason.startswith("no"):
            node.base.extras.set(SALVAGE_CHECKED, reason)
    return {"imported": imported, "skipped": skipped}
