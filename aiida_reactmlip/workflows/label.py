"""``reactmlip.label``: structures -> one PwBaseWorkChain each -> ``LabelledDatasetData``.

Per structure, the pw.x inputs follow the protocol (``aiida_reactmlip/protocols/label.yaml``) and the
structure's extras: ``multiplicity`` (2S+1; e.g. 3 for O2) runs it spin-polarised with the total
magnetisation fixed at 2S Bohr magnetons, ``spin_polarised`` (bool, periodic systems without a
``multiplicity``: Ni slabs, O2 on a metal) runs it spin-polarised with a free magnetisation,
``dipole_correction`` (bool) adds a dipole correction along c
to a slab. Without these extras the ``spin`` input decides (``auto`` by default: Cr, Mn, Fe, Co or Ni,
odd-electron molecules/atoms and O2 run spin-polarised; see :mod:`aiida_reactmlip.spin`). AiiDA caching applies to the pw.x calculations: labelling the same structure with the same
inputs again, with caching enabled, reuses the earlier calculation instead of running pw.x.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import WorkChain
from aiida.plugins import WorkflowFactory

from aiida_reactmlip.calculations.functions import build_labelled_dataset, label_defect, trajectory_forces
from aiida_reactmlip.qe_settings import (
    available_protocols,
    dimensionality,
    dipole_settings,
    free_spin_settings,
    load_protocol,
    overlap_error,
    pw_choices,
    spin_settings,
)
from aiida_reactmlip.spin import SPIN_MODES, SpinChoice, choose_spin
from aiida_reactmlip.user_structures import dft_cell_error

PwBaseWorkChain = WorkflowFactory("quantumespresso.pw.base")

#: Extras of a StructureData read by the labelling: spin multiplicity 2S+1 and the dipole-correction switch.
MULTIPLICITY_EXTRA = "multiplicity"
DIPOLE_EXTRA = "dipole_correction"
#: Extra (set by the systems library on Ni slabs, for example): spin-polarised with a free magnetisation.
SPIN_POLARISED_EXTRA = "spin_polarised"
#: What PwBaseWorkChain does with a failure none of its handlers knows (a crashed pw.x): run it once more.
UNHANDLED_FAILURE_ACTION = "restart_once"


def _frame_key(index: int) -> str:
    return f"frame_{index:04d}"


def label_outputs(node) -> tuple | None:
    """``(output_parameters, output_trajectory)`` of the ``PwBaseWorkChain`` ``node``, or None.

    aiida-core 2.9.4: a daemon worker killed between a job's upload and its submission leaves the PwCalculation
    without ``remote_folder`` (the reloaded process skips the upload); pw.x runs and the calculation finishes ok,
    but PwBaseWorkChain fails with exit status 11 (a required output missing). The label is then taken from that
    calculation, which is marked invalid as a cache source (a clone of it would fail the same way).
    """
    if node.is_finished_ok:
        outputs = node.outputs
    else:
        calcs = [child for child in node.called if isinstance(child, orm.CalcJobNode)]
        last = max(calcs, key=lambda child: child.ctime) if calcs else None
        if node.exit_status != 11 or last is None or not last.is_finished_ok or "remote_folder" in last.outputs:
            return None
        last.base.caching.is_valid_cache = False
        outputs = last.outputs
    if "output_trajectory" not in outputs or "output_parameters" not in outputs:
        return None
    return outputs.output_parameters, outputs.output_trajectory


def valence_electrons(structure: orm.StructureData, family) -> float:
    """Number of valence electrons of ``structure`` with the pseudopotentials of ``family`` (z_valence summed)."""
    pseudos = family.get_pseudos(structure=structure)
    return float(sum(pseudos[site.kind_name].z_valence for site in structure.sites))


def structure_multiplicity(structure: orm.StructureData) -> int | None:
    """The spin multiplicity 2S+1 stored in the structure's extras, or None."""
    value = structure.base.extras.get(MULTIPLICITY_EXTRA, None)
    return None if value is None else value


