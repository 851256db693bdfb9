"""``reactmlip.dft_neb``: climbing-image NEB barriers with Quantum ESPRESSO's neb.x.

Two end states (or a whole initial band) -> images (IDPP or linear interpolation, a calcfunction) ->
aiida-quantumespresso's ``NebBaseWorkChain`` (``quantumespresso.neb`` CalcJob with restart handlers for
unconverged SCF, band steps exhausted, diagonalisation failures) -> barrier (eV), energy profile, band.

The pw.x settings of every image come from the ``reactmlip.label`` protocol of the same name and the
initial structure's extras (``multiplicity``, ``dipole_correction``), so DFT barriers and DFT labels
share cutoffs, k-points, smearing and spin treatment.
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import ToContext, WorkChain, calcfunction
from aiida.plugins import WorkflowFactory

from aiida_reactmlip.qe_settings import available_protocols, load_neb_protocol, load_protocol, overlap_error
from aiida_reactmlip.spin import SPIN_MODES
from aiida_reactmlip.workflows.label import missing_pseudo_message, spin_input

NebBaseWorkChain = WorkflowFactory("quantumespresso.neb.base")

#: Interpolation schemes for the initial band.
INTERPOLATIONS = ("idpp", "linear")


def _check_end_states(first, last) -> str | None:
    """Why two structures cannot be the ends of one band, or None."""
    if len(first.sites) != len(last.sites):
        return f"initial has {len(first.sites)} atoms, final has {len(last.sites)}: the end states must match atom by atom"
    if first.get_site_kindnames() != last.get_site_kindnames():
        return "the end states list different species (or a different atom order): they must match atom by atom"
    if np.abs(np.array(first.cell) - np.array(last.cell)).max() > 1e-4:
        return "the end states have different cells: neb.x needs one cell for the whole band"
    if tuple(first.pbc) != tuple(last.pbc):
        return "the end states have different periodic boundary conditions"
    for kind in first.kinds:
        if kind.name != kind.symbol:
            return f"kind {kind.name!r} is not an element symbol; neb.x images here use one kind per element"
    return None


#: Elements that make molecules and adsorbates, never the substrate of a slab (the substrate's layers count).
ADSORBATE_ELEMENTS = frozenset("H He B C N O F Ne P S Cl Ar Se Br Kr I Xe".split())


def slab_bottom_layers(atoms) -> list[int]:
    """The atoms (0-based) of the bottom half of a slab's substrate layers (``n // 2`` of ``n`` layers, as the
    slab builders and ASE's layer tags fix them); none for a structure that is not a slab (vacuum along c) or
    whose substrate has fewer than two layers. Substrate: atoms of elements not in :data:`ADSORBATE_ELEMENTS`."""
    from aiida_reactmlip.qe_settings import dimensionality
    from aiida_reactmlip.systems.surfaces import layers

    if dimensionality(atoms) != 2:
        return []
    substrate = [i for i, symbol in enumerate(atoms.get_chemical_symbols()) if symbol not in ADSORBATE_ELEMENTS]
    if not substrate:
        return []
    found = layers(atoms[substrate])  # top first
    if len(found) < 2:
        return []
    return sorted(substrate[int(i)] for layer in found[len(found) - len(found) // 2:] for i in layer)


def band_fixed_atoms(structure: orm.StructureData, explicit: orm.List | None = None) -> list[int]:
    """Atoms (0-based) kept fixed in every image: ``explicit`` if given, else the structure's ``fixed_atoms``
    extra (a list, or a JSON list as campaigns store a slab's constrained layers), else, for a slab, the bottom
    half of its substrate layers (:func:`slab_bottom_layers`); else none.

    Raises ValueError naming the problem: not integers, an index out of range, every atom fixed.
    """
    import json

    value = explicit.get_list() if explicit is not None else structure.base.extras.get("fixed_atoms", None)
    if value is None:
        return slab_bottom_layers(structure.get_ase())
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the `fixed_atoms` extra {value!r} is not a JSON list of atom indices") from exc
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in value
    ):
        raise ValueError(f"fixed_atoms must be a list of atom indices (integers), got {value!r}")
    n_atoms = len(structure.sites)
    bad = sorted(i for i in value if not 0 <= i < n_atoms)
    if bad:
        raise ValueError(f"fixed_atoms {bad} out of range for {n_atoms} atoms (indices start at 0)")
    fixed = sorted(set(value))
    if len(fixed) == n_atoms:
        raise ValueError(f"fixed_atoms fixes all {n_atoms} atoms: nothing would move along the band")
    return fixed


def validate_inputs(inputs, _):
    """Check the end states, the protocol, the family and the band before neb.x is started."""
    from aiida.common.exceptions import NotExistent

    protocol = inputs.get("protocol")
    if protocol is not None and protocol.value not in available_protocols():
        return f"unknown protocol {protocol.value!r}; available: {', '.join(available_protocols())}"
    spin = inputs.get("spin")
    if spin is not None and spin.value not in SPIN_MODES:
        return f"unknown spin mode {spin.value!r}; choose one of {', '.join(SPIN_MODES)}"
    interpolation = inputs.get("interpolation")
    if interpolation is not None and interpolation.value not in INTERPOLATIONS:
        return f"unknown interpolation {interpolation.value!r}; available: {', '.join(INTERPOLATIONS)}"
    num_images = inputs.get("num_images")
    if num_images is not None and num_images.value < 3:
        return f"num_images counts the end states too and must be at least 3, got {num_images.value}"
    if "images" in inputs:
        images = inputs["images"]
        if images.numsteps < 3:
            return f"`images` holds {images.numsteps} structures; a band needs at least 3 (both ends included)"
        first, last = images.get_step_structure(0), images.get_step_structure(images.numsteps - 1)
        band = [images.get_step_structure(i) for i in range(images.numsteps)]
    elif "initial" in inputs and "final" in inputs:
        first, last = inputs["initial"], inputs["final"]
        band = [first, last]
    else:
        return "give the end states `initial` and `final`, or a whole initial band as `images`"
    problem = _check_end_states(first, last)
    if problem:
        return problem
    try:
        fixed = band_fixed_atoms(first, inputs.get("fixed_atoms"))
    except ValueError as exc:
        return str(exc)
    if fixed:
        first_positions, last_positions = first.get_ase().positions[fixed], last.get_ase().positions[fixed]
        shift = np.linalg.norm(last_positions - first_positions, axis=1)
        moved = [fixed[i] for i in np.flatnonzero(shift > 1e-3)]
        if moved:
            source = "" if inputs.get("fixed_atoms") is not None or first.base.extras.get("fixed_atoms", None) \
                is not None else " (the slab's bottom layers, fixed by default; give `fixed_atoms` to choose)"
            return (f"fixed atom(s) {moved[:10]}{source} sit at different positions in the two end states (up to "
                    f"{shift.max():.3f} Å): a fixed atom must not move along the band")
    for index, structure in enumerate(band):
        overlap = overlap_error(structure.get_ase(), f"image {index}")
        if overlap:
            return overlap
    family_label = inputs["pseudo_family"].value
    try:
        family = orm.load_group(family_label)
    except NotExistent:
        return f"pseudopotential family {family_label!r} not found; run `reactmlip setup` or `aiida-pseudo list`"
    missing = sorted({kind.symbol for kind in first.kinds} - set(family.elements))
    if missing:
        return missing_pseudo_message("band", missing, family_label, sorted(family.elements))
    return None


@calcfunction
def interpolate_band(initial: orm.StructureData, final: orm.StructureData, num_images: orm.Int,
                     method: orm.Str, fixed_atoms: orm.List | None = None) -> orm.TrajectoryData:
    """The initial band: ``num_images`` structures (ends included) between ``initial`` and ``final``.

    ``method`` 'idpp' (image-dependent pair potential, Smidstrup et al. 2014, through ASE) or 'linear'
    (Cartesian, minimum image where periodic). Atoms of ``fixed_atoms`` stay where the end states have them.
    """
    from ase.constraints import FixAtoms
    from ase.mep import NEB

    first, last = initial.get_ase(), final.get_ase()
    band = [first] + [first.copy() for _ in range(num_images.value - 2)] + [last]
    if fixed_atoms is not None and fixed_atoms.get_list():
        for atoms in band:
            atoms.set_constraint(FixAtoms(indices=fixed_atoms.get_list()))
    neb = NEB(band, method="improvedtangent")
    neb.interpolate(method=method.value, mic=bool(first.pbc.any()))
    return orm.TrajectoryData(structurelist=[orm.StructureData(ase=atoms) for atoms in band])


@calcfunction
def neb_results(output_parameters: orm.Dict, band: orm.TrajectoryData, output_mep: orm.ArrayData) -> dict:
    """Barrier (eV) and energy profile from a finished neb.x run.

    Outputs: ``barrier`` (forward, eV, highest image minus initial state) and ``reverse_barrier``, both only
    when the highest image lies between the end states (else there is no barrier to give),
    ``reaction_energy`` (final minus initial, eV) and ``energy_profile`` (ArrayData: ``reaction_coordinate``
    cumulative image-to-image distance in Å, ``energies`` absolute eV, ``relative_energies`` eV vs the
    initial state, ``max_force`` eV/Å perpendicular force per image, ``interpolated`` neb.x's spline
    (normalised coordinate, eV); attribute ``highest_image`` (0-based) and ``climbing_image``).
    """
    params = output_parameters.get_dict()
    energies = np.asarray(params["image_energies"], dtype=float)
    forces = np.asarray(params.get("image_forces", [np.nan] * len(energies)), dtype=float)
    positions = band.get_positions()
    steps = [np.linalg.norm(positions[i + 1] - positions[i]) for i in range(len(positions) - 1)]
    coordinate = np.concatenate([[0.0], np.cumsum(steps)])
    relative = energies - energies[0]
    highest = int(np.argmax(energies))
    profile = orm.ArrayData()
    profile.set_array("reaction_coordinate", coordinate)
    profile.set_array("energies", energies)
    profile.set_array("relative_energies", relative)
    profile.set_array("max_force", forces)
    if "interpolated_mep" in output_mep.get_arraynames():
        interpolated = np.asarray(output_mep.get_array("interpolated_mep"))
        if interpolated.ndim == 2 and interpolated.shape[1] >= 2:
            profile.set_array("interpolated", interpolated[:, :2])
    profile.base.attributes.set("highest_image", highest)
    climbing = params.get("climbing_image_auto")
    if climbing:
        profile.base.attributes.set("climbing_image", [int(c) - 1 for c in climbing])
    profile.base.attributes.set("units", {"reaction_coordinate": "Å", "energies": "eV", "max_force": "eV/Å"})
    results = {"reaction_energy": orm.Float(float(energies[-1] - energies[0])), "energy_profile": profile}
    if 0 < highest < len(energies) - 1:  # a barrier exists only with the maximum between the end states
        results["barrier"] = orm.Float(float(energies.max() - energies[0]))
        results["reverse_barrier"] = orm.Float(float(energies.max() - energies[-1]))
    return results


class DftNebWorkChain(WorkChain):
    """Climbing-image NEB with neb.x: end states (or an initial band) -> barrier (eV), energy profile, band."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("initial", valid_type=orm.StructureData, required=False,
                   help="Initial state (its extras `multiplicity`, `dipole_correction` set the pw.x spin/dipole).")
        spec.input("final", valid_type=orm.StructureData, required=False, help="Final state, same atoms and cell.")
        spec.input("images", valid_type=orm.TrajectoryData, required=False,
                   help="A whole initial band, ends included; replaces initial/final interpolation.")
        spec.input("code", valid_type=orm.AbstractCode, help="Code configured for quantumespresso.neb (neb.x).")
        spec.input("pseudo_family", valid_type=orm.Str, help="Label of an aiida-pseudo family with cutoffs.")
        spec.input("protocol", valid_type=orm.Str, default=lambda: orm.Str("moderate"),
                   help="fast | moderate | precise: pw.x settings from label.yaml, band settings from neb.yaml.")
        spec.input("num_images", valid_type=orm.Int, default=lambda: orm.Int(7),
                   help="Images of the band, both ends included (interpolation only).")
        spec.input("interpolation", valid_type=orm.Str, default=lambda: orm.Str("idpp"), help="idpp | linear.")
        spec.input("climbing_image", valid_type=orm.Bool, default=lambda: orm.Bool(True),
                   help="Climbing image (CI_scheme 'auto': the highest image climbs) for the saddle point.")
        spec.input("fixed_atoms", valid_type=orm.List, required=False,
                   help="Atoms (0-based) kept fixed in every image, e.g. a slab's bottom layers (pw.x if_pos 0 0 0). "
                   "Default: the `fixed_atoms` extra of `initial` (campaigns set it from the builders' FixAtoms or "
                   "a user file's `fixed_atoms`/layer tags), else for a slab the bottom half of its substrate layers.")
        spec.input("relax_end_states", valid_type=orm.Bool, default=lambda: orm.Bool(True),
                   help="Optimise the end states together with the band (neb.x first_last_opt), for end states "
                   "that are not DFT minima yet (built, or relaxed with another method). The barrier is then "
                   "measured from the relaxed initial state. Default true: a barrier from unrelaxed end states is "
                   "not one to trust.")
        spec.input("multiplicity", valid_type=orm.Int, required=False,
                   help="Spin multiplicity 2S+1 along the band (default: the initial state's `multiplicity` extra).")
        spin_input(spec, "decided on the initial state; its `multiplicity` / `spin_polarised` extras and the "
                   "`multiplicity` input win.")
        spec.input("path_overrides", valid_type=orm.Dict, required=False,
                   help="neb.x PATH namelist overrides, e.g. {'path_thr': 0.1, 'nstep_path': 20}.")
        spec.input("parameter_overrides", valid_type=orm.Dict, required=False,
                   help="pw.x namelist overrides for every image, e.g. {'ELECTRONS': {'mixing_beta': 0.3}}.")
        spec.input("options", valid_type=orm.Dict, required=False,
                   help="metadata.options of the neb.x job (resources, withmpi, max_wallclock_seconds).")
        spec.input("max_iterations", valid_type=orm.Int, default=lambda: orm.Int(3),
                   help="neb.x runs NebBaseWorkChain may try (restarts after SCF failures or exhausted nstep_path).")
        spec.inputs.validator = validate_inputs
        spec.outline(cls.setup, cls.make_band, cls.run_neb, cls.inspect_neb, cls.results)
        spec.output("barrier", valid_type=orm.Float, required=False,
                    help="Forward barrier (eV): highest image minus initial state (absent when exit 403).")
        spec.output("reverse_barrier", valid_type=orm.Float, required=False,
                    help="Reverse barrier (eV): highest image minus final (absent when exit 403).")
        spec.output("reaction_energy", valid_type=orm.Float, help="Final minus initial state energy (eV).")
        spec.output("energy_profile", valid_type=orm.ArrayData,
                    help="reaction_coordinate (Å), energies (eV), relative_energies (eV), max_force (eV/Å).")
        spec.output("band", valid_type=orm.TrajectoryData, help="The converged band, ends included.")
        spec.output("output_parameters", valid_type=orm.Dict, help="neb.x's parsed output.")
        spec.exit_code(401, "ERROR_NEB_FAILED",
                       message="neb.x failed and the restart handlers gave up: NebBaseWorkChain<{pk}> exit status "
                       "{status}: {message}")
        spec.exit_code(402, "ERROR_NEB_NOT_CONVERGED",
                       message="the band did not converge (largest perpendicular force {force} eV/Å above path_thr "
                       "{thr} eV/Å)")
        spec.exit_code(403, "ERROR_NO_INTERIOR_MAXIMUM",
                       message="the highest image is an end state (image {index} of {count}): no barrier between the "
                       "end states; the profile is still output")

    def setup(self):
        self.ctx.protocol = load_protocol(self.inputs.protocol.value)
        self.ctx.neb_protocol = load_neb_protocol(self.inputs.protocol.value)
        self.ctx.family = orm.load_group(self.inputs.pseudo_family.value)

    def make_band(self):
        self.ctx.first = self.inputs.images.get_step_structure(0) if "images" in self.inputs else self.inputs.initial
        self.ctx.fixed_atoms = band_fixed_atoms(self.ctx.first, self.inputs.get("fixed_atoms"))
        if "images" in self.inputs:
            self.ctx.band = self.inputs.images
            return
        extra = {"fixed_atoms": orm.List(self.ctx.fixed_atoms)} if self.ctx.fixed_atoms else {}
        self.ctx.band = interpolate_band(
            self.inputs.initial, self.inputs.final, self.inputs.num_images, self.inputs.interpolation, **extra,
            metadata={"call_link_label": "interpolate_band"},
        )

    def _pw_parameters(self) -> tuple[dict, dict]:
        from aiida_reactmlip.workflows.label import pw_parameters, structure_spin

        structure = self.inputs.get("initial", self.ctx.first)
        spin = structure_spin(structure, self.inputs.spin.value)  # as reactmlip.label decides it
        multiplicity = self.inputs.multiplicity.value if "multiplicity" in self.inputs else spin.multiplicity
        parameters, choices = pw_parameters(
            "band",
            structure,
            self.ctx.protocol,
            self.ctx.family,
            parameter_overrides=self.inputs.parameter_overrides.get_dict() if "parameter_overrides" in self.inputs else None,
            multiplicity=multiplicity,
            spin_polarised=spin.free if "multiplicity" not in self.inputs else None,
        )
        parameters["CONTROL"].pop("tstress", None)
        parameters["CONTROL"].pop("tprnfor", None)
        parameters["CONTROL"]["calculation"] = "scf"
        return parameters, choices

    def run_neb(self):
        parameters, choices = self._pw_parameters()
        path = dict(self.ctx.neb_protocol["path"])
        path.update(
            {
                "restart_mode": "from_scratch",
                "string_method": "neb",
                "num_of_images": self.ctx.band.numsteps,
                "ci_scheme": "auto" if self.inputs.climbing_image.value else "no-CI",
                "first_last_opt": self.inputs.relax_end_states.value,
            }
        )
        if "path_overrides" in self.inputs:
            path.update(self.inputs.path_overrides.get_dict())
        self.ctx.path_thr = float(path["path_thr"])
        kpoints = orm.KpointsData()
        kpoints.set_kpoints_mesh(choices["kpoints_mesh"])
        options = self.inputs.options.get_dict() if "options" in self.inputs else {}
        options.setdefault("resources", {"num_machines": 1})
        options.setdefault("max_wallclock_seconds", 3600)

        builder = NebBaseWorkChain.get_builder()
        builder.neb.code = self.inputs.code
        builder.neb.images = self.ctx.band
        builder.neb.parameters = orm.Dict({"PATH": path})
        builder.neb.pw.parameters = orm.Dict(parameters)
        builder.neb.pw.pseudos = self.ctx.family.get_pseudos(structure=self.ctx.first)
        builder.neb.metadata.options = options
        fixed = self.ctx.fixed_atoms
        if fixed:
            fixed_set = set(fixed)
            builder.neb.settings = orm.Dict(
                {"FIXED_COORDS": [[i in fixed_set] * 3 for i in range(len(self.ctx.first.sites))]}
            )
        builder.kpoints = kpoints
        builder.max_iterations = self.inputs.max_iterations
        builder.metadata.call_link_label = "neb"
        node = self.submit(NebBaseWorkChain, **builder)
        self.report(
            f"submitted NebBaseWorkChain<{node.pk}>: {self.ctx.band.numsteps} images, "
            f"ecutwfc {choices['ecutwfc']} Ry, k-mesh {choices['kpoints_mesh']}, nspin {choices['nspin']}, "
            f"{len(fixed)} atoms fixed, end states {'optimised' if path['first_last_opt'] else 'kept'}"
        )
        return ToContext(neb=node)

    def inspect_neb(self):
        node = self.ctx.neb
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_NEB_FAILED.format(
                pk=node.pk, status=node.exit_status, message=node.exit_message or "no message"
            )
        params = node.outputs.output_parameters.get_dict()
        converged = params.get("converged", [False, 0])
        forces = params.get("image_forces") or []
        if not converged[0]:
            force = max(forces) if forces else float("nan")
            return self.exit_codes.ERROR_NEB_NOT_CONVERGED.format(force=f"{force:.3f}", thr=self.ctx.path_thr)
        return None

    def results(self):
        node = self.ctx.neb
        outputs = neb_results(
            node.outputs.output_parameters, node.outputs.output_trajectory, node.outputs.output_mep,
            metadata={"call_link_label": "neb_results"},
        )
        self.out("band", node.outputs.output_trajectory)
        self.out("output_parameters", node.outputs.output_parameters)
        for key, value in outputs.items():
            self.out(key, value)
        profile = outputs["energy_profile"]
        highest = profile.base.attributes.get("highest_image")
        count = len(profile.get_array("energies"))
        if "barrier" not in outputs:  # an exit code, not a number: the band has no maximum between its ends
            self.report(f"no barrier: the highest image is image {highest} of {count}, an end state")
            return self.exit_codes.ERROR_NO_INTERIOR_MAXIMUM.format(index=highest, count=count)
        self.report(
            f"barrier {outputs['barrier'].value:.3f} eV (reverse {outputs['reverse_barrier'].value:.3f} eV), "
            f"highest image {highest} of {count}"
        )
        return None
