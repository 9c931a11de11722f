"""Adam and AdamW over the model's flat buffers, as torch.optim.Adam/AdamW."""

from fastformer.optim.optimizer import Optimizer, _check_nonnegative, check_unit_interval


class Adam(Optimizer):
    """Adam with PyTorch's update rule (weight decay as an L2 term added to the
    gradient). State: `exp_avg` and `exp_avg_sq`, one flat array each."""

    _state_names = ("exp_avg", "exp_avg_sq")
    _hyper_names = ("betas", "eps", "weight_decay")
    _decoupled = False

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(model, lr)
        self._configure(betas=betas, eps=eps, weight_decay=weight_decay)

    def _validate_hyper(self, hyper):
        betas = hyper["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        check_unit_interval("betas[0]", betas[0])
        check_unit_interval("betas[1]", betas[1])
        eps = hyper["eps"]
        _check_nonnegative("eps", eps)
        _check_nonnegative("weight_decay", hyper["weight_decay"])
        return {"betas": (float(betas[0]), float(betas[1])), "eps": float(eps),
                "weight_decay": float(hyper["weight_decay"])}

    def _update(self):
        beta1, beta2 = self.betas
        self._kernel("adam_step")(self._params, self._grads, self.state["exp_avg"],
                                  self.state["exp_avg_sq"], self.steps, lr=self.lr, beta1=beta1,
                                  beta2=beta2, eps=self.eps, weight_decay=self.weight_decay,
                                  decoupled=self._decoupled)


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay (the parameter shrinks by
    lr * weight_decay before the Adam update), as torch.optim.AdamW;
    PyTorch's default weight_decay of 0.01."""

    _decoupled = True

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(model, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
