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


def test_installed_build_searches_and_exports_to_the_user_folder(monkeypatch, tmp_path):
    import kdviewer.core.resources as res
    from training.export import default_out_dir

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.delenv("KDVIEWER_MODELS", raising=False)
    assert not res.is_installed()  # this checkout
    assert res.models_dirs() == [res.resources_dir() / "models"]
    assert default_out_dir() == res.resources_dir() / "models"
    monkeypatch.setattr(res, "is_installed", lambda: True)
    assert res.models_dirs()[0] == tmp_path / "kdviewer" / "models"
    assert default_out_dir() == tmp_path / "kdviewer" / "models"
