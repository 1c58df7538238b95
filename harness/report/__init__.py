"""Reports of a run and of a sweep.

* :mod:`.plots`: the run's PNG figures (roc.png, det.png, hist_*.png).
* :mod:`.run_report`: the self-contained ``report.html`` of one run (``python -m harness.report RUN_DIR``).
* :mod:`.compare`: the comparison table and plot across the child runs of a sweep.
* :mod:`.figures`, :mod:`.analysis`, :mod:`.gallery`, :mod:`.html`: their building blocks.
"""
