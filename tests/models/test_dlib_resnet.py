"""dlib's face recognition ResNet in PyTorch gives dlib's own descriptors.

The reference is dlib's ``compute_face_descriptor`` on the same 150x150 chips, cut by dlib's
pipeline (frontal detector, 5-point predictor, ``get_face_chip``) from real faces that ship in
scikit-image (the astronaut; LFW faces, upscaled onto a plain background), and on noise.
"""

from __future__ import annotations

from pathlib import Path

import dlib
import numpy as np
import pytest
import torch

from speech2face.models.dlib_resnet import (
    DLIB_CHIP_PADDING,
    DLIB_CHIP_SIZE,
    DLIB_DIM,
    DLIB_INPUT_SCALE,
    MAX_DAT_BYTES,
    DlibModelError,
    DlibReader,
    DlibResNet,
    add_zero_filled,
    chips_to_tensor,
    dlib_five_point_path,
    dlib_model_path,
    read_dlib_resnet,
)
from tests.models.faces import real_faces

LFW_FACES = 24  # with the astronaut: 25 frames, dlib's detector finds faces in most
DETECTOR_UPSAMPLE = 1
# Measured: 4.5e-7 at most (cosine > 1 - 1e-7) over 93 real faces, float32 both sides.
MAX_ABS_DIFF = 5e-6
MIN_COSINE = 0.999999


@pytest.fixture(scope="module")
def port() -> DlibResNet:
    return DlibResNet.from_dat()


@pytest.fixture(scope="module")
def dlib_net():
    return dlib.face_recognition_model_v1(dlib_model_path())


@pytest.fixture(scope="module")
def face_chips() -> list[np.ndarray]:
    """dlib's chips ``(150, 150, 3)`` uint8 of the real faces its detector finds."""
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(dlib_five_point_path())
    chips = []
    for frame in real_faces(LFW_FACES):
        boxes = detector(frame, DETECTOR_UPSAMPLE)
        if len(boxes):
            shape = predictor(frame, boxes[0])
            chips.append(
                dlib.get_face_chip(frame, shape, size=DLIB_CHIP_SIZE, padding=DLIB_CHIP_PADDING)
            )
    return chips


def dlib_descriptors(dlib_net, chips: list[np.ndarray]) -> np.ndarray:
    """dlib's descriptors ``(B, 128)`` as the project computes them."""
    return np.asarray([np.asarray(d) for d in dlib_net.compute_face_descriptor(chips)])


def assert_matches(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.shape == theirs.shape == (len(theirs), DLIB_DIM)
    assert ours.dtype == np.float32
    assert np.abs(ours - theirs).max() < MAX_ABS_DIFF
    cosine = np.sum(ours * theirs, axis=1) / (
        np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1)
    )
    assert cosine.min() > MIN_COSINE


def test_real_faces_give_dlibs_descriptors(port, dlib_net, face_chips):
    assert len(face_chips) >= 20
    theirs = dlib_descriptors(dlib_net, face_chips)
    assert_matches(port.describe(face_chips), theirs)
    # dlib's descriptors are not normalised: the port keeps their norms.
    assert not np.allclose(np.linalg.norm(theirs, axis=1), 1.0, atol=0.05)


def test_noise_chips_give_dlibs_descriptors(port, dlib_net):
    rng = np.random.default_rng(0)
    size = (DLIB_CHIP_SIZE, DLIB_CHIP_SIZE, 3)
    chips = [rng.integers(0, 256, size, dtype=np.uint8) for _ in range(4)]
    chips += [np.zeros(size, np.uint8), np.full(size, 255, np.uint8)]
    assert_matches(port.describe(chips), dlib_descriptors(dlib_net, chips))


def test_batches_and_single_chips_agree(port, face_chips):
    chips = chips_to_tensor(face_chips[:4])
    assert chips.shape == (4, 3, DLIB_CHIP_SIZE, DLIB_CHIP_SIZE) and chips.max() <= 255
    with torch.no_grad():
        batch = port(chips)
        singles = torch.cat([port(chips[i : i + 1]) for i in range(len(chips))])
    assert batch.dtype == torch.float32
    torch.testing.assert_close(batch, singles, atol=1e-6, rtol=0)


def test_gradients_reach_the_chips(port):
    chips = torch.full((1, 3, DLIB_CHIP_SIZE, DLIB_CHIP_SIZE), 128.0, requires_grad=True)
    port(chips).square().sum().backward()
    assert chips.grad is not None and torch.isfinite(chips.grad).all()
    assert chips.grad.abs().sum() > 0


