"""Gradient accumulation, the moving average of the weights, validation
(loss, BLEU, chrF), early stopping and the best/last checkpoints."""
import json
import os
import sys

import numpy as np
import pytest

import fastformer as ff
from fastformer import checkpoint as ckpt_mod
from fastformer.checkpoint import MANIFEST, read_checkpoint
from fastformer.data import SyntheticTask, Vocabulary, make_batch
from fastformer.ema import ExponentialMovingAverage
from fastformer.optim import SGD, AdamW, WarmupCosineSchedule
from fastformer.trainer import BEST_DIR, Trainer
from fastformer.validation import Validator, improves

MODELS = [ff.Transformer, ff.reference.Transformer]
HERE = os.path.dirname(os.path.abspath(__file__))
VOCAB = Vocabulary("abcdefgh")


def tiny(model_cls=ff.reference.Transformer, dropout=0.0, **kw):
    V = len(VOCAB)
    return model_cls(V, V, d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=24,
                     dropout=dropout, max_len=12, seed=5, **kw)


def words(rng, n, low=1, high=7):
    return ["".join(rng.choice(list(VOCAB.symbols), rng.integers(low, high))) for _ in range(n)]


def pairs_batches(sizes, seed=0):
    """Batches of the given sizes of (word, reversed word) pairs, and their examples."""
    rng = np.random.default_rng(seed)
    batches, examples = [], []
    for size in sizes:
        src = words(rng, size)
        tgt = [w[::-1] + "a" for w in src]
        examples += list(zip(src, tgt))
        batches.append(make_batch([VOCAB.encode(s) for s in src], [VOCAB.encode(t) for t in tgt]))
    return batches, examples


def flat(state, model):
    """A state dict (any key order) as the model's flat buffer."""
    return np.concatenate([state[name].ravel() for name, _ in model.named_parameters()])


def gradient_of(model, batches, **trainer_kw):
    """(gradient, loss) of one training step on `batches` (lr 0: the weights stay)."""
    trainer = Trainer(model, SGD(model, lr=0.0), label_smoothing=0.1, progress=False, **trainer_kw)
    metrics = trainer.train_step(batches if len(batches) > 1 else batches[0])
    return model.flat_parameters()[1].copy(), metrics["loss"]


# ----- gradient accumulation ---------------------------------------------------------


@pytest.mark.parametrize("model_cls", MODELS, ids=["compiled", "reference"])
@pytest.mark.parametrize("micro", [None, 2])
def test_accumulation_is_the_combined_batch(model_cls, micro):
    """3 batches of different sizes (and lengths) accumulated = one batch of all
    their examples: the loss is per target token of the whole step."""
    batches, examples = pairs_batches([4, 3, 2])
    combined = make_batch([VOCAB.encode(s) for s, _ in examples], [VOCAB.encode(t) for _, t in examples])
    want, want_loss = gradient_of(tiny(model_cls), [combined])
    got, loss = gradient_of(tiny(model_cls), batches, accum=3, micro_batch_size=micro)
    assert abs(loss - want_loss) < 1e-6 * abs(want_loss)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6 * np.abs(want).max())
    # a plain mean of the three batches' mean losses would weigh tokens unequally
    per_batch = [gradient_of(tiny(model_cls), [b])[1] for b in batches]
    assert abs(np.mean(per_batch) - want_loss) > 1e-4


def test_accumulation_in_float64_matches_tightly():
    batches, examples = pairs_batches([5, 2])
    combined = make_batch([VOCAB.encode(s) for s, _ in examples], [VOCAB.encode(t) for _, t in examples])
    want, _ = gradient_of(tiny(dtype=np.float64), [combined])
    got, _ = gradient_of(tiny(dtype=np.float64), batches, accum=2)
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-13)


