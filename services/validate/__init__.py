"""``engs validate``: the neuro-psychometric profile of seed 003 GAP-029.

Runs headless, faster than real time and deterministic by seed, on the real step
functions (:mod:`engs.services.validate.sim` couples ``Engs.step`` and ``Field.step`` as the
live loops do). One module per assay — :mod:`lesions`, :mod:`rpe`, :mod:`risk`,
:mod:`foraging`, :mod:`causality`, :mod:`stability`, :mod:`homeostasis` — plus
:mod:`stats` (tests, NumPy only), :mod:`report` (report.md / report.json), :mod:`plots`
(matplotlib, optional), :mod:`runner` (progress, process pool) and :mod:`main` (the
command: ``add_arguments`` and ``run_args``). Design and findings: docs/validation/.
"""
