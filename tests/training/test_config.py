"""Typed config: paper defaults, TOML files, --set overrides and the shipped configs."""

from pathlib import Path

import pytest

from training.cli import _parser, build_config
from training.config import Config, config_from_dict, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


def test_defaults_are_the_papers():
    c = Config()
    assert (c.teacher.arch, c.teacher.lr, c.student.arch, c.student.lr) == (
        "densenet121",
        1e-4,
        "mobilenet_v2",
        1e-3,
    )
    assert (c.distill.alpha, c.distill.temperature, c.train.weight_decay) == (0.7, 6.0, 0.01)
    assert (c.input.size, c.input.channels, c.data.uncertain) == (224, 3, "ones")
    assert (c.train.hflip, c.train.rotation_degrees) == (True, 10.0)


def test_overrides_are_typed_and_unknown_keys_fail(tmp_path):
    c = load_config(
        None,
        ["student.lr=3e-4", "train.epochs=4", 'data.uncertain="zeros"', "input.size=64", "train.hflip=false"],
    )
    assert c.student.lr == 3e-4 and c.train.epochs == 4 and c.data.uncertain == "zeros"
    assert c.input.size == 64 and c.train.hflip is False
    assert load_config(None, ["teacher.lr=1"]).teacher.lr == 1.0  # int accepted for a float
    with pytest.raises(ValueError, match="unknown config keys"):
        load_config(None, ["train.lrr=1"])
    with pytest.raises(ValueError, match="data.uncertain"):
        load_config(None, ['data.uncertain="maybe"'])
    with pytest.raises(ValueError):
        load_config(None, ['train.epochs="many"'])
    assert config_from_dict(c.to_dict()) == c


@pytest.mark.parametrize("name", ["paper.toml", "nih.toml"])
def test_shipped_configs_load(name):
    c = load_config(CONFIGS / name)
    assert c.data.root == ""  # data paths come from the command line


def test_cli_flags_and_boolean_options(tmp_path):
    a = _parser().parse_args(
        [
            "teacher",
            "--config",
            str(CONFIGS / "nih.toml"),
            "--data-root",
            "/data/x",
            "--epochs",
            "3",
            "--no-progress",
            "--no-channels-last",
            "--set",
            "seed=7",
        ]
    )
    c = build_config(a)
    assert c.data.root == "/data/x" and c.train.epochs == 3 and c.seed == 7
    assert c.train.progress is False and c.train.channels_last is False and c.data.format == "nih"


def test_augmentation_options_are_off_by_default_and_validated():
    assert load_config().jitter() == load_config().jitter().__class__()
    c = load_config(overrides=["train.scale=0.1", "train.contrast=0.2"])
    assert (c.jitter().scale, c.jitter().contrast) == (0.1, 0.2)
    with pytest.raises(ValueError, match="translate"):
        load_config(overrides=["train.translate=2.0"])


def test_a_network_can_have_its_own_schedule_and_stronger_augmentation():
    c = load_config(None, ["student.epochs=60", "student.augment=2.0", "train.scale=0.1", "train.epochs=20"])
    s, t = c.for_role("student"), c.for_role("teacher")
    assert (s.train.epochs, s.train.rotation_degrees, s.train.scale) == (60, 20.0, 0.2)
    assert (s.student.epochs, s.student.augment) == (0, 1.0)  # folded in: resolving again changes nothing
    assert s.for_role("student") == s
    assert t is c and t.train.epochs == 20
    with pytest.raises(ValueError, match="scale"):
        load_config(None, ["student.augment=20", "train.scale=0.1"]).for_role("student")
