"""``s2f-eval``: the paper's evaluation protocol on a voice checkpoint (``docs/evaluation.md``).

- :mod:`~speech2face.evaluation.collect`: the bundle, the attribute backend and dlib's
  landmarks run over a split;
- :mod:`~speech2face.evaluation.run`: the tables of ``metrics.json`` and the run itself
  (:func:`evaluate`);
- :mod:`~speech2face.evaluation.report`: ``report.html``, its plots, the terminal summary.
"""

from speech2face.evaluation.run import SCHEMA, SCHEMA_VERSION, EvalError, evaluate

__all__ = ["SCHEMA", "SCHEMA_VERSION", "EvalError", "evaluate"]
