"""A tiny model trained a few steps on a built-in task: the trained model
several decoding tests share (beam search, translate, export)."""
import fastformer as ff
from fastformer.data import SyntheticTask


def reverse_task():
    return SyntheticTask("reverse", batch_size=32, seed=0, min_len=2, max_len=8)


def train_reverse(task, steps, max_len):
    """A 1+2-layer d_model 32 model after `steps` AdamW steps on `task`, in
    eval mode; one thread (a tiny model: fastest on a busy machine, same bits)."""
    m = ff.Transformer(len(task.vocab), len(task.vocab), d_model=32, nhead=4, num_encoder_layers=1,
                       num_decoder_layers=2, dim_feedforward=64, dropout=0.0, max_len=max_len, seed=0)
    opt = ff.optim.AdamW(m, lr=3e-3)
    threads = ff.get_num_threads()
    ff.set_num_threads(1)
    try:
        for step in range(steps):
            batch = task.get_batch(step)
            m.zero_grad()
            logits = m.forward(batch.src, batch.tgt_in, batch.src_key_padding_mask, batch.tgt_key_padding_mask)
            _, dlogits = ff.cross_entropy(logits, batch.tgt_out)
            m.backward(dlogits)
            opt.step()
    finally:
        ff.set_num_threads(threads)
    m.eval()
    return m
