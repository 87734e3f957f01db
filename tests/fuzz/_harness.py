"""The guard every fuzzed call runs under, and the verdict on its outcome.

A call is *malformed* (it has at least one defect, and the arguments it should name are known) or
*well-formed*. :func:`attempt` runs it under a time limit and fails the test when

- it raises anything but ``ValueError``/``TypeError`` (a crash: numba errors, IndexError, torch's
  RuntimeError...), or raises one with an empty message;
- it is malformed and succeeds (bad input accepted silently), or its error names none of the
  defective arguments;
- it is well-formed and raises;
- it runs past the time limit (a hang).

A segfault or a hang inside compiled code ends the whole process: ``faulthandler`` dumps the
stack and exits, so neither can pass unnoticed.
"""

from __future__ import annotations

import contextlib
import faulthandler
import signal
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest
import torch

CALL_SECONDS = 20.0  # generous: tiny tensors, but 2 shared cores and possibly a JIT compile
HARD_EXIT_SECONDS = 120.0  # backstop for hangs in native code, where SIGALRM cannot interrupt

# Calls made per fuzz test, keyed by test name; conftest prints them at the end of the session.
TALLIES: dict[str, Tally] = {}


class CallTimedOut(BaseException):
    """Raised by the alarm; a BaseException, so no ``except Exception`` in the library eats it."""


@contextlib.contextmanager
def time_limit(seconds: float = CALL_SECONDS):
    def on_alarm(signum, frame):
        raise CallTimedOut(f"the call ran longer than {seconds} s")

    has_alarm = hasattr(signal, "setitimer")
    if has_alarm:
        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    faulthandler.dump_traceback_later(HARD_EXIT_SECONDS, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        if has_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


@dataclass
class Tally:
    """How many calls a fuzz test made and how they ended."""

    malformed: int = 0
    well_formed: int = 0
    errors: Counter = field(default_factory=Counter)  # exception type name -> count

    def __str__(self) -> str:
        kinds = ", ".join(f"{name} {count}" for name, count in sorted(self.errors.items()))
        return (
            f"{self.malformed} malformed calls ({kinds}), "
            f"{self.well_formed} well-formed calls (all succeeded)"
        )


def tally_for(test_name: str) -> Tally:
    return TALLIES.setdefault(test_name, Tally())


def attempt(call: Callable, tally: Tally, *, names: Sequence[str] = (), description: str = ""):
    """Run ``call``; malformed when ``names`` (the defective arguments) is non-empty.

    Returns the call's result for a well-formed call; ``None`` for a malformed one.
    """
    malformed = bool(names)
    try:
        with time_limit():
            result = call()
    except CallTimedOut as timeout:
        pytest.fail(f"hang: {timeout} [{description}]")
    except (ValueError, TypeError) as error:
        message = str(error)
        if not malformed:
            pytest.fail(
                f"well-formed call refused with {type(error).__name__}: {message} [{description}]"
            )
        if not message.strip():
            pytest.fail(f"{type(error).__name__} with an empty message [{description}]")
        if not any(name in message for name in names):
            pytest.fail(
                f"error names none of {list(names)}: {type(error).__name__}: {message} "
                f"[{description}]"
            )
        tally.malformed += 1
        tally.errors[type(error).__name__] += 1
        return None
    except Exception as error:  # noqa: BLE001 - any other exception is the failure being hunted
        pytest.fail(f"crash: {type(error).__name__}: {error} [{description}]")
    if malformed:
        pytest.fail(f"malformed call accepted silently (defective: {list(names)}) [{description}]")
    tally.well_formed += 1
    return result


def tensors_of(value) -> list[torch.Tensor]:
    """Every tensor in an output (a tensor, or nested lists/tuples of them)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in tensors_of(item)]
    if hasattr(value, "data") and isinstance(value.data, torch.Tensor):  # Packed
        return [value.data]
    raise AssertionError(f"unexpected output type {type(value).__name__}")


def assert_finite(value, description: str = "") -> None:
    for index, tensor in enumerate(tensors_of(value)):
        assert bool(torch.isfinite(tensor.detach().float()).all()), (
            f"output {index} is not finite [{description}]"
        )
