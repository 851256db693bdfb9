"""Bad inputs across the ``reactmlip`` CLI, the Python API and the OPTIMADE API: each must be refused with one
clear message (the problem and what to do), no Python traceback, and nothing stored.

A :class:`Case` says what is wrong, how it is invoked and a fragment the message must hold (case-insensitive).
``invoke`` is, per ``surface``:

- ``cli``: the arguments of ``reactmlip`` (placeholders ``{tmp}``, ``{structure_pk}``, ``{dataset_pk}``,
  ``{model_pk}``, ``{h2}``, ... filled from :class:`Workspace`);
- ``api``: the name of a function of this module taking the :class:`Workspace` (it must raise);
- ``optimade``: the path and query of a GET request.

:func:`make_workspace` writes the bad files and stores the few nodes the cases point at (a StructureData, a
dataset, a model); :func:`run_case` runs one case and reports what the user saw. Shared by
``tests/reliability/test_bad_inputs.py`` and ``tests/reliability/make_bad_inputs_table.py``.
"""

from __future__ import annotations

import dataclasses
import pathlib
import traceback
import typing as t

#: A fragment the console must never show.
TRACEBACK = "Traceback (most recent call last)"


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad input: ``id``, ``surface`` (cli | api | optimade), ``wrong`` (what is wrong), ``invoke`` (see the
    module docstring), ``expect`` (a fragment of the message, case-insensitive)."""

    id: str
    surface: str
    wrong: str
    invoke: tuple[str, ...] | str
    expect: str


@dataclasses.dataclass
class Workspace:
    """Where the bad files are (``tmp``) and the stored nodes the cases name."""

    tmp: pathlib.Path
    structure_pk: int
    dataset_pk: int
    model_pk: int
    client: t.Any = None  # a Starlette TestClient of the OPTIMADE app

    def fill(self, text: str) -> str:
        return text.format(tmp=self.tmp, structure_pk=self.structure_pk, dataset_pk=self.dataset_pk,
                           model_pk=self.model_pk)


# ------------------------------------------------------------------------------------------------ files


def _labelled_h2(n_frames: int = 3, energy: float | None = None, symbols: str = "H2") -> list:
    import numpy as np
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    images = []
    for i in range(n_frames):
        atoms = Atoms(symbols, positions=[[0, 0, 0], [0, 0, 0.7 + 0.05 * i]], cell=[8, 8, 8], pbc=False)
        atoms.calc = SinglePointCalculator(atoms, energy=-31.0 - 0.1 * i if energy is None else energy,
                                           forces=np.zeros((2, 3)))
        atoms.info["name"] = f"frame{i}"
        images.append(atoms)
    return images


LOOP_OK = """name: bad-loop
model: sevennet-0
pool: {fixture: ch4-dissociation-pool}
validation: {split: {validation_fraction: 0.25, seed: 0}}
k: 2
seeds: [0]
"""
STUDY_OK = """name: bad-study
dataset: ch4-dissociation-pool
models: [sevennet-0]
budgets: [0, 5]
"""
CAMPAIGN_OK = """name: bad-campaign
systems: [h2-dissociation]
models: [sevennet-0]
protocol: fast
"""


def write_files(tmp: pathlib.Path) -> None:
    """Every bad file of the catalogue, under ``tmp``."""
    import ase.io
    from ase import Atoms

    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "empty.xyz").write_text("")
    (tmp / "empty.extxyz").write_text("")
    (tmp / "garbage.xyz").write_text("this is not a structure file\n\x00\x01 garbage ]]]\n")
    (tmp / "garbage.extxyz").write_text("2\nProperties=species:S:1:pos:R:3 energy=-1.0\nH 0 0\nH 0 0 zz\n")
    ase.io.write(tmp / "overlap.xyz", Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.1]], cell=[8, 8, 8]),
                 format="extxyz")
    ase.io.write(tmp / "zero-cell.extxyz", Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]],
                                                 cell=[[4, 0, 0], [8, 0, 0], [0, 0, 4]], pbc=True), format="extxyz")
    (tmp / "no-cell.extxyz").write_text('2\nProperties=species:S:1:pos:R:3 pbc="T T T"\nH 0 0 0\nH 0 0 0.74\n')
    (tmp / "molecule-no-cell.xyz").write_text("2\nH2 without a cell\nH 0 0 0\nH 0 0 0.74\n")
    ase.io.write(tmp / "gold.xyz", Atoms("Au2", positions=[[0, 0, 0], [0, 0, 2.5]], cell=[10, 10, 10]),
                 format="extxyz")
    ase.io.write(tmp / "h2.xyz", _labelled_h2(1), format="extxyz")
    ase.io.write(tmp / "nan-energy.extxyz", _labelled_h2(2, energy=float("nan")), format="extxyz")
    ase.io.write(tmp / "radon.extxyz", _labelled_h2(2, symbols="Rn2"), format="extxyz")
    (tmp / "garbage.model").write_bytes(b"not a model at all\n" * 10)
    yaml_files = {
        "empty.yaml": "",
        "garbage.yaml": "name: [unclosed\n  : : :\n\t- {",
        "campaign-unknown-key.yaml": CAMPAIGN_OK + "temperature: 300\n",
        "campaign-string-number.yaml": CAMPAIGN_OK + "pw_processes: many\n",
        "campaign-zero-processes.yaml": CAMPAIGN_OK + "pw_processes: 0\n",
        "campaign-list-mapping.yaml": CAMPAIGN_OK + "relax_settings: [0.05, 300]\n",
        "study-unknown-key.yaml": STUDY_OK + "epochs: 30\n",
        "study-string-budgets.yaml": STUDY_OK.replace("budgets: [0, 5]", "budgets: lots"),
        "study-string-seed.yaml": STUDY_OK + "seed: zero\n",
        "study-list-hyperparameters.yaml": STUDY_OK + "hyperparameters: [30, 0.001]\n",
        "loop-unknown-key.yaml": LOOP_OK + "rounds: 3\n",
        "loop-string-k.yaml": LOOP_OK.replace("k: 2", "k: two"),
        "loop-list-hyperparameters.yaml": LOOP_OK + "hyperparameters: [2, 0.001]\n",
        "loop-budget-over-pool.yaml": LOOP_OK + "max_dft_labels: 1000\n",
        "loop-k-over-pool.yaml": LOOP_OK.replace("k: 2", "k: 500"),
        "study-budget-over-dataset.yaml": STUDY_OK.replace("budgets: [0, 5]", "budgets: [0, 500]"),
        "loop-explore-zero-processes.yaml": LOOP_OK.replace("pool: {fixture: ch4-dissociation-pool}",
                                                            "explore: {system: h2-dissociation, rattle: {}}")
        .replace("validation: {split: {validation_fraction: 0.25, seed: 0}}", "validation: ch4-dissociation-pool")
        + "label: {protocol: fast, pw_processes: 0}\n",
        "study-corrupt-model.yaml": STUDY_OK.replace("models: [sevennet-0]",
                                                     "models: [{file: garbage.model, family: sevenn, name: junk}]"),
        "study-model-not-covering.yaml": STUDY_OK.replace("models: [sevennet-0]", "models: [{pk: MODEL_PK}]"),
        "loop-model-not-covering.yaml": LOOP_OK.replace("{fixture: ch4-dissociation-pool}", "{extxyz: radon.extxyz}")
        .replace("{split: {validation_fraction: 0.25, seed: 0}}", "{extxyz: radon.extxyz}"),
        "loop-missing-pool-file.yaml": LOOP_OK.replace("{fixture: ch4-dissociation-pool}", "{extxyz: nowhere.extxyz}"),
    }
    for name, text in yaml_files.items():
        (tmp / name).write_text(text)


def make_workspace(tmp: pathlib.Path, client=None) -> Workspace:
    """The bad files under ``tmp`` and the stored nodes the cases name (a StructureData, a dataset, a model)."""
    from aiida import orm

    from aiida_reactmlip.data.dataset import LabelledDatasetData
    from aiida_reactmlip.data.model import MlipModelData

    write_files(tmp)
    structure = orm.StructureData(cell=[[8, 0, 0], [0, 8, 0], [0, 0, 8]])
    structure.append_atom(position=(0, 0, 0), symbols="H")
    structure.store()
    dataset = LabelledDatasetData.from_atoms(_labelled_h2(3))
    dataset.label = "bad-inputs h2"
    dataset.store()
    model, _ = MlipModelData.get_or_create(tmp / "garbage.model", family="chgnet", model_name="bad-inputs-h-only",
                                           elements=["H"], source="tests/reliability bad inputs")
    path = tmp / "study-model-not-covering.yaml"
    path.write_text(path.read_text().replace("MODEL_PK", str(model.pk)))
    return Workspace(tmp=tmp, structure_pk=structure.pk, dataset_pk=dataset.pk, model_pk=model.pk, client=client)


# ------------------------------------------------------------------------------------------------ API calls


def api_forces_wrong_shape(ws: Workspace):
    import numpy as np

    from aiida_reactmlip.data.dataset import LabelledDatasetData
    from aiida_reactmlip.frames import Frames

    return LabelledDatasetData(frames=Frames(numbers=[1, 1], positions=np.zeros((2, 3)), cells=np.eye(3)[None] * 8,
                                             pbc=[[False] * 3], n_atoms=[2], energies=[-1.0], forces=np.zeros((2, 2))))


def api_from_atoms_forces_wrong_shape(ws: Workspace):
    import numpy as np

    from aiida_reactmlip.data.dataset import LabelledDatasetData

    images = _labelled_h2(1)
    images[0].calc.results["forces"] = np.zeros((3, 3))
    return LabelledDatasetData.from_atoms(images)


def api_infinite_energy(ws: Workspace):
    from aiida_reactmlip.data.dataset import LabelledDatasetData

    return LabelledDatasetData.from_atoms(_labelled_h2(2, energy=float("inf")))


def api_model_garbage_file(ws: Workspace):
    from aiida_reactmlip.models import describe_model_file

    return describe_model_file("sevenn", ws.tmp / "garbage.model")


def api_model_missing_file(ws: Workspace):
    from aiida_reactmlip.data.model import MlipModelData

    return MlipModelData(file=ws.tmp / "missing.model", family="chgnet", model_name="x", elements=["H"])


def api_model_bad_elements(ws: Workspace):
    from aiida_reactmlip.data.model import MlipModelData

    return MlipModelData(file=ws.tmp / "garbage.model", family="chgnet", model_name="x", elements=["H", "Qq"])


def api_dataset_pk_wrong_type(ws: Workspace):
    from aiida_reactmlip.specs.datasets import resolve_dataset

    return resolve_dataset(ws.structure_pk)


def api_dataset_pk_missing(ws: Workspace):
    from aiida_reactmlip.specs.datasets import resolve_dataset

    return resolve_dataset(10**9)


def api_campaign_string_number(ws: Workspace):
    from aiida_reactmlip.specs.campaign import load_campaign

    return load_campaign(ws.tmp / "campaign-string-number.yaml")


def api_label_no_pseudo(ws: Workspace):
    from ase import Atoms

    from aiida_reactmlip.specs.builders import get_label_builder

    from aiida.engine import run

    return run(get_label_builder({"gold": Atoms("Au2", positions=[[0, 0, 0], [0, 0, 2.5]], cell=[10, 10, 10])},
                                 pseudo_family="reactmlip/debian-pbe"))


def api_label_zero_volume(ws: Workspace):
    from aiida.engine import run
    from ase import Atoms

    from aiida_reactmlip.specs.builders import get_label_builder

    flat = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], cell=[[4, 0, 0], [8, 0, 0], [0, 0, 4]], pbc=True)
    return run(get_label_builder({"flat": flat}, pseudo_family="reactmlip/debian-pbe"))


def api_model_does_not_cover(ws: Workspace):
    from aiida import orm

    return orm.load_node(ws.model_pk).check_elements(["H", "Cu"])


# ------------------------------------------------------------------------------------------------ the catalogue


def catalogue() -> list[Case]:
    """Every bad input tried."""
    tmp = "{tmp}"
    c = Case
    return [
        # --- files that do not exist
        c("label-missing-file", "cli", "structure file does not exist", ("label", f"{tmp}/missing.xyz"),
          "neither a file"),
        c("dataset-import-missing-file", "cli", "dataset file does not exist",
          ("dataset", "import", f"{tmp}/missing.extxyz"), "does not exist"),
        c("benchmark-missing-file", "cli", "dataset file does not exist", ("benchmark", f"{tmp}/missing.extxyz"),
          "not found"),
        c("campaign-missing-file", "cli", "campaign file does not exist",
          ("campaign", "run", f"{tmp}/missing.yaml", "--dry-run"), "does not exist"),
        c("models-add-missing-file", "cli", "model file does not exist",
          ("models", "add", f"{tmp}/missing.model", "--family", "chgnet", "--name", "x"), "does not exist"),
        c("loop-pool-file-missing", "cli", "loop's pool extxyz file does not exist",
          ("loop", "run", f"{tmp}/loop-missing-pool-file.yaml", "--no-cache"), "not found"),
        c("api-model-missing-file", "api", "MlipModelData of a file that does not exist", "api_model_missing_file",
          "does not exist"),
        # --- empty or garbage files
        c("label-empty-file", "cli", "empty structure file", ("label", f"{tmp}/empty.xyz"), "empty"),
        c("label-garbage-file", "cli", "garbage structure file", ("label", f"{tmp}/garbage.xyz"), "cannot read"),
        c("dataset-import-empty", "cli", "empty extxyz dataset", ("dataset", "import", f"{tmp}/empty.extxyz"),
          "no frames"),
        c("dataset-import-garbage", "cli", "garbage extxyz dataset", ("dataset", "import", f"{tmp}/garbage.extxyz"),
          "line"),
        c("benchmark-garbage-file", "cli", "garbage extxyz dataset", ("benchmark", f"{tmp}/garbage.extxyz"),
          "cannot read"),
        c("campaign-empty-yaml", "cli", "empty campaign file", ("campaign", "run", f"{tmp}/empty.yaml", "--dry-run"),
          "must hold a mapping"),
        c("study-garbage-yaml", "cli", "garbage study file",
          ("finetune", "study", f"{tmp}/garbage.yaml", "--dry-run"), "not valid YAML"),
        c("loop-empty-yaml", "cli", "empty loop file", ("loop", "run", f"{tmp}/empty.yaml", "--dry-run"),
          "must hold a mapping"),
        # --- geometry
        c("label-overlapping-atoms", "cli", "two atoms 0.1 Å apart", ("label", f"{tmp}/overlap.xyz",
                                                                      "--protocol", "fast"), "overlapping atoms"),
        c("label-zero-volume-cell", "cli", "periodic cell of zero volume",
          ("label", f"{tmp}/zero-cell.extxyz", "--protocol", "fast"), "volume"),
        c("label-no-cell", "cli", "periodic structure without a cell",
          ("label", f"{tmp}/no-cell.extxyz", "--protocol", "fast"), "cell"),
        c("label-molecule-no-cell", "cli", "a molecule (plain xyz) with no cell for pw.x",
          ("label", f"{tmp}/molecule-no-cell.xyz", "--protocol", "fast"), "no 3-D cell"),
        c("api-label-zero-volume-cell", "api", "run a LabelWorkChain of a periodic structure with a zero-volume cell",
          "api_label_zero_volume", "zero volume"),
        # --- elements
        c("label-no-pseudopotential", "cli", "Au: no PBE pseudopotential in the Debian family",
          ("label", f"{tmp}/gold.xyz", "--protocol", "fast"), "no pseudopotential"),
        c("label-unknown-pseudo-family", "cli", "pseudopotential family not installed",
          ("label", f"{tmp}/h2.xyz", "--pseudo-family", "no/such-family"), "not found"),
        c("api-label-no-pseudopotential", "api", "run a LabelWorkChain of Au with the Debian family",
          "api_label_no_pseudo", "no pseudopotential"),
        c("benchmark-element-not-covered", "cli", "Rn: not covered by SevenNet-0",
          ("benchmark", f"{tmp}/radon.extxyz", "--models", "sevennet-0"), "do not cover"),
        c("physics-element-not-covered", "cli", "Rn: not covered by SevenNet-0",
          ("physics", "sevennet-0", "--elements", "Rn,H", "--checks", "diatomic"), "Rn"),
        c("physics-unknown-element", "cli", "an element symbol that does not exist",
          ("physics", "sevennet-0", "--elements", "Qq"), "Qq is not an element"),
        c("api-model-does-not-cover", "api", "check_elements of Cu with an H-only model", "api_model_does_not_cover",
          "does not cover"),
        c("api-model-invalid-element", "api", "MlipModelData with an element symbol that does not exist",
          "api_model_bad_elements", "invalid element"),
        # --- array shapes and labels
        c("api-forces-wrong-shape", "api", "forces of shape (2, 2) for 2 atoms", "api_forces_wrong_shape", "forces"),
        c("api-from-atoms-forces-wrong-shape", "api", "forces for 3 atoms on 2 atoms",
          "api_from_atoms_forces_wrong_shape", "forces"),
        c("benchmark-nan-energy", "cli", "NaN DFT energies", ("benchmark", f"{tmp}/nan-energy.extxyz"),
          "no DFT energy"),
        c("api-infinite-energy", "api", "an infinite energy", "api_infinite_energy", "energ"),
        # --- study files: unknown keys, wrong types
        c("campaign-unknown-key", "cli", "unknown key in a campaign file",
          ("campaign", "run", f"{tmp}/campaign-unknown-key.yaml", "--dry-run"), "unknown key(s) temperature"),
        c("campaign-string-for-number", "cli", "pw_processes: many",
          ("campaign", "run", f"{tmp}/campaign-string-number.yaml", "--dry-run"), "pw_processes"),
        c("api-campaign-string-for-number", "api", "load_campaign with pw_processes: many",
          "api_campaign_string_number", "pw_processes"),
        c("campaign-zero-processes", "cli", "pw_processes: 0",
          ("campaign", "run", f"{tmp}/campaign-zero-processes.yaml", "--dry-run"), "pw_processes"),
        c("campaign-list-for-mapping", "cli", "relax_settings a list",
          ("campaign", "run", f"{tmp}/campaign-list-mapping.yaml", "--dry-run"), "must be a mapping"),
        c("study-unknown-key", "cli", "unknown key in a study file",
          ("finetune", "study", f"{tmp}/study-unknown-key.yaml", "--dry-run"), "unknown key(s) epochs"),
        c("study-string-budgets", "cli", "budgets: lots",
          ("finetune", "study", f"{tmp}/study-string-budgets.yaml", "--dry-run"), "budgets"),
        c("study-string-seed", "cli", "seed: zero",
          ("finetune", "study", f"{tmp}/study-string-seed.yaml", "--dry-run"), "seed"),
        c("study-list-for-mapping", "cli", "hyperparameters a list",
          ("finetune", "study", f"{tmp}/study-list-hyperparameters.yaml", "--dry-run"), "hyperparameters"),
        c("loop-unknown-key", "cli", "unknown key in a loop file",
          ("loop", "run", f"{tmp}/loop-unknown-key.yaml", "--dry-run"), "unknown key(s) rounds"),
        c("loop-string-for-number", "cli", "k: two", ("loop", "run", f"{tmp}/loop-string-k.yaml", "--dry-run"),
          "'k'"),
        c("loop-list-for-mapping", "cli", "hyperparameters a list",
          ("loop", "run", f"{tmp}/loop-list-hyperparameters.yaml", "--dry-run"), "must be a mapping"),
        # --- budgets larger than the pool
        c("loop-budget-over-pool", "cli", "max_dft_labels 1000 for a pool of 60 frames",
          ("loop", "run", f"{tmp}/loop-budget-over-pool.yaml", "--no-cache"), "max_dft_labels"),
        c("study-budget-over-dataset", "cli", "budget 500 labels for a dataset of 60 frames",
          ("finetune", "study", f"{tmp}/study-budget-over-dataset.yaml"), "exceeds the training split"),
        c("study-corrupt-model", "cli", "a garbage file as a study's model",
          ("finetune", "study", f"{tmp}/study-corrupt-model.yaml"), "could not load"),
        c("study-model-not-covering", "cli", "a study whose model (H only) does not cover C of the dataset",
          ("finetune", "study", f"{tmp}/study-model-not-covering.yaml"), "does not cover"),
        c("loop-model-not-covering", "cli", "a loop pool with Rn, which SevenNet-0 does not cover",
          ("loop", "run", f"{tmp}/loop-model-not-covering.yaml", "--no-cache"), "does not cover"),
        c("loop-k-over-pool", "cli", "k 500 labels per round for a pool of 60 frames",
          ("loop", "run", f"{tmp}/loop-k-over-pool.yaml", "--no-cache"), "'k'"),
        # --- corrupt model files
        c("models-add-corrupt", "cli", "a text file given as a SevenNet model",
          ("models", "add", f"{tmp}/garbage.model", "--family", "sevenn", "--name", "junk"), "could not load"),
        c("api-describe-corrupt-model", "api", "describe_model_file of a garbage file", "api_model_garbage_file",
          "garbage.model"),
        # --- PKs of the wrong node type, or of no node
        c("dataset-show-structure-pk", "cli", "a StructureData pk where a dataset goes",
          ("dataset", "show", "{structure_pk}"), "not a LabelledDatasetData"),
        c("benchmark-structure-pk", "cli", "a StructureData pk where a dataset goes",
          ("benchmark", "{structure_pk}"), "not a LabelledDatasetData"),
        c("benchmark-models-structure-pk", "cli", "a StructureData pk where a model goes",
          ("benchmark", "{dataset_pk}", "--models", "{structure_pk}"), "not an MlipModelData"),
        c("models-show-dataset-pk", "cli", "a dataset pk where a model goes", ("models", "show", "{dataset_pk}"),
          "not a model"),
        c("finetune-run-structure-pk", "cli", "a StructureData pk as training set",
          ("finetune", "run", "--model", "sevennet-0", "--training", "{structure_pk}"), "not a LabelledDatasetData"),
        c("finetune-run-model-dataset-pk", "cli", "a dataset pk as base model",
          ("finetune", "run", "--model", "{dataset_pk}", "--training", "{dataset_pk}"), "MlipModelData"),
        c("physics-structure-pk", "cli", "a StructureData pk where a model goes",
          ("physics", "{structure_pk}", "--elements", "H"), "StructureData"),
        c("report-structure-pk", "cli", "a StructureData pk where a finished WorkChain goes",
          ("report", "{structure_pk}"), "StructureData"),
        c("loop-show-dataset-pk", "cli", "a dataset pk where a loop goes", ("loop", "show", "{dataset_pk}"),
          "not a reactmlip.active_learning"),
        c("dataset-show-missing-pk", "cli", "a pk no node has", ("dataset", "show", "999999999"), "no "),
        c("api-dataset-pk-wrong-type", "api", "resolve_dataset of a StructureData pk", "api_dataset_pk_wrong_type",
          "not a LabelledDatasetData"),
        c("api-dataset-pk-missing", "api", "resolve_dataset of a pk no node has", "api_dataset_pk_missing",
          "1000000000"),
        # --- output paths into a missing folder
        c("dataset-export-missing-folder", "cli", "output file in a folder that does not exist",
          ("dataset", "export", "{dataset_pk}", f"{tmp}/no/such/folder/out.extxyz"), "folder"),
        c("dataset-export-jsonl-missing-folder", "cli", "output file in a folder that does not exist",
          ("dataset", "export", "{dataset_pk}", f"{tmp}/no/such/folder/out.jsonl", "--format", "optimade-jsonl"),
          "folder"),
        c("label-output-missing-folder", "cli", "-o into a folder that does not exist (checked before pw.x)",
          ("label", f"{tmp}/h2.xyz", "--protocol", "fast", "-o", f"{tmp}/no/such/folder/out.extxyz"), "folder"),
        # --- process counts and other numbers
        c("label-zero-mpiprocs", "cli", "--mpiprocs 0", ("label", f"{tmp}/h2.xyz", "--mpiprocs", "0"), "mpiprocs"),
        c("label-negative-max-iterations", "cli", "--max-iterations -1",
          ("label", f"{tmp}/h2.xyz", "--max-iterations", "-1"), "max-iterations"),
        c("loop-zero-pw-processes", "cli", "label: {pw_processes: 0} in an exploration loop",
          ("loop", "run", f"{tmp}/loop-explore-zero-processes.yaml", "--dry-run"), "pw_processes"),
        c("physics-zero-threads", "cli", "--num-threads 0",
          ("physics", "sevennet-0", "--elements", "H", "--num-threads", "0"), "num-threads"),
        c("import-optimade-zero-max", "cli", "--max-structures 0",
          ("dataset", "import-optimade", "http://127.0.0.1:9", "nsites=2", "--max-structures", "0"),
          "max-structures"),
        c("import-optimade-negative-timeout", "cli", "--timeout -1",
          ("dataset", "import-optimade", "http://127.0.0.1:9", "nsites=2", "--timeout", "-1"), "timeout"),
        c("import-optimade-unreachable", "cli", "a server that does not answer",
          ("dataset", "import-optimade", "http://127.0.0.1:9", "nsites=2", "--timeout", "2"), "127.0.0.1"),
        c("finetune-run-bad-param", "cli", "--param without '='",
          ("finetune", "run", "--model", "sevennet-0", "--training", "{dataset_pk}", "--param", "epochs"), "KEY=VALUE"),
        c("systems-show-unknown", "cli", "a reactive system that does not exist", ("systems", "show", "no-such-system"),
          "no-such-system"),
        c("systems-show-bad-set", "cli", "--set of a parameter the system does not take",
          ("systems", "show", "h2-dissociation", "--set", "n_points=many"), "n_points"),
        c("systems-show-bad-json", "cli", "--set value that is not JSON",
          ("systems", "show", "h2-dissociation", "--set", "distances=[0.7,"), "distances"),
        c("systems-show-unknown-format", "cli", "an output format no writer knows",
          ("systems", "show", "h2-dissociation", "-o", f"{tmp}/systems-out", "--format", "nosuchformat"),
          "cannot write format"),
        c("query-negative-min-frames", "cli", "--min-frames -3", ("query", "datasets", "--min-frames", "-3"),
          "min-frames"),
        c("loop-bad-seeds", "cli", "--seeds not integers",
          ("loop", "run", "workchains/loop-ch4-smoke.yaml", "--dry-run", "--seeds", "a,b"), "--seeds"),
        # --- OPTIMADE (the full hostile catalogue: docs/optimade.md)
        c("optimade-malformed-filter", "optimade", "a filter that does not parse",
          "/v1/structures?filter=nsites%3D%3D%3D(", "unable to parse"),
        c("optimade-huge-page-limit", "optimade", "page_limit 10^9",
          "/v1/structures?page_limit=1000000000", "page_limit"),
        c("optimade-negative-offset", "optimade", "page_offset -5",
          "/v1/structures?page_offset=-5", "page_offset"),
        c("optimade-long-filter", "optimade", "a 100 kB filter",
          "/v1/structures?filter=chemical_formula_reduced%3D%22" + "x" * 100_000 + "%22", "too long"),
    ]


# ------------------------------------------------------------------------------------------------ running


def node_count() -> int:
    from aiida import orm

    return orm.QueryBuilder().append(orm.Node).count()


def _run_cli(args: list[str]) -> tuple[str, int, bool]:
    from click.testing import CliRunner

    from aiida_reactmlip.cli.root import cmd_root

    result = CliRunner().invoke(cmd_root, args, env={"COLUMNS": "200"})
    output = result.output
    unhandled = result.exception is not None and not isinstance(result.exception, SystemExit)
    if unhandled:  # what the console script would print: the traceback
        output += "".join(traceback.format_exception(*result.exc_info))
    return output, result.exit_code, unhandled


def _run_api(ws: Workspace, name: str) -> tuple[str, int | None, bool]:
    """Call the API function ``name``: an exception a caller can act on (ValueError, TypeError, KeyError, OSError
    or one of this project's) is a refusal; any other exception is shown with its traceback."""
    try:
        globals()[name](ws)
    except Exception as exception:  # noqa: BLE001
        clean = isinstance(exception, (ValueError, TypeError, KeyError, OSError)) or \
            type(exception).__module__.startswith("aiida_reactmlip")
        if clean:
            return f"{type(exception).__name__}: {exception}", None, False
        return "".join(traceback.format_exception(exception)), None, True
    return "(accepted: no exception)", 0, False


def _run_optimade(ws: Workspace, url: str) -> tuple[str, int, bool]:
    from aiida_reactmlip.optimade.hostile import HostileRequest, send

    path, _, query = url.partition("?")
    status, body = send(ws.client, HostileRequest(url[:40], "GET", path, query, (400,)))
    if isinstance(body, dict) and body.get("errors"):
        message = "; ".join(str(e.get("detail") or e.get("title")) for e in body["errors"])
    else:
        message = str(body)[:300]
    return message, status, status >= 500


def run_case(case: Case, ws: Workspace) -> dict:
    """Run ``case``: the message seen, the exit code (HTTP status for OPTIMADE, None for the API), the node
    counts before and after, and whether it was refused cleanly (non-zero exit / an exception or 4xx, the
    expected fragment in the message, no traceback, nothing stored)."""
    before = node_count()
    if case.surface == "cli":
        args = [ws.fill(arg) for arg in case.invoke]
        message, code, unhandled = _run_cli(args)
        invoked = "reactmlip " + " ".join(args).replace(str(ws.tmp), "$TMP")
        failed = code != 0
    elif case.surface == "api":
        message, code, unhandled = _run_api(ws, case.invoke)
        invoked = f"{case.invoke}()"
        failed = code is None
    else:
        message, code, unhandled = _run_optimade(ws, case.invoke)
        invoked = "GET " + (case.invoke if len(case.invoke) < 120 else case.invoke[:100] + f"... ({len(case.invoke)} chars)")
        failed = 400 <= code < 500
    after = node_count()
    has_traceback = TRACEBACK in message or unhandled
    found = case.expect.lower() in message.lower()
    return {
        "id": case.id, "surface": case.surface, "wrong": case.wrong, "input": invoked,
        "expected_fragment": case.expect, "message": message.strip().replace(str(ws.tmp), "$TMP"),
        "exit_code": code, "traceback": has_traceback, "nodes_before": before, "nodes_after": after,
        "refused": bool(failed and found and not has_traceback and before == after),
    }
