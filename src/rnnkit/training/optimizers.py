"""Keras's optimizers as ``torch.optim.Optimizer`` subclasses: Keras's arguments, defaults and math.

Each class takes Keras's constructor arguments (``Adam(learning_rate=1e-3, beta_1=0.9, beta_2=0.999,
epsilon=1e-7)``...) and applies Keras's update rule, which differs from torch.optim's in small ways
that matter when comparing runs: Keras puts ``epsilon`` inside the square root for RMSprop and
Adagrad, outside the bias correction for Adam, and scales SGD's velocity by the learning rate.

Construction takes no parameters, as in Keras; ``build(params)`` (called by ``fit`` once the model's
lazy weights exist) attaches them. After ``build`` it is a regular ``torch.optim.Optimizer``:
``step()``, ``zero_grad()``, ``state_dict()``, ``param_groups`` all work.

Shared arguments, as Keras: ``clipnorm`` (per-variable norm), ``clipvalue``, ``global_clipnorm``
(at most one of the three), ``weight_decay`` (decoupled: ``w -= w * weight_decay * lr`` before the
update). ``learning_rate`` is a float or a callable ``schedule(step) -> float`` called with the
number of updates applied so far (Keras's ``LearningRateSchedule`` protocol).

Example:
    >>> opt = Adam(learning_rate=1e-3, clipnorm=1.0)
    >>> opt.build(model.parameters())
    >>> loss.backward(); opt.step()
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

Schedule = Callable[[int], float]


class Optimizer(torch.optim.Optimizer):
    """Base of the Keras-face optimizers: lazy ``build``, clipping, weight decay, schedules."""

    def __init__(self, learning_rate: float | Schedule = 0.001, *,
                 weight_decay: float | None = None,
                 clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None, name: str | None = None,
                 **hyper) -> None:
        # torch.optim.Optimizer.__init__ runs in build(), once the parameters exist.
        set_clips = [n for n, v in (("clipnorm", clipnorm), ("clipvalue", clipvalue),
                                    ("global_clipnorm", global_clipnorm)) if v is not None]
        if len(set_clips) > 1:
            raise ValueError(f"{', '.join(set_clips)}: set at most one of clipnorm, clipvalue and "
                             "global_clipnorm, as Keras")
        if not callable(learning_rate):
            learning_rate = _check_positive(learning_rate, "learning_rate", allow_zero=True)
        self._schedule = learning_rate if callable(learning_rate) else None
        self._initial_lr = None if callable(learning_rate) else learning_rate
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.weight_decay = weight_decay
        self.name = name or type(self).__name__.lower()
        self.hyper = hyper
        self.built = False

    # -- lifecycle ----------------------------------------------------------------------------
    def build(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Attach the parameters to update (trainable ones only); creates torch.optim's state."""
        params = [p for p in params if p.requires_grad]
        if not params:
            raise ValueError("params: the model has no trainable weights to optimize")
        lr = self._initial_lr if self._schedule is None else float(self._schedule(0))
        super().__init__(params, dict(lr=lr, iterations=0, **self.hyper))
        self.built = True

    @property
    def iterations(self) -> int:
        """Number of updates applied so far (Keras's ``optimizer.iterations``)."""
        return self.param_groups[0]["iterations"] if self.built else 0

    @property
    def learning_rate(self) -> float:
        if self._schedule is not None:
            return float(self._schedule(self.iterations))
        return self.param_groups[0]["lr"] if self.built else self._initial_lr

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        if self._schedule is not None:
            raise TypeError("learning_rate: this optimizer was created with a schedule, so its "
                            "learning rate is not settable; create it with a float instead")
        value = _check_positive(value, "learning_rate", allow_zero=True)
        self._initial_lr = value
        if self.built:
            for group in self.param_groups:
                group["lr"] = value

    # -- update ---------------------------------------------------------------------------------
    def step(self, closure=None):
        """Clip gradients, apply weight decay, then Keras's update rule; returns ``closure()``."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.apply_update()
        return loss

    @torch.no_grad()
    def apply_update(self) -> None:
        """``step()`` without torch's profiler annotation and step hooks (fit's fast path)."""
        if not self.built:
            raise RuntimeError(f"{self.name}: call build(params) before step()")
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                if self._schedule is not None:
                    group["lr"] = float(self._schedule(group["iterations"]))
                grads = self._clipped([p.grad for p in params])
                if self.weight_decay:
                    torch._foreach_mul_(params, 1.0 - self.weight_decay * group["lr"])
                states = [self._state_of(p) for p in params]
                self._update(group, params, grads, states, group["iterations"] + 1)
            group["iterations"] += 1

    def _clipped(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.clipvalue is not None:
            return [g.clamp(-self.clipvalue, self.clipvalue) for g in grads]
        if self.clipnorm is not None:
            norms = torch._foreach_norm(grads)
            return [g * self.clipnorm / torch.clamp(n, min=self.clipnorm)
                    for g, n in zip(grads, norms)]
        if self.global_clipnorm is not None:
            norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
            scale = self.global_clipnorm / torch.clamp(norm, min=self.global_clipnorm)
            return torch._foreach_mul(grads, scale)
        return grads

    def _state_of(self, param: torch.Tensor) -> dict:
        state = self.state[param]
        if not state:
            for slot, initial in self._slots(param).items():
                state[slot] = torch.full_like(param, initial, memory_format=torch.preserve_format)
        return state

    def _slots(self, param: torch.Tensor) -> dict[str, float]:
        """Per-parameter state tensors this rule needs, with their initial value."""
        return {}

    def _update(self, group: dict, params, grads, states, step: int) -> None:
        raise NotImplementedError

    # -- config ----------------------------------------------------------------------------------
    def get_config(self) -> dict:
        lr = self._schedule if self._schedule is not None else self.learning_rate
        return {"name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm, "clipvalue": self.clipvalue,
                "global_clipnorm": self.global_clipnorm, **self.hyper}

    @classmethod
    def from_config(cls, config: dict) -> Optimizer:
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(learning_rate={self.learning_rate}, {self.hyper})"

    def __getstate__(self):
        return self.__dict__

    def __setstate__(self, state):
        self.__dict__.update(state)


def _slot(states, name: str) -> list[torch.Tensor]:
    return [s[name] for s in states]


class SGD(Optimizer):
    """Keras's SGD: ``v = momentum v - lr g; w += v`` (Nesterov: ``w += momentum v - lr g``)."""

    def __init__(self, learning_rate: float | Schedule = 0.01, momentum: float = 0.0,
                 nesterov: bool = False, **kwargs) -> None:
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum: expected a float in [0, 1], got {momentum}")
        super().__init__(learning_rate, momentum=momentum, nesterov=nesterov, **kwargs)

    def _slots(self, param):
        return {"momentum": 0.0} if self.hyper["momentum"] else {}

    def _update(self, group, params, grads, states, step):
        lr, momentum = group["lr"], group["momentum"]
        if not momentum:
            torch._foreach_add_(params, grads, alpha=-lr)
            return
        velocity = _slot(states, "momentum")
        torch._foreach_mul_(velocity, momentum)
        torch._foreach_add_(velocity, grads, alpha=-lr)
        if group["nesterov"]:
            torch._foreach_add_(params, velocity, alpha=momentum)
            torch._foreach_add_(params, grads, alpha=-lr)
        else:
            torch._foreach_add_(params, velocity)


