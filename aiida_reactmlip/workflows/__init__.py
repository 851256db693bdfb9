"""WorkChains and their calcfunctions: ``reactmlip.label`` (pw.x labels), ``reactmlip.dft_neb`` (neb.x barriers),
``reactmlip.benchmark`` (zero-shot metrics), ``reactmlip.finetune_study`` (learning curves) and
``reactmlip.active_learning`` (with ``active_learning_functions`` and ``active_learning_inputs``).
Reading study files and setting up codes is :mod:`aiida_reactmlip.specs`' job."""
