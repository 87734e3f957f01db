"""The training side of the Keras face: compile/fit/evaluate/predict and what they use.

The Keras-named modules :mod:`rnnkit.optimizers`, :mod:`rnnkit.losses`, :mod:`rnnkit.metrics`,
:mod:`rnnkit.callbacks` and :mod:`rnnkit.utils` re-export the public pieces from here.
"""

from rnnkit.training.loop import (
                                  compile_model,
                                  evaluate,
                                  fit,
                                  metrics_names,
                                  predict,
                                  predict_on_batch,
                                  reset_metrics,
                                  test_on_batch,
                                  train_on_batch,
)
from rnnkit.training.seed import set_random_seed

__all__ = ["compile_model", "evaluate", "fit", "metrics_names", "predict", "predict_on_batch",
           "reset_metrics", "set_random_seed", "test_on_batch", "train_on_batch"]
