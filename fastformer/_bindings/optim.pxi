# Optimizer updates and gradient norm over flat float32 buffers (csrc/optim/).

cdef extern from "optim/optim.h" nogil:
    void ff_adam_step(float *param, float *exp_avg, float *exp_avg_sq, const float *grad, size_t n, long step,
                      double lr, double beta1, double beta2, double eps, double weight_decay, int decoupled)
    void ff_sgd_step(float *param, float *momentum_buffer, const float *grad, size_t n, long step, double lr,
                     double momentum, double dampening, int nesterov, double weight_decay)
    double ff_grad_norm(const float *grad, size_t n)
    double ff_clip_grad_norm(float *grad, size_t n, double max_norm)


cdef long _check_step(object step) except? -1:
    return check_int("step", step, 1)


cdef void _check_flat(str name, object a, object like, bint writeable) except *:
    check_float32(name, a, 1, writeable)
    if like is not None:
        check_same_shape(name, a, "param", like)


def adam_step(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
              weight_decay=0.0, decoupled=False):
    """adam_step(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
    weight_decay=0.0, decoupled=False): one Adam (decoupled=False) or AdamW step in place,
    PyTorch's rules; all buffers (n,) float32."""
    _check_flat("param", param, None, True)
    _check_flat("grad", grad, param, False)
    _check_flat("exp_avg", exp_avg, param, True)
    _check_flat("exp_avg_sq", exp_avg_sq, param, True)
    cdef long st = _check_step(step)
    cdef double lr_ = check_real("lr", lr), b1 = check_real("beta1", beta1), b2 = check_real("beta2", beta2)
    cdef double ep = check_real("eps", eps), wd = check_real("weight_decay", weight_decay)
    cdef int dec = bool(decoupled)
    cdef size_t n = param.shape[0]
    cdef float *pp = _f32p(param)
    cdef float *mp = _f32p(exp_avg)
    cdef float *vp = _f32p(exp_avg_sq)
    cdef const float *gp = _f32p(grad)
    if n == 0:
        return
    with nogil:
        ff_adam_step(pp, mp, vp, gp, n, st, lr_, b1, b2, ep, wd, dec)


def sgd_step(param, grad, momentum_buffer, step, lr=1e-3, momentum=0.0, dampening=0.0, nesterov=False,
             weight_decay=0.0):
    """sgd_step(param, grad, momentum_buffer, step, lr=1e-3, momentum=0.0, dampening=0.0,
    nesterov=False, weight_decay=0.0): one SGD step in place, as torch.optim.SGD.
    momentum_buffer may be None when momentum is 0."""
    _check_flat("param", param, None, True)
    _check_flat("grad", grad, param, False)
    cdef double mom = check_real("momentum", momentum)
    if mom != 0.0 or momentum_buffer is not None:
        _check_flat("momentum_buffer", momentum_buffer, param, True)
    cdef long st = _check_step(step)
    cdef double lr_ = check_real("lr", lr), dmp = check_real("dampening", dampening)
    cdef double wd = check_real("weight_decay", weight_decay)
    cdef int nes = bool(nesterov)
    cdef size_t n = param.shape[0]
    cdef float *pp = _f32p(param)
    cdef float *bp = _f32p(momentum_buffer) if momentum_buffer is not None else NULL
    cdef const float *gp = _f32p(grad)
    if n == 0:
        return
    with nogil:
        ff_sgd_step(pp, bp, gp, n, st, lr_, mom, dmp, nes, wd)


def grad_norm(grad):
    """grad_norm(grad) -> float: L2 norm of a flat float32 buffer, summed in double in
    fixed chunks combined in a fixed order."""
    _check_flat("grad", grad, None, False)
    cdef size_t n = grad.shape[0]
    cdef const float *gp = _f32p(grad)
    cdef double r = 0.0
    if n:
        with nogil:
            r = ff_grad_norm(gp, n)
    return float(r)


def clip_grad_norm(grad, max_norm):
    """clip_grad_norm(grad, max_norm) -> float: scale grad in place so its norm is at most
    max_norm (coefficient max_norm / (norm + 1e-6), as torch); returns the norm before.
    A non-finite norm (an inf or NaN gradient) leaves grad unchanged."""
    _check_flat("grad", grad, None, True)
    cdef double mx = check_real("max_norm", max_norm)
    cdef size_t n = grad.shape[0]
    cdef float *gp = _f32p(grad)
    cdef double r = 0.0
    if n:
        with nogil:
            r = ff_clip_grad_norm(gp, n, mx)
    return float(r)