def structure_spin(structure: orm.StructureData, mode: str = "auto") -> SpinChoice:
    """The spin treatment of ``structure`` under ``mode`` (auto | off | on); its ``multiplicity`` and
    ``spin_polarised`` extras win (see :func:`aiida_reactmlip.spin.choose_spin`)."""
    extras = {k: structure.base.extras.get(k) for k in (MULTIPLICITY_EXTRA, SPIN_POLARISED_EXTRA)
              if structure.base.extras.get(k, None) is not None}
    return choose_spin(structure.get_ase(), mode, info=extras)


def wants_dipole_correction(structure: orm.StructureData, default: bool = False) -> bool:
    """Whether ``structure`` gets a dipole correction: its ``dipole_correction`` extra, else ``default`` for slabs."""
    value = structure.base.extras.get(DIPOLE_EXTRA, None)
    if value is not None:
        return bool(value)
    return bool(default) and dimensionality(structure.get_ase()) == 2


def pw_parameters(
    key: str,
    structure: orm.StructureData,
    protocol: dict,
    family,
    parameter_overrides: dict | None = None,
    frame_overrides: dict | None = None,
    dipole_correction: bool = False,
    multiplicity: int | None = None,
    spin_polarised: bool | None = None,
) -> tuple[dict, dict]:
    """Return (pw.x namelists, choices) for one configuration.

    The choices of :func:`aiida_reactmlip.qe_settings.pw_choices` (cutoffs in Ry, k-mesh, occupations),
    spin from the ``multiplicity`` extra, dipole correction from the ``dipole_correction`` extra or the
    ``dipole_correction`` default for slabs, then ``parameter_overrides`` (all) and ``frame_overrides[key]``.
    An explicit ``multiplicity`` replaces the extra, an explicit ``spin_polarised`` (free magnetisation,
    periodic systems) the ``spin_polarised`` extra.
    """
    atoms = structure.get_ase()
    cutoffs = family.get_recommended_cutoffs(structure=structure, unit="Ry")
    choices = pw_choices(atoms, protocol, cutoffs)
    system = {"ecutwfc": choices["ecutwfc"], "ecutrho": choices["ecutrho"], "occupations": choices["occupations"]}
    if choices["occupations"] == "smearing":
        system.update({"smearing": choices["smearing"], "degauss": choices["degauss"]})
    control = {"tprnfor": True, "tstress": choices["tstress"]}
    parameters = {"CONTROL": control, "SYSTEM": system, "ELECTRONS": {"conv_thr": choices["conv_thr"]}}
    if multiplicity is None:
        multiplicity = structure_multiplicity(structure)
    spin = spin_settings(multiplicity, valence_electrons(structure, family), [k.name for k in structure.kinds])
    if spin_polarised is None:
        spin_polarised = structure.base.extras.get(SPIN_POLARISED_EXTRA, False)
    if not spin and multiplicity is None and spin_polarised \
            and choices["occupations"] == "smearing":
        spin = free_spin_settings([(k.name, k.symbol) for k in structure.kinds])
    system.update(spin)
    choices["nspin"] = spin.get("nspin", 1)
    choices["dipole_correction"] = wants_dipole_correction(structure, dipole_correction)
    if choices["dipole_correction"]:
        for namelist, values in dipole_settings(atoms).items():
            parameters[namelist].update(values)
    elif choices["dimensionality"] == 2 and not structure.pbc[2]:
        system["assume_isolated"] = "2D"
    for namelists in (parameter_overrides or {}, (frame_overrides or {}).get(key, {})):
        for namelist, values in namelists.items():
            parameters.setdefault(namelist.upper(), {}).update(values)
    return parameters, choices


def protocol_and_family(inputs, prefix: str = "") -> tuple:
    """``(pseudopotential family group, None)`` of ``inputs`` (``protocol``, ``pseudo_family``), or ``(None, why
    not)``: an unknown protocol or a family not installed. ``prefix`` names the namespace in messages."""
    from aiida.common.exceptions import NotExistent

    protocol = inputs.get("protocol")
    if protocol is not None and protocol.value not in available_protocols():
        return None, f"unknown {prefix}protocol {protocol.value!r}; available: {', '.join(available_protocols())}"
    family_label = inputs["pseudo_family"].value
    try:
        return orm.load_group(family_label), None
    except NotExistent:
        return None, (f"pseudopotential family {family_label!r} not found; run `reactmlip setup` or "
                      "`aiida-pseudo list`")


