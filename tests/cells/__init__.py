"""Tests of the reference cells, their Keras layout and seed 000's worked examples."""
