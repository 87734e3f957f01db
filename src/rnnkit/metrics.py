"""Keras's metrics: stateful classes and per-sample functions.

See :mod:`rnnkit.training.metrics`.
"""

from rnnkit.training.metrics import (
                                     AUC,
                                     BinaryAccuracy,
                                     CategoricalAccuracy,
                                     Mean,
                                     MeanAbsoluteError,
                                     MeanAbsolutePercentageError,
                                     MeanMetricWrapper,
                                     MeanSquaredError,
                                     MeanSquaredLogarithmicError,
                                     Metric,
                                     RootMeanSquaredError,
                                     SparseCategoricalAccuracy,
                                     SparseTopKCategoricalAccuracy,
                                     TopKCategoricalAccuracy,
                                     binary_accuracy,
                                     categorical_accuracy,
                                     get,
                                     sparse_categorical_accuracy,
                                     sparse_top_k_categorical_accuracy,
                                     top_k_categorical_accuracy,
)

__all__ = ["AUC", "BinaryAccuracy", "CategoricalAccuracy", "Mean", "MeanAbsoluteError",
           "MeanAbsolutePercentageError", "MeanMetricWrapper", "MeanSquaredError",
           "MeanSquaredLogarithmicError", "Metric", "RootMeanSquaredError",
           "SparseCategoricalAccuracy", "SparseTopKCategoricalAccuracy",
           "TopKCategoricalAccuracy", "binary_accuracy", "categorical_accuracy", "get",
           "sparse_categorical_accuracy", "sparse_top_k_categorical_accuracy",
           "top_k_categorical_accuracy"]
