"""A short end-to-end run of the NumPy reference model: learn to copy digit
sequences, then decode held-out ones greedily. It shows the pieces work
together; the compiled trainer (`fastformer train`) is the real main job."""
import time

import numpy as np

from fastformer import reference

PAD, BOS, EOS = 0, 1, 2
NUM_DIGITS = 10
VOCAB = 3 + NUM_DIGITS


def copy_batch(rng, batch, length):
    """(src, tgt_in, tgt_out): src (B, L) digits; the target is the same digits then EOS."""
    digits = rng.integers(3, VOCAB, size=(batch, length))
    tgt_in = np.concatenate([np.full((batch, 1), BOS), digits], axis=1)
    tgt_out = np.concatenate([digits, np.full((batch, 1), EOS)], axis=1)
    return digits, tgt_in, tgt_out


def greedy_decode(model, src, steps):
    """Decode by re-running the model on the growing prefix (the reference has no cache)."""
    out = np.full((src.shape[0], 1), BOS)
    for _ in range(steps):
        logits = model.forward(src, out)
        out = np.concatenate([out, logits[:, -1].argmax(-1)[:, None]], axis=1)
    return out[:, 1:]


def run_demo(steps=200, seed=0, batch=32, length=6):
    rng = np.random.default_rng(seed)
    model = reference.Transformer(VOCAB, VOCAB, d_model=32, nhead=4, num_encoder_layers=1,
                                  num_decoder_layers=1, dim_feedforward=64, dropout=0.0, seed=seed)
    params = [p for _, p in model.named_parameters()]
    moments = [(np.zeros_like(p.data), np.zeros_like(p.data)) for p in params]
    print(f"reference Transformer: {sum(p.data.size for p in params):,} parameters; "
          f"copy task, {steps} Adam steps of batch {batch}")
    start = time.perf_counter()
    for step in range(1, steps + 1):
        src, tgt_in, tgt_out = copy_batch(rng, batch, length)
        model.zero_grad()
        loss, dlogits = reference.cross_entropy(model.forward(src, tgt_in), tgt_out)
        model.backward(dlogits)
        for p, (m, v) in zip(params, moments):
            reference.optim.adam_step(p.data.reshape(-1), p.grad.reshape(-1), m.reshape(-1), v.reshape(-1),
                                      step, lr=3e-3)
        if step % 10 == 0 or step in (1, steps):
            print(f"step {step:4d}  loss {loss:.4f}")
    model.eval()
    src, _, tgt_out = copy_batch(np.random.default_rng(seed + 1), 64, length)
    decoded = greedy_decode(model, src, length + 1)
    exact = float(np.mean(np.all(decoded == tgt_out, axis=1)))
    token_acc = float(np.mean(decoded == tgt_out))
    print(f"held-out: token accuracy {token_acc:.1%}, exact match {exact:.1%} "
          f"({time.perf_counter() - start:.1f} s)")
    return 0
