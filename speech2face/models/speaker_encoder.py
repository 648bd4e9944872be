"""A pretrained GE2E speaker encoder as the voice encoder: spectrogram -> face feature.

The speaker encoder is Resemblyzer's (Wan et al., "Generalized End-to-End Loss for Speaker
Verification", ICASSP 2018, trained by resemble-ai; Apache-2.0, weights in its wheel as
``resemblyzer/pretrained.pt``), re-implemented here in torch so that it takes the voice
encoder's own input, the paper's compressed complex spectrogram ``(B, 2, T, 257)``:

1. the power law is inverted on the real and imaginary parts, giving each frame's exact
   512-point spectrum; its inverse FFT is the 400-sample Hann-windowed frame (zero-padded to
   512), whose 400-point FFT is then exactly the spectrum Resemblyzer's ``librosa`` STFT takes
   of the same frame (``n_fft=400``: 201 bins 40 Hz apart), so its power needs no rescaling;
2. the level is normalised as Resemblyzer's ``normalize_volume`` does to -30 dBFS, in the
   spectral domain: the frames' mean power (Parseval) over the window's energy estimates the
   waveform's mean square, and the power spectrum is scaled to bring it to the target.
   Resemblyzer only raises quiet audio (``increase_only=True``); here louder audio is lowered
   too, so the embedding does not depend on the input's level;
3. 40 mel bands (``librosa.filters.mel(sr=16000, n_fft=400, n_mels=40)``: Slaney's mel
   scale, area-normalised triangles), no logarithm;
4. partial windows of 160 frames (1.6 s), 1.3 per second (every 77 frames), the last kept
   when it holds at least 75 % of a window of signal (Resemblyzer's ``compute_partial_slices``,
   frames past the end being zeros), each through a 3-layer LSTM (40 -> 256), a linear layer
   (256 -> 256), ReLU and L2 normalisation; their mean, L2-normalised, is the utterance's
   256-D speaker embedding.

A trainable head then maps the embedding to the face feature: ``fc1`` (256 -> hidden), ReLU,
``fc2`` (hidden -> out_dim, linear; the trainer starts its bias at the mean face).

Two differences from Resemblyzer remain, both in the framing of its front end, which sees the
waveform: its STFT is centred (frame ``t`` centred on sample ``160 t``, the waveform
zero-padded by 200 samples at each end), ours starts at sample 0 (frame ``f`` centred on
sample ``160 f + 200``); and its ``preprocess_wav`` also cuts long silences with a voice
activity detector, which a spectrogram cannot undo. Fed ``spectrogram`` of a waveform padded
by 200 zeros at each end, the frames are the same as Resemblyzer's.

:meth:`GE2EVoiceEncoder.pretrained` (the Hydra target) loads the weights; a model rebuilt
from a checkpoint (:meth:`GE2EVoiceEncoder.from_config`) takes them from its state dict and
needs no Resemblyzer.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speech2face.audio import HOP_LENGTH, N_FFT, N_FREQ, POWER_LAW, SAMPLE_RATE, WIN_LENGTH
from speech2face.errors import S2FError

IN_CHANNELS = 2  # real and imaginary parts of the compressed spectrogram
GE2E_N_FFT = WIN_LENGTH  # Resemblyzer's STFT: 400-point FFT of the 25 ms frame, no padding
GE2E_N_BINS = GE2E_N_FFT // 2 + 1  # 201 bins, 40 Hz apart
N_MELS = 40  # Resemblyzer's mel_n_channels
LSTM_HIDDEN = 256  # model_hidden_size
LSTM_LAYERS = 3  # model_num_layers
EMBED_DIM = 256  # model_embedding_size: the speaker embedding's width
PARTIAL_FRAMES = 160  # partials_n_frames: 160 frames of 10 ms = 1.6 s
PARTIAL_RATE = 1.3  # partial windows per second: one every round(16000 / 1.3 / 160) = 77 frames
MIN_COVERAGE = 0.75  # the last partial is kept when >= 75 % of it is signal
LEVEL_DBFS = -30.0  # audio_norm_target_dBFS
# Sum of the periodic Hann window's squares: N (1/4 + 1/8) = 3 N / 8 = 150 for N = 400.
WINDOW_ENERGY = 3 * WIN_LENGTH / 8
SILENCE_MEAN_SQUARE = 1e-10  # -100 dBFS: a quieter input is not raised further (all-zero input)
# Above this per-coordinate noise the 256-D unit embedding is under noise 10x its length.
MAX_EMBEDDING_NOISE = 10 / math.sqrt(EMBED_DIM)
MAX_HEADS = 16  # independent heads averaged at inference (3 steady the demo's)
HIDDEN_DIM = 4096  # the head's hidden width, as the paper's first fully connected layer
FEATURE_DIM = 4096  # VGG-Face fc7
WEIGHTS_FILE = "pretrained.pt"  # inside the resemblyzer package
WEIGHT_PREFIXES = ("lstm.", "linear.")  # of the file's model_state entries that are the network
INSTALL_HINT = 'pip install -e ".[ge2e]" (or pip install resemblyzer==0.1.4)'

__all__ = [
    "EMBED_DIM",
    "GE2EEncoderConfig",
    "GE2EEncoderError",
    "GE2ENetwork",
    "GE2EVoiceEncoder",
    "GE2EWeightsError",
    "mel_filterbank",
    "partial_starts",
    "resemblyzer_weights_path",
]


class GE2EEncoderError(S2FError, ValueError):
    """A spectrogram the GE2E voice encoder cannot take, or an impossible configuration."""


class GE2EWeightsError(S2FError, RuntimeError):
    """The pretrained GE2E weights are missing (no resemblyzer) or unreadable."""


# --------------------------------------------------------------------------- front end


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, ``htk=False``): linear below 1 kHz, 200/3 Hz
    a mel, logarithmic above, 27 mels an octave of 6.4."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel = 1000.0, 1000.0 / f_sp
    logstep = math.log(6.4) / 27.0
    mels = hz / f_sp
    above = hz >= min_log_hz
    mels[above] = min_log_mel + np.log(hz[above] / min_log_hz) / logstep
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel = 1000.0, 1000.0 / f_sp
    logstep = math.log(6.4) / 27.0
    hz = f_sp * mels
    above = mels >= min_log_mel
    hz[above] = min_log_hz * np.exp(logstep * (mels[above] - min_log_mel))
    return hz


def mel_filterbank(
    sample_rate: int = SAMPLE_RATE, n_fft: int = GE2E_N_FFT, n_mels: int = N_MELS
) -> Tensor:  # -> (n_mels, n_fft // 2 + 1) float32
    """``librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)``: triangles on
    Slaney's mel scale from 0 Hz to Nyquist, each scaled to unit area in Hz (``norm="slaney"``:
    2 / bandwidth), computed here without importing librosa."""
    bins = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)  # (n_fft // 2 + 1,) Hz
    edges = _mel_to_hz(np.linspace(0.0, _hz_to_mel(np.array([sample_rate / 2]))[0], n_mels + 2))
    widths = np.diff(edges)  # (n_mels + 1,)
    ramps = edges[:, None] - bins[None, :]  # (n_mels + 2, bins)
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))  # (n_mels, bins)
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return torch.from_numpy(weights.astype(np.float32))


def partial_starts(
    frames: int,
    partial_frames: int = PARTIAL_FRAMES,
    rate: float = PARTIAL_RATE,
    min_coverage: float = MIN_COVERAGE,
) -> list[int]:
    """First frames of the partial windows over ``frames`` frames: Resemblyzer's
    ``VoiceEncoder.compute_partial_slices`` for the waveform whose centred STFT has
    ``frames`` frames, ``(frames - 1) * 160`` samples (``ceil((n + 1) / 160) == frames``).

    Windows start every ``round(16000 / rate / 160)`` frames (77) while they start within
    ``frames - partial_frames + step`` (so the last may run past the end); it is dropped
    when less than ``min_coverage`` of it holds signal, unless it is the only one.
    """
    step = _partial_hop(rate)
    stop = max(1, frames - partial_frames + step + 1)
    starts = list(range(0, stop, step))
    samples = (frames - 1) * HOP_LENGTH
    coverage = (samples - starts[-1] * HOP_LENGTH) / (partial_frames * HOP_LENGTH)
    if coverage < min_coverage and len(starts) > 1:
        starts.pop()
    return starts


def _partial_hop(rate: float) -> int:
    """Frames between partial windows: ``round(16000 / rate / 160)`` (77 for 1.3 a second)."""
    return int(np.round(SAMPLE_RATE / rate / HOP_LENGTH))


# --------------------------------------------------------------------------- network


class GE2ENetwork(nn.Module):
    """Resemblyzer's speaker encoder: mel partials ``(N, F, 40)`` -> ``(N, 256)`` unit
    vectors (a 3-layer LSTM's last hidden state, linear, ReLU, L2 normalisation). Its
    parameter names are Resemblyzer's (``lstm.*``, ``linear.*``)."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(N_MELS, LSTM_HIDDEN, LSTM_LAYERS, batch_first=True)
        self.linear = nn.Linear(LSTM_HIDDEN, EMBED_DIM)

    def forward(self, mels: Tensor) -> Tensor:  # mels: (N, F, 40) -> (N, 256)
        _, (hidden, _) = self.lstm(mels)  # hidden: (3, N, 256)
        return F.normalize(F.relu(self.linear(hidden[-1])), dim=1)


# --------------------------------------------------------------------------- model


@dataclass
class GE2EEncoderConfig:
    """Architecture of a :class:`GE2EVoiceEncoder`; stored in its checkpoints.

    The GE2E network's sizes are fixed by its pretrained weights; these are the head's and
    the partial windows' (Resemblyzer's ``embed_utterance`` defaults).
    """

    out_dim: int = FEATURE_DIM
    hidden_dim: int = HIDDEN_DIM
    freeze_encoder: bool = True
    partial_frames: int = PARTIAL_FRAMES
    partial_rate: float = PARTIAL_RATE
    min_coverage: float = MIN_COVERAGE
    level_dbfs: float | None = LEVEL_DBFS
    embedding_noise: float = 0.0
    embedding_dropout: float = 0.0
    heads: int = 1

    def __post_init__(self) -> None:
        for name in ("out_dim", "hidden_dim", "partial_frames", "heads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GE2EEncoderError(f"{name} must be a positive integer, got {value!r}")
        if self.heads > MAX_HEADS:
            raise GE2EEncoderError(f"heads must be at most {MAX_HEADS}, got {self.heads}")
        if not isinstance(self.freeze_encoder, bool):
            raise GE2EEncoderError(f"freeze_encoder must be true or false: {self.freeze_encoder!r}")
        self.partial_rate = float(self.partial_rate)
        self.min_coverage = float(self.min_coverage)
        if not (math.isfinite(self.partial_rate) and self.partial_rate > 0):
            raise GE2EEncoderError(f"partial_rate must be > 0, got {self.partial_rate}")
        hop = _partial_hop(self.partial_rate)
        if not 0 < hop <= self.partial_frames:
            lowest = SAMPLE_RATE / (HOP_LENGTH * self.partial_frames)
            raise GE2EEncoderError(
                f"partial_rate={self.partial_rate} puts the partial windows {hop} frames apart: "
                f"it must be at least {lowest:g} and at most {SAMPLE_RATE / HOP_LENGTH:g}"
            )
        if not 0 < self.min_coverage <= 1:
            raise GE2EEncoderError(f"min_coverage must be in (0, 1], got {self.min_coverage}")
        if self.level_dbfs is not None:
            self.level_dbfs = float(self.level_dbfs)
            if not (math.isfinite(self.level_dbfs) and self.level_dbfs <= 0):
                raise GE2EEncoderError(f"level_dbfs must be <= 0 or null, got {self.level_dbfs}")
        for name, top in (("embedding_noise", MAX_EMBEDDING_NOISE), ("embedding_dropout", 1.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise GE2EEncoderError(f"{name} must be a number, got {value!r}")
            value = float(value)
            if not (math.isfinite(value) and 0 <= value < top):
                raise GE2EEncoderError(f"{name} must be in [0, {top:g}), got {value}")
            setattr(self, name, value)

    @property
    def partial_hop(self) -> int:
        """Frames between the starts of two partial windows (77)."""
        return _partial_hop(self.partial_rate)


class GE2EVoiceEncoder(nn.Module):
    """Spectrogram ``(B, 2, T, 257)`` -> predicted face feature ``(B, out_dim)`` through a
    GE2E speaker embedding (see the module's description).

    Args:
        out_dim: output width, the face encoder's ``dim`` (4,096 for VGG-Face fc7).
        hidden_dim: the head's hidden width.
        freeze_encoder: keep the GE2E network fixed (no gradients, always in eval mode);
            ``False`` fine-tunes it with the head.
        partial_frames, partial_rate, min_coverage: the partial windows (160 frames, 1.3 a
            second, the last kept at 75 % coverage).
        level_dbfs: the level every input is brought to (-30 dBFS); ``None``: as it comes.
        embedding_noise: in training only, the standard deviation of Gaussian noise added
            to each of the unit-length embedding's 256 coordinates before the head (the
            sum is brought back to unit length); 0: none.
        embedding_dropout: in training only, the share of the embedding's coordinates the
            head does not see (dropout); 0: none.
        heads: independent heads (each its own weights, noise and dropout, each trained on
            the whole batch: :meth:`forward` in training returns ``(B, heads, out_dim)``
            and the trainer averages their losses); their outputs are averaged at
            inference, which steadies what the head makes of voices unlike the training
            ones across seeds. 1: one head, ``fc1`` and ``fc2`` linear layers.

    The two regularise the head for voices unlike its training voices: a real voice's
    embedding lies off the synthetic voices' and a head trained on them alone maps the
    difference to arbitrary faces; trained on noisy embeddings it follows only the
    directions that stand out from the noise, which are the ones the training voices vary
    most along (pitch, vocal-tract length: gender and age).

    This builds the GE2E network with random weights: :meth:`pretrained` loads
    Resemblyzer's, :func:`speech2face.models.load_checkpoint` a trained model's.
    ``config`` (a :class:`GE2EEncoderConfig`) records the arguments for checkpoints.
    """

    kind = "ge2e_voice_encoder"

    def __init__(
        self,
        out_dim: int = FEATURE_DIM,
        hidden_dim: int = HIDDEN_DIM,
        freeze_encoder: bool = True,
        partial_frames: int = PARTIAL_FRAMES,
        partial_rate: float = PARTIAL_RATE,
        min_coverage: float = MIN_COVERAGE,
        level_dbfs: float | None = LEVEL_DBFS,
        embedding_noise: float = 0.0,
        embedding_dropout: float = 0.0,
        heads: int = 1,
    ) -> None:
        super().__init__()
        self.config = GE2EEncoderConfig(
            out_dim=out_dim,
            hidden_dim=hidden_dim,
            freeze_encoder=freeze_encoder,
            partial_frames=partial_frames,
            partial_rate=partial_rate,
            min_coverage=min_coverage,
            level_dbfs=level_dbfs,
            embedding_noise=embedding_noise,
            embedding_dropout=embedding_dropout,
            heads=heads,
        )
        self.register_buffer("mel_basis", mel_filterbank())  # (40, 201), saved with the model
        self.ge2e = GE2ENetwork()
        self.dropout = nn.Dropout(self.config.embedding_dropout)
        cfg = self.config
        self.fc1 = nn.Linear(EMBED_DIM, cfg.hidden_dim * cfg.heads)  # every head's first layer
        self.relu = nn.ReLU(inplace=True)
        if cfg.heads == 1:
            self.fc2 = nn.Linear(cfg.hidden_dim, cfg.out_dim)
        else:  # head h's second layer reads only its own hidden units (a grouped 1x1 conv)
            self.fc2 = nn.Conv1d(
                cfg.hidden_dim * cfg.heads, cfg.out_dim * cfg.heads, 1, groups=cfg.heads
            )
        if self.config.freeze_encoder:
            self.ge2e.requires_grad_(False)
            self.ge2e.eval()

    @classmethod
    def from_config(cls, config: GE2EEncoderConfig | dict[str, Any]) -> GE2EVoiceEncoder:
        """Build from a :class:`GE2EEncoderConfig` or its ``asdict`` form (random GE2E
        weights: a checkpoint's state dict brings its own)."""
        values = asdict(config) if isinstance(config, GE2EEncoderConfig) else dict(config)
        return cls(**values)

    @classmethod
    def pretrained(
        cls, weights: str | os.PathLike | None = None, **kwargs: Any
    ) -> GE2EVoiceEncoder:
        """A new model with Resemblyzer's pretrained GE2E weights (the head random).

        Args:
            weights: a Resemblyzer weight file (``{"model_state": ...}``); default: the one
                in the installed resemblyzer package (:func:`resemblyzer_weights_path`).
            kwargs: the constructor's arguments.
        """
        model = cls(**kwargs)
        model.load_ge2e_weights(weights if weights is not None else resemblyzer_weights_path())
        return model

    def load_ge2e_weights(self, path: str | os.PathLike) -> None:
        """Load a Resemblyzer weight file's network (``lstm.*``, ``linear.*``) into
        :attr:`ge2e`, read with ``torch.load(weights_only=True)``."""
        from speech2face.models._io import safe_load

        payload = safe_load(path, GE2EWeightsError, "GE2E weights")
        state = payload.get("model_state") if isinstance(payload, dict) else None
        if not isinstance(state, dict):
            raise GE2EWeightsError(f"{path} is not a Resemblyzer weight file (no model_state)")
        ours = {k: v for k, v in state.items() if k.startswith(WEIGHT_PREFIXES)}
        expected = self.ge2e.state_dict()
        missing = sorted(set(expected) - set(ours))
        wrong = sorted(k for k in expected if k in ours and ours[k].shape != expected[k].shape)
        if missing or wrong:
            names = ", ".join((missing + wrong)[:3])
            raise GE2EWeightsError(f"{path} does not hold Resemblyzer's GE2E network ({names})")
        with torch.no_grad():
            self.ge2e.load_state_dict(ours, strict=True)

    @property
    def out_dim(self) -> int:
        return self.config.out_dim

    def min_frames(self) -> int:
        """Shortest input in spectrogram frames: one (shorter windows are zero-padded)."""
        return 1

    def train(self, mode: bool = True) -> GE2EVoiceEncoder:
        """As :meth:`nn.Module.train`, but a frozen GE2E network stays in eval mode."""
        super().train(mode)
        if self.config.freeze_encoder:
            self.ge2e.eval()
        return self

    def forward(self, spec: Tensor) -> Tensor:  # spec: (B, 2, T, 257) -> (B, out_dim)
        embedding = self.embed(spec)  # (B, 256)
        cfg = self.config
        if cfg.heads == 1:
            return self.fc2(self.relu(self.fc1(self._regularised(embedding))))
        if self.training:  # each head its own noise and dropout
            noisy = self._regularised(embedding[:, None].expand(-1, cfg.heads, -1))
            weights = self.fc1.weight.view(cfg.heads, cfg.hidden_dim, EMBED_DIM)
            hidden = torch.einsum("bhe,hde->bhd", noisy, weights)  # (B, heads, hidden)
            hidden = hidden + self.fc1.bias.view(cfg.heads, cfg.hidden_dim)
        else:
            hidden = self.fc1(embedding).view(-1, cfg.heads, cfg.hidden_dim)
        out = self.fc2(self.relu(hidden).flatten(1)[..., None])  # (B, heads * out_dim, 1)
        out = out.view(-1, cfg.heads, cfg.out_dim)
        return out if self.training else out.mean(dim=1)

    def _regularised(self, embedding: Tensor) -> Tensor:  # (..., 256) -> (..., 256)
        """In training, the embedding with noise (back at unit length) and dropout."""
        noise = self.config.embedding_noise
        if self.training and noise > 0:
            embedding = F.normalize(embedding + noise * torch.randn_like(embedding), dim=-1)
        return self.dropout(embedding)

    def embed(self, spec: Tensor) -> Tensor:  # spec: (B, 2, T, 257) -> (B, 256)
        """The utterance's GE2E speaker embedding (unit length), computed in float32 even
        under autocast: the power law's inverse and the LSTM's state need the precision."""
        if spec.ndim != 4 or spec.shape[1] != IN_CHANNELS or spec.shape[3] != N_FREQ:
            raise GE2EEncoderError(
                f"voice encoder input must be (B, {IN_CHANNELS}, T, {N_FREQ}), "
                f"got {tuple(spec.shape)}"
            )
        if spec.shape[2] < 1:
            raise GE2EEncoderError("voice encoder input has no frames")
        cfg = self.config
        with torch.autocast(spec.device.type, enabled=False):
            mels = self.mel_spectrogram(spec.float())  # (B, T, 40)
            starts = partial_starts(
                mels.shape[1], cfg.partial_frames, cfg.partial_rate, cfg.min_coverage
            )
            short = starts[-1] + cfg.partial_frames - mels.shape[1]
            if short > 0:  # the last window runs past the end: zeros, as Resemblyzer pads
                mels = F.pad(mels, (0, 0, 0, short))
            index = torch.tensor(starts, device=mels.device)[:, None] + torch.arange(
                cfg.partial_frames, device=mels.device
            )  # (P, 160)
            partials = mels[:, index]  # (B, P, 160, 40)
            batch, count = partials.shape[:2]
            embeds = self.ge2e(partials.flatten(0, 1)).view(batch, count, EMBED_DIM)
            return F.normalize(embeds.mean(dim=1), dim=1)  # (B, 256)

    def mel_spectrogram(self, spec: Tensor) -> Tensor:  # (B, 2, T, 257) -> (B, T, 40)
        """Resemblyzer's mel spectrogram (power, no log) of each frame, at ``level_dbfs``."""
        parts = spec.abs().pow(1.0 / POWER_LAW).copysign(spec)  # undo sign(x) |x|^0.3
        full = torch.complex(parts[:, 0], parts[:, 1])  # (B, T, 257)
        frames = torch.fft.irfft(full, n=N_FFT)[..., :WIN_LENGTH]  # (B, T, 400) windowed frames
        spectrum = torch.fft.rfft(frames, n=GE2E_N_FFT)  # (B, T, 201)
        power = spectrum.real.square() + spectrum.imag.square()
        if self.config.level_dbfs is not None:
            # Parseval: a frame's energy is sum(w^2 x^2); over frames, mean / sum(w^2) is the
            # waveform's mean square.
            mean_square = frames.square().sum(dim=-1).mean(dim=-1) / WINDOW_ENERGY  # (B,)
            target = 10.0 ** (self.config.level_dbfs / 10.0)  # mean square at the target level
            gain = target / mean_square.clamp_min(SILENCE_MEAN_SQUARE)
            power = power * gain[:, None, None]
        return power @ self.mel_basis.T  # (B, T, 40)


def resemblyzer_weights_path() -> Path:
    """The installed resemblyzer package's ``pretrained.pt``, found without importing it
    (importing resemblyzer imports webrtcvad and librosa)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("resemblyzer")
    except (ImportError, ValueError):  # a broken parent package, a module set to None
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise GE2EWeightsError(
            f"model=voice_encoder_ge2e needs resemblyzer, which holds the GE2E weights: "
            f"{INSTALL_HINT}"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / WEIGHTS_FILE
        if path.is_file():
            return path
    raise GE2EWeightsError(
        f"resemblyzer is installed without its {WEIGHTS_FILE}: reinstall it, {INSTALL_HINT}"
    )
