"""`reactmlip label --spin auto|off|on` on real pw.x (a Ni slab's moment), and the quiet console (cli/console.py)."""

import io
import logging
import re
import time

import ase.io
import pytest
from aiida import orm
from ase.build import fcc111
from click.testing import CliRunner

from aiida_reactmlip.cli import cmd_root
from aiida_reactmlip.cli.console import QuietConsole


def invoke(*args, env=None):
    return CliRunner().invoke(cmd_root, list(args), catch_exceptions=False, env={"COLUMNS": "200", **(env or {})})


def test_spin_option_listed_and_checked(aiida_profile):
    result = invoke("label", "--help")
    assert "--spin [auto|off|on]" in result.output
    result = invoke("label", "whatever.xyz", "--spin", "yes")
    assert result.exit_code == 2 and "'yes' is not one of 'auto', 'off', 'on'" in result.output


def test_quiet_console_sends_reports_to_the_log_file(tmp_path):
    terminal = io.StringIO()
    console_handler = logging.StreamHandler(terminal)
    console_handler.setLevel(logging.INFO)
    aiida_logger = logging.getLogger("aiida")
    aiida_logger.addHandler(console_handler)
    try:
        with QuietConsole("unit", log_file=tmp_path / "run.log") as quiet:
            logging.getLogger("aiida.orm.nodes.process").report("[1|LabelWorkChain|run_labels]: submitted")
            logging.getLogger("aiida.engine").warning("a real warning")
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("always")  # pytest's configuration ignores UserWarning
                warnings.warn("pkg_resources is deprecated as an API", UserWarning, stacklevel=1)
        assert terminal.getvalue() == ""
        assert console_handler.level == logging.INFO  # restored
        text = (tmp_path / "run.log").read_text()
        assert "[REPORT] [1|LabelWorkChain|run_labels]: submitted" in text
        assert "a real warning" in text and "pkg_resources is deprecated" in text
        assert quiet.warnings == 1  # the AiiDA warning; Python warnings are not counted
        assert quiet.summary() == f"log: {tmp_path / 'run.log'} (1 warning(s))"
        # Errors still reach the terminal.
        with QuietConsole("unit", log_file=tmp_path / "run2.log"):
            logging.getLogger("aiida.engine").error("broken")
        assert "broken" in terminal.getvalue()
    finally:
        aiida_logger.removeHandler(console_handler)


def test_verbose_shows_reports_through_rich(tmp_path):
    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, width=200)
    with QuietConsole("unit", console, verbose=True, log_file=tmp_path / "v.log"):
        logging.getLogger("aiida.orm.nodes.process").report("launching PwCalculation<7> iteration #1")
    assert "launching PwCalculation<7> iteration #1" in out.getvalue()
    assert "launching PwCalculation<7>" in (tmp_path / "v.log").read_text()


def ni_slab_file(tmp_path):
    """Ni(111), 1x1 surface cell, 3 layers, 6 Å vacuum each side (a = 3.52 Å)."""
    path = tmp_path / "ni111.extxyz"
    slab = fcc111("Ni", size=(1, 1, 3), vacuum=6.0, a=3.52)
    slab.set_tags(0)
    ase.io.write(path, [slab], format="extxyz")
    return path


@pytest.mark.pwx
def test_ni_slab_spin_auto_and_off(codes, pseudo_family, tmp_path):
    """A Ni slab from a user file runs spin-polarised by default; its moment is in the PBE range.

    PBE puts bulk Ni at 0.60-0.65 μB per atom (this pseudopotential at the fast protocol: 0.58) and Ni(111)
    surface atoms at 0.70-0.80 μB; a 3-layer slab has two surface layers of three, so the cell's total
    magnetisation per Ni atom lies between the two: 0.50-0.80 μB leaves room for the fast protocol's coarse
    cutoffs and k-mesh, and excludes both zero (no spin) and the free-atom 2 μB. Measured here: 0.75 μB;
    both runs together about 100 s on 2 shared cores (auto 66 s, one band-count restart; off 31 s).
    """
    path = ni_slab_file(tmp_path)
    logs = tmp_path / "logs"
    start = time.perf_counter()
    result = invoke("label", str(path), "--protocol", "fast", "--no-cache", env={"REACTMLIP_LOG_DIR": str(logs)})
    elapsed_auto = time.perf_counter() - start
    print(result.output, f"auto: {elapsed_auto:.1f} s")
    assert result.exit_code == 0, result.output
    assert "spin (--spin auto): 1 of 1 frame(s) spin-polarised" in result.output and "contains Ni" in result.output
    assert "spin-polarised: 1 frame(s)" in result.output
    moment = float(re.search(r"([-\d.]+) μB per magnetic atom \(3\)", result.output).group(1))
    assert 0.50 <= moment <= 0.80, moment
    # The quiet console: no process reports on it, but in the log file whose path it printed.
    assert "[REPORT]" not in result.output and "PwCalculation<" not in result.output
    log_path = re.search(r"log: (\S+)", result.output).group(1)
    assert log_path.startswith(str(logs)) and "[REPORT]" in open(log_path).read()
    dataset = orm.load_node(int(re.search(r"LabelledDatasetData<(\d+)>", result.output).group(1)))
    assert dataset.n_frames == 1

    start = time.perf_counter()
    result = invoke("label", str(path), "--protocol", "fast", "--no-cache", "--spin", "off",
                    env={"REACTMLIP_LOG_DIR": str(logs)})
    elapsed_off = time.perf_counter() - start
    print(result.output, f"off: {elapsed_off:.1f} s")
    assert result.exit_code == 0, result.output
    assert "spin: every frame ran without spin polarisation" in result.output
    node = orm.load_node(int(re.search(r"LabelWorkChain<(\d+)>", result.output).group(1)))
    (pw,) = [n for n in node.called if n.process_label == "PwBaseWorkChain"]
    assert "nspin" not in pw.inputs.pw.parameters["SYSTEM"]
    assert pw.outputs.output_parameters.get_dict().get("total_magnetization", 0.0) == 0.0