def test_accumulation_takes_consecutive_batches_and_counts_epochs():
    batches, _ = pairs_batches([3, 3, 3, 3, 3, 3])
    seen = []

    class Source:
        batches_per_epoch = 6

        def get_batch(self, step):
            seen.append(step)
            return batches[step % 6]

    model = tiny()
    trainer = Trainer(model, AdamW(model, lr=1e-3), progress=False, accum=2)
    trainer.fit(Source(), epochs=2)
    assert trainer.step == 6 and seen == list(range(12))
    with pytest.raises(ValueError, match="accum=2 batches, got 1"):
        trainer.train_step(batches[0])
    with pytest.raises(ValueError, match="accum must be a positive integer"):
        Trainer(model, AdamW(model), accum=0)


def test_accumulation_with_micro_batches_refuses_what_does_not_share_out():
    from fastformer.data_parallel import check_batch_split

    assert check_batch_split(4, 2, 4, accum=2) == 2  # 4 micro-batches per step over 4 ranks
    with pytest.raises(ValueError, match="6 micro-batches per step .* over 4 ranks"):
        check_batch_split(6, 2, 4, accum=2)


# ----- the moving average --------------------------------------------------------------


@pytest.mark.parametrize("warmup", [True, False])
def test_ema_arithmetic_is_numpy_exactly(warmup):
    model = tiny(ff.Transformer)
    weights = model.flat_parameters()[0]
    ema = ExponentialMovingAverage(model, 0.99, warmup=warmup)
    want = weights.copy()
    want64 = weights.astype(np.float64)
    rng = np.random.default_rng(0)
    for n in range(1, 6):
        weights[...] = rng.standard_normal(weights.size).astype(np.float32)
        d = min(0.99, (1 + n) / (10 + n)) if warmup else 0.99
        assert ema.decay_at(n) == d
        want = want * np.float32(d) + weights * np.float32(1 - d)  # float32 throughout
        want64 = d * want64 + (1 - d) * weights.astype(np.float64)
        ema.update()
        np.testing.assert_array_equal(ema.average, want)
        np.testing.assert_allclose(ema.average, want64, rtol=1e-5, atol=1e-6)
    assert ema.updates == 5
    state = ema.state_dict()
    assert set(state) == {n for n, _ in model.named_parameters()}
    for name, p in model.named_parameters():  # the average is laid out as the weights
        assert state[name].shape == p.data.shape
    np.testing.assert_array_equal(flat(state, model), want)
    before = weights.copy()
    with ema.swapped():
        np.testing.assert_array_equal(weights, want)
    np.testing.assert_array_equal(weights, before)
    with pytest.raises(ValueError, match="decay in \\(0, 1\\)"):
        ExponentialMovingAverage(model, 1.0)


def test_trainer_ema_follows_the_weights_after_every_step():
    data = ListSource([4, 3])
    model = tiny(ff.Transformer, dropout=0.1)
    trainer = Trainer(model, AdamW(model, lr=1e-2), progress=False, ema=0.9)
    want = model.flat_parameters()[0].copy()
    for step in range(1, 5):
        trainer.fit(data, steps=step)
        d = min(0.9, (1 + step) / (10 + step))
        want = want * np.float32(d) + model.flat_parameters()[0] * np.float32(1 - d)
        np.testing.assert_array_equal(trainer.ema.average, want)
    assert trainer.ema.updates == 4


def small_run(model_cls=ff.Transformer, V=len(VOCAB), **trainer_kw):
    model = model_cls(V, V, d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=24,
                      dropout=0.1, max_len=12, seed=2)
    opt = AdamW(model, lr=1e-2, weight_decay=0.01)
    return Trainer(model, opt, schedule=WarmupCosineSchedule(1e-2, warmup=2, total_steps=6), clip_grad_norm=1.0,
                   label_smoothing=0.1, progress=False, log_every=1, **trainer_kw)


class ListSource:
    """Fixed batches of varying size, cycled."""

    def __init__(self, sizes):
        self.batches, _ = pairs_batches(sizes, seed=1)
        self.vocab = VOCAB

    def get_batch(self, step):
        return self.batches[step % len(self.batches)]


