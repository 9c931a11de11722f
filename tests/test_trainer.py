"""The Trainer: bitwise resume, non-finite loss, history, evaluation, decoding."""
import json

import numpy as np
import pytest

import fastformer as ff
from fastformer.checkpoint import read_checkpoint
from fastformer.data import SyntheticTask, TextPairsData
from fastformer.decoding import decode, greedy_decode, strip_eos
from fastformer.optim import AdamW, WarmupCosineSchedule
from fastformer.trainer import NonFiniteLossError, Trainer


# The compiled model is the one users train; the reference shares its API.
MODELS = [ff.Transformer, ff.reference.Transformer]


def make_trainer(vocab_size, model_cls=ff.reference.Transformer, **trainer_kw):
    model = model_cls(vocab_size, vocab_size, d_model=16, nhead=2, num_encoder_layers=1,
                      num_decoder_layers=1, dim_feedforward=32, dropout=0.1, max_len=12, seed=3)
    opt = AdamW(model, lr=1e-2, weight_decay=0.01)
    schedule = WarmupCosineSchedule(1e-2, warmup=2, total_steps=6)
    return Trainer(model, opt, schedule=schedule, clip_grad_norm=1.0, label_smoothing=0.1,
                   progress=False, log_every=1, **trainer_kw)


def text_data(tmp_path):
    path = tmp_path / "pairs.tsv"
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcde"), rng.integers(1, 7))) for _ in range(30)]
    path.write_text("\n".join(f"{w}\t{w[::-1]}" for w in words))
    return TextPairsData.from_file(path, batch_size=8, seed=2)


@pytest.mark.parametrize("model_cls", MODELS, ids=["compiled", "reference"])
@pytest.mark.parametrize("source", ["task", "file"])
def test_resume_is_bitwise_identical(tmp_path, source, model_cls):
    data = (SyntheticTask("reverse", batch_size=8, seed=1, max_len=5, heldout_size=8) if source == "task"
            else text_data(tmp_path))  # the file has 4 batches per epoch: the resume crosses epochs
    straight = make_trainer(len(data.vocab), model_cls)
    straight.fit(data, steps=6)

    first = make_trainer(len(data.vocab), model_cls)
    first.fit(data, steps=3, checkpoint_dir=tmp_path / "ck")
    resumed = make_trainer(len(data.vocab), model_cls)
    resumed.fit(data, steps=6, checkpoint_dir=tmp_path / "ck", resume=True)

    assert resumed.step == 6 and resumed.model.rng_step == straight.model.rng_step == 6
    assert resumed.optimizer.lr == straight.optimizer.lr
    for name, value in straight.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[name], value, err_msg=name)
    for name, value in straight.optimizer.state.items():
        np.testing.assert_array_equal(resumed.optimizer.state[name], value, err_msg=name)
    history = [json.loads(line) for line in (tmp_path / "ck" / "history.jsonl").read_text().splitlines()]
    assert [e["step"] for e in history] == [1, 2, 3, 4, 5, 6]


