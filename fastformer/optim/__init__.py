"""Optimizers over the model's flat parameter buffer (PyTorch's update rules),
gradient clipping, and learning-rate schedules."""
from fastformer.optim.adam import Adam, AdamW
from fastformer.optim.clip import clip_grad_norm, grad_norm
from fastformer.optim.optimizer import Optimizer
from fastformer.optim.schedules import (
    ConstantSchedule, NoamSchedule, Schedule, WarmupCosineSchedule, schedule_from_config)
from fastformer.optim.sgd import SGD

__all__ = ["Optimizer", "Adam", "AdamW", "SGD", "clip_grad_norm", "grad_norm", "Schedule",
           "ConstantSchedule", "NoamSchedule", "WarmupCosineSchedule", "schedule_from_config"]
