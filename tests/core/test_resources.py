import pydicom

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
