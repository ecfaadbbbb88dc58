import pytest
import torch
from torchvision.models import densenet121, mobilenet_v2

from kdviewer.core.models import ARCHITECTURES, build_model, count_parameters, load_torchvision_backbone


@pytest.fixture(scope="module")
def student():
    torch.manual_seed(0)
    return build_model("mobilenet_v2").eval()


def test_parameter_counts_match_the_paper():
    # Paper: teacher DenseNet-121 6.96 M, student MobileNetV2 2.23 M (5-output heads).
    assert round(count_parameters(build_model("densenet121")) / 1e6, 2) == 6.96
    assert round(count_parameters(build_model("mobilenet_v2")) / 1e6, 2) == 2.23


def test_features_and_head_compose_to_forward(student):
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        feats = student.forward_features(x)
        assert feats.shape == (2, 1280, 3, 3)
        assert (feats >= 0).all()  # post-activation map
        torch.testing.assert_close(student.forward_head(feats), student(x))


def test_cam_layer_output_is_the_feature_map(student):
    seen = []
    handle = student.cam_layer.register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        with torch.no_grad():
            feats = student.forward_features(torch.randn(1, 3, 64, 64))
    finally:
        handle.remove()
    torch.testing.assert_close(seen[0], feats)


def test_densenet_applies_relu_after_last_norm():
    m = build_model("densenet121").eval()
    ref = densenet121(weights=None, num_classes=5).eval()
    ref.load_state_dict(m.state_dict(), strict=False)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref(x))


@pytest.mark.parametrize("arch,factory", [("mobilenet_v2", mobilenet_v2), ("densenet121", densenet121)])
def test_torchvision_state_dict_loads_skipping_head(arch, factory):
    tv = factory(weights=None)  # ImageNet-shaped 1000-class head
    model = build_model(arch)
    skipped = load_torchvision_backbone(model, tv.state_dict())
    assert skipped and all(k.startswith("classifier") for k in skipped)
    key = next(k for k in tv.state_dict() if k.endswith("weight") and k.startswith("features"))
    torch.testing.assert_close(model.state_dict()[key], tv.state_dict()[key])


def test_wrong_state_dict_is_an_error():
    with pytest.raises(KeyError):
        load_torchvision_backbone(build_model("mobilenet_v2"), densenet121(weights=None).state_dict())


def test_unknown_architecture():
    with pytest.raises(KeyError, match="resnet"):
        build_model("resnet50")
    assert set(ARCHITECTURES) == {"densenet121", "mobilenet_v2"}