class Adam(Optimizer):
    """Keras's Adam: ``w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + epsilon)``."""

    def __init__(self, learning_rate: float | Schedule = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, amsgrad: bool = False,
                 **kwargs) -> None:
        super().__init__(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         amsgrad=amsgrad, **kwargs)

    def _slots(self, param):
        slots = {"momentum": 0.0, "velocity": 0.0}
        if self.hyper["amsgrad"]:
            slots["velocity_hat"] = 0.0
        return slots

    def _update(self, group, params, grads, states, step):
        beta_1, beta_2 = group["beta_1"], group["beta_2"]
        alpha = group["lr"] * math.sqrt(1 - beta_2**step) / (1 - beta_1**step)
        momentum, velocity = _slot(states, "momentum"), _slot(states, "velocity")
        torch._foreach_lerp_(momentum, grads, 1 - beta_1)
        torch._foreach_mul_(velocity, beta_2)
        torch._foreach_addcmul_(velocity, grads, grads, value=1 - beta_2)
        if group["amsgrad"]:
            velocity_hat = _slot(states, "velocity_hat")
            torch._foreach_maximum_(velocity_hat, velocity)
            velocity = velocity_hat
        denominator = torch._foreach_sqrt(velocity)
        torch._foreach_add_(denominator, group["epsilon"])
        torch._foreach_addcdiv_(params, momentum, denominator, value=-alpha)


