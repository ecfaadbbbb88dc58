import pydicom

from kdviewer.core.modelcard import read_card
from kdviewer.core.preprocess import MODEL_READ_MIN_SIDE
from kdviewer.core.resources import example_image, models_dirs, resources_dir


def test_resources_found_from_checkout():
    assert (resources_dir() / "models").is_dir()


def test_env_models_dir_takes_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("KDVIEWER_MODELS", str(tmp_path))
    assert models_dirs()[0] == tmp_path


def test_builtin_example_is_a_real_chest_radiograph():
    ds = pydicom.dcmread(example_image(), stop_before_pixels=True)
    assert ds.Modality == "CR"
    assert ds.BodyPartExamined.upper() == "CHEST"
    assert (ds.Rows, ds.Columns) == (1955, 1841)


def test_installed_build_searches_and_exports_to_the_user_folder(monkeypatch, tmp_path):
    import kdviewer.core.resources as res
    import training.export as export
    from training.export import default_out_dir

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.delenv("KDVIEWER_MODELS", raising=False)
    assert not res.is_installed()  # this checkout
    assert res.models_dirs() == [res.resources_dir() / "models"]
    assert default_out_dir() == res.resources_dir() / "models"
    for where in (res, export):  # each asks for itself
        monkeypatch.setattr(where, "is_installed", lambda: True)
    assert res.models_dirs()[0] == tmp_path / "kdviewer" / "models"
    assert default_out_dir() == tmp_path / "kdviewer" / "models"


def test_the_model_read_keeps_twice_each_shipped_models_input():
    """MODEL_READ_MIN_SIDE (the smaller side the viewer's one reduced read for both models keeps,
    made before a card is loaded) is the default input's; every shipped card's own read side
    (twice its input size, what predict and report read at) must be that or less."""
    cards = sorted((resources_dir() / "models").glob("*.json"))
    assert cards
    for path in cards:
        spec = read_card(path).input
        assert spec.read_min_side == 2 * spec.size <= MODEL_READ_MIN_SIDE, path.name
