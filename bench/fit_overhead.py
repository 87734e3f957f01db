"""Per-batch cost of fit() over the leanest hand-written loop, at batch_size=1 (seed 002).

CPU time (process_time) with one torch thread; medians over interleaved repeats.
usage: python bench/fit_overhead.py {lstm|linear} [metric ...]
"""
import sys
import time

import numpy as np
import torch

from rnnkit.layers import LSTM, Dense, Flatten
from rnnkit.models import Sequential
from rnnkit.optimizers import Adam
from rnnkit.training import fit

torch.set_num_threads(1)
series = np.sin(np.linspace(0, 100, 1000)).astype("float32")
X = np.stack([series[i:i + 10] for i in range(len(series) - 11)])[..., None][:790]
y = series[10:-1][:790]
kind, metrics = sys.argv[1], sys.argv[2:] or None


def make():
    torch.manual_seed(0)
    body = [LSTM(50, input_shape=(10, 1))] if kind == "lstm" else [Flatten(input_shape=(10, 1))]
    model = Sequential([*body, Dense(1)])
    model.build_from_batch(torch.from_numpy(X[:1]))
    return model


def hand_epoch(model, optimizer):
    xt, yt = torch.from_numpy(X), torch.from_numpy(y)[:, None]
    order = torch.randperm(len(xt))
    xt, yt = xt[order], yt[order]
    params = list(model.parameters())
    model.train()
    for i in range(len(xt)):
        loss = ((model(xt[i:i + 1], training=True) - yt[i:i + 1]) ** 2).mean()
        for p in params:
            p.grad = None
        loss.backward()
        optimizer.apply_update()


hand, fitted = make(), make()
optimizer = Adam()
optimizer.build(hand.parameters())
fitted.compile(Adam(), "mse", metrics=metrics)
hand_epoch(hand, optimizer)
fit(fitted, X, y, batch_size=1, verbose=0)
hands, fits = [], []
for _ in range(int(dict(lstm=5, linear=15)[kind])):
    start = time.process_time()
    hand_epoch(hand, optimizer)
    hands.append(time.process_time() - start)
    start = time.process_time()
    fit(fitted, X, y, batch_size=1, verbose=0)
    fits.append(time.process_time() - start)
h, f = np.median(hands) / 790 * 1e6, np.median(fits) / 790 * 1e6
print(f"{kind} metrics={metrics}: hand loop {h:.0f} us/batch, fit {f:.0f} us/batch, "
      f"overhead {f - h:.0f} us/batch")