class AdamW(Adam):
    """Keras's AdamW: Adam with decoupled weight decay (0.004 by default) before the update."""

    def __init__(self, learning_rate: float | Schedule = 0.001, weight_decay: float = 0.004,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 amsgrad: bool = False, **kwargs) -> None:
        if weight_decay is None:
            raise ValueError("weight_decay: AdamW needs a float, got None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad,
                         weight_decay=weight_decay, **kwargs)


class RMSprop(Optimizer):
    """Keras's RMSprop: ``v = rho v + (1 - rho) g^2; w -= lr g / sqrt(v + epsilon)``."""

    def __init__(self, learning_rate: float | Schedule = 0.001, rho: float = 0.9,
                 momentum: float = 0.0, epsilon: float = 1e-7, centered: bool = False,
                 **kwargs) -> None:
        super().__init__(learning_rate, rho=rho, momentum=momentum, epsilon=epsilon,
                         centered=centered, **kwargs)

    def _slots(self, param):
        slots = {"velocity": 0.0}
        if self.hyper["momentum"]:
            slots["momentum"] = 0.0
        if self.hyper["centered"]:
            slots["average_gradient"] = 0.0
        return slots

    def _update(self, group, params, grads, states, step):
        rho = group["rho"]
        velocity = _slot(states, "velocity")
        torch._foreach_mul_(velocity, rho)
        torch._foreach_addcmul_(velocity, grads, grads, value=1 - rho)
        if group["centered"]:
            average = _slot(states, "average_gradient")
            torch._foreach_lerp_(average, grads, 1 - rho)
            denominator = torch._foreach_addcmul(velocity, average, average, value=-1)
            torch._foreach_add_(denominator, group["epsilon"])
        else:
            denominator = torch._foreach_add(velocity, group["epsilon"])
        torch._foreach_sqrt_(denominator)
        if group["momentum"]:
            momentum = _slot(states, "momentum")
            torch._foreach_mul_(momentum, group["momentum"])
            torch._foreach_addcdiv_(momentum, grads, denominator, value=group["lr"])
            torch._foreach_sub_(params, momentum)
        else:
            torch._foreach_addcdiv_(params, grads, denominator, value=-group["lr"])


class Adagrad(Optimizer):
    """Keras's Adagrad: ``a += g^2; w -= lr g / sqrt(a + epsilon)``, ``a`` starting at 0.1."""

    def __init__(self, learning_rate: float | Schedule = 0.001,
                 initial_accumulator_value: float = 0.1, epsilon: float = 1e-7,
                 **kwargs) -> None:
        super().__init__(learning_rate, initial_accumulator_value=initial_accumulator_value,
                         epsilon=epsilon, **kwargs)

    def _slots(self, param):
        return {"accumulator": self.hyper["initial_accumulator_value"]}

    def _update(self, group, params, grads, states, step):
        accumulator = _slot(states, "accumulator")
        torch._foreach_addcmul_(accumulator, grads, grads)
        denominator = torch._foreach_add(accumulator, group["epsilon"])
        torch._foreach_sqrt_(denominator)
        torch._foreach_addcdiv_(params, grads, denominator, value=-group["lr"])


class Adadelta(Optimizer):
    """Keras's Adadelta: ``delta = -sqrt(d + eps) / sqrt(a + eps) * g; w += lr * delta``."""

    def __init__(self, learning_rate: float | Schedule = 0.001, rho: float = 0.95,
                 epsilon: float = 1e-7, **kwargs) -> None:
        super().__init__(learning_rate, rho=rho, epsilon=epsilon, **kwargs)

    def _slots(self, param):
        return {"accumulated_grad": 0.0, "accumulated_delta": 0.0}

    def _update(self, group, params, grads, states, step):
        rho, epsilon = group["rho"], group["epsilon"]
        accumulated_grad = _slot(states, "accumulated_grad")
        accumulated_delta = _slot(states, "accumulated_delta")
        torch._foreach_mul_(accumulated_grad, rho)
        torch._foreach_addcmul_(accumulated_grad, grads, grads, value=1 - rho)
        numerator = torch._foreach_add(accumulated_delta, epsilon)
        torch._foreach_sqrt_(numerator)
        denominator = torch._foreach_add(accumulated_grad, epsilon)
        torch._foreach_sqrt_(denominator)
        delta = torch._foreach_mul(numerator, grads)
        torch._foreach_div_(delta, denominator)  # the negated Keras delta_var
        torch._foreach_mul_(accumulated_delta, rho)
        torch._foreach_addcmul_(accumulated_delta, delta, delta, value=1 - rho)
        torch._foreach_add_(params, delta, alpha=-group["lr"])


