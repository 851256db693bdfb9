"""Protocol files (YAML) read by :mod:`aiida_reactmlip.qe_settings`: ``label.yaml`` (pw.x labels: cutoff scale,
k-point spacing in 1/Å, SCF threshold, smearing) and ``neb.yaml`` (neb.x band settings, path_thr in eV/Å)."""
