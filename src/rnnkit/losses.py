"""Keras's losses by name (``"mse"``...), as functions and classes.

See :mod:`rnnkit.training.losses`.
"""

from rnnkit.training.losses import (
                                    BinaryCrossentropy,
                                    CategoricalCrossentropy,
                                    CosineSimilarity,
                                    Hinge,
                                    Huber,
                                    KLDivergence,
                                    LogCosh,
                                    Loss,
                                    LossFunctionWrapper,
                                    MeanAbsoluteError,
                                    MeanAbsolutePercentageError,
                                    MeanSquaredError,
                                    MeanSquaredLogarithmicError,
                                    Poisson,
                                    SparseCategoricalCrossentropy,
                                    binary_crossentropy,
                                    categorical_crossentropy,
                                    cosine_similarity,
                                    get,
                                    hinge,
                                    huber,
                                    kl_divergence,
                                    log_cosh,
                                    mean_absolute_error,
                                    mean_absolute_percentage_error,
                                    mean_squared_error,
                                    mean_squared_logarithmic_error,
                                    poisson,
                                    sparse_categorical_crossentropy,
)

mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kl_divergence

__all__ = ["BinaryCrossentropy", "CategoricalCrossentropy", "CosineSimilarity", "Hinge", "Huber",
           "KLD", "KLDivergence", "LogCosh", "Loss", "LossFunctionWrapper", "MAE", "MAPE", "MSE",
           "MSLE", "MeanAbsoluteError", "MeanAbsolutePercentageError", "MeanSquaredError",
           "MeanSquaredLogarithmicError", "Poisson", "SparseCategoricalCrossentropy",
           "binary_crossentropy", "categorical_crossentropy", "cosine_similarity", "get", "hinge",
           "huber", "kl_divergence", "kld", "log_cosh", "mae", "mape", "mean_absolute_error",
           "mean_absolute_percentage_error", "mean_squared_error",
           "mean_squared_logarithmic_error", "mse", "msle", "poisson",
           "sparse_categorical_crossentropy"]
