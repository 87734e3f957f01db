"""Seed 000 transcribed, its correct values in NumPy, and a verdict for every printed line.

Interpretation (docs/seed_examples.md): scalar input x = 0.5; ``W x`` and ``U h`` are products with
one row per unit, and only the first column of each 2x2 ``W`` meets the scalar input. The GRU
blends the seed's way, ``h_t = (1 - z) h_{t-1} + z h~_t``. Keys name the seed's printed lines:
``"i.x"`` is ``W_i x``, ``"i.rec"`` is ``U_i h + b_i``, ``"i.pre"`` their sum, ``"i"`` the gate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# -- the seed, transcribed ------------------------------------------------------------------
X = 0.5
H_PREV = np.array([0.2, 0.3])
C_PREV = np.array([0.4, 0.5])


def _arrays(values: dict) -> dict[str, np.ndarray]:
    return {gate: np.array(value) for gate, value in values.items()}


# Gate keys: i, f, g (the seed's "c" gate, rnnkit's g), o; z, r, h~.
LSTM_W = _arrays(
    {
        "i": [[0.1, 0.2], [0.3, 0.4]],
        "f": [[0.5, 0.6], [0.7, 0.8]],
        "g": [[0.9, 1.0], [1.1, 1.2]],
        "o": [[1.3, 1.4], [1.5, 1.6]],
    }
)
LSTM_U = _arrays(
    {
        "i": [[1.7, 1.8], [1.9, 2.0]],
        "f": [[2.1, 2.2], [2.3, 2.4]],
        "g": [[2.5, 2.6], [2.7, 2.8]],
        "o": [[2.9, 3.0], [3.1, 3.2]],
    }
)
LSTM_B = _arrays({"i": [0.1, 0.2], "f": [0.3, 0.4], "g": [0.5, 0.6], "o": [0.7, 0.8]})
GRU_W = _arrays(
    {"z": [[0.1, 0.2], [0.3, 0.4]], "r": [[0.5, 0.6], [0.7, 0.8]], "h~": [[0.9, 1.0], [1.1, 1.2]]}
)
GRU_U = _arrays(
    {"z": [[1.3, 1.4], [1.5, 1.6]], "r": [[1.7, 1.8], [1.9, 2.0]], "h~": [[2.1, 2.2], [2.3, 2.4]]}
)
GRU_B = _arrays({"z": [0.1, 0.2], "r": [0.3, 0.4], "h~": [0.5, 0.6]})

# One unit in the second decimal: the seed prints two decimals and sometimes truncates.
TOLERANCE = 0.01 + 1e-9


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-np.asarray(a)))


# -- the correct values, in NumPy --------------------------------------------------------------
def correct_lstm() -> dict[str, np.ndarray]:
    values = {}
    for gate in "ifgo":
        values[f"{gate}.x"] = LSTM_W[gate][:, 0] * X  # first column meets the scalar input
        values[f"{gate}.rec"] = LSTM_U[gate] @ H_PREV + LSTM_B[gate]
        values[f"{gate}.pre"] = values[f"{gate}.x"] + values[f"{gate}.rec"]
        values[gate] = (np.tanh if gate == "g" else _sigmoid)(values[f"{gate}.pre"])
    values["f*c_prev"] = values["f"] * C_PREV
    values["c"] = values["f*c_prev"] + values["i"] * values["g"]
    values["tanh(c)"] = np.tanh(values["c"])
    values["h"] = values["o"] * values["tanh(c)"]
    return values


def correct_gru() -> dict[str, np.ndarray]:
    """The seed's GRU: reset before U, and h_t = (1 - z) h_{t-1} + z h~_t."""
    values = {}
    for gate in ("z", "r"):
        values[f"{gate}.x"] = GRU_W[gate][:, 0] * X
        values[f"{gate}.rec"] = GRU_U[gate] @ H_PREV + GRU_B[gate]
        values[f"{gate}.pre"] = values[f"{gate}.x"] + values[f"{gate}.rec"]
        values[gate] = _sigmoid(values[f"{gate}.pre"])
    values["h~.x"] = GRU_W["h~"][:, 0] * X
    values["h~.rec"] = GRU_U["h~"] @ (values["r"] * H_PREV) + GRU_B["h~"]
    values["h~.pre"] = values["h~.x"] + values["h~.rec"]
    values["h~"] = np.tanh(values["h~.pre"])
    values["(1-z)*h_prev"] = (1.0 - values["z"]) * H_PREV
    values["z*h~"] = values["z"] * values["h~"]
    values["h"] = values["(1-z)*h_prev"] + values["z*h~"]
    return values


