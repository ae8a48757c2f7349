"""Evaluation: ``fsrbench run`` (datasets x scales x methods -> SR images -> per-image metrics -> summaries).

* :mod:`fsrbench.eval.components` — names -> ready methods, metrics and datasets; device and AMP;
* :mod:`fsrbench.eval.scorer` — :class:`~fsrbench.eval.scorer.CellScorer`: inputs, inference, per-image metrics;
* :mod:`fsrbench.eval.runner` — plans the cells, keys them, resumes, gathers the results directory.
"""
