"""rnnkit: recurrent neural networks with a Keras face, a torch.nn face and fused CPU kernels."""

__version__ = "0.1.0"