def validator(n=6, seed=3, **kw):
    rng = np.random.default_rng(seed)
    src = words(rng, n)
    return Validator(src, [w[::-1] + "a" for w in src], VOCAB, beam_size=2, max_tokens=24, **kw)


@pytest.mark.parametrize("model_cls", MODELS, ids=["compiled", "reference"])
def test_resume_with_accum_ema_and_validation_is_bitwise(tmp_path, model_cls):
    data = ListSource([4, 3, 5, 2, 4])
    kw = dict(accum=2, ema=0.95, micro_batch_size=2 if model_cls is ff.Transformer else None)
    # valid_every 3: the first part's end-of-run validation (step 3) is one of the straight run's too
    fit = dict(valid=validator(), valid_every=3, valid_metric="chrf", early_stopping=5)
    straight = small_run(model_cls, **kw)
    straight_history = straight.fit(data, steps=6, checkpoint_dir=tmp_path / "a", **fit)

    first = small_run(model_cls, **kw)
    first.fit(data, steps=3, checkpoint_dir=tmp_path / "b", **fit)
    resumed = small_run(model_cls, **kw)
    resumed.fit(data, steps=6, checkpoint_dir=tmp_path / "b", resume=True, **fit)

    np.testing.assert_array_equal(resumed.model.flat_parameters()[0], straight.model.flat_parameters()[0])
    np.testing.assert_array_equal(resumed.ema.average, straight.ema.average)
    for name, value in straight.optimizer.state.items():
        np.testing.assert_array_equal(resumed.optimizer.state[name], value, err_msg=name)
    assert resumed.valid_state == straight.valid_state and resumed.ema.updates == 6
    assert resumed.model.rng_step == straight.model.rng_step
    history = [json.loads(line) for line in (tmp_path / "b" / "history.jsonl").read_text().splitlines()]
    assert [e["step"] for e in history] == [1, 2, 3, 4, 5, 6]
    drop = ("elapsed_s", "tokens_per_s")
    assert [{k: v for k, v in e.items() if k not in drop} for e in history] == \
           [{k: v for k, v in e.items() if k not in drop} for e in straight_history]
    assert {"valid_loss", "valid_bleu", "valid_chrf", "valid_best", "valid_best_step"} <= set(history[2])
    for folder in ("a", "b"):  # last and best written alike
        for sub in (".", BEST_DIR):
            one, two = (read_checkpoint(tmp_path / f / sub) for f in ("a", folder))
            assert one.manifest["files"] == two.manifest["files"]


def test_resume_refuses_another_accum_or_ema(tmp_path):
    data = ListSource([3, 3])
    small_run(accum=2, ema=0.9).fit(data, steps=2, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="accum=2, this trainer has accum=1"):
        small_run(ema=0.9).fit(data, steps=3, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(ValueError, match="ema \\{'decay': 0.9, 'warmup': True\\}, this trainer has ema None"):
        small_run(accum=2).fit(data, steps=3, checkpoint_dir=tmp_path, resume=True)


def test_ema_file_is_saved_hashed_and_checked(tmp_path):
    trainer = small_run(ema=0.9)
    trainer.fit(ListSource([3, 4]), steps=2, checkpoint_dir=tmp_path)
    ck = read_checkpoint(tmp_path)
    entry = ck.manifest["files"]["ema"]
    assert entry["name"].startswith("ema-00000002-") and os.path.isfile(tmp_path / entry["name"])
    for name, value in trainer.ema.state_dict().items():
        np.testing.assert_array_equal(ck.ema_state[name], value)
    assert ck.manifest["trainer"]["ema"] == {"decay": 0.9, "warmup": True, "updates": 2}
    assert not np.array_equal(trainer.ema.average, trainer.model.flat_parameters()[0])

    path = tmp_path / entry["name"]
    good = path.read_bytes()
    path.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(ValueError, match="EMA weights file's SHA-256 does not match"):
        read_checkpoint(tmp_path)
    path.write_bytes(good)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    del manifest["files"]["ema"]["sha256"]
    manifest["checksum"] = ckpt_mod._checksum(manifest)
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="field 'files.ema.sha256' is missing"):
        read_checkpoint(tmp_path)
    # a newer save drops the old file and names the new one
    manifest["files"]["ema"]["sha256"] = entry["sha256"]
    manifest["checksum"] = ckpt_mod._checksum(manifest)
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    trainer.fit(ListSource([3, 4]), steps=3, checkpoint_dir=tmp_path)
    assert not path.exists() and len([n for n in os.listdir(tmp_path) if n.startswith("ema-")]) == 1


