"""The training loop: one run of a task (:mod:`speech2face.training.tasks`) on this process
— steps, gradient accumulation, precision, checkpoints and resuming, the validation
schedule and logging — and :func:`train`, what ``s2f-train`` calls.

Every problem with the configuration is found before any long work and reported in one
line. See :mod:`speech2face.training.checkpoint` for what a checkpoint holds and how a run
resumes exactly (same weights as an uninterrupted run, on a CPU with a fixed seed), and
:mod:`speech2face.training.schedule` for the settings a resume must find unchanged (or
continue from, with ``resume_changes=continue``). A resumed run places each loader worker
where it stood through the shard index (:meth:`ShardDataset.set_resume`), so it trains
again within seconds wherever in an epoch it stopped.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from speech2face.audio import SAMPLE_RATE
from speech2face.config import require_file_name
from speech2face.errors import ConfigError, S2FError
from speech2face.training import distributed
from speech2face.training.checkpoint import (
    FORMAT,
    VERSION,
    model_entry,
    read_training_checkpoint,
    resume_path,
    rng_state,
    save_training_checkpoint,
    set_rng_state,
    unwrap,
)
from speech2face.training.instantiate import build, face_encoder_name, missing
from speech2face.training.logging import Meter, RunLogger
from speech2face.training.schedule import (
    RESUME_CHANGES,
    ContinuedLR,
    differences,
    run_settings,
)
from speech2face.training.tasks import TASKS
from speech2face.training.tasks.base import Task, loss_terms

PRECISIONS = ("auto", "bf16", "fp32")
CONFIG_COPY = "config.yaml"


@dataclass
class TrainerConfig:
    """How a run trains (not what): steps, batches, intervals, precision, loader."""

    max_steps: int = 100_000
    batch_size: int = 8  # per process
    global_batch: int | None = None  # set: batch_size = global_batch / (processes x grad_accum)
    val_every: int = 2_000
    val_batches: int | None = 50  # batches per validation; None: the whole val split
    ckpt_every: int = 2_000
    keep_last: int = 3
    log_every: int = 50
    image_every: int = 2_000
    num_images: int = 4
    grad_clip: float | None = None
    grad_accum: int = 1
    precision: str = "auto"  # auto: bf16 on a GPU that has it, else fp32
    channels_last: bool = True  # on a GPU
    compile: bool = False
    num_workers: int = 4
    pin_memory: bool = True
    device: str = "auto"
    seed: int = 0
    progress: bool = True
    mean_geometry_samples: int = 10_000  # training landmarks averaged into the mean geometry

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "val_every", "ckpt_every", "keep_last"):
            _positive_int(getattr(self, name), f"trainer.{name}")
        for name in ("log_every", "image_every", "grad_accum", "mean_geometry_samples"):
            _positive_int(getattr(self, name), f"trainer.{name}")
        for name in ("num_images", "num_workers", "seed"):
            _positive_int(getattr(self, name), f"trainer.{name}", minimum=0)
        if self.val_batches is not None:
            _positive_int(self.val_batches, "trainer.val_batches")
        if self.global_batch is not None:
            _positive_int(self.global_batch, "trainer.global_batch")
        if self.grad_clip is not None and (
            isinstance(self.grad_clip, bool) or not float(self.grad_clip) > 0
        ):
            raise ConfigError(f"trainer.grad_clip must be > 0 or null, got {self.grad_clip!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"trainer.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        for name in ("channels_last", "compile", "pin_memory", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"trainer.{name} must be true or false")


def per_process_batch(tcfg: TrainerConfig, world_size: int) -> int:
    """The batch one process reads per micro-step: ``batch_size``, or with ``global_batch``
    set, ``global_batch / (processes x grad_accum)`` (which must divide)."""
    if tcfg.global_batch is None:
        return tcfg.batch_size
    share, rest = divmod(tcfg.global_batch, world_size * tcfg.grad_accum)
    if rest or share < 1:
        raise ConfigError(
            f"trainer.global_batch={tcfg.global_batch} does not divide into {world_size} "
            f"process(es) x trainer.grad_accum={tcfg.grad_accum}: choose a global batch that "
            "does, or another grad_accum"
        )
    return share


def fetch_weights_once(spec: Any, is_main: bool) -> None:
    """The face encoder's weights (a registry name or a path), fetched by rank 0 alone
    before any rank builds a model; the other ranks wait, then find them in the cache
    (each rank fetching lazily in its first step would race on one download)."""
    if not spec:
        return
    from speech2face.weights import resolve

    if is_main:
        resolve(str(spec))
    distributed.barrier()


def pick_precision(precision: str, device: torch.device) -> str:
    """``bf16`` or ``fp32`` for ``trainer.precision`` on ``device``: auto is bf16 on a GPU
    with bfloat16 arithmetic (Ampere on), else fp32; bf16 asked for on a GPU without it is a
    :class:`ConfigError` (a CPU emulates it, slowly but correctly)."""
    has_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
    if precision == "auto":
        return "bf16" if has_bf16 else "fp32"
    if precision == "bf16" and device.type == "cuda" and not has_bf16:
        name = torch.cuda.get_device_name(device)
        raise ConfigError(
            f"trainer.precision=bf16 but {name} has no bfloat16 arithmetic: use precision=fp32"
        )
    return precision


def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


class Trainer:
    """One training run of ``cfg.task`` on this process (one rank of a DDP job).

    Everything that can be checked cheaply is checked in the constructor (shards, feature
    widths, the decoder checkpoint, the resume checkpoint), before any model trains.
    """

    def __init__(self, cfg: Any, dist: distributed.DistInfo | None = None) -> None:

        self.cfg = cfg
        self.task_name = str(cfg.task)
        if self.task_name not in TASKS:
            raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {cfg.task!r}")
        self.output_dir = Path(require_file_name(cfg.output_dir, "output_dir", "a directory"))
        self.tcfg: TrainerConfig = build(cfg.trainer)
        self.dist = dist or distributed.setup(self.tcfg.device)
        self.device = self.dist.device
        self.tcfg.batch_size = per_process_batch(self.tcfg, self.dist.world_size)
        self.precision = pick_precision(self.tcfg.precision, self.device)
        self.resume_changes = str(cfg.get("resume_changes", "refuse"))
        if self.resume_changes not in RESUME_CHANGES:
            raise ConfigError(
                f"resume_changes must be one of {', '.join(RESUME_CHANGES)}, "
                f"got {self.resume_changes!r}"
            )
        self.train_samples: int | None = None
        self._messages: list[str] = []
        self.log: Any = _Deferred(self._messages, self.dist.is_main)  # a RunLogger in fit()
        self.encoder_name = face_encoder_name(cfg)
        self.feature_dim = int(cfg.face_encoder.dim)
        task_cls = TASKS[self.task_name]
        task_cls.check_config(cfg)
        if task_cls.reads_shards:
            self._check_shards()
        self.decoder_entry: dict[str, Any] | None = None
        if task_cls.decoder_checkpoint == "required" or (
            task_cls.decoder_checkpoint == "optional" and not missing(cfg, "decoder_checkpoint")
        ):
            self.decoder_entry = self._decoder_checkpoint()
        self.resume_from = self._resume_checkpoint()
        self.settings = run_settings(
            cfg, self.dist.world_size, self.tcfg.batch_size, self.train_samples
        )
        self.changes = self._check_settings()
        self._fetch_weights_once()

        torch.manual_seed(self.tcfg.seed)
        self.task: Task = task_cls(self)
        self.model = self.task.model.to(self.device)

    # ---------------------------------------------------------------- checks

    def dataset(self, split: str, train: bool, **kwargs: Any):
        """The task's samples of ``split`` (:meth:`Task.dataset`: by default a
        :class:`ShardDataset` built from ``cfg.data`` with the task's fields)."""
        return self.task.dataset(split, train, **kwargs)

    def _check_shards(self) -> None:

        root = require_file_name(self.cfg.data.root, "data.root", "an s2f-preprocess output")
        probe = build(
            self.cfg.data, split="train", train=False, require_audio=False, rank=0, world_size=1
        )
        if probe.num_samples == 0:
            raise S2FError(f"the train split of {root} is empty")
        self.train_samples = probe.num_samples
        sample = next(iter(probe), None)
        if sample is None:
            raise S2FError(f"the train split of {root} holds no sample")
        width = int(sample["feature"].shape[0])
        if width != self.feature_dim:
            made_by = sample["meta"].get("face_encoder")
            by = f" ({made_by})" if made_by else ""
            raise ConfigError(
                f"shards in {root} hold {width}-D features{by}, but face_encoder="
                f"{self.encoder_name} gives {self.feature_dim}-D: choose the face encoder the "
                "shards were made with, or recompute them (s2f-preprocess action=features)"
            )
        needed = self.tcfg.batch_size * self.dist.world_size
        if probe.num_samples is not None and probe.num_samples < needed:
            raise ConfigError(
                f"the train split of {root} holds {probe.num_samples} samples, fewer than one "
                f"batch of {self.tcfg.batch_size} per process ({self.dist.world_size})"
            )

    def _decoder_checkpoint(self) -> dict[str, Any]:
        from speech2face.models import read_checkpoint

        path = require_file_name(self.cfg.decoder_checkpoint, "decoder_checkpoint", "a file")
        try:
            payload = read_checkpoint(path)
        except S2FError as error:
            raise ConfigError(f"decoder_checkpoint: {error}") from None
        if payload["kind"] != "face_decoder":
            raise ConfigError(f"decoder_checkpoint {path} holds a '{payload['kind']}'")
        width = int(payload["config"].get("feature_dim", -1))
        if width != self.feature_dim:
            raise ConfigError(
                f"decoder_checkpoint {path} takes {width}-D features, but face_encoder="
                f"{self.encoder_name} gives {self.feature_dim}-D"
            )
        return {k: payload[k] for k in ("kind", "config", "state_dict")}

    def _resume_checkpoint(self) -> dict[str, Any] | None:
        resume = self.cfg.get("resume", "auto")
        if resume is False or resume in ("never", "false"):
            if resume_path(self.output_dir) is not None:
                raise ConfigError(
                    f"{self.output_dir} holds checkpoints of an earlier run: resume=auto "
                    "continues it, or choose another output_dir"
                )
            return None
        path = resume_path(self.output_dir) if resume in ("auto", True) else Path(str(resume))
        if path is None:
            return None
        payload = read_training_checkpoint(path)
        trained = payload["training"]
        if trained["task"] != self.task_name:
            raise ConfigError(
                f"{path} is a task={trained['task']} checkpoint, not task={self.task_name}: "
                "choose another output_dir"
            )
        return payload

    def _check_settings(self) -> list[str]:
        """The settings the resumed checkpoint was trained with that differ from this run's:
        none, or ``resume_changes=continue``; else one line naming each, and stop."""
        if self.resume_from is None:
            return []
        saved = self.resume_from["training"].get("settings")
        if saved is None:  # written before settings were recorded: only world_size is known
            saved = {**self.settings, "world_size": self.resume_from["training"]["world_size"]}
        changes = differences(saved, self.settings)
        if changes and self.resume_changes != "continue":
            raise ConfigError(
                f"{self.output_dir} was trained with other settings ({'; '.join(changes)}): "
                "resume_changes=continue goes on with the new ones from where the run "
                "stands, or choose another output_dir"
            )
        if changes:
            self.log.message(f"resuming with new settings: {'; '.join(changes)}")
        return changes

    def _fetch_weights_once(self) -> None:
        spec = self.cfg.face_encoder.get("weights") if "face_encoder" in self.cfg else None
        fetch_weights_once(spec, self.dist.is_main)

    # ---------------------------------------------------------------- running

    def autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _restore(self, optimizer, scheduler) -> tuple[int, int, int, float | None]:
        payload = self.resume_from
        if payload is None:
            return 0, 0, 0, None
        model = unwrap(self.model)
        if payload["config"] != model_entry(model)["config"]:
            raise ConfigError(
                f"{self.output_dir} holds a run of another {payload['kind']} architecture: "
                "choose another output_dir"
            )
        state = payload["training"]
        try:
            model.load_state_dict(payload["state_dict"], strict=True)
            scheduler = self._restore_schedule(optimizer, scheduler, state)
            set_rng_state(state["rng"])
        except (KeyError, RuntimeError, TypeError, ValueError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise ConfigError(
                f"{self.output_dir}: its last checkpoint cannot be resumed ({first}): "
                "choose another output_dir"
            ) from None
        best = state.get("best")
        self.position = state.get("data")
        self.scheduler = scheduler
        return int(state["step"]), int(state["epoch"]), int(state["batch_in_epoch"]), best

    def _restore_schedule(self, optimizer, scheduler, state: dict[str, Any]):
        """The optimiser and scheduler states of the checkpoint: as saved when the settings
        are the same; with new ones (``resume_changes=continue``), the optimiser's moments
        under its new settings and the learning rate going on from where it was
        (:class:`ContinuedLR`). Returns the scheduler the run steps."""
        step = int(state["step"])
        saved_lrs = [float(g["lr"]) for g in state["optimizer"]["param_groups"]]
        continued = state.get("continued")
        if not self.changes:
            optimizer.load_state_dict(state["optimizer"])
            if continued is not None:
                return ContinuedLR(
                    optimizer, self._scheduler_factory(), self._base_lrs(optimizer),
                    continued["origin"], continued["origin_lrs"], step,
                )  # fmt: skip
            if scheduler is not None and state.get("scheduler") is not None:
                scheduler.load_state_dict(state["scheduler"])
            return scheduler
        saved = self.resume_from["training"].get("settings") or {}
        old_base = (saved.get("optim.optimizer") or {}).get("lr")
        new_base = float(self.cfg.optim.optimizer.get("lr", 0.0) or 0.0)
        scale = new_base / float(old_base) if old_base else 1.0
        fresh = [dict(g) for g in optimizer.param_groups]
        same_class = (saved.get("optim.optimizer") or {}).get(
            "_target_"
        ) == self.cfg.optim.optimizer.get("_target_")
        if same_class:
            optimizer.load_state_dict(state["optimizer"])
            for group, settings in zip(optimizer.param_groups, fresh, strict=True):
                for key, value in settings.items():
                    if key not in ("params", "initial_lr"):
                        group[key] = value  # the new betas, eps, weight decay, lr base
        else:
            self.log.message("a new optimiser: its state starts afresh")
        origin_lrs = [lr * scale for lr in saved_lrs]
        return ContinuedLR(
            optimizer, self._scheduler_factory(), self._base_lrs(optimizer), step, origin_lrs, step
        )

    def _base_lrs(self, optimizer) -> list[float]:
        base = float(self.cfg.optim.optimizer.get("lr", 0.0) or 0.0)
        return [base] * len(optimizer.param_groups)

    def _scheduler_factory(self):
        if self.cfg.optim.get("scheduler") is None:
            return None
        return build(self.cfg.optim.scheduler)

    def _batches(self, loader, dataset):
        """``(batch, seconds waited)`` forever, epoch after epoch, from the saved position.

        With the shards' sample counts known, a resumed run starts where it stopped through
        the shard index (:meth:`ShardDataset.set_resume`), reading at most one shuffle block
        again; without them it reads the epoch again up to the saved batch."""
        skip = self._skip_batches
        while True:
            dataset.set_epoch(self.epoch)
            iterator = iter(loader)
            for _ in range(skip):  # no saved position: read again what the run has read
                batch = next(iterator, None)
                if batch is None:
                    break
                self.batch_in_epoch += 1
                self._advance(batch)
            skip = 0
            yielded = self.batch_in_epoch > 0
            while True:
                started = time.perf_counter()
                batch = next(iterator, None)
                if batch is None:
                    break
                self.batch_in_epoch += 1
                self._advance(batch)
                yielded = True
                yield batch, time.perf_counter() - started
            if not yielded:
                raise S2FError(
                    f"the train split yields no full batch of {self.tcfg.batch_size} per process"
                )
            self.epoch += 1
            self.batch_in_epoch = 0
            self.samples_in_epoch = 0
            self.cursors[:] = 0
            self.consumed = None

    def _advance(self, batch: dict[str, Any]) -> None:
        self.samples_in_epoch += len(batch["key"])
        if "cursor" in batch:
            worker, *where = batch["cursor"][-1].tolist()
            self.cursors[worker] = where

    def _position(self, dataset) -> None:
        """Place the training split at the checkpoint's data position (a resumed run):
        each loader worker where it stood when the run's layout (world size, loader
        workers) is the same; else the samples the epoch has read so far are left out and
        the rest of it divided among this run's processes and workers."""
        self.workers = max(self.tcfg.num_workers, 1)
        self.cursors = np.zeros((self.workers, 3), dtype=np.int64)
        self.consumed: np.ndarray | None = None  # (samples,) bool, read before this run
        self.samples_in_epoch = 0
        self._positioned = getattr(dataset, "counts", None) is not None and dataset.train
        self._skip_batches = 0
        position = self.position
        if self.resume_from is None:
            return
        if not self._positioned or position is None:
            self._skip_batches = self.batch_in_epoch  # read again up to the saved batch
            self.batch_in_epoch = 0
            return
        if int(position["epoch"]) != self.epoch or int(position["total"]) != dataset.num_samples:
            self.log.message("the training split changed: its epoch starts from the beginning")
            self.batch_in_epoch = 0
            return
        consumed = position.get("consumed")
        if consumed is not None:
            bits = np.unpackbits(consumed.numpy())[: dataset.num_samples]
            consumed = bits.astype(bool)
        changed = {change.split(" ", 1)[0] for change in self.changes}
        if changed & {"data.seed", "data.shuffle_buffer", "data.samples"}:
            self.log.message(
                f"the data order changed: epoch {self.epoch} starts from its beginning"
            )
            self.batch_in_epoch = 0
            return
        cursors = position["cursors"].numpy()
        self.samples_in_epoch = int(position["samples"]) // self.dist.world_size
        same = (int(position["world_size"]), int(position["workers"])) == (
            self.dist.world_size,
            self.workers,
        )
        dataset.set_resume(self.epoch, consumed)
        if same:
            self.consumed = consumed
            self.cursors[:] = cursors[
                self.dist.rank * self.workers : (self.dist.rank + 1) * self.workers
            ]
            dataset.set_resume(self.epoch, consumed, cursors, rotate=self.batch_in_epoch)
        else:
            self.consumed = dataset.consumed_positions(
                self.epoch, int(position["world_size"]), int(position["workers"]), cursors
            )
            dataset.set_resume(self.epoch, self.consumed)
            self.log.message(
                f"the data position is kept in samples: {int(self.consumed.sum())} of "
                f"{dataset.num_samples} in epoch {self.epoch} are read already"
            )

    def _data_position(self) -> dict[str, Any] | None:
        """Where every loader worker of every rank stands, for the checkpoint (every rank
        calls this at the same steps: it gathers)."""
        if not self._positioned:
            distributed.barrier()
            return None
        cursors = np.concatenate(distributed.all_gather_object(self.cursors.copy()))
        consumed = None
        if self.consumed is not None:
            consumed = torch.from_numpy(np.packbits(self.consumed))
        return {
            "epoch": self.epoch,
            "samples": self.samples_in_epoch * self.dist.world_size,
            "total": int(self.train_samples or 0),
            "world_size": self.dist.world_size,
            "workers": self.workers,
            "cursors": torch.from_numpy(cursors),  # (world x workers, 3)
            "consumed": consumed,  # packed bits of (total,) bool, or None
        }

    def next_batch(self, batches) -> tuple[dict[str, Any], float]:
        return next(batches)

    def fit(self) -> dict[str, float]:
        """Train to ``trainer.max_steps``; returns the last training and validation values."""
        tcfg = self.tcfg
        optimizer = build(self.cfg.optim.optimizer)(
            [p for p in self.model.parameters() if p.requires_grad]
        )
        scheduler = None
        if self.cfg.optim.get("scheduler") is not None:
            scheduler = build(self.cfg.optim.scheduler)(optimizer)
        self.task.prepare(resuming=self.resume_from is not None)
        self.position, self.scheduler = None, scheduler
        step, self.epoch, self.batch_in_epoch, self.best = self._restore(optimizer, scheduler)
        scheduler = self.scheduler

        logger = RunLogger(
            self.output_dir,
            tcfg.max_steps,
            first_step=step,
            enabled=self.dist.is_main,
            progress=tcfg.progress,
        )
        for line in self._messages:
            logger.message(line)
        self.log = logger
        if self.dist.is_main:
            self._write_config()
        if step:
            logger.message(f"resuming from step {step} ({self.output_dir})")

        train_set = self.dataset("train", train=True)
        self._position(train_set)
        loader = self.task.loader(
            train_set,
            tcfg.batch_size,
            num_workers=tcfg.num_workers,
            pin_memory=tcfg.pin_memory and self.device.type == "cuda",
        )
        val_set = self._val_dataset()
        picture_batch = self._picture_batch()
        self._audio_logged = False

        model: nn.Module = self.model
        if self.device.type == "cuda" and tcfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.dist.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            model = DistributedDataParallel(model, device_ids=ids)
        if tcfg.compile:
            model = torch.compile(model)

        batches = self._batches(loader, train_set)
        meter = Meter()
        results: dict[str, float] = {}
        model.train()
        try:
            while step < tcfg.max_steps:
                optimizer.zero_grad(set_to_none=True)
                terms_sum: dict[str, float] = {}
                samples = 0
                waited = 0.0
                for micro in range(tcfg.grad_accum):
                    batch, wait = self.next_batch(batches)
                    waited += wait
                    samples += len(batch["key"])
                    last = micro == tcfg.grad_accum - 1
                    sync = (
                        model.no_sync()
                        if self.dist.distributed and not last and hasattr(model, "no_sync")
                        else contextlib.nullcontext()
                    )
                    with sync, self._memory_guard():
                        terms = self.task.step(model, batch)
                        (terms["total"] / tcfg.grad_accum).backward()
                    for name, value in loss_terms(terms).items():
                        terms_sum[name] = terms_sum.get(name, 0.0) + value / tcfg.grad_accum
                if not torch.isfinite(torch.tensor(terms_sum["loss/total"])):
                    raise S2FError(f"the loss is not finite at step {step + 1}: {terms_sum}")
                if tcfg.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), float(tcfg.grad_clip))
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                step += 1
                meter.add(terms_sum, samples, waited)

                if step % tcfg.log_every == 0 or step == tcfg.max_steps:
                    values = {
                        **meter.means(),
                        "lr": optimizer.param_groups[0]["lr"],
                        **meter.perf(self.dist.world_size),
                    }
                    logger.scalars(values, step)
                    results.update(values)
                    meter.reset()
                logger.advance(step, {"loss": f"{terms_sum['loss/total']:.4g}"})

                with meter.pause():  # not training: out of samples/s and the wait share
                    if picture_batch is not None and (
                        step % tcfg.image_every == 0 or step == tcfg.max_steps
                    ):
                        self._pictures(picture_batch, step)

                    validate = step % tcfg.val_every == 0 or step == tcfg.max_steps
                    is_best = False
                    if validate and val_set is not None:
                        values = self.validate(val_set) if self.dist.is_main else {}
                        logger.scalars(values, step)
                        results.update(values)
                        metric = values.get("val/loss/total")
                        if metric is not None and (self.best is None or metric < self.best):
                            self.best, is_best = metric, True
                        model.train()
                        distributed.barrier()
                    elif validate and val_set is None and self.best is None:
                        is_best = True  # no validation: best.pt follows the first checkpoint
                    checkpoint = step % tcfg.ckpt_every == 0 or step == tcfg.max_steps or is_best
                    if validate or step % tcfg.ckpt_every == 0:  # the same steps on every rank
                        position = self._data_position()
                        if checkpoint and self.dist.is_main:
                            self.save(step, optimizer, scheduler, is_best, position)
        finally:
            logger.close()
        distributed.broadcast_buffers(unwrap(self.model))
        if self.dist.is_main:
            extra = {"best": self.best} if self.best is not None else {}
            logger.message(logger.summary(step, self.output_dir, extra))
        # Every rank leaves together, so none tears its process group down while another
        # still talks to it (a gloo rank has aborted at exit when its peer left first).
        distributed.barrier()
        return results

    # ---------------------------------------------------------------- pieces

    @contextlib.contextmanager
    def _memory_guard(self):
        """A batch that does not fit becomes one line naming the settings to lower."""
        try:
            yield
        except torch.OutOfMemoryError:
            raise S2FError(
                f"a batch of {self.tcfg.batch_size} does not fit in {self.device} memory: lower "
                f"trainer.batch_size (and raise trainer.grad_accum to keep the batch per step), "
                f"or {self.task.memory_hint}; precision=bf16 also halves the activations"
            ) from None

    def _val_dataset(self):
        try:
            dataset = self.dataset("val", train=False)
        except S2FError:
            dataset = None
        if dataset is None or dataset.num_samples == 0:
            self.log.message(f"no val split in the {self.task.data_name}: validation is off")
            return None
        return dataset

    def _picture_batch(self) -> dict[str, Any] | None:
        """A fixed batch of ``num_images`` val (else train) samples with their crops."""
        from speech2face.data import collate

        if not self.dist.is_main or self.tcfg.num_images == 0 or not hasattr(self.task, "picture"):
            return None
        for split in ("val", "train"):
            try:
                dataset = self.dataset(split, train=False, with_image=True, shuffle_buffer=0)
            except S2FError:
                continue
            samples = []
            for sample in dataset:
                samples.append(sample)
                if len(samples) == self.tcfg.num_images:
                    break
            if samples:
                return collate(samples)
        return None

    def _pictures(self, batch: dict[str, Any], step: int) -> None:
        """The image grid; with the voice task, the grid's voices as audio too (once per
        run: they do not change), tagged ``audio/voice/<row>``."""
        model = unwrap(self.model)
        model.eval()
        try:
            self.log.images(f"images/{self.task_name}", self.task.picture(model, batch), step)
        finally:
            model.train()
        if self.task.require_audio and "wav" in batch and not self._audio_logged:
            self.log.audio("audio/voice", batch["wav"], SAMPLE_RATE, step)
            self._audio_logged = True

    @torch.no_grad()
    def validate(self, dataset) -> dict[str, float]:
        """The task's figures on the val split (:meth:`Task.validate`)."""
        model = unwrap(self.model)
        model.eval()
        return self.task.validate(model, dataset)

    def save(
        self, step: int, optimizer, scheduler, is_best: bool, position: dict | None = None
    ) -> Path:
        continued = isinstance(scheduler, ContinuedLR)
        payload = {
            "format": FORMAT,
            "version": VERSION,
            **model_entry(self.model),
            "training": {
                "task": self.task_name,
                "step": step,
                "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch,
                "world_size": self.dist.world_size,
                "settings": self.settings,
                "data": position,
                "optimizer": optimizer.state_dict(),
                "scheduler": None if scheduler is None or continued else scheduler.state_dict(),
                "continued": scheduler.state_dict() if continued else None,
                "rng": rng_state(),
                "best": self.best,
            },
            "bundle": self.task.bundle(),
        }
        return save_training_checkpoint(
            self.output_dir, payload, step, self.tcfg.keep_last, is_best
        )

    def _write_config(self) -> None:
        from omegaconf import OmegaConf

        from speech2face.fileio import write_atomic

        self.output_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.output_dir / CONFIG_COPY, OmegaConf.to_yaml(self.cfg).encode())


class _Deferred:
    """Collects messages until the run's logger exists (the constructor's notes)."""

    def __init__(self, store: list[str], enabled: bool) -> None:
        self.store = store
        self.enabled = enabled

    def message(self, text: str) -> None:
        if self.enabled:
            self.store.append(text)


def train(cfg: Any) -> dict[str, float]:
    """Run ``cfg.task`` (``decoder``, ``voice`` or ``attributes``) as configured by ``configs/train.yaml``.

    Under ``torchrun`` every process calls this; rank 0 holds the output directory, logs and
    writes checkpoints. Returns the last logged training and validation values.
    """
    from speech2face.runlock import hold_directory

    output = require_file_name(cfg.output_dir, "output_dir", "a directory")
    dist = distributed.setup(str(cfg.trainer.device))
    try:
        trainer = Trainer(cfg, dist)  # every check, before the directory is taken
        if not dist.is_main:
            return trainer.fit()
        with hold_directory(output, "s2f-train"):
            return trainer.fit()
    finally:
        distributed.cleanup()