def test_the_file_is_read_whole(tmp_path):
    parsed = read_dlib_resnet()
    assert parsed.mean_rgb == pytest.approx((122.782, 117.001, 104.298), abs=1e-4)
    assert parsed.margin == pytest.approx(0.04) and parsed.distance_threshold == pytest.approx(0.6)
    assert set(parsed.state_dict) == set(DlibResNet().state_dict())
    assert sum(t.numel() for t in parsed.state_dict.values()) == 5_614_595

    data = Path(dlib_model_path()).read_bytes()
    broken = {
        "truncated.dat": (data[:-1], "ends early"),
        "longer.dat": (data + b"\x00", "1 bytes left"),
        # a layer of another type where anet_type has the max pool
        "avg.dat": (data.replace(b"max_pool_2", b"avg_pool_2"), "expected a max_pool"),
    }
    for name, (content, message) in broken.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DlibModelError, match=message):
            read_dlib_resnet(tmp_path / name)
    with pytest.raises(DlibModelError, match="cannot read"):
        read_dlib_resnet(tmp_path / "missing.dat")
    huge = tmp_path / "huge.dat"  # sparse: its size is refused before any byte is read
    with open(huge, "wb") as handle:
        handle.truncate(MAX_DAT_BYTES + 1)
    with pytest.raises(DlibModelError, match="about 22.5 MB"):
        read_dlib_resnet(huge)


def test_reader_decodes_dlibs_scalars():
    def reader(*chunks: bytes) -> DlibReader:
        return DlibReader(b"".join(chunks), "test")

    # Integers: control byte (0x80: negative; low bits: byte count), little-endian bytes.
    assert reader(b"\x01\x00").read_int() == 0
    assert reader(b"\x81\x05").read_int() == -5
    assert reader(b"\x02\x80\x12").read_int() == 0x1280
    assert reader(b"\x08" + bytes(7) + b"\x01").read_int() == 1 << 56
    with pytest.raises(DlibModelError, match="control byte"):
        reader(b"\x81\x05").read_int(unsigned=True)
    with pytest.raises(DlibModelError, match="control byte"):
        reader(b"\x09" + bytes(9)).read_int()
    # Floats: mantissa then exponent; 0.04 as written by dlib (0xa3d70a * 2**-28).
    assert reader(b"\x03\x0a\xd7\xa3\x81\x1c").read_float() == float(np.float32(0.04))
    assert reader(b"\x81\x03\x01\x01").read_float() == -6.0
    assert reader(b"\x01\x00\x02\x00\x7d").read_float() == float("inf")  # exponent 32000
    with pytest.raises(DlibModelError, match="float out of range"):
        reader(b"\x01\x01\x02\x00\x10").read_float()  # 1 * 2**4096
    with pytest.raises(DlibModelError, match="old text format"):
        reader(b"1.5 ").read_float()
    # Bools are ASCII, strings are a length and bytes.
    assert reader(b"1").read_bool() and not reader(b"0").read_bool()
    assert reader(b"\x01\x05relu_").read_string() == "relu_"
    # Tensors: version 2, shape, raw little-endian float32.
    values = np.array([1.5, -2.0], "<f4").tobytes()
    tensor = reader(b"\x01\x02\x01\x02\x01\x01\x01\x01\x01\x01", values).read_tensor()
    np.testing.assert_array_equal(tensor.reshape(-1), [1.5, -2.0])


def test_residual_sums_zero_fill_the_smaller_tensor():
    branch = torch.ones(1, 4, 3, 3)
    shortcut = torch.full((1, 2, 4, 4), 2.0)
    total = add_zero_filled(branch, shortcut)
    assert total.shape == (1, 4, 4, 4)
    assert total[0, 0, 0, 0] == 3 and total[0, 0, 3, 3] == 2
    assert total[0, 3, 0, 0] == 1 and total[0, 3, 3, 3] == 0


def test_input_is_scaled_like_dlibs_input_layer(port):
    assert DLIB_INPUT_SCALE == 256
    torch.testing.assert_close(
        port.mean_rgb, torch.tensor([122.782, 117.001, 104.298]), atol=1e-4, rtol=0
    )


def test_bad_chips_are_refused(port):
    with pytest.raises(DlibModelError, match=r"\(B, 3, 150, 150\)"):
        port(torch.zeros(1, 3, 224, 224))
    with pytest.raises(DlibModelError, match=r"\(B, 3, 150, 150\)"):
        port(torch.zeros(3, 150, 150))
    assert port.describe([]).shape == (0, DLIB_DIM)
