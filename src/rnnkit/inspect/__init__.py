"""Look inside recurrent layers: gate traces and gradient flow."""

from rnnkit.inspect.gates import trace_gates
from rnnkit.inspect.gradient_flow import gradient_norms

__all__ = ["gradient_norms", "trace_gates"]