@pytest.mark.parametrize("change, message", [
    (lambda v: v.update(bad_count=-1), "'trainer.validation.bad_count' must be a non-negative integer"),
    (lambda v: v.update(best=float("nan")), "'trainer.validation.best' must be a finite number"),
    (lambda v: v.update(metric="ter"), "'trainer.validation.metric' must be one of"),
    (lambda v: v.pop("best_step"), "'trainer.validation' must be an object with the keys"),
])
def test_bad_early_stopping_state_is_refused(tmp_path, change, message):
    small_run().fit(ListSource([3]), steps=2, checkpoint_dir=tmp_path, valid=Scripted([1.0, 2.0]), valid_every=1)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    change(manifest["trainer"]["validation"])
    manifest["checksum"] = ckpt_mod._checksum(manifest)
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    trainer = small_run()
    before = trainer.model.flat_parameters()[0].copy()
    with pytest.raises(ValueError, match=message):
        trainer.fit(ListSource([3]), steps=3, checkpoint_dir=tmp_path, resume=True)
    np.testing.assert_array_equal(trainer.model.flat_parameters()[0], before)  # nothing loaded


# ----- validation, early stopping, best and last -------------------------------------------


class Scripted:
    """A validator whose scores are given in advance; it records what the model held."""

    def __init__(self, scores, key="valid_bleu"):
        self.scores, self.key, self.calls, self.weights = list(scores), key, 0, []

    def validate(self, model):
        self.weights.append(model.flat_parameters()[0].copy())
        score = self.scores[self.calls]
        self.calls += 1
        return {"valid_loss": 1.0, "valid_bleu": 0.0, "valid_chrf": 0.0, self.key: score}


def test_early_stopping_stops_at_the_right_validation(tmp_path):
    # best at the 2nd validation (step 4); equal is no improvement; patience 3 ends at the 5th (step 10)
    scores = [1.0, 3.0, 2.0, 3.0, 2.5, 9.0, 9.0]
    trainer = small_run(ema=0.9)
    valid = Scripted(scores)
    history = trainer.fit(ListSource([3, 4]), steps=20, checkpoint_dir=tmp_path, valid=valid, valid_every=2,
                          early_stopping=3)
    assert trainer.step == 10 and valid.calls == 5
    assert history[-1]["step"] == 10 and history[-1]["early_stopped"] is True
    assert trainer.valid_state == {"metric": "bleu", "best": 3.0, "best_step": 4, "bad_count": 3, "last_step": 10}
    last, best = read_checkpoint(tmp_path), read_checkpoint(tmp_path / BEST_DIR)
    assert last.step == 10 and best.step == 4
    assert best.optimizer_state is None and best.manifest["trainer"]["weights"] == "ema"
    assert best.manifest["trainer"]["validation"]["valid_bleu"] == 3.0
    # best holds the weights the validator saw: the moving average at step 4
    np.testing.assert_array_equal(flat(best.model_state, trainer.model), valid.weights[1])
    # last holds the training weights, and the moving average beside them
    np.testing.assert_array_equal(flat(last.model_state, trainer.model),
                                  trainer.model.flat_parameters()[0])
    np.testing.assert_array_equal(flat(last.ema_state, trainer.model), valid.weights[-1])

    # resuming a run that stopped early trains no further
    again = small_run(ema=0.9)
    again.fit(ListSource([3, 4]), steps=20, checkpoint_dir=tmp_path, resume=True, valid=Scripted(scores[5:]),
              valid_every=2, early_stopping=3)
    assert again.step == 10 and again.valid_state == trainer.valid_state
    with pytest.raises(ValueError, match="judged by valid_metric='bleu'"):
        small_run(ema=0.9).fit(ListSource([3, 4]), steps=20, checkpoint_dir=tmp_path, resume=True,
                               valid=Scripted(scores), valid_metric="loss")


