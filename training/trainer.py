"""The training loop of the three stages (teacher, plain student, distilled student).

One loop for all three: batches of cached (S, S) images are augmented on the fly (flip +
rotation, optionally zoom, shift and intensity jitter: :mod:`training.augment`), normalised
with the model's input spec (the viewer's ``normalize``), and fed in channels-last layout under
the resolved precision. The distilled student's teacher (or teacher ensemble:
:mod:`training.teaching`) sees the same augmented batch, in eval mode, under ``no_grad``; with
``distill.views = K`` its logits for K fixed augmented views of every training image are computed
once and epoch ``e`` trains on view ``e mod K``. A distillation-only transfer set
(``data.unlabeled``) joins the training images with unknown labels, so only the distillation term
learns from it. After each epoch: validation loss and AUCs (predictions gathered across
ranks), ReduceLROnPlateau on the validation mean AUC, early stopping, ``best.pt`` when the AUC
improves, ``last.pt`` always.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from kdviewer.core.findings import FINDING_KEYS
from kdviewer.core.models import build_model
from kdviewer.core.preprocess import normalize
from training import checkpoint
from training.augment import AugmentedViews, BatchAugmenter
from training.config import Config, read_config, write_config
from training.data import PreparedData, prepare_data
from training.distributed import (
    DistInfo,
    all_gather_cat,
    all_reduce_sum,
    barrier,
    broadcast_object,
    init_from_env,
)
from training.energy import EpochMeter
from training.images import StackedImages, cache_key, collate_batch
from training.init import initialise
from training.losses import distillation_loss, masked_bce, masked_bce_terms
from training.metrics import mean_auc
from training.plots import plot_learning_curves
from training.precision import autocast, resolve_precision
from training.reproducibility import capture_rng, derived_seed, restore_rng, seed_everything
from training.runlog import write_json, write_jsonl
from training.teaching import VIEWS_FILE, cached_view_logits, load_teachers, precompute_view_logits, views_key
from training.unlabeled import unlabeled_images
from training.workspace import STAGES, Stage, Workspace

log = logging.getLogger(__name__)


class ResumableSampler(DistributedSampler):
    """DistributedSampler (the same shuffle on 1 or N ranks) that can skip the first batches of an epoch."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.skip = 0

    def __iter__(self):
        it = list(super().__iter__())
        return iter(it[self.skip :])

    def __len__(self) -> int:
        return self.num_samples - self.skip