class Adamax(Optimizer):
    """Keras's Adamax: ``u = max(b2 u, |g|); w -= lr m / ((1 - b1^t)(u + epsilon))``."""

    def __init__(self, learning_rate: float | Schedule = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, **kwargs) -> None:
        super().__init__(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, **kwargs)

    def _slots(self, param):
        return {"momentum": 0.0, "norm": 0.0}

    def _update(self, group, params, grads, states, step):
        momentum, norm = _slot(states, "momentum"), _slot(states, "norm")
        torch._foreach_lerp_(momentum, grads, 1 - group["beta_1"])
        torch._foreach_mul_(norm, group["beta_2"])
        torch._foreach_maximum_(norm, torch._foreach_abs(grads))
        denominator = torch._foreach_add(norm, group["epsilon"])
        scale = group["lr"] / (1 - group["beta_1"] ** step)
        torch._foreach_addcdiv_(params, momentum, denominator, value=-scale)


class Nadam(Optimizer):
    """Keras's Nadam (Dozat's momentum schedule ``u_t = b1 (1 - 0.5 * 0.96^t)``)."""

    def __init__(self, learning_rate: float | Schedule = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, **kwargs) -> None:
        super().__init__(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, **kwargs)

    def build(self, params) -> None:
        super().build(params)
        for group in self.param_groups:
            group["u_product"] = 1.0

    def _slots(self, param):
        return {"momentum": 0.0, "velocity": 0.0}

    def _update(self, group, params, grads, states, step):
        beta_1, beta_2 = group["beta_1"], group["beta_2"]
        u_t = beta_1 * (1.0 - 0.5 * 0.96**step)
        u_next = beta_1 * (1.0 - 0.5 * 0.96 ** (step + 1))
        group["u_product"] *= u_t
        u_product = group["u_product"]
        momentum, velocity = _slot(states, "momentum"), _slot(states, "velocity")
        torch._foreach_lerp_(momentum, grads, 1 - beta_1)
        torch._foreach_mul_(velocity, beta_2)
        torch._foreach_addcmul_(velocity, grads, grads, value=1 - beta_2)
        m_hat = torch._foreach_mul(momentum, u_next / (1 - u_product * u_next))
        torch._foreach_add_(m_hat, grads, alpha=(1 - u_t) / (1 - u_product))
        denominator = torch._foreach_div(velocity, 1 - beta_2**step)
        torch._foreach_sqrt_(denominator)
        torch._foreach_add_(denominator, group["epsilon"])
        torch._foreach_addcdiv_(params, m_hat, denominator, value=-group["lr"])


_BY_NAME = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad,
            "adadelta": Adadelta, "adamax": Adamax, "nadam": Nadam}


def get(identifier) -> torch.optim.Optimizer:
    """An optimizer from a Keras name ("adam"...), a config dict, or an optimizer object.

    A plain ``torch.optim.Optimizer`` (already holding the parameters) is returned unchanged.
    """
    if isinstance(identifier, torch.optim.Optimizer):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in _BY_NAME:
            raise ValueError(f"optimizer: unknown name {identifier!r}; expected one of "
                             f"{sorted(_BY_NAME)} or an optimizer object")
        return _BY_NAME[key]()
    if isinstance(identifier, dict) and "class_name" in identifier:
        return get(identifier["class_name"]).from_config(identifier.get("config", {}))
    raise TypeError(f"optimizer: expected a name, a config dict or an optimizer object, got "
                    f"{type(identifier).__name__}")


def _check_positive(value, name: str, allow_zero: bool = False) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a float, got {type(value).__name__}") from None
    if value < 0 or (value == 0 and not allow_zero) or math.isnan(value):
        raise ValueError(f"{name}: expected a non-negative float, got {value}")
    return value