def test_loss_is_lower_is_better(tmp_path):
    assert improves("loss", 1.0, 2.0) and not improves("loss", 2.0, 1.0) and improves("bleu", 2.0, 1.0)
    assert improves("chrf", 0.0, None) and not improves("chrf", 1.0, 1.0)
    trainer = small_run()
    valid = Scripted([3.0, 2.0, 2.5, 1.0, 1.5], key="valid_loss")
    trainer.fit(ListSource([3]), steps=5, checkpoint_dir=tmp_path, valid=valid, valid_every=1,
                valid_metric="loss")
    assert trainer.valid_state["best"] == 1.0 and trainer.valid_state["best_step"] == 4
    assert read_checkpoint(tmp_path / BEST_DIR).step == 4
    best = read_checkpoint(tmp_path / BEST_DIR)
    assert best.manifest["trainer"]["weights"] == "training"
    np.testing.assert_array_equal(flat(best.model_state, trainer.model), valid.weights[3])


def test_validation_changes_nothing_in_training(tmp_path):
    """The same run with and without validation (EMA swapped in and out) ends bitwise alike."""
    data = ListSource([3, 4])
    plain = small_run(ema=0.9)
    plain.fit(data, steps=4)
    validated = small_run(ema=0.9)
    validated.fit(data, steps=4, valid=validator(), valid_every=1, checkpoint_dir=tmp_path)
    np.testing.assert_array_equal(validated.model.flat_parameters()[0], plain.model.flat_parameters()[0])
    np.testing.assert_array_equal(validated.ema.average, plain.ema.average)
    assert validated.model.rng_step == plain.model.rng_step and validated.model.training


@pytest.mark.parametrize("model_cls", MODELS, ids=["compiled", "reference"])
def test_validator_metrics(model_cls):
    model = tiny(model_cls, dropout=0.1)
    model.rng_step = 7
    before = model.flat_parameters()[0].copy()
    v = validator(n=9)
    metrics = v.validate(model)
    np.testing.assert_array_equal(model.flat_parameters()[0], before)
    assert model.rng_step == 7 and model.training
    assert metrics["valid_examples"] == 9 and 0 <= metrics["valid_bleu"] <= 100 and 0 <= metrics["valid_chrf"] <= 100
    assert len(v.last_hypotheses) == 9 and all(isinstance(h, str) for h in v.last_hypotheses)
    # the loss is per target token: that of one batch of all the examples
    batch = make_batch(v.sources, v.targets)
    model.eval()
    want, _ = ff.cross_entropy(model.forward(batch.src, batch.tgt_in, src_key_padding_mask=batch.src_key_padding_mask,
                                             tgt_key_padding_mask=batch.tgt_key_padding_mask), batch.tgt_out)
    assert abs(metrics["valid_loss"] - want) < 1e-5 * want
    assert metrics["valid_tokens"] == sum(len(t) + 1 for t in v.targets)


