"""SGD with momentum, dampening, Nesterov and weight decay, as torch.optim.SGD."""
from fastformer.optim.optimizer import Optimizer, _check_nonnegative


class SGD(Optimizer):
    """SGD with PyTorch's update rule. State: `momentum_buffer` (flat; set
    from the gradient on the first step, as PyTorch's lazily created buffer)."""

    _state_names = ("momentum_buffer",)
    _hyper_names = ("momentum", "dampening", "nesterov", "weight_decay")

    def __init__(self, model, lr=1e-3, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(model, lr)
        self._configure(momentum=momentum, dampening=dampening, nesterov=nesterov,
                        weight_decay=weight_decay)

    def _validate_hyper(self, hyper):
        for name in ("momentum", "dampening", "weight_decay"):
            _check_nonnegative(name, hyper[name])
        if not isinstance(hyper["nesterov"], bool):
            raise ValueError(f"nesterov must be True or False, got {hyper['nesterov']!r}")
        if hyper["nesterov"] and (hyper["momentum"] <= 0 or hyper["dampening"] != 0):
            # PyTorch's rule: Nesterov needs momentum and no dampening.
            raise ValueError("nesterov=True requires momentum > 0 and dampening = 0")
        return {"momentum": float(hyper["momentum"]), "dampening": float(hyper["dampening"]),
                "nesterov": hyper["nesterov"], "weight_decay": float(hyper["weight_decay"])}

    def _update(self):
        self._kernel("sgd_step")(self._params, self._grads, self.state["momentum_buffer"],
                                 self.steps, lr=self.lr, momentum=self.momentum,
                                 dampening=self.dampening, nesterov=self.nesterov,
                                 weight_decay=self.weight_decay)
