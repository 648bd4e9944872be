"""The Speech2Face loss (Eq. 1) against hand-computed values, and the face decoder loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from speech2face.losses import CentredCosineLoss, FaceDecoderLoss, LossError, Speech2FaceLoss
from speech2face.models import DecoderOutput, FaceDecoder, build_face_encoder

V_FACE = [[1.0, 0.0, 2.0], [0.0, -1.0, 1.0]]
V_VOICE = [[0.5, 1.0, 2.0], [1.0, -1.0, 0.0]]
DEC_W = [[1.0, -1.0, 0.0], [0.0, 2.0, 1.0]]  # f_dec: 3 -> 2, no bias
VGG_W = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]  # f_vgg: 3 -> 4


def linear(weight) -> nn.Linear:
    layer = nn.Linear(len(weight[0]), len(weight), bias=False)
    layer.weight.data = torch.tensor(weight)
    return layer


def matvec(weight, v):
    return [sum(w * x for w, x in zip(row, v, strict=True)) for row in weight]


def softmax(values, t):
    exps = [math.exp(v / t) for v in values]
    return [e / sum(exps) for e in exps]


def hand_computed(lambda1, lambda2, temperature, with_vgg=True):
    """Eq. 1 written out with plain Python floats, sample by sample."""
    dec, feat, distill = [], [], []
    for vf, vs in zip(V_FACE, V_VOICE, strict=True):
        pairs = zip(matvec(DEC_W, vf), matvec(DEC_W, vs), strict=True)
        dec.append(sum(abs(a - b) for a, b in pairs))
        nf, ns = math.sqrt(sum(x * x for x in vf)), math.sqrt(sum(x * x for x in vs))
        feat.append(sum((a / nf - b / ns) ** 2 for a, b in zip(vf, vs, strict=True)))
        p = softmax(matvec(VGG_W, vf), temperature)
        q = softmax(matvec(VGG_W, vs), temperature)
        distill.append(-sum(pi * math.log(qi) for pi, qi in zip(p, q, strict=True)))
    dec_l1, feat_l2, kd = (sum(x) / len(x) for x in (dec, feat, distill))
    if not with_vgg:
        kd = 0.0
    return dec_l1, feat_l2, kd, dec_l1 + lambda1 * feat_l2 + lambda2 * kd


def test_loss_matches_hand_computed_values():
    loss = Speech2FaceLoss(linear(DEC_W), linear(VGG_W), lambda1=0.025, lambda2=200.0)
    terms = loss(torch.tensor(V_FACE), torch.tensor(V_VOICE))
    dec_l1, feat_l2, distill, total = hand_computed(0.025, 200.0, 2.0)
    assert set(terms) == {"total", "dec_l1", "feat_l2", "distill"}
    assert terms["dec_l1"].item() == pytest.approx(dec_l1, rel=1e-6)
    assert terms["feat_l2"].item() == pytest.approx(feat_l2, rel=1e-6)
    assert terms["distill"].item() == pytest.approx(distill, rel=1e-6)
    assert terms["total"].item() == pytest.approx(total, rel=1e-6)
    # Sanity of the hand computation itself: first sample's L1 is |1-(-0.5)| + |3-4| = 2.5.
    assert dec_l1 == pytest.approx((2.5 + 3.0) / 2)


def test_other_weights_and_no_distillation():
    loss = Speech2FaceLoss(linear(DEC_W), None, lambda1=1.0, lambda2=5.0, temperature=1.0)
    terms = loss(torch.tensor(V_FACE), torch.tensor(V_VOICE))
    dec_l1, feat_l2, _, total = hand_computed(1.0, 5.0, 1.0, with_vgg=False)
    assert terms["distill"].item() == 0.0
    assert terms["total"].item() == pytest.approx(total, rel=1e-6)
    assert terms["total"].item() == pytest.approx(dec_l1 + feat_l2, rel=1e-6)


def test_identical_features_cost_only_the_target_entropy():
    loss = Speech2FaceLoss(linear(DEC_W), linear(VGG_W))
    v = torch.tensor(V_FACE)
    terms = loss(v, v.clone())
    assert terms["dec_l1"].item() == 0.0 and terms["feat_l2"].item() == pytest.approx(0.0)
    p = torch.softmax(v @ torch.tensor(VGG_W).T / 2.0, dim=1)
    entropy = -(p * p.log()).sum(dim=1).mean()
    assert terms["distill"].item() == pytest.approx(entropy.item(), rel=1e-6)


def test_frozen_maps_pass_gradient_but_get_none():
    f_dec, f_vgg = linear(DEC_W), linear(VGG_W)
    loss = Speech2FaceLoss(f_dec, f_vgg)
    assert list(loss.parameters()) == []  # the loss owns no parameters
    v_voice = torch.tensor(V_VOICE, requires_grad=True)
    loss(torch.tensor(V_FACE), v_voice)["total"].backward()
    assert v_voice.grad is not None and v_voice.grad.abs().sum() > 0
    for layer in (f_dec, f_vgg):
        assert layer.weight.grad is None and not layer.weight.requires_grad
    # The distillation term alone also reaches v_voice (through f_vgg).
    only_kd = Speech2FaceLoss(f_dec, f_vgg, lambda1=0.0, lambda2=1.0)
    v_voice.grad = None
    terms = only_kd(torch.tensor(V_FACE), v_voice)
    terms["distill"].backward()
    assert v_voice.grad.abs().sum() > 0


def test_an_encoder_method_is_frozen_too():
    decoder = FaceDecoder(512, landmark_hidden=[8], texture_channels=16, min_channels=8)
    encoder = build_face_encoder("facenet").train()
    loss = Speech2FaceLoss.from_models(decoder, encoder)
    assert loss.f_vgg is not None and not encoder.training
    assert not any(p.requires_grad for p in encoder.parameters())
    assert not any(p.requires_grad for p in decoder.parameters())
    v_voice = torch.randn(2, 512, requires_grad=True)
    terms = loss(torch.randn(2, 512), v_voice)
    terms["total"].backward()
    assert v_voice.grad.abs().sum() > 0 and terms["distill"] > 0
    no_head = Speech2FaceLoss.from_models(decoder, build_face_encoder("dlib"))
    assert no_head.f_vgg is None


def test_loss_rejects_mismatched_features():
    loss = Speech2FaceLoss(linear(DEC_W))
    with pytest.raises(LossError, match=r"\(B, D\)"):
        loss(torch.zeros(2, 3), torch.zeros(3, 3))
    with pytest.raises(LossError, match="temperature"):
        Speech2FaceLoss(linear(DEC_W), temperature=0.0)


def test_face_decoder_loss_terms():
    image = torch.full((1, 3, 224, 224), 0.5)
    output = DecoderOutput(
        image=image, texture=torch.full_like(image, 0.25), landmarks=torch.zeros(1, 2, 2)
    )
    target_landmarks = torch.tensor([[[22.4, 0.0], [0.0, 44.8]]])  # 0.1 and 0.2 crop widths
    loss = FaceDecoderLoss(None, texture_weight=2.0, landmark_weight=10.0)
    terms = loss(output, torch.zeros(1, 8), torch.full_like(image, 0.75), target_landmarks)
    assert terms["texture_l1"].item() == pytest.approx(0.5)
    assert terms["landmark_mse"].item() == pytest.approx((0.01 + 0.04) / 4)
    assert terms["total"].item() == pytest.approx(2.0 * 0.5 + 10.0 * 0.0125)
    assert "identity" not in terms


def test_face_decoder_loss_identity_term_trains_the_decoder():
    torch.manual_seed(0)
    encoder = build_face_encoder("facenet")
    decoder = FaceDecoder(512, landmark_hidden=[8], texture_channels=16, min_channels=8)
    loss = FaceDecoderLoss(encoder, texture_weight=1.0, landmark_weight=1.0, identity_weight=1.0)
    faces = torch.rand(2, 3, 224, 224)
    landmarks = decoder.mean_landmarks.expand(2, -1, -1) + 1.0
    with torch.no_grad():
        features = encoder(faces)
        target_texture = decoder.to_mean_geometry(faces, landmarks)
    output = decoder(features)
    terms = loss(output, features, target_texture, landmarks)
    assert 0.0 <= terms["identity"].item() <= 2.0
    terms["total"].backward()
    assert decoder.to_rgb.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in encoder.parameters())

    with pytest.raises(LossError, match="not differentiable"):
        FaceDecoderLoss(build_face_encoder("dlib"), identity_weight=1.0)
    dlib_loss = FaceDecoderLoss(build_face_encoder("dlib"), identity_weight=0.0)
    decoder_128 = FaceDecoder(128, landmark_hidden=[8], texture_channels=16, min_channels=8)
    out = decoder_128(torch.randn(1, 128))
    logged = dlib_loss(out, torch.randn(1, 128), out.texture.detach(), out.landmarks.detach())
    assert "identity" in logged and logged["total"].item() == pytest.approx(0.0, abs=1e-6)


def test_decoder_without_warp_gives_the_same_texture_and_landmark_terms():
    torch.manual_seed(0)
    decoder = FaceDecoder(16, landmark_hidden=[8], texture_channels=16, min_channels=8)
    features = torch.randn(2, 16)
    target = torch.rand(2, 3, 224, 224)
    landmarks = decoder.mean_landmarks.expand(2, -1, -1) + 2.0
    loss = FaceDecoderLoss(None)
    assert not loss.needs_image
    full, fast = decoder(features), decoder(features, warp=False)
    assert fast.image is None and torch.equal(full.texture, fast.texture)
    a, b = loss(full, features, target, landmarks), loss(fast, features, target, landmarks)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    identity = FaceDecoderLoss(build_face_encoder("facenet"), identity_weight=1.0)
    assert identity.needs_image
    with pytest.raises(LossError, match="warp=True"):
        identity(fast, features, target, landmarks)


def test_centred_cosine_against_numpy():
    rng = np.random.default_rng(0)
    face, voice, mean = rng.normal(size=(4, 6)), rng.normal(size=(4, 6)), rng.normal(size=6)
    spread = 1.7
    loss = CentredCosineLoss(6)
    with pytest.raises(LossError, match="set_mean"):
        loss(torch.tensor(face), torch.tensor(voice))
    with pytest.raises(LossError, match="spread"):
        loss.set_mean(torch.tensor(mean), 0.0)
    loss.set_mean(torch.tensor(mean), spread)
    a, b = voice - mean, face - mean
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    terms = loss(torch.tensor(face), torch.tensor(voice))
    assert terms["total"].item() == pytest.approx(float((1 - cosine).mean()), rel=1e-6)
    assert terms["centred_cosine"] is terms["total"]
    # mean and spread go with the state dict (a resumed or loaded loss keeps them)
    again = CentredCosineLoss(6)
    again.load_state_dict(loss.state_dict())
    assert again(torch.tensor(face), torch.tensor(voice))["total"].item() == pytest.approx(
        terms["total"].item()
    )
    # scale-free around the mean; the gradient reaches the voice, not the face
    v = torch.tensor(voice, requires_grad=True)
    f = torch.tensor(face, requires_grad=True)
    scaled = torch.tensor(mean) + 3.0 * (v - torch.tensor(mean))
    far = loss(f, scaled)
    far["total"].backward()
    assert far["total"].item() == pytest.approx(terms["total"].item())
    assert v.grad.abs().sum() > 0 and f.grad is None
    # a prediction stands for its direction at the spread's distance from the mean
    projected = loss.project(torch.tensor(voice)).numpy()
    expected = mean + spread * a / np.linalg.norm(a, axis=1, keepdims=True)
    np.testing.assert_allclose(projected, expected, rtol=1e-6)
    assert loss(torch.tensor(face), torch.tensor(projected))["total"].item() == pytest.approx(
        terms["total"].item()
    )
    with pytest.raises(LossError, match=r"\(B, 6\)"):
        loss(torch.zeros(2, 5), torch.zeros(2, 5))
