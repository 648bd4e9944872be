"""The face decoder: architecture, the TPS warp's direction, mean geometry, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from speech2face.faces import TEMPLATE
from speech2face.models import FaceDecoder, FaceDecoderError, mean_geometry
from speech2face.models.landmarks import (
    DLIB_MEAN_SHAPE,
    LandmarkError,
    border_points,
    default_mean_landmarks,
    grid_to_pixels,
    pixels_to_grid,
    read_dlib_mean_shape,
)


def tiny_decoder(feature_dim: int = 32, **kwargs) -> FaceDecoder:
    return FaceDecoder(
        feature_dim, landmark_hidden=[16], texture_channels=16, min_channels=8, **kwargs
    )


@pytest.fixture(scope="module")
def paper_decoder() -> FaceDecoder:
    torch.manual_seed(0)
    return FaceDecoder(4096)


def expected_parameter_count(feature_dim=4096, hidden=256, k=68) -> int:
    count = feature_dim * 1000 + 1000  # fc_in
    count += 1000 * hidden + hidden + hidden * 2 * k + 2 * k  # landmark MLP
    count += 1000 * 14 * 14 * 256 + 14 * 14 * 256  # texture FC
    channels = [256, 128, 64, 32, 32]
    count += sum(25 * a * b + b for a, b in zip(channels[:-1], channels[1:], strict=True))
    return count + 32 * 3 + 3  # 1x1 conv to RGB


def test_architecture(paper_decoder):
    assert paper_decoder.fc_in.in_features == 4096 and paper_decoder.fc_in.out_features == 1000
    deconvs = [m for m in paper_decoder.upsample if isinstance(m, nn.ConvTranspose2d)]
    assert [m.out_channels for m in deconvs] == [128, 64, 32, 32]
    assert all(m.kernel_size == (5, 5) and m.stride == (2, 2) for m in deconvs)
    assert paper_decoder.texture_fc.out_features == 14 * 14 * 256
    assert paper_decoder.to_rgb.kernel_size == (1, 1) and paper_decoder.to_rgb.out_channels == 3
    assert sum(p.numel() for p in paper_decoder.parameters()) == expected_parameter_count()


def test_output_shapes_and_range(paper_decoder):
    features = torch.randn(2, 4096)
    with torch.no_grad():
        out = paper_decoder(features)
        embedded = paper_decoder.embed(features)
    assert out.image.shape == out.texture.shape == (2, 3, 224, 224)
    assert out.landmarks.shape == (2, 68, 2)
    assert embedded.shape == (2, 1000)
    assert out.image.min() >= 0.0 and out.image.max() <= 1.0
    # Untrained, the landmarks sit on the mean geometry (within a pixel or two).
    assert (out.landmarks - paper_decoder.mean_landmarks).abs().max() < 3.0
    with torch.no_grad():
        assert torch.allclose(paper_decoder.render(features[:1]), out.image[:1], atol=1e-4)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    decoder = tiny_decoder()
    out = decoder(torch.randn(2, 32))
    (out.image.mean() + out.landmarks.pow(2).mean() * 1e-3).backward()
    for name, parameter in decoder.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name


def test_landmark_gradient_flows_through_the_warp():
    torch.manual_seed(0)
    decoder = tiny_decoder()
    out = decoder(torch.randn(1, 32))
    out.image.mean().backward()  # image only: landmarks matter through the TPS warp alone
    assert decoder.landmark_mlp[-1].weight.grad.abs().sum() > 0


def test_to_mean_geometry_inverts_the_decoder_warp():
    """Warping a face to given landmarks and back to the mean geometry restores it."""
    decoder = tiny_decoder()
    mean = decoder.mean_landmarks
    centre = mean.mean(dim=0)
    landmarks = (centre + (mean - centre) * 1.08 + torch.tensor([3.0, -2.0])).unsqueeze(0)
    texture = torch.rand(1, 3, 14, 14)
    texture = nn.functional.interpolate(texture, size=224, mode="bilinear")  # smooth image
    face = decoder.warp(texture, pixels_to_grid(mean), pixels_to_grid(landmarks))
    back = decoder.to_mean_geometry(face, landmarks)
    inner = (slice(None), slice(None), slice(40, 184), slice(40, 184))
    assert (back[inner] - texture[inner]).abs().mean() < 0.01


def test_mean_geometry_buffer_is_settable_and_saved():
    decoder = tiny_decoder()
    rng = np.random.default_rng(0)
    samples = default_mean_landmarks()[None] + rng.normal(0, 3, size=(10, 68, 2))
    samples[3] = np.nan  # a failed detection is ignored
    mean = mean_geometry(samples)
    expected = np.delete(samples, 3, axis=0).mean(axis=0)
    assert mean.shape == (68, 2) and mean.dtype == np.float32
    np.testing.assert_allclose(mean, expected, atol=1e-4)
    decoder.set_mean_geometry(mean)
    assert torch.allclose(decoder.state_dict()["mean_landmarks"], torch.from_numpy(mean))
    with pytest.raises(FaceDecoderError, match="mean landmarks"):
        decoder.set_mean_geometry(mean[:10])
    with pytest.raises(LandmarkError):
        mean_geometry(np.full((2, 68, 2), np.nan))
    with pytest.raises(FaceDecoderError, match="no default mean geometry"):
        tiny_decoder(num_landmarks=5)
    assert tiny_decoder(num_landmarks=5, mean_landmarks=mean[:5]).mean_landmarks.shape == (5, 2)


def test_rejects_wrong_feature_width():
    with pytest.raises(FaceDecoderError, match=r"\(B, 32\)"):
        tiny_decoder()(torch.randn(2, 31))


def test_default_layout_is_dlib_mean_shape_inside_the_crop():
    np.testing.assert_allclose(read_dlib_mean_shape(), DLIB_MEAN_SHAPE, atol=1e-4)
    layout = default_mean_landmarks()
    assert layout.shape == (68, 2) and layout.dtype == np.float32
    assert layout.min() > 10 and layout.max() < 214
    midline = TEMPLATE[:, 0].mean()  # the alignment template's vertical midline
    assert abs(layout[8, 0] - midline) < 0.1  # chin on it
    assert layout[8, 1] > layout[33, 1] > layout[27, 1]  # chin below nose tip below bridge
    left_eye, right_eye = layout[36:42].mean(0), layout[42:48].mean(0)
    assert left_eye[0] < right_eye[0] and abs(left_eye[1] - right_eye[1]) < 0.1
    # The layout sits where alignment puts a face: eyes on the template's, same distance.
    np.testing.assert_allclose(left_eye, TEMPLATE[0], atol=1.5)
    np.testing.assert_allclose(right_eye, TEMPLATE[1], atol=1.5)
    template_gap = TEMPLATE[1, 0] - TEMPLATE[0, 0]  # 43.7 px
    assert abs((right_eye[0] - left_eye[0]) - template_gap) < 2.0


def test_coordinate_conversions_and_border():
    points = torch.tensor([[0.0, 0.0], [223.0, 111.5]])
    grid = pixels_to_grid(points)
    assert torch.allclose(grid, torch.tensor([[-1 + 1 / 224, -1 + 1 / 224], [1 - 1 / 224, 0.0]]))
    assert torch.allclose(grid_to_pixels(grid), points, atol=1e-4)
    border = border_points(3)
    assert border.shape == (8, 2)
    assert ((border.abs() == 1).any(dim=1)).all()
    assert len({tuple(p) for p in border.tolist()}) == 8


def test_upsampling_choice_and_where_each_is_used(tmp_path):
    """experiment=paper keeps the paper's transposed convolutions; debug=demo resizes, then
    convolves; the choice is saved in checkpoints and checked when one is read."""
    from speech2face.config import compose
    from speech2face.models import load_checkpoint, save_checkpoint
    from speech2face.models.checkpoint import CheckpointError

    paper = compose("train", ["experiment=paper"])
    demo = compose("train", ["debug=demo"])
    assert paper.model.decoder.upsample == "transposed"
    assert demo.model.decoder.upsample == "resize"

    small = {"feature_dim": 16, "image_size": 56, "texture_base": 14, "texture_channels": 8,
             "min_channels": 4, "landmark_hidden": [8]}  # fmt: skip
    resize = FaceDecoder(**small, upsample="resize")
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in resize.modules())
    convs = [m for m in resize.upsample if isinstance(m, nn.Conv2d)]
    assert [m.kernel_size for m in convs] == [(3, 3), (3, 3)]
    path = save_checkpoint(resize, tmp_path / "resize.pt")
    rebuilt = load_checkpoint(path, kind="face_decoder")
    assert rebuilt.config.upsample == "resize"
    features = torch.randn(2, 16)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(features).image, resize.eval()(features).image)

    with pytest.raises(FaceDecoderError, match="upsample must be one of transposed, resize"):
        FaceDecoder(**small, upsample="bilinear")
    payload = torch.load(path, weights_only=True)
    payload["config"]["upsample"] = "pixelshuffle"
    torch.save(payload, tmp_path / "edited.pt")
    with pytest.raises(CheckpointError, match="config.upsample must be one of transposed, resize"):
        load_checkpoint(tmp_path / "edited.pt", kind="face_decoder")