def pseudo_families_with(elements: list[str]) -> list[str]:
    """Labels of the installed aiida-pseudo families with a pseudopotential for every one of ``elements``."""
    query = orm.QueryBuilder().append(orm.Group, filters={"type_string": {"like": "pseudo.family%"}})
    return sorted(group.label for group in query.all(flat=True)
                  if set(elements) <= set(getattr(group, "elements", None) or ()))


def missing_pseudo_message(key: str, missing: list[str], family_label: str, available: list[str]) -> str:
    """The refusal of a structure with elements ``missing`` from the family: what is wrong, what to do."""
    elements = ", ".join(missing)
    others = pseudo_families_with(missing)
    remedy = (f"family {others[0]!r} has {elements}: pass it with `--pseudo-family {others[0]}` (input "
              "`pseudo_family`)" if others else
              f"install a family with {elements} (`aiida-pseudo install family FOLDER LABEL -P "
              "pseudo.upf`, then `aiida-pseudo family cutoffs set`) and pass it with `--pseudo-family LABEL` "
              "(input `pseudo_family`)")
    return (f"structure {key!r} contains element(s) {elements} with no pseudopotential in family "
            f"{family_label!r} (it has {', '.join(available)}); {remedy}. No pw.x job was started.")


def validate_inputs(inputs, _):
    """Check everything that can be checked before a single pw.x job is submitted."""
    family, message = protocol_and_family(inputs)
    if message:
        return message
    structures = inputs.get("structures", {})
    if not structures:
        return "no structures given: pass at least one StructureData in the `structures` namespace"
    spin_mode = inputs["spin"].value if "spin" in inputs else "auto"
    if spin_mode not in SPIN_MODES:
        return f"unknown spin mode {spin_mode!r}; choose one of {', '.join(SPIN_MODES)}"
    family_label = inputs["pseudo_family"].value
    available = set(family.elements)
    frame_overrides = inputs["frame_overrides"].get_dict() if "frame_overrides" in inputs else {}
    unknown = sorted(set(frame_overrides) - set(structures))
    if unknown:
        return f"frame_overrides name structure(s) {', '.join(unknown)} that are not in `structures`"
    for key, structure in structures.items():
        missing = sorted({kind.symbol for kind in structure.kinds} - available)
        if missing:
            return missing_pseudo_message(key, missing, family_label, sorted(available))
        if len(structure.sites) == 0:
            return f"structure {key!r} has no atoms"
        cell_problem = dft_cell_error(structure.get_ase())
        if cell_problem:
            return f"structure {key!r} {cell_problem}"
        overlap = overlap_error(structure.get_ase(), f"structure {key!r}")
        if overlap:
            return overlap
        try:
            choice = structure_spin(structure, spin_mode)
            spin_settings(choice.multiplicity, valence_electrons(structure, family))
        except ValueError as exception:
            return f"structure {key!r}: {exception}"
        if structure.base.extras.get(DIPOLE_EXTRA, False):
            try:
                dipole_settings(structure.get_ase())
            except ValueError as exception:
                return f"structure {key!r} asks for a dipole correction: {exception}"
    return None


def spin_input(spec, where: str) -> None:
    """Declare the ``spin`` input (auto | off | on, :mod:`aiida_reactmlip.spin`); ``where`` ends its help."""
    spec.input("spin", valid_type=orm.Str, default=lambda: orm.Str("auto"),
               help=f"auto | off | on: spin polarisation (aiida_reactmlip/spin.py) {where}")