def resolve_device(name: str, info: DistInfo) -> torch.device:
    """``auto``: the rank's CUDA device if there is one, else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", info.local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick its fastest kernels
    return dev


@dataclass
class LoopState:
    """Everything beyond the modules that a resumed run must restore."""

    epoch: int = 0  # next epoch to run
    step_in_epoch: int = 0  # batches of `epoch` already done (mid-epoch checkpoints)
    global_step: int = 0
    loss_sum: float = 0.0  # this epoch's train loss so far (this rank)
    best_auc: float = -math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False
    out_of_time: bool = False  # ended by train.time_budget_s


def _state_dict(s: LoopState) -> dict:
    return dict(s.__dict__)


@dataclass
class Trainer:
    """One stage's training run (see :func:`train_stage`)."""

    stage: Stage
    cfg: Config
    ws: Workspace
    info: DistInfo
    device: torch.device
    data: PreparedData
    teacher_paths: tuple[str | Path, ...] = ()

    def __post_init__(self) -> None:
        cfg, info = self.cfg, self.info
        self.run_dir = self.ws.run_dir(self.stage.name)
        mcfg = getattr(cfg, self.stage.role)
        seed_everything(derived_seed(cfg.seed, 1))  # model init: the same on every rank
        self.model = build_model(mcfg.arch)
        self.init = initialise(self.model, mcfg.init)
        seed_everything(derived_seed(cfg.seed, 2, info.rank))  # dropout etc.: per rank
        self.model.to(self.device)
        if cfg.train.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.teachers = None
        self.teacher_sources = tuple(
            self.teacher_paths or cfg.distill.teachers or (self.ws.run_dir("teacher"),)
        )
        if self.stage.distill:
            self.teachers = load_teachers(self.teacher_sources, cfg).to(self.device, cfg.train.channels_last)
            log.info(
                "distilling from %s (%s)",
                ", ".join(map(str, self.teacher_sources)),
                f"{cfg.distill.views} precomputed views" if cfg.distill.views else "scored on the fly",
            )
        self.module = self.model  # the unwrapped network, whose state is saved
        if info.enabled and self.device.type == "cuda" and cfg.train.sync_bn:
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            self.module = self.model
        self.opt = torch.optim.AdamW(
            self.module.parameters(), lr=mcfg.lr, weight_decay=cfg.train.weight_decay
        )
        self.sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.opt, mode="max", factor=cfg.train.plateau_factor, patience=cfg.train.plateau_patience
        )
        self.pos_weight = torch.as_tensor(self.data.pos_weight, device=self.device)
        if cfg.train.batch_size % info.world:
            raise ValueError(f"batch size {cfg.train.batch_size} is not divisible by {info.world} ranks")
        self.local_bs = cfg.train.batch_size // info.world
        self.train_set = self.data.dataset("train", cfg)
        self.unlabeled_files: list[str] = []
        if cfg.data.unlabeled and self.stage.distill:
            extra = unlabeled_images(cfg, self.ws, self.data)
            self.unlabeled_files = list(extra.files)
            self.train_set = StackedImages(self.train_set, extra)
        elif cfg.data.unlabeled:
            log.info("%s: the unlabelled images serve the distill stage only", self.stage.name)
        self.val_set = self.data.dataset("val", cfg)
        self.sampler = ResumableSampler(
            self.train_set,
            num_replicas=info.world,
            rank=info.rank,
            shuffle=True,
            seed=derived_seed(cfg.seed, 3),
            drop_last=False,
        )
        workers = cfg.data.num_workers if self.data.array is None else 0
        drop_last = len(self.train_set) // info.world > self.local_bs  # never a 1-image BN batch at the end
        # Own generators: a DataLoader otherwise draws its workers' base seed from the global torch
        # RNG at every new iterator, which would shift the dropout stream of a run resumed mid-epoch.
        self.train_loader = DataLoader(
            self.train_set,
            batch_size=self.local_bs,
            sampler=self.sampler,
            collate_fn=collate_batch,
            num_workers=workers,
            drop_last=drop_last,
            generator=torch.Generator().manual_seed(derived_seed(cfg.seed, 6)),
        )
        self.val_loader = DataLoader(
            self.val_set,
            batch_size=self.local_bs,
            sampler=DistributedSampler(self.val_set, num_replicas=info.world, rank=info.rank, shuffle=False),
            collate_fn=collate_batch,
            num_workers=workers,
            generator=torch.Generator().manual_seed(derived_seed(cfg.seed, 7)),
        )
        self.augment = BatchAugmenter(
            derived_seed(cfg.seed, 4),
            cfg.train.hflip,
            cfg.train.rotation_degrees,
            info.rank,
            info.world,
            cfg.jitter(),
        )
        self.views = None
        self.view_logits: torch.Tensor | None = None
        if self.stage.distill and cfg.distill.views:
            t = cfg.train
            self.views = AugmentedViews(
                derived_seed(cfg.seed, 8),
                cfg.distill.views,
                len(self.train_set),
                t.hflip,
                t.rotation_degrees,
                cfg.jitter(),
            )
        self.state = LoopState()
        self.precision = "fp32"
        self.scaler = None
        self.meter = EpochMeter(self.device)

    # -- state ----------------------------------------------------------------------------------

    def _setup_precision(self, resumed: str | None) -> None:
        if resumed:
            self.precision = resumed
        else:
            with torch.random.fork_rng(devices=[]):
                choice = resolve_precision(
                    self.cfg.train.precision,
                    self.device,
                    self.module,
                    batch=min(8, self.local_bs),
                    size=self.cfg.input.size,
                    channels_last=self.cfg.train.channels_last,
                )
            self.precision = broadcast_object(choice, self.info)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        log.info(
            "%s: precision %s on %s, channels_last=%s",
            self.stage.name,
            self.precision,
            self.device,
            self.cfg.train.channels_last,
        )

    def prepare_views(self) -> None:
        """The teacher's logits for every view (``distill.views``): computed by rank 0 into the run
        folder (or found there from an earlier start of this run), then read by every rank."""
        if self.views is None:
            return
        cfg = self.cfg
        key = views_key(
            self.teacher_sources,
            self.views,
            self.data.rows("train"),
            {
                "images": cache_key(self.data.table.files, cfg.input),
                "unlabeled": cache_key(self.unlabeled_files, cfg.input),
                "ensemble": cfg.distill.ensemble,
                "precision": self.precision,
            },
        )

        def compute() -> torch.Tensor:
            with autocast(self.precision, self.device):
                return precompute_view_logits(
                    self.teachers,
                    self.views,
                    self.train_set,
                    lambda x: self._batch(x, train=False),
                    max(self.local_bs, 32),
                    self.device,
                )

        path = self.run_dir / VIEWS_FILE
        if self.info.is_main:
            self.view_logits = cached_view_logits(path, key, compute)
        barrier(self.info)
        if not self.info.is_main:
            self.view_logits = cached_view_logits(path, key, compute)

    def _wrap(self) -> None:
        if self.cfg.train.compile:
            self.model = torch.compile(self.model)
        if self.info.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)

    def save_last(self) -> None:
        """Write ``last.pt`` (rank 0; random states of every rank gathered first)."""
        rng = capture_rng()
        if self.info.enabled:
            all_rng: list[Any] = [None] * self.info.world
            dist.all_gather_object(all_rng, rng)
        else:
            all_rng = [rng]
        if not self.info.is_main:
            return
        ckpt = {
            "model": self.module.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "loop": _state_dict(self.state),
            "augment": self.augment.state_dict(),
            "rng": all_rng,
            "precision": self.precision,
            "world": self.info.world,
            "stage": self.stage.name,
        }
        checkpoint.atomic_save(ckpt, self.run_dir / checkpoint.LAST)

    def restore(self, ckpt: dict) -> None:
        if ckpt.get("world", 1) != self.info.world:
            log.warning(
                "resuming a %d-rank run on %d ranks: the result will differ slightly",
                ckpt.get("world", 1),
                self.info.world,
            )
        self.module.load_state_dict(ckpt["model"], strict=True)
        self.opt.load_state_dict(ckpt["optimizer"])
        self.sched.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler") and self.scaler is not None:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.state = LoopState(**ckpt["loop"])
        self.augment.load_state_dict(ckpt["augment"])
        rngs = ckpt["rng"]
        restore_rng(rngs[self.info.rank] if self.info.rank < len(rngs) else rngs[0])
        log.info(
            "resumed %s at epoch %d step %d", self.stage.name, self.state.epoch, self.state.step_in_epoch
        )

    # -- loop -----------------------------------------------------------------------------------

    def _batch(self, x: torch.Tensor, train: bool, positions: torch.Tensor | None = None) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if train and self.views is not None:
            x = self.views(x, positions, self.state.epoch % len(self.views))
        elif train:
            x = self.augment(x)
        x = normalize(x, self.cfg.input)
        if self.cfg.train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _train_step(
        self, x: torch.Tensor, y: torch.Tensor, teacher_logits: torch.Tensor | None = None
    ) -> torch.Tensor:
        y = y.to(self.device, non_blocking=True)
        known = (~torch.isnan(y)).sum().to(torch.float64)
        # Normalise by the global count of known labels / world so DDP's gradient average is the global mean.
        normaliser = (all_reduce_sum(known, self.info) / self.info.world).clamp(min=1).to(torch.float32)
        with autocast(self.precision, self.device):
            logits = self.model(x)
            if self.teachers is not None and teacher_logits is None:
                teacher_logits = self.teachers(x)
        if teacher_logits is None:
            loss = masked_bce(logits, y, self.pos_weight, normaliser)
        else:
            loss = distillation_loss(
                logits,
                teacher_logits,
                y,
                self.pos_weight,
                self.cfg.distill.alpha,
                self.cfg.distill.temperature,
                normaliser,
            )
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        return loss.detach()

    def train_epoch(self) -> float:
        st = self.state
        self.model.train()
        self.sampler.set_epoch(st.epoch)
        self.sampler.skip = st.step_in_epoch * self.local_bs
        steps_total = (
            len(self.sampler) // self.local_bs
            if self.train_loader.drop_last
            else math.ceil(len(self.sampler) / self.local_bs)
        )
        steps_total += st.step_in_epoch
        # st.loss_sum is the all-rank sum at a mid-epoch checkpoint; each rank carries its share.
        loss_sum = torch.tensor(st.loss_sum / self.info.world, dtype=torch.float64, device=self.device)
        bar = tqdm(
            total=steps_total * self.cfg.train.batch_size,
            initial=st.step_in_epoch * self.cfg.train.batch_size,
            desc=f"{self.stage.model_name} epoch {st.epoch + 1}/{self.cfg.train.epochs}",
            unit="img",
            disable=not (self.cfg.train.progress and self.info.is_main),
            dynamic_ncols=True,
            leave=False,
        )
        every = self.cfg.train.checkpoint_every_steps
        for x, y, idx in self.train_loader:
            targets = None
            if self.view_logits is not None:
                targets = self.view_logits[st.epoch % len(self.views), idx].to(self.device)
            loss = self._train_step(self._batch(x, train=True, positions=idx), y, targets)
            loss_sum += loss.double()  # stays on the device: no per-step synchronisation
            st.step_in_epoch += 1
            st.global_step += 1
            bar.update(x.shape[0] * self.info.world)
            if st.step_in_epoch % 10 == 1:
                bar.set_postfix(loss=f"{loss.item():.4f}")
            if every and st.step_in_epoch % every == 0 and st.step_in_epoch < steps_total:
                st.loss_sum = float(all_reduce_sum(loss_sum, self.info))
                self.save_last()
        bar.close()
        total = all_reduce_sum(loss_sum, self.info) / self.info.world
        steps = st.step_in_epoch
        return float(total) / max(steps, 1)

    @torch.no_grad()
    def predict(self, loader: DataLoader) -> tuple[np.ndarray, np.ndarray]:
        """Logits and dataset positions of every image of ``loader``'s split, gathered across ranks."""
        net = self.module
        net.eval()
        outs, idxs = [], []
        for x, _y, idx in loader:
            with autocast(self.precision, self.device):
                outs.append(net(self._batch(x, train=False)).float().cpu())
            idxs.append(idx)
        logits = torch.cat(outs) if outs else torch.empty(0, len(FINDING_KEYS))
        index = torch.cat(idxs) if idxs else torch.empty(0, dtype=torch.int64)
        logits = all_gather_cat(logits.to(self.device), self.info).cpu()
        index = all_gather_cat(index.to(self.device), self.info).cpu()
        # the DistributedSampler pads with repeats: keep the first occurrence of each position
        _, first = np.unique(index.numpy(), return_index=True)
        order = index.numpy()[first]
        out = np.empty((len(loader.dataset), logits.shape[1]), dtype=np.float32)
        out[order] = logits.numpy()[first]
        return out, order

    def validate(self) -> dict[str, Any]:
        logits, _ = self.predict(self.val_loader)
        labels = self.val_set.labels.numpy()
        total, count = masked_bce_terms(
            torch.from_numpy(logits), torch.from_numpy(labels), self.pos_weight.cpu()
        )
        mauc, per = mean_auc(labels, logits)
        return {
            "val_loss": float(total / count.clamp(min=1)),
            "val_mean_auc": mauc,
            "val_auc": {k: (None if math.isnan(a) else a) for k, a in zip(FINDING_KEYS, per, strict=True)},
        }

    def fit(self, stop_after_epochs: int | None = None) -> LoopState:
        """Train until ``train.epochs`` or early stopping (or ``stop_after_epochs`` more epochs)."""
        cfg, st = self.cfg, self.state
        done_now = 0
        while st.epoch < cfg.train.epochs and not st.stopped_early and not st.out_of_time:
            with self.meter.measure() as cost:
                t0 = time.perf_counter()
                train_loss = self.train_epoch()
                train_time = time.perf_counter() - t0
                val = self.validate()
            metric = val["val_mean_auc"] if not math.isnan(val["val_mean_auc"]) else -math.inf
            lr = self.opt.param_groups[0]["lr"]
            self.sched.step(metric)
            improved = metric > st.best_auc + cfg.train.min_delta or st.best_epoch < 0
            if self.info.enabled:  # every rank measured its own process (or GPU): the epoch costs the sum
                cost.energy_j = float(
                    all_reduce_sum(torch.tensor(cost.energy_j, dtype=torch.float64), self.info)
                )
                cost.method = f"sum over {self.info.world} ranks of: {cost.method}"
            row = {
                "epoch": st.epoch + 1,
                "train_loss": train_loss,
                **val,
                "lr": lr,
                "train_time_s": train_time,
                **cost.to_dict(),
                "images_per_s": (
                    min(st.step_in_epoch * cfg.train.batch_size, len(self.train_set)) / train_time
                    if train_time > 0
                    else None
                ),
                "best": improved,
            }
            if improved:
                st.best_auc, st.best_epoch, st.bad_epochs = metric, st.epoch + 1, 0
                if self.info.is_main:
                    checkpoint.atomic_save(
                        {
                            "model": self.module.state_dict(),
                            "epoch": st.epoch + 1,
                            "val_mean_auc": metric,
                            "arch": self.module.arch,
                        },
                        self.run_dir / checkpoint.BEST,
                    )
            else:
                st.bad_epochs += 1
            st.history.append(row)
            st.epoch += 1
            st.step_in_epoch, st.loss_sum = 0, 0.0
            if st.bad_epochs >= cfg.train.early_stopping_patience:
                st.stopped_early = True
                log.info("early stopping after epoch %d (best %d)", st.epoch, st.best_epoch)
            spent = sum(h["time_s"] for h in st.history)
            # ends when the next epoch (as long as this one) would end past the budget; rank 0 decides
            st.out_of_time = broadcast_object(
                bool(cfg.train.time_budget_s)
                and not st.stopped_early
                and st.epoch < cfg.train.epochs
                and spent + row["time_s"] > cfg.train.time_budget_s,
                self.info,
            )
            if st.out_of_time:
                log.info(
                    "time budget: %.0f of %.0f s spent after epoch %d, ending the run (best %d)",
                    spent,
                    cfg.train.time_budget_s,
                    st.epoch,
                    st.best_epoch,
                )
            self.save_last()
            if self.info.is_main:
                write_jsonl(self.run_dir / "log.jsonl", st.history)
                plot_learning_curves(
                    st.history,
                    self.run_dir / "learning_curves.png",
                    f"{self.stage.model_name} ({self.module.arch})",
                )
                log.info(
                    "%s epoch %d: train %.4f val %.4f AUC %.4f lr %.1e %.1fs %s",
                    self.stage.model_name,
                    row["epoch"],
                    train_loss,
                    val["val_loss"],
                    val["val_mean_auc"],
                    lr,
                    cost.duration_s,
                    f"{cost.energy_j:.0f} J [{cost.method}]" if not math.isnan(cost.energy_j) else "",
                )
            done_now += 1
            if stop_after_epochs is not None and done_now >= stop_after_epochs:
                break
        return st