# -- what the seed printed ------------------------------------------------------------------------
SEED_LSTM = {
    "i.x": ("0.05", "0.1"),
    "i.rec": ("0.55", "0.65"),
    "i.pre": ("0.6", "0.75"),
    "i": ("0.55", "0.68"),
    "f.x": ("0.25", "0.35"),
    "f.rec": ("0.75", "0.85"),
    "f.pre": ("1.0", "1.2"),
    "f": ("0.73", "0.78"),
    "g.x": ("0.45", "0.55"),
    "g.rec": ("0.7", "0.8"),
    "g.pre": ("1.15", "1.35"),
    "g": ("0.58", "0.66"),
    "f*c_prev": ("0.292", "0.39"),
    "c": ("0.479", "0.63"),
    "o.x": ("0.65", "0.75"),
    "o.rec": ("0.95", "1.05"),
    "o.pre": ("1.6", "1.8"),
    "o": ("0.82", "0.87"),
    "tanh(c)": ("0.44", "0.53"),
    "h": ("0.36", "0.46"),
}
SEED_GRU = {
    "z.x": ("0.05", "0.1"),
    "z.rec": ("0.45", "0.55"),
    "z.pre": ("0.5", "0.65"),
    "z": ("0.62", "0.66"),
    "r.x": ("0.25", "0.35"),
    "r.rec": ("0.65", "0.75"),
    "r.pre": ("0.9", "1.1"),
    "r": ("0.71", "0.75"),
    "h~.x": ("0.45", "0.55"),
    "h~.rec": ("0.55", "0.65"),
    "h~.pre": ("1.0", "1.2"),
    "h~": ("0.58", "0.62"),
    "(1-z)*h_prev": ("0.38", "0.42"),
    "z*h~": ("0.36", "0.41"),
    "h": ("0.74", "0.83"),
}


def _printed(seed: dict) -> dict[str, np.ndarray]:
    return {key: np.array([float(v) for v in values]) for key, values in seed.items()}


S_LSTM, S_GRU = _printed(SEED_LSTM), _printed(SEED_GRU)


@dataclass(frozen=True)
class PrintedLine:
    """One line of the seed's working, its recomputation and the verdict per unit.

    ``own`` recomputes the line from the seed's earlier printed lines; ``None`` when the line
    depends only on the given weights, so the correct value is the recomputation. Verdicts:
    "✓" matches the correct value; "carried" follows from the seed's earlier lines but those
    were wrong; "✗" the line's own arithmetic is wrong.
    """

    table: str
    key: str
    label: str
    own: Callable[[], np.ndarray] | None
    verdict: tuple[str, str]


def _sum(seed, *keys):
    return lambda: sum(seed[k] for k in keys)


LSTM_LINES = [
    PrintedLine("input gate", "i.x", "W_i x", None, ("✓", "✗")),
    PrintedLine("input gate", "i.rec", "U_i h + b_i", None, ("✗", "✗")),
    PrintedLine(
        "input gate",
        "i.pre",
        "W_i x + U_i h + b_i",
        _sum(S_LSTM, "i.x", "i.rec"),
        ("carried", "carried"),
    ),
    PrintedLine(
        "input gate", "i", "i_t = σ(·)", lambda: _sigmoid(S_LSTM["i.pre"]), ("✗", "carried")
    ),
    PrintedLine("forget gate", "f.x", "W_f x", None, ("✓", "✓")),
    PrintedLine("forget gate", "f.rec", "U_f h + b_f", None, ("✗", "✗")),
    PrintedLine(
        "forget gate",
        "f.pre",
        "W_f x + U_f h + b_f",
        _sum(S_LSTM, "f.x", "f.rec"),
        ("carried", "carried"),
    ),
    PrintedLine(
        "forget gate", "f", "f_t = σ(·)", lambda: _sigmoid(S_LSTM["f.pre"]), ("carried", "✗")
    ),
    PrintedLine("cell state", "g.x", "W_c x", None, ("✓", "✓")),
    PrintedLine("cell state", "g.rec", "U_c h + b_c", None, ("✗", "✗")),
    PrintedLine(
        "cell state",
        "g.pre",
        "W_c x + U_c h + b_c",
        _sum(S_LSTM, "g.x", "g.rec"),
        ("carried", "carried"),
    ),
    PrintedLine("cell state", "g", "c̃_t = tanh(·)", lambda: np.tanh(S_LSTM["g.pre"]), ("✗", "✗")),
    PrintedLine(
        "cell state",
        "f*c_prev",
        "f_t ⊙ c_{t-1}",
        lambda: S_LSTM["f"] * C_PREV,
        ("carried", "carried"),
    ),
    PrintedLine(
        "cell state",
        "c",
        "c_t = f_t ⊙ c_{t-1} + i_t ⊙ c̃_t",
        lambda: S_LSTM["f*c_prev"] + S_LSTM["i"] * S_LSTM["g"],
        ("✗", "✗"),
    ),
    PrintedLine("output gate and h", "o.x", "W_o x", None, ("✓", "✓")),
    PrintedLine("output gate and h", "o.rec", "U_o h + b_o", None, ("✗", "✗")),
    PrintedLine(
        "output gate and h",
        "o.pre",
        "W_o x + U_o h + b_o",
        _sum(S_LSTM, "o.x", "o.rec"),
        ("carried", "carried"),
    ),
    PrintedLine(
        "output gate and h", "o", "o_t = σ(·)", lambda: _sigmoid(S_LSTM["o.pre"]), ("✗", "✗")
    ),
    PrintedLine(
        "output gate and h", "tanh(c)", "tanh(c_t)", lambda: np.tanh(S_LSTM["c"]), ("carried", "✗")
    ),
    PrintedLine(
        "output gate and h",
        "h",
        "h_t = o_t ⊙ tanh(c_t)",
        lambda: S_LSTM["o"] * S_LSTM["tanh(c)"],
        ("carried", "carried"),
    ),
]

