"""The voice encoder of Table 1: shapes, parameter count, layer order, gradients."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from speech2face.audio import N_FRAMES, num_frames
from speech2face.config import config_dir
from speech2face.models import VoiceEncoder, VoiceEncoderConfig, VoiceEncoderError
from speech2face.models.layers import ConvReLUBN, TimeMaxPool

THREE_SECONDS = num_frames(3 * 16_000)  # 298


def tiny_encoder(out_dim: int = 16) -> VoiceEncoder:
    cfg = OmegaConf.load(config_dir() / "model" / "voice_encoder_tiny.yaml")
    kwargs = OmegaConf.to_container(cfg)
    kwargs.pop("_target_")
    kwargs["out_dim"] = out_dim
    return VoiceEncoder(**kwargs)


@pytest.fixture(scope="module")
def paper_encoder() -> VoiceEncoder:
    torch.manual_seed(0)
    return VoiceEncoder().eval()


def expected_parameter_count(out_dim: int = 4096) -> int:
    channels = [2, 64, 64, 128, 128, 128, 256, 512, 512, 512]
    convs = sum(4 * 4 * a * b + b for a, b in zip(channels[:-1], channels[1:], strict=True))
    batchnorms = 2 * sum(channels[1:9]) + 2 * 512  # conv1-8, then after the time pooling
    fcs = (29_184 * 4096 + 4096) + (4096 * out_dim + out_dim)
    return convs + batchnorms + fcs


def test_first_fc_takes_29184_inputs(paper_encoder):
    assert paper_encoder.config.out_freq == 57
    assert paper_encoder.config.out_frames(N_FRAMES) == 6
    assert paper_encoder.fc1.in_features == 29_184 == 57 * 512
    assert paper_encoder.fc1.out_features == 4096
    assert paper_encoder.fc2.out_features == 4096


def test_parameter_count(paper_encoder):
    assert sum(p.numel() for p in paper_encoder.parameters()) == expected_parameter_count()


def test_six_and_three_seconds_run(paper_encoder):
    maps = []
    handle = paper_encoder.convs.register_forward_hook(lambda m, i, o: maps.append(o.shape))
    with torch.no_grad():
        six = paper_encoder(torch.randn(1, 2, N_FRAMES, 257))
        three = paper_encoder(torch.randn(1, 2, THREE_SECONDS, 257))
    handle.remove()
    assert six.shape == three.shape == (1, 4096)
    assert maps == [(1, 512, 6, 57), (1, 512, 1, 57)]
    assert torch.isfinite(six).all() and torch.isfinite(three).all()


def test_layer_order_is_conv_relu_bn_with_time_only_pooling(paper_encoder):
    layers = list(paper_encoder.convs)
    blocks = [m for m in layers if isinstance(m, ConvReLUBN)]
    pools = [m for m in layers if isinstance(m, TimeMaxPool)]
    assert len(blocks) == 8 and len(pools) == 4
    for block in blocks:
        assert [type(m) for m in block] == [nn.Conv2d, nn.ReLU, nn.BatchNorm2d]
        assert block[0].kernel_size == (4, 4) and block[0].padding == (0, 0)
    assert [b[0].stride for b in blocks] == [(1, 1)] * 7 + [(2, 2)]
    conv9 = layers[-1]
    assert type(conv9) is nn.Conv2d and conv9.stride == (2, 2)  # no ReLU/BN after conv9
    assert [pool.kernel_size for pool in pools] == [(2, 1)] * 4
    # Pools follow conv3, conv4, conv5 and conv6.
    after = [type(layers[i - 1]) for i, m in enumerate(layers) if isinstance(m, TimeMaxPool)]
    assert after == [ConvReLUBN] * 4
    assert [m.__class__ for m in paper_encoder.post_pool] == [nn.ReLU, nn.BatchNorm2d]


def test_batchnorm_sees_only_rectified_inputs():
    """BatchNorm sits after ReLU: every BN input is non-negative."""
    torch.manual_seed(0)
    encoder = tiny_encoder()
    minima = []
    for module in encoder.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.register_forward_pre_hook(lambda m, args: minima.append(args[0].min().item()))
    encoder(torch.randn(2, 2, 300, 257))
    assert len(minima) == 9  # conv1-8 and the one after the time pooling
    assert min(minima) >= 0.0


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    encoder = tiny_encoder().train()
    encoder(torch.randn(2, 2, THREE_SECONDS, 257)).pow(2).sum().backward()
    for name, parameter in encoder.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name


def test_output_width_follows_config_and_is_linear():
    encoder = tiny_encoder(out_dim=128).eval()
    with torch.no_grad():
        out = encoder(torch.randn(3, 2, N_FRAMES, 257))
    assert out.shape == (3, 128)
    assert (out < 0).any()  # linear output layer: negative values are reachable


def test_rejects_bad_inputs():
    encoder = tiny_encoder()
    with pytest.raises(VoiceEncoderError, match=r"\(B, 2, T, 257\)"):
        encoder(torch.randn(1, 2, N_FRAMES, 256))
    shortest = encoder.min_frames()
    assert shortest == 259
    with pytest.raises(VoiceEncoderError, match=f"at least {shortest}"):
        encoder(torch.randn(2, 2, shortest - 1, 257))
    assert encoder.eval()(torch.randn(1, 2, shortest, 257)).shape == (1, 16)


def test_config_round_trip_and_validation():
    cfg = VoiceEncoderConfig()
    assert cfg.fc_in == 29_184
    assert VoiceEncoder.from_config({"out_dim": 8, "hidden_dim": 8}).config.out_dim == 8
    with pytest.raises(VoiceEncoderError, match="pool_after"):
        VoiceEncoderConfig(pool_after=[9])
    with pytest.raises(VoiceEncoderError, match="n_freq"):
        VoiceEncoderConfig(n_freq=20)