def test_non_finite_loss_stops_and_keeps_the_checkpoint(tmp_path):
    task = SyntheticTask("copy", batch_size=4, seed=0, max_len=4, heldout_size=4)
    trainer = make_trainer(len(task.vocab))
    trainer.fit(task, steps=2, checkpoint_dir=tmp_path)
    saved = trainer.model.state_dict()

    real_forward = trainer.model.forward

    def poisoned_forward(*args, **kwargs):
        return real_forward(*args, **kwargs) * np.float32(np.nan)

    trainer.model.forward = poisoned_forward
    with pytest.raises(NonFiniteLossError, match="training stopped at step 3: the loss is nan"):
        trainer.fit(task, steps=5, checkpoint_dir=tmp_path, checkpoint_every=1)
    ck = read_checkpoint(tmp_path)
    assert ck.step == 2 and trainer.step == 2
    for name, value in saved.items():
        np.testing.assert_array_equal(ck.model_state[name], value)
        np.testing.assert_array_equal(trainer.model.state_dict()[name], value)  # no update applied
    last = json.loads((tmp_path / "history.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 3 and "loss is nan" in last["error"]


def test_fit_history_and_evaluation(tmp_path):
    task = SyntheticTask("sort", batch_size=8, seed=0, max_len=4, heldout_size=12)
    trainer = make_trainer(len(task.vocab))
    trainer.log_every = 2
    history = trainer.fit(task, steps=4, eval_data=task, eval_every=2, checkpoint_dir=tmp_path)
    assert [e["step"] for e in history] == [2, 4]
    for entry in history:
        assert {"loss", "lr", "tokens_per_s", "eval_loss", "eval_token_accuracy", "eval_exact_match"} <= set(entry)
        assert 0.0 <= entry["eval_exact_match"] <= 1.0 and entry["eval_examples"] == 12
    on_disk = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert on_disk == history
    assert read_checkpoint(tmp_path).manifest["task"] == task.config()
    assert trainer.model.training  # evaluation restored training mode
    with pytest.raises(ValueError, match="exactly one of steps= and epochs="):
        trainer.fit(task)
    with pytest.raises(ValueError, match="epochs= needs epoch-based"):
        trainer.fit(task, epochs=1)


def test_epochs(tmp_path):
    data = text_data(tmp_path)
    trainer = make_trainer(len(data.vocab))
    trainer.fit(data, epochs=2)
    assert trainer.step == 2 * data.batches_per_epoch


def test_exact_match_of_a_perfect_model():
    """A model that always predicts the right next token scores 100%."""
    task = SyntheticTask("reverse", batch_size=8, seed=0, max_len=4, heldout_size=10)
    trainer = make_trainer(len(task.vocab))
    answers = {tuple(task.vocab.encode(s)): task.vocab.encode(t) + [task.vocab.eos_id] for s, t in task.heldout}

    class Oracle:  # the model protocol the trainer uses, nothing more
        training, max_len, dtype, tgt_vocab_size = False, 12, np.float32, len(task.vocab)

        def train(self, mode=True):
            return self

        def eval(self):
            return self

        def forward(self, src, tgt_in, src_key_padding_mask=None, tgt_key_padding_mask=None, *, out=None):
            logits = np.zeros(tgt_in.shape + (len(task.vocab),), np.float32) if out is None else out
            logits.fill(0)
            for b in range(src.shape[0]):
                answer = answers[tuple(int(x) for x, pad in zip(src[b], src_key_padding_mask[b]) if not pad)]
                for t in range(tgt_in.shape[1]):
                    logits[b, t, answer[min(t, len(answer) - 1)]] = 10.0
            return logits

    trainer.model = Oracle()
    metrics = trainer.evaluate(task)
    assert metrics["eval_exact_match"] == 1.0 and metrics["eval_token_accuracy"] == 1.0


def test_decode_uses_generate_when_present():
    model = ff.reference.Transformer(6, 6, d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                                     dim_feedforward=16, dropout=0.1, max_len=10)
    src = np.array([[3, 4, 5], [5, 4, 0]])
    mask = np.array([[False, False, False], [False, False, True]])
    out = greedy_decode(model, src, 6, 1, 2, src_key_padding_mask=mask)
    assert out.shape[0] == 2 and out.shape[1] <= 6 and out.dtype == np.int64
    assert model.training and model.rng_step == 0  # eval mode inside, mode restored, no dropout steps
    rows = strip_eos(out, 2)
    assert all(2 not in r for r in rows)

    class WithGenerate:
        def generate(self, src, max_len, bos_id, eos_id, src_key_padding_mask=None):
            return np.array([[7, 2], [8, 2]])

    np.testing.assert_array_equal(decode(WithGenerate(), src, 5, 1, 2), [[7, 2], [8, 2]])


@pytest.mark.parametrize("model_cls,compute_dtype", [(ff.Transformer, "float32"), (ff.reference.Transformer, "float32"),
                                                   (ff.Transformer, "bfloat16")],
                         ids=["compiled", "reference", "compiled-bf16"])
def test_short_run_learns_reverse(model_cls, compute_dtype):
    """Accuracy, not time: a tiny model reaches 100% held-out exact match on
    short reversals in a few hundred steps, in bf16 too."""
    task = SyntheticTask("reverse", batch_size=32, seed=0, min_len=2, max_len=4, heldout_size=64)
    V = len(task.vocab)
    model = model_cls(V, V, d_model=32, nhead=4, num_encoder_layers=1, num_decoder_layers=1,
                      dim_feedforward=64, dropout=0.0, max_len=5, seed=0, compute_dtype=compute_dtype)
    opt = AdamW(model, lr=5e-3, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.0)
    trainer = Trainer(model, opt, schedule=WarmupCosineSchedule(5e-3, 20, 400, min_lr=2.5e-4),
                      clip_grad_norm=1.0, progress=False, log_every=100)
    history = trainer.fit(task, steps=400, eval_data=task)
    assert history[-1]["eval_exact_match"] == 1.0


def test_logits_buffer_reuses_one_array():
    """The loops' logits: the model's own numbers, in one array whose front
    serves smaller batches (no (B, T, V) allocation per step), retyped for a
    model of another dtype."""
    from fastformer.data.batch import make_batch
    from fastformer.losses import LogitsBuffer

    model = ff.Transformer(9, 9, d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                           dim_feedforward=32, dropout=0.0, max_len=12)
    big = make_batch([[3, 4, 5, 6], [4, 5]], [[5, 6, 7], [8]])
    small = make_batch([[3, 4]], [[5]])
    buffer = LogitsBuffer()
    first = buffer.forward(model, big)
    np.testing.assert_array_equal(first, model.forward(big.src, big.tgt_in, big.src_key_padding_mask,
                                                       big.tgt_key_padding_mask))
    second = buffer.forward(model, small)
    assert second.shape == (1, 2, 9) and np.shares_memory(first, second)
    np.testing.assert_array_equal(second, model.forward(small.src, small.tgt_in, small.src_key_padding_mask,
                                                        small.tgt_key_padding_mask))
    ref = ff.reference.Transformer(9, 9, d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                                   dim_feedforward=32, dropout=0.0, max_len=12, dtype=np.float64)
    assert buffer.forward(ref, big).dtype == np.float64