def train_stage(
    stage_name: str,
    cfg: Config,
    ws: Workspace,
    *,
    resume: bool = False,
    teacher: str | Path | tuple[str | Path, ...] | list[str | Path] | None = None,
    splits: str | Path | None = None,
    stop_after_epochs: int | None = None,
    epochs: int | None = None,
) -> Path:
    """Run (or resume) one training stage; return its run folder.

    The config is resolved for the stage's network first (:meth:`Config.for_role`: e.g.
    ``student.epochs=60`` gives both students 60 epochs). On resume the run folder's own resolved
    config is used, so the continued run is the run that was interrupted; ``epochs`` there (the
    command line's ``--epochs`` with ``--resume``) sets its epoch count, not below the epochs it has
    run, so that a finished run goes on as the longer run would have (same checkpointed state,
    learning rate and random streams); a run that stopped early stays stopped, as the longer run
    would have.
    """
    stage = STAGES[stage_name]
    run_dir = ws.run_dir(stage_name)
    ckpt = None
    if resume:
        cfg = read_config(run_dir / "config.json")
        ckpt = checkpoint.load(run_dir / checkpoint.LAST)
        if epochs is not None:
            done = int(ckpt["loop"]["epoch"])
            if epochs < done:
                raise ValueError(f"--epochs {epochs}: {run_dir} has already run {done} epochs")
            cfg = replace(cfg, train=replace(cfg.train, epochs=epochs))
            if ckpt["loop"].get("stopped_early"):
                log.info("%s stopped early after epoch %d, as a longer run would have too", run_dir, done)
    cfg = cfg.for_role(stage.role)  # the network's own epochs and augmentation, written resolved
    info = init_from_env(
        "cuda"
        if cfg.train.device.startswith("cuda") or (cfg.train.device == "auto" and torch.cuda.is_available())
        else "cpu"
    )
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    device = resolve_device(cfg.train.device, info)
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_config(cfg, run_dir / "config.json")
    data = prepare_data(cfg, ws, info, splits)
    if info.is_main:
        write_json(run_dir / "data.json", data.description())
        if ws.splits.is_file():
            (run_dir / "splits.csv").write_bytes(ws.splits.read_bytes())
    teachers = tuple(teacher) if isinstance(teacher, (list, tuple)) else ((teacher,) if teacher else ())
    trainer = Trainer(stage, cfg, ws, info, device, data, teachers)
    trainer._setup_precision(ckpt.get("precision") if ckpt else None)
    trainer.prepare_views()
    if ckpt is not None:
        trainer.restore(ckpt)
    trainer._wrap()
    st = trainer.fit(stop_after_epochs)
    finished = st.epoch >= cfg.train.epochs or st.stopped_early or st.out_of_time
    if info.is_main and finished:
        write_json(
            run_dir / "result.json",
            {
                "stage": stage.name,
                "model": stage.model_name,
                "arch": trainer.module.arch,
                "best_epoch": st.best_epoch,
                "best_val_mean_auc": st.best_auc,
                "epochs_run": st.epoch,
                "stopped_early": st.stopped_early,
                "out_of_time": st.out_of_time,
                "precision": trainer.precision,
                "init": trainer.init.to_dict(),
                "world_size": info.world,
                "total_time_s": sum(h["time_s"] for h in st.history),
                "total_energy_j": (
                    sum(h["energy_j"] for h in st.history)
                    if all(h.get("energy_j") is not None for h in st.history)
                    else None
                ),
                "energy_method": st.history[-1]["energy_method"] if st.history else None,
            },
        )
    barrier(info)
    return run_dir
