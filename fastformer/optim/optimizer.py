"""The base of every optimizer: flat state buffers over the model's flat
parameter buffer, a step counter, and a pickle-free state_dict."""
import numbers

import numpy as np

from fastformer._kernels import flat_buffers, kernel

# Step counts stay exact in a float64 (bias corrections) and in a JSON manifest.
MAX_STEPS = 2 ** 53


class Optimizer:
    """Updates all of a model's parameters with one flat kernel call per step.

    Subclasses name their state buffers in `_state_names` (each one array of
    the flat buffer's length and dtype, starting at 0) and their
    hyperparameters in `_hyper_names`, check those in `_validate_hyper()`
    and implement `_update()`.

    `lr` is a plain attribute: a schedule (or the user) sets it before `step()`.
    `steps` counts the updates made so far (PyTorch's per-parameter `step`,
    which is the same for every parameter here since all are updated together).
    """

    _state_names = ()
    _hyper_names = ()

    def __init__(self, model, lr):
        self.model = model
        self._params, self._grads = flat_buffers(model)
        _check_nonnegative("lr", lr)
        self.lr = float(lr)
        self.steps = 0
        self.state = {name: np.zeros_like(self._params) for name in self._state_names}

    def _kernel(self, name):
        return kernel(name, self._params.dtype)

    def step(self):
        """Apply one update to every parameter from its accumulated gradient."""
        _check_nonnegative("lr", self.lr)
        if self.steps + 1 >= MAX_STEPS:
            raise ValueError(f"the optimizer has made {self.steps} steps, the most it counts is {MAX_STEPS - 1}")
        self.steps += 1
        self._update()

    def _update(self):
        raise NotImplementedError

    def zero_grad(self):
        """Set every gradient of the model to 0."""
        self.model.zero_grad()

    def hyperparameters(self):
        """{name: value} of the plain (JSON-able) hyperparameters, lr included."""
        hyper = {"lr": self.lr}
        for name in self._hyper_names:
            value = getattr(self, name)
            hyper[name] = list(value) if isinstance(value, tuple) else value
        return hyper

    def state_dict(self):
        """{"type", "steps", "hyperparameters": {...}, "state": {name: flat array copy}}.

        Plain Python values and NumPy arrays only, so it can be stored as JSON
        plus safetensors without pickle.
        """
        return {"type": type(self).__name__, "steps": self.steps,
                "hyperparameters": self.hyperparameters(),
                "state": {name: buf.copy() for name, buf in self.state.items()}}

    def load_state_dict(self, state_dict):
        """Restore what `state_dict()` returned. Everything is checked before
        anything changes: the optimizer type, the hyperparameter and state
        names, the buffers' shape and finiteness (ValueError/TypeError)."""
        self._assign_state(self._checked_state_dict(state_dict))

    def _checked_state_dict(self, state_dict):
        """The checks of `load_state_dict` -> what `_assign_state` takes; changes nothing."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        missing = {"type", "steps", "hyperparameters", "state"} - state_dict.keys()
        if missing:
            raise ValueError(f"optimizer state_dict lacks {sorted(missing)}")
        if state_dict["type"] != type(self).__name__:
            raise ValueError(f"optimizer state_dict is for {state_dict['type']}, "
                             f"not {type(self).__name__}")
        steps = state_dict["steps"]
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or not 0 <= steps < MAX_STEPS:
            raise ValueError(f"optimizer state_dict steps must be an integer in [0, {MAX_STEPS}), got {steps!r}")
        if not isinstance(state_dict["hyperparameters"], dict):
            raise TypeError(f"optimizer state_dict hyperparameters must be a dict, "
                            f"got {type(state_dict['hyperparameters']).__name__}")
        hyper = dict(state_dict["hyperparameters"])
        expected = set(self.hyperparameters())
        if set(hyper) != expected:
            raise ValueError(f"optimizer hyperparameters must be {sorted(expected)}, got {sorted(hyper)}")
        state = state_dict["state"]
        if not isinstance(state, dict) or set(state) != set(self._state_names):
            raise ValueError(f"optimizer state must hold {sorted(self._state_names)}, "
                             f"got {sorted(state) if isinstance(state, dict) else type(state).__name__}")
        arrays = {}
        for name in self._state_names:
            try:
                value = np.asarray(state[name])
            except (ValueError, TypeError) as exc:
                raise TypeError(f"optimizer state {name!r} must be a float array: {exc}") from None
            if not np.issubdtype(value.dtype, np.floating):
                raise TypeError(f"optimizer state {name!r} must be a float array, got {value.dtype}")
            if value.shape != self._params.shape:
                raise ValueError(f"optimizer state {name!r} must have shape {self._params.shape} "
                                 f"(the model's flat parameter buffer), got {value.shape}")
            with np.errstate(over="ignore", invalid="ignore"):
                value = value.astype(self._params.dtype)
            if not np.all(np.isfinite(value)):
                raise ValueError(f"optimizer state {name!r} holds non-finite values in "
                                 f"{self._params.dtype} (NaN, inf, or beyond its range)")
            arrays[name] = value
        _check_nonnegative("lr", hyper["lr"])
        lr = float(hyper.pop("lr"))
        return lr, self._validate_hyper(hyper), arrays, int(steps)

    def _assign_state(self, checked):
        lr, hyper, arrays, steps = checked
        self.lr = lr
        self.__dict__.update(hyper)
        for name, value in arrays.items():
            self.state[name][...] = value
        self.steps = steps

    def _configure(self, **hyper):
        """Check the hyperparameters other than lr and set them as attributes."""
        self.__dict__.update(self._validate_hyper(hyper))

    def _validate_hyper(self, hyper):
        """{name: value} -> the same, checked and normalised (ValueError if bad)."""
        return hyper

    def __repr__(self):
        hyper = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({hyper})"


def _check_nonnegative(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < float("inf"):
        raise ValueError(f"{name} must be a non-negative finite number, got {value!r}")


def check_unit_interval(name, value):
    """0 <= value < 1, as PyTorch's betas and momentum checks."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
