"""Position-wise feed-forward sublayer: FFN(x) = act(x W1^T + b1) W2^T + b2
(no dropout inside: the model drops the sublayer's output); compute_dtype as
in `fastformer.reference.linear`."""
from fastformer.reference.activations import activation_backward, activation_forward, check_activation
from fastformer.reference.linear import linear_backward, linear_forward


def ffn_forward(x, w1, b1, w2, b2, activation="relu", *, compute_dtype="float32"):
    """x: (..., d), w1: (d_ff, d), b1: (d_ff,), w2: (d, d_ff), b2: (d,),
    activation "relu" or "gelu" -> (y (..., d), hidden_pre (..., d_ff)),
    hidden_pre = x W1^T + b1, kept for the backward."""
    check_activation(activation)
    hidden_pre = linear_forward(x, w1, b1, compute_dtype=compute_dtype)
    return linear_forward(activation_forward(hidden_pre, activation), w2, b2, compute_dtype=compute_dtype), hidden_pre


def ffn_backward(dy, x, hidden_pre, w1, w2, activation="relu", *, compute_dtype="float32"):
    """dy: (..., d), x: (..., d), hidden_pre: (..., d_ff) from the forward ->
    (dx (..., d), dw1 (d_ff, d), db1 (d_ff,), dw2 (d, d_ff), db2 (d,))."""
    hidden = activation_forward(hidden_pre, activation)
    dhidden, dw2, db2 = linear_backward(dy, hidden, w2, compute_dtype=compute_dtype)
    dhidden_pre = activation_backward(dhidden, hidden_pre, activation)
    dx, dw1, db1 = linear_backward(dhidden_pre, x, w1, compute_dtype=compute_dtype)
    return dx, dw1, db1, dw2, db2