GRU_LINES = [
    PrintedLine("update gate", "z.x", "W_z x", None, ("✓", "✗")),
    PrintedLine("update gate", "z.rec", "U_z h + b_z", None, ("✗", "✗")),
    PrintedLine(
        "update gate",
        "z.pre",
        "W_z x + U_z h + b_z",
        _sum(S_GRU, "z.x", "z.rec"),
        ("carried", "carried"),
    ),
    PrintedLine(
        "update gate", "z", "z_t = σ(·)", lambda: _sigmoid(S_GRU["z.pre"]), ("carried", "carried")
    ),
    PrintedLine("reset gate", "r.x", "W_r x", None, ("✓", "✓")),
    PrintedLine("reset gate", "r.rec", "U_r h + b_r", None, ("✗", "✗")),
    PrintedLine(
        "reset gate",
        "r.pre",
        "W_r x + U_r h + b_r",
        _sum(S_GRU, "r.x", "r.rec"),
        ("carried", "carried"),
    ),
    PrintedLine(
        "reset gate", "r", "r_t = σ(·)", lambda: _sigmoid(S_GRU["r.pre"]), ("carried", "carried")
    ),
    PrintedLine("candidate", "h~.x", "W_h x", None, ("✓", "✓")),
    PrintedLine(
        "candidate",
        "h~.rec",
        "U_h (r_t ⊙ h_{t-1}) + b_h",
        lambda: GRU_U["h~"] @ (S_GRU["r"] * H_PREV) + GRU_B["h~"],
        ("✗", "✗"),
    ),
    PrintedLine(
        "candidate",
        "h~.pre",
        "W_h x + U_h (r_t ⊙ h_{t-1}) + b_h",
        _sum(S_GRU, "h~.x", "h~.rec"),
        ("carried", "carried"),
    ),
    PrintedLine("candidate", "h~", "h̃_t = tanh(·)", lambda: np.tanh(S_GRU["h~.pre"]), ("✗", "✗")),
    PrintedLine(
        "hidden state",
        "(1-z)*h_prev",
        "(1 − z_t) ⊙ h_{t-1}",
        lambda: (1.0 - S_GRU["z"]) * H_PREV,
        ("✗", "✗"),
    ),
    PrintedLine(
        "hidden state",
        "z*h~",
        "z_t ⊙ h̃_t",
        lambda: S_GRU["z"] * S_GRU["h~"],
        ("carried", "carried"),
    ),
    PrintedLine(
        "hidden state",
        "h",
        "h_t = (1 − z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t",
        _sum(S_GRU, "(1-z)*h_prev", "z*h~"),
        ("carried", "carried"),
    ),
]

FAMILIES = {
    "LSTM": (LSTM_LINES, S_LSTM, SEED_LSTM, correct_lstm),
    "GRU": (GRU_LINES, S_GRU, SEED_GRU, correct_gru),
}


def verdicts(line: PrintedLine, printed: dict, correct: dict) -> tuple[str, ...]:
    own = correct[line.key] if line.own is None else line.own()
    seed = printed[line.key]
    result = []
    for seed_value, own_value, correct_value in zip(seed, own, correct[line.key], strict=True):
        if abs(seed_value - correct_value) <= TOLERANCE:
            result.append("✓")
        elif abs(seed_value - own_value) <= TOLERANCE:
            result.append("carried")
        else:
            result.append("✗")
    return tuple(result)


def _format(values) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


def render_tables(family: str) -> list[str]:
    """The doc's markdown tables for ``family``, one per gate, from the lines above."""
    lines, printed, seed, correct_values = FAMILIES[family]
    correct = correct_values()
    out, table = [], None
    for line in lines:
        if line.table != table:
            table = line.table
            out += [
                "",
                f"**{family}, {table}**",
                "",
                "| quantity | seed 000 | from the seed's own lines | correct | verdict |",
                "|---|---|---|---|---|",
            ]
        own = "—" if line.own is None else _format(line.own())
        verdict = " / ".join(verdicts(line, printed, correct))
        out.append(
            f"| {line.label} | {', '.join(seed[line.key])} | {own} | "
            f"{_format(correct[line.key])} | {verdict} |"
        )
    return out