class LabelWorkChain(WorkChain):
    """Label configurations with DFT (pw.x scf with forces; stress for bulk) and collect a dataset.

    Configurations whose DFT failed after PwBaseWorkChain's restart handlers gave up, or whose pw.x output is
    not a label (SCF not converged, no forces: :func:`aiida_reactmlip.calculations.functions.label_defect`),
    are listed in the ``failed`` output (names) and ``failures`` (name -> exit status, message, reason), and
    in exit code 401; the dataset of the others is still produced and its extra ``missing_labels`` says what
    it lacks.
    A pw.x that crashed without a diagnosis is run once more (``on_unhandled_failure = restart_once``).
    """

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input_namespace("structures", valid_type=orm.StructureData, dynamic=True,
                             help="Configurations to label; the keys become frame keys. Extras read: "
                             "`multiplicity` (2S+1), `dipole_correction` (bool).")
        spec.input("pw_code", valid_type=orm.AbstractCode, help="Code configured for quantumespresso.pw.")
        spec.input("pseudo_family", valid_type=orm.Str, help="Label of an aiida-pseudo family with cutoffs.")
        spec.input("protocol", valid_type=orm.Str, default=lambda: orm.Str("moderate"),
                   help="fast | moderate | precise (see aiida_reactmlip/protocols/label.yaml).")
        spec.input("parameter_overrides", valid_type=orm.Dict, required=False,
                   help="pw.x namelist overrides applied to every configuration, e.g. {'SYSTEM': {'nspin': 2}}.")
        spec.input("frame_overrides", valid_type=orm.Dict, required=False,
                   help="Per-structure pw.x namelist overrides: {structure key: {'SYSTEM': {...}}}.")
        spec.input("dipole_correction", valid_type=orm.Bool, default=lambda: orm.Bool(False),
                   help="Dipole correction along c for every slab (a structure's `dipole_correction` extra wins).")
        spin_input(spec, "per configuration; a structure's `multiplicity` / `spin_polarised` extras win.")
        spec.input("options", valid_type=orm.Dict, required=False,
                   help="metadata.options for each pw.x job (resources, max_wallclock_seconds, ...).")
        spec.input("max_iterations", valid_type=orm.Int, default=lambda: orm.Int(3),
                   help="Restarts PwBaseWorkChain may try per configuration.")
        spec.inputs.validator = validate_inputs
        spec.outline(cls.setup, cls.run_labels, cls.inspect_labels, cls.collect)
        spec.output("dataset", valid_type=orm.Data, help="LabelledDatasetData of the successful labels.")
        spec.output("failed", valid_type=orm.List, required=False, help="Keys of configurations without a label.")
        spec.output("failures", valid_type=orm.Dict, required=False,
                    help="Per failed configuration: exit_status, exit_message, reason and pk of its "
                    "PwBaseWorkChain.")
        spec.exit_code(401, "ERROR_SOME_LABELS_FAILED",
                       message="DFT failed for {count} configuration(s): {keys}; the dataset holds the others.")
        spec.exit_code(402, "ERROR_ALL_LABELS_FAILED", message="DFT failed for every configuration: {keys}.")

    def setup(self):
        self.ctx.protocol = load_protocol(self.inputs.protocol.value)
        self.ctx.family = orm.load_group(self.inputs.pseudo_family.value)

    def _builder(self, key: str, structure: orm.StructureData):
        spin = structure_spin(structure, self.inputs.spin.value)
        parameters, choices = pw_parameters(
            key,
            structure,
            self.ctx.protocol,
            self.ctx.family,
            parameter_overrides=self.inputs.parameter_overrides.get_dict() if "parameter_overrides" in self.inputs else None,
            frame_overrides=self.inputs.frame_overrides.get_dict() if "frame_overrides" in self.inputs else None,
            dipole_correction=self.inputs.dipole_correction.value,
            multiplicity=spin.multiplicity,
            spin_polarised=spin.free,
        )
        electronic_type = "insulator" if choices["occupations"] == "fixed" else "metal"
        from aiida_quantumespresso.common.types import ElectronicType

        overrides = {"pseudo_family": self.ctx.family.label, "pw": {"parameters": parameters}}
        builder = PwBaseWorkChain.get_builder_from_protocol(
            self.inputs.pw_code,
            structure,
            protocol=self.ctx.protocol["qe_protocol"],
            overrides=overrides,
            electronic_type=ElectronicType(electronic_type),
            options=self.inputs.options.get_dict() if "options" in self.inputs else None,
        )
        if choices["occupations"] == "fixed":
            builder.pw.parameters = orm.Dict(_drop_smearing(builder.pw.parameters.get_dict()))
        kpoints = orm.KpointsData()
        kpoints.set_kpoints_mesh(choices["kpoints_mesh"])
        builder.kpoints = kpoints
        builder.pop("kpoints_distance", None)
        builder.max_iterations = self.inputs.max_iterations
        # A pw.x that dies without a diagnosis (killed, node failure: exit 312 / 305) has no handler in
        # PwBaseWorkChain, which then aborts (aiida-core >= 2.7); run it once more before giving up.
        builder.on_unhandled_failure = orm.Str(UNHANDLED_FAILURE_ACTION)
        builder.metadata.call_link_label = f"label_{key}"
        return builder

    def run_labels(self):
        """Submit one PwBaseWorkChain per configuration; the daemon runs them concurrently."""
        self.ctx.frame_names = {}
        for index, (name, structure) in enumerate(sorted(self.inputs.structures.items())):
            key = _frame_key(index)
            self.ctx.frame_names[key] = name
            node = self.submit(PwBaseWorkChain, **self._builder(name, structure))
            self.report(f"submitted PwBaseWorkChain<{node.pk}> for {name}")
            self.to_context(**{key: node})

    def inspect_labels(self):
        self.ctx.done, self.ctx.failed, self.ctx.failures = [], [], {}
        for key, name in self.ctx.frame_names.items():
            node = self.ctx[key]
            defect = self._label_defect(node, self.inputs.structures[name])
            if defect is None:
                self.ctx.done.append(key)
                continue
            self.report(f"{name}: PwBaseWorkChain<{node.pk}> exit status {node.exit_status}, no label: "
                        f"{defect}")
            self.ctx.failed.append(name)
            self.ctx.failures[name] = {
                "exit_status": node.exit_status,
                "exit_message": node.exit_message or "",
                "reason": defect,
                "pk": node.pk,
            }

    @staticmethod
    def _label_defect(node, structure: orm.StructureData) -> str | None:
        """Why the PwBaseWorkChain ``node`` gives no label (failed, no output, unconverged SCF), or None."""
        outputs = label_outputs(node)
        if outputs is None and not node.is_finished_ok:
            return f"PwBaseWorkChain failed: {node.exit_message or node.process_state}"
        if outputs is None:
            return "PwBaseWorkChain finished without output_parameters / output_trajectory"
        parameters, trajectory = outputs
        return label_defect(parameters.get_dict(), trajectory_forces(trajectory), len(structure.sites))

    def collect(self):
        if self.ctx.failed:
            self.out("failed", orm.List(sorted(self.ctx.failed)).store())
            self.out("failures", orm.Dict(self.ctx.failures).store())
        if not self.ctx.done:
            return self.exit_codes.ERROR_ALL_LABELS_FAILED.format(keys=", ".join(sorted(self.ctx.failed)))
        frame_info, nodes = {}, {}
        for key in self.ctx.done:
            name = self.ctx.frame_names[key]
            structure = self.inputs.structures[name]
            info = {k: v for k, v in structure.base.extras.all.items() if isinstance(v, (str, int, float, bool))}
            info = {k: v for k, v in info.items() if not k.startswith("_")}
            info.setdefault("name", name)
            frame_info[key] = info
            parameters, trajectory = label_outputs(self.ctx[key])
            nodes[f"structure_{key}"] = structure
            nodes[f"parameters_{key}"] = parameters
            nodes[f"trajectory_{key}"] = trajectory
        dataset = build_labelled_dataset(frame_info=orm.Dict(frame_info), **nodes)
        if self.ctx.failed:
            # Extras stay mutable on a stored node: they document, they are not provenance.
            dataset.base.extras.set("missing_labels", {name: f["exit_status"] for name, f in self.ctx.failures.items()})
        self.out("dataset", dataset)
        if self.ctx.failed:
            return self.exit_codes.ERROR_SOME_LABELS_FAILED.format(
                count=len(self.ctx.failed), keys=", ".join(sorted(self.ctx.failed))
            )
        return None


def _drop_smearing(parameters: dict) -> dict:
    system = dict(parameters.get("SYSTEM", {}))
    system.pop("smearing", None)
    system.pop("degauss", None)
    system["occupations"] = "fixed"
    return {**parameters, "SYSTEM": system}
