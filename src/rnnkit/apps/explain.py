"""``rnnkit explain``: make the gates visible, and measure how gradients flow back in time."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from rnnkit.apps._common import UserError, console, positive_int, results_table

NAME = "explain"
HELP = ("Print every gate of one cell step (seed 000's weights by default), save gate heatmaps "
        "of a trained model, and plot the measured gradient flow of SimpleRNN, LSTM and GRU.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", type=Path,
                        help="JSON with 'cell' (lstm|gru|rnn), Keras-layout 'weights' (kernel, "
                             "recurrent_kernel, bias), 'x' (features) and optional 'state'")
    parser.add_argument("--model", type=Path, help="a saved rnnkit model for gate heatmaps")
    parser.add_argument("--inputs", type=Path,
                        help="a .npy array (batch, timesteps, features) fed to --model "
                             "(default: a random sequence)")
    parser.add_argument("--layer", help="the recurrent layer to trace (default: the first)")
    parser.add_argument("--steps", type=positive_int, default=100,
                        help="sequence length of the gradient-flow task (default 100)")
    parser.add_argument("--units", type=positive_int, default=32)
    parser.add_argument("--samples", type=positive_int, default=256)
    parser.add_argument("--train-epochs", type=int, default=0,
                        help="train each cell this many epochs on the task before measuring")
    parser.add_argument("--seed", type=int, default=0)


def run(args, run_dir: Path) -> dict:
    from rnnkit.utils import set_random_seed

    set_random_seed(args.seed)
    metrics = {"step": _explain_step(args)}
    if args.model is not None:
        metrics["heatmap"] = _explain_model(args, run_dir)
    metrics["gradient_flow"] = _gradient_flow(args, run_dir)
    return metrics


# -- one step --------------------------------------------------------------------------------------
def _explain_step(args) -> dict:
    from rnnkit.inspect import seed000, trace_gates

    examples = _given_step(args.weights) if args.weights else {
        "LSTM (seed 000)": seed000.lstm_example(), "GRU (seed 000, update gate negated)":
        seed000.gru_example()}
    report = {}
    for title, (layer, x, state) in examples.items():
        trace = trace_gates(layer, x, initial_state=[_tensor(s) for s in state])
        rows = [[name, *np.round(values[0, 0], 6).tolist()] for name, values in trace.items()]
        units = trace["h"].shape[-1]
        console.print(results_table(title, ["gate", *[f"unit {u}" for u in range(units)]], rows))
        report[title] = {name: values[0, 0].tolist() for name, values in trace.items()}
    return report


def _tensor(value):
    import torch

    return torch.as_tensor(np.asarray(value, dtype=np.float64))


def _given_step(path: Path) -> dict:
    from rnnkit.layers import GRU, LSTM, SimpleRNN

    try:
        spec = json.loads(path.read_text())
        cell = spec["cell"]
        weights = [np.asarray(w, dtype=np.float64) for w in spec["weights"]]
        x = np.asarray(spec["x"], dtype=np.float64).reshape(1, 1, -1)
    except FileNotFoundError:
        raise UserError(f"--weights: no such file {str(path)!r}") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise UserError(f"--weights: {path} needs 'cell', 'weights' and 'x' ({error})") from None
    classes = {"lstm": LSTM, "gru": GRU, "rnn": SimpleRNN}
    if cell not in classes:
        raise UserError(f"--weights: 'cell' must be one of {sorted(classes)}, got {cell!r}")
    units = weights[1].shape[0]
    options = {"reset_after": weights[2].ndim == 2} if cell == "gru" else {}
    layer = classes[cell](units, input_shape=(None, x.shape[-1]), dtype="float64", **options)
    try:
        layer.set_weights(weights)
    except ValueError as error:
        raise UserError(f"--weights: {error}") from None
    sizes = layer.state_size
    state = spec.get("state") or [np.zeros((1, size)) for size in sizes]
    state = [np.asarray(s, dtype=np.float64).reshape(1, -1) for s in state]
    return {f"{cell.upper()} ({path.name})": (layer, x, state)}


# -- a trained model -----------------------------------------------------------------------------
def _explain_model(args, run_dir: Path) -> dict:
    from rnnkit import plot
    from rnnkit.inspect import trace_gates
    from rnnkit.layers import RNN
    from rnnkit.models import load_model

    try:
        model = load_model(args.model)
    except (OSError, ValueError) as error:
        raise UserError(f"--model: {error}") from None
    layers = {m.name: m for m in model.modules() if isinstance(m, RNN)}
    if not layers:
        raise UserError(f"--model: {args.model} has no recurrent layer to trace")
    if args.layer is not None and args.layer not in layers:
        raise UserError(f"--layer: no recurrent layer {args.layer!r}; layers: {sorted(layers)}")
    layer = layers[args.layer] if args.layer else next(iter(layers.values()))
    captured = {}
    hook = layer.register_forward_pre_hook(lambda module, inputs: captured.setdefault("x", inputs))
    model.predict(_model_inputs(args, model), verbose=0)
    hook.remove()
    trace = trace_gates(layer, captured["x"][0][:1])
    path = plot.gates(trace, path=run_dir / "gates.png", title=f"Gates of {layer.name}")
    console.print(f"gate heatmaps of {layer.name}: {path}")
    return {"layer": layer.name, "timesteps": int(trace["h"].shape[1])}


def _model_inputs(args, model):
    if args.inputs is not None:
        try:
            return np.load(args.inputs, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise UserError(f"--inputs: {error}") from None
    shape = getattr(model, "input_shape", None)
    if not isinstance(shape, tuple) or len(shape) != 3 or shape[-1] is None:
        raise UserError("--inputs: this model's input shape is unknown; give a .npy array")
    steps = shape[1] or 50
    return np.random.default_rng(args.seed).standard_normal((1, steps, shape[-1])).astype("float32")


# -- gradient flow -------------------------------------------------------------------------------
def _gradient_flow(args, run_dir: Path) -> dict:
    import torch

    from rnnkit import plot
    from rnnkit.data.synthetic import xor_task
    from rnnkit.inspect import gradient_norms
    from rnnkit.layers import GRU, LSTM, Dense, SimpleRNN
    from rnnkit.models import Sequential

    x, y = xor_task(args.samples, args.steps, seed=args.seed)
    norms = {}
    for name, layer_class in (("SimpleRNN", SimpleRNN), ("LSTM", LSTM), ("GRU", GRU)):
        recurrent, head = layer_class(args.units), Dense(1, activation="sigmoid")
        model = Sequential([recurrent, head])
        if args.train_epochs > 0:
            model.compile(optimizer="adam", loss="binary_crossentropy")
            model.fit(x, y, epochs=args.train_epochs, batch_size=32, verbose=0)
        else:
            model.build_from_batch(x[:1])
        bce = torch.nn.functional.binary_cross_entropy
        norms[name] = gradient_norms(recurrent, x, y, head=head, loss_fn=bce)
    path = plot.gradient_flow(norms, path=run_dir / "gradient_flow.png",
                              title=f"‖∂L/∂h_t‖ on seed 001's XOR task (T={args.steps})")
    rows = [[name, f"{values[0]:.3e}", f"{values[-1]:.3e}", f"{values[0] / values[-1]:.3e}"]
            for name, values in norms.items()]
    console.print(results_table("Gradient reaching the first step", ["cell", "‖∂L/∂h_1‖",
                                "‖∂L/∂h_T‖", "ratio first/last"], rows))
    console.print(f"gradient-flow plot: {path}")
    return {name: {"first": float(v[0]), "last": float(v[-1])} for name, v in norms.items()}
