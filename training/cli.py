"""``kdviewer-train`` / ``python -m training``: the stages of the training package.

    kdviewer-train teacher  --data-root DIR [--config FILE] [--set section.key=value ...]
    kdviewer-train student  ...   (plain MobileNetV2)
    kdviewer-train distill  ...   (MobileNetV2 distilled from the teacher run)
    kdviewer-train evaluate ...
    kdviewer-train export   ... [--out DIR]
    kdviewer-train graphs   [--models DIR]   (add the ONNX graphs to existing model cards)
    kdviewer-train quantize --models DIR --data-root DIR   (the student's int8 graph, judged on val)
    kdviewer-train scope    --models DIR --data-root DIR [--ood-dir DIR]   (fit the scope check)
    kdviewer-train all      ...   (teacher, student, distill, evaluate, export)
    kdviewer-train speed    ...   (seconds per training image on this machine)
    kdviewer-train prepare  ...   (splits and the decoded-image cache only)

Under ``torchrun --nproc_per_node=N -m training …`` the trainings run with DDP.

The stage modules are imported where a stage needs them, for two reasons: each imports torch, which
must load after :func:`main` has set ``OMP_WAIT_POLICY``; and ``import training.cli`` took 0.3-1.3 s
against 8-14 s with the stage modules (``/usr/bin/time python -c "import training.cli[, training.trainer,
training.evaluate, …]"``, three runs each on the shared 2-core machine, 2026-12-02), which
``--help`` and a mistyped option would otherwise pay.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from kdviewer.core.errors import KdviewerError
from training.config import Config, load_config, read_config
from training.workspace import STAGES as STAGE_DEFS
from training.workspace import Workspace

log = logging.getLogger("training")

TRAIN_STAGES = ("teacher", "student", "distill")
STAGES = (*TRAIN_STAGES, "evaluate", "export", "graphs", "quantize", "scope", "all", "speed", "prepare")


def _folder_option(p: argparse.ArgumentParser, flag: str, help_text: str) -> None:
    p.add_argument(flag, type=Path, metavar="DIR", help=help_text)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kdviewer-train",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("stage", choices=STAGES, help="what to run")
    p.add_argument("--config", type=Path, help="TOML config (default: the paper's settings)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help='override a config value, e.g. --set train.lr=3e-4 --set data.uncertain="zeros"',
    )
    p.add_argument("--data-root", help="folder of the data set (data.root)")
    p.add_argument(
        "--workdir",
        type=Path,
        default=Path("runs"),
        help="work folder: one subfolder per stage, splits.csv, image cache (default: ./runs)",
    )
    p.add_argument(
        "--splits", type=Path, help="reuse this splits.csv (default: <workdir>/splits.csv if present)"
    )
    p.add_argument(
        "--init",
        action="append",
        default=[],
        metavar="PATH",
        help="weights to start from (teacher.init / student.init: a safetensors file or weights-only "
        "state dict; the head loads only if it fits); in 'all' give one per architecture, each is "
        "matched by its keys",
    )
    p.add_argument(
        "--teacher",
        type=Path,
        action="append",
        default=[],
        help="distill: teacher run folder, checkpoint or model card (default: <workdir>/teacher); "
        "repeat it for an ensemble (distill.teachers, combined as distill.ensemble says)",
    )
    _folder_option(
        p,
        "--unlabeled",
        "distill: images without labels added to the training images for the distillation term "
        "only (data.unlabeled); none may be a val/test image",
    )
    p.add_argument(
        "--resume",
        type=Path,
        nargs="?",
        const=Path(""),
        metavar="RUN_DIR",
        help="continue an interrupted run from its last checkpoint (a stage's run folder; "
        "for 'all' the work folder; default: the one --workdir implies)",
    )
    p.add_argument(
        "--stop-after-epochs",
        type=int,
        metavar="N",
        help="stop after N epochs of this invocation, leaving a resumable checkpoint",
    )
    p.add_argument("--out", type=Path, help="export: folder for weights + cards (default: resources/models)")
    _folder_option(
        p,
        "--models",
        "evaluate: the model cards in DIR (e.g. resources/models) instead of the work folder's "
        "runs; graphs: the folder whose cards get ONNX graphs (default: resources/models)",
    )
    _folder_option(
        p,
        "--baseline",
        "evaluate: also the model cards in DIR (as baseline_<name>), each compared with its "
        "namesake (paired bootstrap), e.g. --baseline resources/models for retrained models",
    )
    p.add_argument(
        "--update-cards",
        action="store_true",
        help="evaluate --models DIR: write the heat-map border shares measured here into the cards' "
        "metrics (nothing else in them changes)",
    )
    _folder_option(
        p,
        "--ood-dir",
        "scope, evaluate: out-of-scope images, one kind per sub-folder, whose rejection is reported",
    )
    p.add_argument("--epochs", type=int, help="train.epochs; with --resume (one stage), the run's own count")
    p.add_argument("--batch-size", type=int, help="train.batch_size (global, across ranks)")
    p.add_argument("--device", help="train.device: auto, cpu, cuda, cuda:N")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), help="train.precision")
    p.add_argument("--seed", type=int, help="seed of everything random in the run")
    p.add_argument("--input-size", type=int, help="input.size (the model card records it)")
    p.add_argument("--workers", type=int, help="data.num_workers (decoding processes)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bars")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None, help="torch.compile")
    p.add_argument("--arch", nargs="+", default=["densenet121", "mobilenet_v2"], help="speed: architectures")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32], help="speed: batch sizes")
    p.add_argument("--steps", type=int, default=3, help="speed: timed steps per setting")
    p.add_argument("-v", "--verbose", action="count", default=0)
    return p


def _flag_overrides(a: argparse.Namespace) -> list[str]:
    pairs = [
        ("data.root", a.data_root),
        ("train.epochs", a.epochs),
        ("train.batch_size", a.batch_size),
        ("train.device", a.device),
        ("train.precision", a.precision),
        ("seed", a.seed),
        ("input.size", a.input_size),
        ("data.num_workers", a.workers),
        ("train.progress", a.progress),
        ("train.channels_last", a.channels_last),
        ("train.compile", a.compile),
    ]
    if a.unlabeled is not None:
        pairs.append(("data.unlabeled", str(a.unlabeled.resolve())))
    out = (
        [f"distill.teachers=[{', '.join(_toml_str(str(t.resolve())) for t in a.teacher)}]"]
        if a.teacher
        else []
    )
    for key, value in pairs:
        if value is None:
            continue
        if isinstance(value, bool):
            out.append(f"{key}={'true' if value else 'false'}")
        elif isinstance(value, str):
            out.append(f"{key}={_toml_str(value)}")
        else:
            out.append(f"{key}={value}")
    return out


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _init_overrides(a: argparse.Namespace, cfg: Config) -> list[str]:
    from training.init import arch_of_state_dict, read_state_dict  # torch: see the module's docstring

    out = []
    for path in a.init:
        if a.stage in TRAIN_STAGES:
            role = "teacher" if a.stage == "teacher" else "student"
        else:
            arch = arch_of_state_dict(read_state_dict(path))
            role = "teacher" if arch == cfg.teacher.arch else "student"
        out.append(f"{role}.init={_toml_str(str(Path(path).resolve()))}")
    return out


def build_config(a: argparse.Namespace) -> Config:
    overrides = [*a.overrides, *_flag_overrides(a)]
    cfg = load_config(a.config, overrides)
    return load_config(a.config, [*overrides, *_init_overrides(a, cfg)])


def _setup_logging(verbosity: int) -> None:
    level = logging.DEBUG if verbosity > 1 else logging.INFO
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def _run_all(a: argparse.Namespace, cfg: Config, ws) -> None:
    if a.resume is not None and a.epochs is not None:
        raise ValueError("--epochs with --resume sets one stage's epochs: resume that stage by itself")
    from training import checkpoint
    from training.distributed import barrier
    from training.evaluate import evaluate
    from training.export import export_models
    from training.trainer import train_stage

    for stage in TRAIN_STAGES:
        run = ws.run_dir(stage)
        if a.resume is not None and (run / "result.json").is_file():
            log.info("%s already finished in %s", stage, run)
            continue
        resume = a.resume is not None and (run / checkpoint.LAST).is_file()
        train_stage(
            stage,
            cfg,
            ws,
            resume=resume,
            splits=a.splits,
            stop_after_epochs=a.stop_after_epochs,
        )
        if not (run / "result.json").is_file():
            log.info(
                "%s stopped before its end; continue with: kdviewer-train all --resume %s", stage, ws.root
            )
            return
    info = _current_dist()
    if info.is_main:
        evaluate(cfg, ws, a.splits)
        export_models(cfg, ws, a.out, a.splits)
    barrier(info)


def _current_dist():
    import torch.distributed as dist

    from training.distributed import DistInfo

    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size())
    return DistInfo()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``kdviewer-train``; returns the exit status."""
    a = _parser().parse_args(argv)
    # Idle OpenMP threads sleep instead of spinning: on a machine shared with other processes a
    # spinning thread pool was measured 10-100x slower (set OMP_WAIT_POLICY=ACTIVE to override).
    # Takes effect only if torch is not imported yet (it is not when run as a command).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    _setup_logging(a.verbose)
    from training.distributed import shutdown  # torch: see the module's docstring

    try:
        if a.stage == "graphs":
            from training.export import export_graphs

            for name, path in export_graphs(a.models).items():
                print(f"{name}: {path}")
            return 0
        if a.stage == "scope":
            from training.scope import fit_scopes

            print(json.dumps(fit_scopes(a.models, a.data_root, a.ood_dir), indent=2))
            return 0
        if a.stage == "speed":
            from training.speed import run_speed

            run_speed(a.arch, a.batch_sizes, build_config(a), a.steps)
            return 0
        workdir = a.workdir
        if a.resume is not None and str(a.resume) not in ("", "."):
            workdir = a.resume if a.stage == "all" else a.resume.parent
            if a.stage in TRAIN_STAGES and a.resume.name != STAGE_DEFS[a.stage].model_name:
                raise ValueError(
                    f"{a.resume} is not a {a.stage} run folder (expected …/{STAGE_DEFS[a.stage].model_name})"
                )
        ws = Workspace(workdir)
        if a.resume is not None and a.stage in ("all", "evaluate", "export"):
            saved = next(
                (
                    ws.model_dir(n) / "config.json"
                    for n in ("teacher", "student_plain", "student")
                    if (ws.model_dir(n) / "config.json").is_file()
                ),
                None,
            )
            cfg = read_config(saved) if saved else build_config(a)
        else:
            cfg = build_config(a)
        if a.stage == "quantize":
            from training.quantize import quantize_models

            print(json.dumps(quantize_models(cfg, ws, a.models, splits=a.splits), indent=2))
            return 0
        if a.stage in TRAIN_STAGES:
            from training.trainer import train_stage

            train_stage(
                a.stage,
                cfg,
                ws,
                resume=a.resume is not None,
                splits=a.splits,
                stop_after_epochs=a.stop_after_epochs,
                epochs=a.epochs if a.resume is not None else None,
            )
        elif a.stage == "prepare":
            from training.data import prepare_data
            from training.distributed import DistInfo

            data = prepare_data(cfg, ws, DistInfo())
            print(json.dumps(data.description(), indent=2))
        elif a.stage == "evaluate":
            from training.evaluate import card_models, evaluate

            metrics = evaluate(cfg, ws, a.splits, models_dir=a.models, baseline_dir=a.baseline)
            if a.update_cards:
                from training.export import write_card_metrics

                if a.models is None:
                    raise ValueError("--update-cards needs --models DIR (the cards to update)")
                for name, path in card_models(a.models).items():
                    write_card_metrics(path, heatmap_border=metrics["models"][name]["heatmap_border"])
                    print(f"{name}: {path}")
            if a.ood_dir is not None:
                from training.scope import evaluate_scopes

                evaluate_scopes(a.models, cfg.data.root, a.ood_dir, ws.root / "evaluation" / "scope.json")
        elif a.stage == "export":
            from training.export import export_models

            for name, path in export_models(cfg, ws, a.out, a.splits).items():
                print(f"{name}: {path}")
        else:
            _run_all(a, cfg, ws)
    except (KdviewerError, ValueError, KeyError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 2
    finally:
        shutdown()
    return 0
