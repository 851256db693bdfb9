"""``reactmlip.label``: structures -> one PwBaseWorkChain each -> ``LabelledDatasetData``."""

from __future__ import annotations

from aiida import orm
from aiida.engine import ToContext, WorkChain
from aiida.plugins import WorkflowFactory

from aiida_reactmlip.calculations.functions import build_labelled_dataset
from aiida_reactmlip.qe_settings import available_protocols, load_protocol, pw_choices

PwBaseWorkChain = WorkflowFactory("quantumespresso.pw.base")


def _frame_key(index: int) -> str:
    return f"frame_{index:04d}"


def validate_inputs(inputs, _):
    """Check everything that can be checked before a single pw.x job is submitted."""
    from aiida.common.exceptions import NotExistent

    protocol = inputs.get("protocol")
    if protocol is not None and protocol.value not in available_protocols():
        return f"unknown protocol {protocol.value!r}; available: {', '.join(available_protocols())}"
    structures = inputs.get("structures", {})
    if not structures:
        return "no structures given: pass at least one StructureData in the `structures` namespace"
    family_label = inputs["pseudo_family"].value
    try:
        family = orm.load_group(family_label)
    except NotExistent:
        return f"pseudopotential family {family_label!r} not found; run `reactmlip setup` or `aiida-pseudo list`"
    available = set(family.elements)
    for key, structure in structures.items():
        missing = sorted({kind.symbol for kind in structure.kinds} - available)
        if missing:
            return (
                f"structure {key!r} contains element(s) {', '.join(missing)} with no pseudopotential in family "
                f"{family_label!r} (it has {', '.join(sorted(available))})"
            )
        if len(structure.sites) == 0:
            return f"structure {key!r} has no atoms"
    return None


class LabelWorkChain(WorkChain):
    """Label configurations with DFT (pw.x scf with forces; stress for bulk) and collect a dataset.

    Configurations whose DFT failed after PwBaseWorkChain's restart handlers gave up are listed in the
    ``failed`` output and the exit code; the dataset of the others is still produced and says what it lacks.
    """

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input_namespace("structures", valid_type=orm.StructureData, dynamic=True,
                             help="Configurations to label; the keys become frame keys.")
        spec.input("pw_code", valid_type=orm.AbstractCode, help="Code configured for quantumespresso.pw.")
        spec.input("pseudo_family", valid_type=orm.Str, help="Label of an aiida-pseudo family with cutoffs.")
        spec.input("protocol", valid_type=orm.Str, default=lambda: orm.Str("moderate"),
                   help="fast | moderate | precise (see workflows/protocols/label.yaml).")
        spec.input("parameter_overrides", valid_type=orm.Dict, required=False,
                   help="pw.x namelist overrides applied to every configuration, e.g. {'SYSTEM': {'nspin': 2}}.")
        spec.input("frame_overrides", valid_type=orm.Dict, required=False,
                   help="Per-structure pw.x namelist overrides: {structure key: {'SYSTEM': {...}}}.")
        spec.input("options", valid_type=orm.Dict, required=False,
                   help="metadata.options for each pw.x job (resources, max_wallclock_seconds, ...).")
        spec.input("max_iterations", valid_type=orm.Int, default=lambda: orm.Int(3),
                   help="Restarts PwBaseWorkChain may try per configuration.")
        spec.inputs.validator = validate_inputs
        spec.outline(cls.setup, cls.run_labels, cls.inspect_labels, cls.collect)
        spec.output("dataset", valid_type=orm.Data, help="LabelledDatasetData of the successful labels.")
        spec.output("failed", valid_type=orm.List, required=False, help="Keys of configurations without a label.")
        spec.exit_code(401, "ERROR_SOME_LABELS_FAILED",
                       message="DFT failed for {count} configuration(s): {keys}; the dataset holds the others.")
        spec.exit_code(402, "ERROR_ALL_LABELS_FAILED", message="DFT failed for every configuration: {keys}.")

    def setup(self):
        self.ctx.protocol = load_protocol(self.inputs.protocol.value)
        self.ctx.family = orm.load_group(self.inputs.pseudo_family.value)

    def _builder(self, key: str, structure: orm.StructureData):
        atoms = structure.get_ase()
        cutoffs = self.ctx.family.get_recommended_cutoffs(structure=structure, unit="Ry")
        choices = pw_choices(atoms, self.ctx.protocol, cutoffs)
        system = {"ecutwfc": choices["ecutwfc"], "ecutrho": choices["ecutrho"], "occupations": choices["occupations"]}
        if choices["occupations"] == "smearing":
            system.update({"smearing": choices["smearing"], "degauss": choices["degauss"]})
        control = {"tprnfor": True, "tstress": choices["tstress"]}
        parameters = {"CONTROL": control, "SYSTEM": system, "ELECTRONS": {"conv_thr": choices["conv_thr"]}}
        if choices["dimensionality"] == 2 and not structure.pbc[2]:
            system["assume_isolated"] = "2D"
        for extra in (self.inputs.get("parameter_overrides"), self.inputs.get("frame_overrides")):
            if extra is None:
                continue
            namelists = extra.get_dict()
            if extra is self.inputs.get("frame_overrides"):
                namelists = namelists.get(key, {})
            for namelist, values in namelists.items():
                parameters.setdefault(namelist, {}).update(values)

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
        self.ctx.done, self.ctx.failed = [], []
        for key, name in self.ctx.frame_names.items():
            node = self.ctx[key]
            if node.is_finished_ok and "output_trajectory" in node.outputs:
                self.ctx.done.append(key)
            else:
                self.report(f"{name}: PwBaseWorkChain<{node.pk}> failed with exit status {node.exit_status}")
                self.ctx.failed.append(name)

    def collect(self):
        if not self.ctx.done:
            return self.exit_codes.ERROR_ALL_LABELS_FAILED.format(keys=", ".join(self.ctx.failed))
        frame_info, nodes = {}, {}
        for key in self.ctx.done:
            name = self.ctx.frame_names[key]
            structure = self.inputs.structures[name]
            info = {k: v for k, v in structure.base.extras.all.items() if isinstance(v, (str, int, float, bool))}
            info.setdefault("name", name)
            frame_info[key] = info
            node = self.ctx[key]
            nodes[f"structure_{key}"] = structure
            nodes[f"parameters_{key}"] = node.outputs.output_parameters
            nodes[f"trajectory_{key}"] = node.outputs.output_trajectory
        dataset = build_labelled_dataset(frame_info=orm.Dict(frame_info), **nodes)
        self.out("dataset", dataset)
        if self.ctx.failed:
            self.out("failed", orm.List(sorted(self.ctx.failed)).store())
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


def get_label_builder(structures: dict, protocol: str = "fast", pw_code=None, pseudo_family: str | None = None):
    """Convenience builder: ``structures`` maps names to ASE Atoms or StructureData."""
    from aiida_reactmlip import provision

    builder = LabelWorkChain.get_builder()
    builder.structures = {
        name: s if isinstance(s, orm.StructureData) else orm.StructureData(ase=s) for name, s in structures.items()
    }
    builder.pw_code = pw_code or orm.load_code(f"{provision.PW_CODE_LABEL}@{provision.DEFAULT_COMPUTER}")
    builder.pseudo_family = orm.Str(pseudo_family or provision.DEBIAN_FAMILY_LABEL)
    builder.protocol = orm.Str(protocol)
    return builder
