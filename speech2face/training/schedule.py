"""What a run's schedule and data order depend on, recorded in every checkpoint and compared
on resume; and the learning-rate schedule a run follows when it resumes with new settings.

A resume is exact or refuses: a checkpoint records its run's *settings* (:func:`run_settings`:
optimiser, scheduler, steps, batch, accumulation, world size, loader workers, seed, and the
data settings that fix the order of the samples). Resumed with other ones, the run stops with
one line naming each difference (:func:`differences`), unless ``resume_changes=continue``.
Then the run goes on with the new settings from where it stands:

- the learning rate continues from the value it had reached, following the new schedule's
  shape from there (:class:`ContinuedLR`): a longer cosine run goes on falling from the
  current rate to the end of the new run, never rising; a new ``optim.optimizer.lr``
  scales the rate reached by new / old;
- the optimiser's moments are kept (when the optimiser's class is unchanged), its other
  settings (betas, eps, weight decay) are the new ones;
- the data position is kept in samples: the samples of the current epoch read so far are
  left out of the rest of it, whatever the new world size, batch size or loader workers.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch

# The settings a resume must find unchanged: name in messages -> config key path.
SCHEDULE_KEYS = (
    "optim.optimizer",
    "optim.scheduler",
    "trainer.max_steps",
    "trainer.batch_size",
    "trainer.grad_accum",
    "trainer.num_workers",
    "trainer.seed",
    "data.seed",
    "data.shuffle_buffer",
    "data.window",
    "data.clip_samples",
)
RESUME_CHANGES = ("refuse", "continue")


def _plain(value: Any) -> Any:
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def run_settings(cfg: Any, world_size: int, batch_size: int, samples: int | None) -> dict:
    """The settings that define a run's schedule and data order, as plain values by name
    (``world_size``: processes; ``batch_size``: per process, after ``global_batch``;
    ``samples``: the training split's sample count, ``None`` when unknown)."""
    from omegaconf import OmegaConf

    settings: dict[str, Any] = {}
    for key in SCHEDULE_KEYS:
        value = OmegaConf.select(cfg, key, default=None)
        settings[key] = _plain(value)
    settings["trainer.batch_size"] = int(batch_size)
    settings["world_size"] = int(world_size)
    settings["data.samples"] = samples
    return settings


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key in sorted(value):
            out.update(_flatten(value[key], f"{prefix}.{key}"))
        return out or {prefix: {}}
    return {prefix: value}


def differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``"name old -> new"`` for each setting that differs, nested ones by their full name."""
    before = {k: v for name, value in saved.items() for k, v in _flatten(value, name).items()}
    after = {k: v for name, value in current.items() for k, v in _flatten(value, name).items()}
    out = []
    for key in sorted(set(before) | set(after), key=lambda k: (k.split(".")[0], k)):
        old, new = before.get(key, "unset"), after.get(key, "unset")
        if old != new and not _same_number(old, new):
            out.append(f"{key} {old} -> {new}")
    return out


def _same_number(a: Any, b: Any) -> bool:
    numbers = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    return isinstance(a, numbers) and isinstance(b, numbers) and math.isclose(a, b, rel_tol=1e-12)


class ContinuedLR:
    """The learning rate of a run resumed with new settings at step ``origin``:
    ``lr(t) = origin_lr * shape(t) / shape(origin)`` for each parameter group, where
    ``shape`` is the scheduler's rate from step 0 at the configured ``base_lrs`` (constant
    without a scheduler) and
    ``origin_lr`` the rate the run had reached (times new / old base rate). So the rate
    goes on from where it was, along the new schedule's shape; where that shape has reached
    0 the rate stays where it was. Steps once per optimiser step, like torch's schedulers.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        factory: Callable[[torch.optim.Optimizer], Any] | None,
        base_lrs: list[float],
        origin: int,
        origin_lrs: list[float],
        step: int,
    ) -> None:
        self.optimizer = optimizer
        self.origin = int(origin)
        self.origin_lrs = [float(x) for x in origin_lrs]
        self.last_epoch = int(step)
        self._shape = _Shape(factory, [float(x) for x in base_lrs])
        self._at_origin = self._shape(self.origin)
        self._apply()

    def _apply(self) -> None:
        now = self._shape(self.last_epoch)
        for group, lr, base, value in zip(
            self.optimizer.param_groups, self.origin_lrs, self._at_origin, now, strict=True
        ):
            group["lr"] = lr * value / base if base > 0 else lr

    def step(self) -> None:
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"origin": self.origin, "origin_lrs": self.origin_lrs, "step": self.last_epoch}


class _Shape:
    """A scheduler's rates at any step, from its closed form where torch has one (else by
    stepping a copy of it on a stand-in optimiser, forward only)."""

    def __init__(self, factory, base_lrs: list[float]) -> None:
        self.base_lrs = base_lrs
        self.scheduler = None
        if factory is not None:
            params = [torch.zeros(1, requires_grad=True) for _ in base_lrs]
            stand_in = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(
                params, base_lrs, strict=True)])  # fmt: skip
            self.scheduler = factory(stand_in)
            self.closed = hasattr(self.scheduler, "_get_closed_form_lr")
            self.position = 0

    def __call__(self, step: int) -> list[float]:
        scheduler = self.scheduler
        if scheduler is None:
            return list(self.base_lrs)
        if self.closed:
            scheduler.last_epoch = step
            return [float(x) for x in scheduler._get_closed_form_lr()]
        if step < self.position:
            raise ValueError("this scheduler's rates are computed forward only")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "step() before optimizer.step()"
            while self.position < step:
                scheduler.step()
                self.position += 1
        return [float(x) for x in scheduler.get_last_lr()]
