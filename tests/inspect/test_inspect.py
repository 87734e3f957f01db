import numpy as np
import torch

from rnnkit.inspect import gradient_norms, trace_gates
from rnnkit.layers import GRU, LSTM, SimpleRNN


def test_lstm_gate_trace_recomposes_the_state_and_output():
    layer = LSTM(3)
    x = np.random.RandomState(0).randn(2, 4, 2).astype("float32")
    trace = trace_gates(layer, x)
    assert set(trace) == {"input", "forget", "candidate", "output", "cell", "h"}
    c_prev = np.zeros((2, 3), np.float32)
    for t in range(4):
        c = trace["forget"][:, t] * c_prev + trace["input"][:, t] * trace["candidate"][:, t]
        np.testing.assert_allclose(trace["cell"][:, t], c, atol=1e-6)
        np.testing.assert_allclose(trace["h"][:, t], trace["output"][:, t] * np.tanh(c), atol=1e-6)
        c_prev = c
    output = layer(x).detach().numpy()
    np.testing.assert_allclose(trace["h"][:, -1], output, atol=1e-6)


def test_gru_gates_lie_in_the_unit_interval():
    trace = trace_gates(GRU(4), np.random.RandomState(1).randn(3, 5, 2).astype("float32"))
    for name in ("reset", "update"):
        assert trace[name].shape == (3, 5, 4)
        assert (trace[name] > 0).all() and (trace[name] < 1).all()


def test_gradient_norms_match_a_finite_difference_of_the_loss():
    torch.manual_seed(0)
    layer = SimpleRNN(3)
    x = torch.randn(1, 5, 2, dtype=torch.float32)
    layer(x)
    layer.double()
    head = torch.nn.Linear(3, 1, dtype=torch.float64)
    norms = gradient_norms(layer, x.double(), head=head)
    assert norms.shape == (5,)
    # The last state's gradient is the head's gradient: |2 * pred * w| for MSE against 0.
    with torch.no_grad():
        h_last = layer(x.double())
        pred = head(h_last)
        expected = (2 * pred * head.weight).norm().item()
    np.testing.assert_allclose(norms[-1], expected, rtol=1e-10)
