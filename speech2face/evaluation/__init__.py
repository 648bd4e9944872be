"""``s2f-eval``: the paper's evaluation protocol on a voice checkpoint (``docs/evaluation.md``).

- :mod:`~speech2face.evaluation.collect`: the bundle, the attribute backend and dlib's
  landmarks run over a split;
- :mod:`~speech2face.evaluation.tables`: the tables of ``metrics.json``;
- :mod:`~speech2face.evaluation.real_voices`: portraits of voices no training used;
- :mod:`~speech2face.evaluation.run`: the run itself (:func:`evaluate`);
- :mod:`~speech2face.evaluation.report`: ``report.html`` from its templates
  (``templates/``), with :mod:`~speech2face.evaluation.plots`, and
  :mod:`~speech2face.evaluation.figures` for the text of each figure;
- :mod:`~speech2face.evaluation.summary`: the terminal summary.
"""

from speech2face.evaluation.run import SCHEMA, SCHEMA_VERSION, EvalError, evaluate

__all__ = ["SCHEMA", "SCHEMA_VERSION", "EvalError", "evaluate"]
