"""Fixtures of the training tests; the model stand-in is in training_standins.py.

The ``keras`` peer fixture comes from tests/conftest.py.
"""
