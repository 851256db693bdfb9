"""Report folders of finished studies: plots (PNG), tables (Markdown, CSV) and an HTML page.

- :mod:`.benchmark_report`: a ``reactmlip.benchmark`` (zero-shot leaderboard, parity plots, NEB, stability).
- :mod:`.finetune_report`: a ``reactmlip.finetune_study`` (learning curves, forgetting, training histories).
- :mod:`.loop_report`: active-learning loops (error against DFT labels, frames selected per round).
- :mod:`.plots`, :mod:`.tables`, :mod:`.page`: the pure pieces (numpy/dicts in, PNG/text/HTML out).

Only the ``write_*_report`` functions read AiiDA nodes. Values are stored in eV, eV/atom and eV/Å.
"""
