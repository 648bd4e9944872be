"""Training losses: the Speech2Face loss (Eq. 1) and the face decoder's loss.

Each returns a dict of scalar tensors: ``total`` (what to back-propagate) and every term,
unweighted, under the names to log (``loss/dec_l1``, ``loss/feat_l2``, ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speech2face.errors import S2FError
from speech2face.models.face_decoder import DecoderOutput

LAMBDA1 = 0.025  # weight of the normalised-feature L2 term (paper, Sec. 3.3)
LAMBDA2 = 200.0  # weight of the distillation term
TEMPERATURE = 2.0  # softmax temperature of the distillation term
NORM_EPS = 1e-12  # guards the L2 normalisation of all-zero features

FeatureMap = Callable[[Tensor], Tensor]


class LossError(S2FError, ValueError):
    """A loss configured or called in a way that cannot work."""


def freeze(fn: FeatureMap | None) -> None:
    """Stop parameter updates of the module behind ``fn`` (a module or a bound method).

    The module is put in evaluation mode and its parameters stop requiring gradients;
    gradients still flow *through* it to its input.
    """
    owner = fn if isinstance(fn, nn.Module) else getattr(fn, "__self__", None)
    if isinstance(owner, nn.Module):
        owner.eval()
        owner.requires_grad_(False)


class Speech2FaceLoss(nn.Module):
    """Eq. 1 of the paper, between true face features and voice encoder outputs.

    ``L = |f_dec(v_f) - f_dec(v_s)|_1 + lambda1 |v_f/|v_f| - v_s/|v_s||_2^2
    + lambda2 L_distill(f_VGG(v_f), f_VGG(v_s))`` with
    ``L_distill(a, b) = -sum_i softmax(a/T)_i log softmax(b/T)_i``.

    Each term is a per-sample norm (sum over dimensions) averaged over the batch.

    Args:
        f_dec: the face decoder's first layer, features -> 1,000 (``decoder.fc_in``).
        f_vgg: the face encoder's classification head, features -> logits
            (``encoder.logits``), or ``None`` to drop the distillation term.
        lambda1, lambda2, temperature: the paper's 0.025, 200 and 2.

    ``f_dec`` and ``f_vgg`` are frozen (see :func:`freeze`) and not registered as
    submodules: the loss has no parameters of its own. The distillation target
    ``softmax(f_VGG(v_f) / T)`` is detached.
    """

    def __init__(
        self,
        f_dec: FeatureMap,
        f_vgg: FeatureMap | None = None,
        lambda1: float = LAMBDA1,
        lambda2: float = LAMBDA2,
        temperature: float = TEMPERATURE,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise LossError(f"temperature must be positive, got {temperature}")
        freeze(f_dec)
        freeze(f_vgg)
        # Plain attributes (a tuple hides modules from nn.Module's registration).
        self._maps: tuple[FeatureMap, FeatureMap | None] = (f_dec, f_vgg)
        self.lambda1 = float(lambda1)
        self.lambda2 = float(lambda2)
        self.temperature = float(temperature)

    @classmethod
    def from_models(
        cls,
        face_decoder: nn.Module,
        face_encoder: nn.Module | None = None,
        lambda1: float = LAMBDA1,
        lambda2: float = LAMBDA2,
        temperature: float = TEMPERATURE,
    ) -> Speech2FaceLoss:
        """The loss for a face decoder (``fc_in``) and a face encoder (``logits`` if any).

        Both networks are frozen: the paper trains only the voice encoder with this loss.
        """
        freeze(face_decoder)
        f_vgg = None
        if face_encoder is not None and getattr(face_encoder, "has_logits", False):
            f_vgg = face_encoder.logits
        return cls(face_decoder.fc_in, f_vgg, lambda1, lambda2, temperature)

    @property
    def f_dec(self) -> FeatureMap:
        return self._maps[0]

    @property
    def f_vgg(self) -> FeatureMap | None:
        return self._maps[1]

    def forward(
        self,
        v_face: Tensor,  # (B, D) true face features (targets)
        v_voice: Tensor,  # (B, D) voice encoder outputs
    ) -> dict[str, Tensor]:
        if v_face.shape != v_voice.shape or v_face.ndim != 2:
            raise LossError(
                f"features must both be (B, D), got {tuple(v_face.shape)} and "
                f"{tuple(v_voice.shape)}"
            )
        v_face = v_face.detach()
        with torch.no_grad():
            dec_face = self.f_dec(v_face)  # (B, 1000)
        dec_l1 = (dec_face - self.f_dec(v_voice)).abs().sum(dim=1).mean()

        unit_face = F.normalize(v_face, dim=1, eps=NORM_EPS)
        unit_voice = F.normalize(v_voice, dim=1, eps=NORM_EPS)
        feat_l2 = (unit_face - unit_voice).pow(2).sum(dim=1).mean()

        if self.f_vgg is not None:
            with torch.no_grad():
                target = F.softmax(self.f_vgg(v_face) / self.temperature, dim=1)  # (B, C)
            log_probs = F.log_softmax(self.f_vgg(v_voice) / self.temperature, dim=1)
            distill = -(target * log_probs).sum(dim=1).mean()
        else:
            distill = v_voice.new_zeros(())

        total = dec_l1 + self.lambda1 * feat_l2 + self.lambda2 * distill
        return {"total": total, "dec_l1": dec_l1, "feat_l2": feat_l2, "distill": distill}

    def extra_repr(self) -> str:
        distill = "on" if self.f_vgg is not None else "off"
        return (
            f"lambda1={self.lambda1}, lambda2={self.lambda2}, temperature={self.temperature}, "
            f"distill={distill}"
        )


class CentredCosineLoss(nn.Module):
    """``1 - cos(v_s - mu, v_f - mu)``: the angle between voice and face features measured
    from the mean training face feature ``mu``.

    Face features of every face share a large common part, so plain distances between
    them are dominated by it, and a voice encoder learns little more than the mean face
    from Eq. 1's decoder L1 or an MSE. Measured from the mean, the loss asks only for the
    direction in which a face differs from the average one, the part that carries
    identity, gender and age. Not the paper's loss; see ``configs/loss/centred_cosine.yaml``.

    The angle leaves the prediction's distance from ``mu`` free (it drifts far beyond the
    faces the decoder has seen, and a length penalty lets the network park a constant
    offset there instead of learning), so a prediction is used through :meth:`project`:
    ``mu + rho (v_s - mu) / |v_s - mu|``, the predicted direction at ``rho``, the RMS
    distance of training faces from ``mu``. The trainer validates projected features and
    stores ``mu`` and ``rho`` in the checkpoint, whose bundle projects the same way.

    ``mu`` and ``rho`` are buffers: set them with :meth:`set_mean` (the trainer does, from
    the training split) before the first call.
    """

    def __init__(self, feature_dim: int) -> None:
        super().__init__()
        if feature_dim < 1:
            raise LossError(f"feature_dim must be positive, got {feature_dim}")
        self.register_buffer("mean", torch.zeros(feature_dim))
        self.register_buffer("spread", torch.zeros(()))

    def set_mean(self, mean: Tensor, spread: float | Tensor) -> None:  # mean: (D,)
        """``mean``: the mean training feature; ``spread``: the RMS distance from it."""
        if mean.shape != self.mean.shape:
            raise LossError(f"mean feature must be ({self.mean.numel()},), got {tuple(mean.shape)}")
        spread = float(spread)
        if not math.isfinite(spread) or spread <= 0:
            raise LossError(f"the features' spread must be positive, got {spread}")
        self.mean.copy_(mean.detach().to(self.mean))
        self.spread.fill_(spread)

    def _check_ready(self) -> None:
        if not float(self.spread) > 0:
            raise LossError("CentredCosineLoss needs the mean training feature: call set_mean")

    def project(self, v_voice: Tensor) -> Tensor:  # (B, D) -> (B, D)
        """The feature a prediction stands for: its direction from ``mu``, at ``rho``."""
        self._check_ready()
        return project_from_mean(v_voice, self.mean, float(self.spread))

    def forward(
        self,
        v_face: Tensor,  # (B, D) true face features (targets)
        v_voice: Tensor,  # (B, D) voice encoder outputs
    ) -> dict[str, Tensor]:
        dim = self.mean.numel()
        if v_face.shape != v_voice.shape or v_face.ndim != 2 or v_face.shape[1] != dim:
            raise LossError(
                f"features must both be (B, {dim}), got {tuple(v_face.shape)} and "
                f"{tuple(v_voice.shape)}"
            )
        self._check_ready()
        mean = self.mean.to(v_voice.dtype)
        cosine = F.cosine_similarity(v_voice - mean, v_face.detach() - mean, dim=1, eps=NORM_EPS)
        centred = (1.0 - cosine).mean()
        return {"total": centred, "centred_cosine": centred}

    def extra_repr(self) -> str:
        return f"feature_dim={self.mean.numel()}"


def project_from_mean(
    features: Tensor,  # (B, D)
    mean: Tensor,  # (D,)
    radius: float,
) -> Tensor:  # (B, D)
    """``mean + radius (features - mean) / |features - mean|`` (a feature at the mean stays
    there)."""
    mean = mean.to(features)
    return mean + radius * F.normalize(features - mean, dim=1, eps=NORM_EPS)


class FaceDecoderLoss(nn.Module):
    """Training loss of the face decoder (Cole et al. 2017).

    - ``texture_l1``: mean absolute error between the predicted texture and the true face
      warped to the mean geometry (:meth:`FaceDecoder.to_mean_geometry`);
    - ``landmark_mse``: mean squared error of the landmarks, in units of the crop size
      (pixel coordinates divided by 224);
    - ``identity``: ``1 - cos`` between the face encoder's feature of the rendered portrait
      and the input feature (needs a differentiable encoder when its weight is non-zero).

    Args:
        face_encoder: the frozen encoder that produced the input features, or ``None`` to
            drop the identity term.
        texture_weight, landmark_weight, identity_weight: weights of the three terms.
    """

    def __init__(
        self,
        face_encoder: nn.Module | None = None,
        texture_weight: float = 1.0,
        landmark_weight: float = 100.0,
        identity_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if (
            face_encoder is not None
            and identity_weight
            and not getattr(face_encoder, "differentiable", True)
        ):
            raise LossError(
                f"{type(face_encoder).__name__} is not differentiable: the identity term "
                "needs vggface or facenet, or identity_weight=0"
            )
        freeze(face_encoder)
        self._encoder: tuple[nn.Module | None] = (face_encoder,)
        self.texture_weight = float(texture_weight)
        self.landmark_weight = float(landmark_weight)
        self.identity_weight = float(identity_weight)

    @property
    def face_encoder(self) -> nn.Module | None:
        return self._encoder[0]

    @property
    def needs_image(self) -> bool:
        """Whether the loss reads the warped portrait (a weighted identity term); without
        it the decoder may skip its warp (``warp=False``) and the identity term is left out."""
        return self.face_encoder is not None and self.identity_weight != 0

    def forward(
        self,
        output: DecoderOutput,  # image, texture (B, 3, 224, 224); landmarks (B, K, 2)
        features: Tensor,  # (B, D) the decoder's input features
        target_texture: Tensor,  # (B, 3, 224, 224) true face in the mean geometry
        target_landmarks: Tensor,  # (B, K, 2) true landmarks, pixels
    ) -> dict[str, Tensor]:
        size = output.texture.shape[-1]
        texture_l1 = (output.texture - target_texture).abs().mean()
        landmark_mse = ((output.landmarks - target_landmarks) / size).pow(2).mean()
        total = self.texture_weight * texture_l1 + self.landmark_weight * landmark_mse
        terms = {"texture_l1": texture_l1, "landmark_mse": landmark_mse}
        encoder = self.face_encoder
        if encoder is not None and (output.image is not None or self.needs_image):
            if output.image is None:
                raise LossError("the identity term needs the portrait: decoder(..., warp=True)")
            with torch.set_grad_enabled(torch.is_grad_enabled() and self.identity_weight != 0):
                rendered = encoder(output.image)  # (B, D)
                identity = 1.0 - F.cosine_similarity(rendered, features.detach(), dim=1).mean()
            terms["identity"] = identity
            total = total + self.identity_weight * identity
        return {"total": total, **terms}
