"""Keras's ``utils`` that concern training: ``set_random_seed``."""

from rnnkit.training.seed import set_random_seed

__all__ = ["set_random_seed"]