def test_validator_scores_and_inputs():
    rng = np.random.default_rng(1)
    src = [" ".join(words(rng, 6, 3, 6)) for _ in range(5)]  # sentences: BLEU counts word 4-grams
    refs = [w[::-1] for w in src]
    spaced = Vocabulary(VOCAB.symbols + [" "])
    perfect = Validator(src, refs, spaced, translate=lambda model, sources: refs)
    model = ff.reference.Transformer(len(spaced), len(spaced), d_model=8, nhead=2, num_encoder_layers=1,
                                     num_decoder_layers=1, dim_feedforward=8, max_len=40)
    metrics = perfect.validate(model)
    assert metrics["valid_bleu"] == pytest.approx(100.0) and metrics["valid_chrf"] == pytest.approx(100.0)
    wrong = Validator(src, refs, spaced, translate=lambda model, sources: ["" for _ in sources])
    metrics = wrong.validate(model)
    assert metrics["valid_bleu"] == 0.0 and metrics["valid_chrf"] == 0.0
    ids = Validator([spaced.encode(s) for s in src], refs, spaced)  # sources given as ids
    assert ids.sources == perfect.sources
    long = Validator(["abcdefgh" * 2], ["ab"], VOCAB)  # longer than max_len 12: cut and counted
    assert long.validate(tiny())["valid_truncated"] == 1
    with pytest.raises(ValueError, match="2 sources, 1 references"):
        Validator(src[:2], refs[:1], spaced)
    with pytest.raises(ValueError, match="beam_size must be a positive integer"):
        Validator(src, refs, spaced, beam_size=0)
    with pytest.raises(ValueError, match="valid_metric must be one of"):
        small_run().fit(ListSource([3]), steps=1, valid=perfect, valid_metric="ter")
    with pytest.raises(ValueError, match="need valid="):
        small_run().fit(ListSource([3]), steps=1, early_stopping=2)


def test_existing_eval_still_runs_beside_validation(tmp_path):
    task = SyntheticTask("copy", batch_size=6, seed=0, max_len=4, heldout_size=6)
    trainer = small_run(V=len(task.vocab), ema=0.9)
    history = trainer.fit(task, steps=2, eval_data=task, eval_every=2, valid=Scripted([1.0]), valid_every=2)
    assert {"eval_exact_match", "valid_bleu"} <= set(history[-1])


# ----- over MPI: accumulation keeps "bitwise for any rank count" ---------------------------


@pytest.mark.parametrize("extra, counts", [
    (("--accum", "2", "--ema", "0.9", "--steps", "4"), (2, 3)),
    # a step of one micro-batch (the short batch: 1 example) on 2 ranks
    (("--batch-size", "6", "--micro-batch-size", "3", "--steps", "3"), (2,)),
], ids=["accum-ema", "one-micro-batch"])
def test_accumulation_and_ema_over_ranks_train_bitwise_as_one_process(mpiexec, tmp_path, extra, counts):
    sys.path.insert(0, HERE)
    from test_distributed import outcome, ranks, run, small

    alone = run(small(tmp_path / "alone", *extra))
    assert alone.returncode == 0, alone.stderr
    for n in counts:
        result = run(ranks(mpiexec, n, *small(tmp_path / f"n{n}", *extra)))
        assert result.returncode == 0, result.stderr
        assert outcome(tmp_path / f"n{n}") == outcome(tmp_path / "alone")
    assert ("ema" in outcome(tmp_path / "alone")["files"]) == ("--ema" in extra)


def test_early_stopping_over_ranks_stops_every_rank(mpiexec, tmp_path):
    """Rank 0 validates; every rank stops at the same step (no rank waits forever)."""
    sys.path.insert(0, HERE)
    from test_distributed import outcome, ranks, run, small

    extra = ("--valid-every", "2", "--early-stopping", "2")
    alone = run(small(tmp_path / "alone", *extra))
    assert alone.returncode == 0, alone.stderr
    result = run(ranks(mpiexec, 2, *small(tmp_path / "two", *extra)))
    assert result.returncode == 0, result.stderr
    assert outcome(tmp_path / "two") == outcome(tmp_path / "alone")
    assert outcome(tmp_path / "two")["step"] == 6  # validations at 2 (best), 4, 6: stopped
    assert read_checkpoint(tmp_path / "two" / BEST_DIR).step == 2
