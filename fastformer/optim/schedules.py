"""Learning-rate schedules: small callables step -> lr.

`step` counts optimizer updates from 1 (the first update uses schedule(1)),
matching the paper's formula, which is undefined at 0. A schedule is a pure
function of the step, so its whole state is its JSON-able `config()`;
`schedule_from_config` rebuilds it (for checkpoints).
"""
import math
import numbers


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _nonnegative(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)


def _check_step(step):
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 1:
        raise ValueError(f"step must be an integer >= 1 (steps count from 1), got {step!r}")
    return int(step)


class Schedule:
    """Base: subclasses set `name` and implement `__call__` and `config`."""

    name = None

    def __call__(self, step):
        raise NotImplementedError

    def config(self):
        """{"name": ..., **arguments}: enough to rebuild the schedule."""
        raise NotImplementedError

    # A schedule's state is its configuration (it keeps no counters).
    def state_dict(self):
        return self.config()

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return isinstance(other, Schedule) and self.config() == other.config()


class ConstantSchedule(Schedule):
    """lr(step) = lr."""

    name = "constant"

    def __init__(self, lr):
        self.lr = _nonnegative("lr", lr)

    def __call__(self, step):
        _check_step(step)
        return self.lr

    def config(self):
        return {"name": self.name, "lr": self.lr}


class NoamSchedule(Schedule):
    """The paper's schedule ("Attention Is All You Need", 5.3):
    lr(step) = factor * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5),
    a linear rise for `warmup` steps, then decay as 1/sqrt(step)."""

    name = "noam"

    def __init__(self, d_model, warmup=4000, factor=1.0):
        self.d_model = _positive_int("d_model", d_model)
        self.warmup = _positive_int("warmup", warmup)
        self.factor = _nonnegative("factor", factor)

    def __call__(self, step):
        step = _check_step(step)
        return self.factor * self.d_model ** -0.5 * min(step ** -0.5, step * self.warmup ** -1.5)

    def config(self):
        return {"name": self.name, "d_model": self.d_model, "warmup": self.warmup,
                "factor": self.factor}


class WarmupCosineSchedule(Schedule):
    """Linear warmup from 0 to `lr` over `warmup` steps (lr * step / warmup),
    then cosine decay from `lr` to `min_lr` at `total_steps`; `min_lr` after."""

    name = "warmup_cosine"

    def __init__(self, lr, warmup, total_steps, min_lr=0.0):
        self.lr = _nonnegative("lr", lr)
        self.warmup = _positive_int("warmup", warmup)
        self.total_steps = _positive_int("total_steps", total_steps)
        if self.total_steps < self.warmup:
            raise ValueError(f"total_steps={total_steps} must be at least warmup={warmup}")
        self.min_lr = _nonnegative("min_lr", min_lr)

    def __call__(self, step):
        step = _check_step(step)
        if step <= self.warmup:
            return self.lr * step / self.warmup
        if step >= self.total_steps:
            return self.min_lr
        progress = (step - self.warmup) / (self.total_steps - self.warmup)
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + math.cos(math.pi * progress))

    def config(self):
        return {"name": self.name, "lr": self.lr, "warmup": self.warmup,
                "total_steps": self.total_steps, "min_lr": self.min_lr}


_SCHEDULES = {cls.name: cls for cls in (ConstantSchedule, NoamSchedule, WarmupCosineSchedule)}


def schedule_from_config(config):
    """Rebuild a schedule from its `config()` (ValueError for an unknown name
    or bad arguments)."""
    if not isinstance(config, dict) or "name" not in config:
        raise ValueError(f"a schedule config must be a dict with a 'name', got {config!r}")
    args = dict(config)
    name = args.pop("name")
    if name not in _SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; known: {sorted(_SCHEDULES)}")
    try:
        return _SCHEDULES[name](**args)
    except TypeError as exc:
        raise ValueError(f"bad arguments for schedule {name!r}: {exc}") from None
