"""DFT settings of the calculation that labelled a frame, read from the AiiDA provenance graph.

A frame's ``source_uuid`` names the pw.x ``CalcJobNode`` that produced its label. This module reads
the code, its version, the functional, pseudopotentials, cutoffs (Ry) and k-points from that node's
inputs and outputs, in the form :func:`aiida_reactmlip.optimade.mapping.frame_to_structure_attributes`
takes as ``dft``. Frames without such a node (imported datasets) get ``{}``.
"""

from __future__ import annotations

from typing import Any

__all__ = ('dft_settings', 'dft_settings_by_uuid')

_QE_PLUGINS = {'quantumespresso.pw': 'Quantum ESPRESSO pw.x', 'quantumespresso.neb': 'Quantum ESPRESSO neb.x'}


#: pw.x's printed exchange-correlation (letters only, upper case) -> usual name.
_XC_NAMES = {'SLAPWPBXPBC': 'PBE', 'SLAPWPSXPSC': 'PBEsol', 'SLAPZ': 'LDA', 'SLAPW': 'LDA', 'SLAB88LYPBLYP': 'BLYP'}


def _squash(text: Any) -> str:
    return ''.join(ch for ch in str(text or '').upper() if ch.isalpha())


def _functional_from_pseudos(filenames: list[str]) -> str | None:
    found = set()
    for name in filenames:
        low = name.lower()
        for tag, functional in (('pbesol', 'PBEsol'), ('pbe', 'PBE'), ('pz', 'LDA'), ('lda', 'LDA'), ('blyp', 'BLYP')):
            if tag in low:
                found.add(functional)
                break
    return found.pop() if len(found) == 1 else None


def dft_settings(node: Any) -> dict[str, Any]:
    """DFT settings of a pw.x ``CalcJobNode`` (keys of ``mapping.DFT_KEYS``; cutoffs in Ry); ``{}`` for other nodes."""
    from aiida import orm
    from aiida.common.links import LinkType

    if not isinstance(node, orm.CalcJobNode):
        return {}
    process_type = node.process_type or ''
    plugin = process_type.rpartition(':')[2]
    settings: dict[str, Any] = {'calculation_uuid': node.uuid, 'dft_code': _QE_PLUGINS.get(plugin, plugin or None)}
    inputs = node.base.links.get_incoming(link_type=LinkType.INPUT_CALC)
    by_label = {triple.link_label: triple.node for triple in inputs.all()}
    outputs = {t.link_label: t.node for t in node.base.links.get_outgoing(link_type=LinkType.CREATE).all()}
    out_params = outputs.get('output_parameters')
    out = out_params.get_dict() if isinstance(out_params, orm.Dict) else {}
    settings['dft_code_version'] = out.get('creator_version')
    parameters = by_label.get('parameters')
    system = parameters.get_dict().get('SYSTEM', {}) if isinstance(parameters, orm.Dict) else {}
    if 'ecutwfc' in system:
        settings['ecutwfc'] = float(system['ecutwfc'])
        settings['ecutrho'] = float(system.get('ecutrho', 4 * float(system['ecutwfc'])))
    pseudos = {label.split('__', 1)[1]: n for label, n in by_label.items() if label.startswith('pseudos__')}
    if pseudos:
        settings['pseudopotentials'] = {
            getattr(n, 'element', None) or kind: getattr(n, 'filename', None) for kind, n in sorted(pseudos.items())
        }
        groups = (
            orm.QueryBuilder()
            .append(orm.Node, filters={'id': next(iter(pseudos.values())).pk}, tag='p')
            .append(orm.Group, with_node='p', project='label', filters={'type_string': {'like': 'pseudo.family%'}})
            .all(flat=True)
        )
        settings['pseudo_family'] = groups[0] if groups else None
    functional = system.get('input_dft') or _XC_NAMES.get(_squash(out.get('dft_exchange_correlation')))
    if not functional and pseudos:
        functional = _functional_from_pseudos([getattr(n, 'filename', '') for n in pseudos.values()])
    settings['functional'] = functional or out.get('dft_exchange_correlation')
    kpoints = by_label.get('kpoints')
    if kpoints is not None:
        try:
            mesh, offset = kpoints.get_kpoints_mesh()
            settings['kpoints'] = [int(k) for k in mesh]
            settings['kpoints_offset'] = [float(o) for o in offset]
        except AttributeError:  # an explicit list of k-points, not a mesh
            pass
    return settings


def dft_settings_by_uuid(uuids: list[str | None]) -> dict[str, dict[str, Any]]:
    """``{uuid: dft_settings(node)}`` for the UUIDs that name stored nodes (others are left out)."""
    from aiida import orm

    wanted = sorted({u for u in uuids if u})
    result: dict[str, dict[str, Any]] = {}
    if not wanted:
        return result
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        for node in orm.QueryBuilder().append(orm.CalcJobNode, filters={'uuid': {'in': chunk}}).all(flat=True):
            result[node.uuid] = dft_settings(node)
    return result
