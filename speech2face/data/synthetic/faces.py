"""Drawing synthetic people: a face rendered with PIL from an :class:`Identity` (mouth,
blink, head turn), backgrounds, and faces composited into video frames."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from speech2face.data.synthetic.people import Identity

__all__ = ["draw_background", "render_face", "render_frame"]

SUPERSAMPLE = 2  # faces are drawn at 2x and downsampled (anti-aliasing)


def render_face(
    identity: Identity,
    height: float,
    yaw: float = 0.0,
    mouth_open: float = 0.0,
    blink: bool = False,
) -> Image.Image:
    """The identity's head as an RGBA image (transparent background).

    Args:
        height: face-oval height in pixels; the image is ``2 * height`` square, head centred.
        yaw: -1..1, how far the head turns (inner features slide sideways).
        mouth_open: 0..1, how far the mouth opens.
        blink: draw closed eyes.
    """
    s = SUPERSAMPLE
    h = height * s
    side = int(round(2 * h))
    img = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    cx, cy = side / 2, side / 2
    w = h * identity.face_ratio
    top, bottom = cy - h / 2, cy + h / 2
    skin = identity.skin
    shade = tuple(int(c * 0.82) for c in skin)
    hair = identity.hair_colour

    if identity.hair_style == "long":  # hair falling behind the head
        d.rounded_rectangle(
            (cx - w * 0.62, top - h * 0.08, cx + w * 0.62, bottom + h * 0.12),
            radius=w * 0.5,
            fill=hair,
        )
    # neck, ears, face oval, jaw
    d.rectangle((cx - w * 0.22, cy + h * 0.3, cx + w * 0.22, cy + h * 0.75), fill=shade)
    for side_sign in (-1, 1):
        ex = cx + side_sign * w * 0.5
        d.ellipse((ex - w * 0.08, cy - h * 0.1, ex + w * 0.08, cy + h * 0.1), fill=shade)
    d.ellipse((cx - w / 2, top, cx + w / 2, cy + h * 0.25), fill=skin)
    jaw = w / 2 * identity.jaw
    d.polygon(
        [
            (cx - w / 2, cy - h * 0.02),
            (cx + w / 2, cy - h * 0.02),
            (cx + jaw, cy + h * 0.33),
            (cx + w * 0.16, bottom),
            (cx - w * 0.16, bottom),
            (cx - jaw, cy + h * 0.33),
        ],
        fill=skin,
    )
    if identity.beard:
        beard = tuple(int(0.55 * c + 0.45 * s_) for c, s_ in zip(hair, skin, strict=True))
        d.polygon(
            [
                (cx - w * 0.47, cy + h * 0.05),
                (cx - jaw * 0.95, cy + h * 0.34),
                (cx - w * 0.15, bottom),
                (cx + w * 0.15, bottom),
                (cx + jaw * 0.95, cy + h * 0.34),
                (cx + w * 0.47, cy + h * 0.05),
                (cx + w * 0.3, cy + h * 0.28),
                (cx - w * 0.3, cy + h * 0.28),
            ],
            fill=beard,
        )
    # hair on top of the head
    if identity.hair_style != "bald":
        d.chord((cx - w * 0.54, top - h * 0.06, cx + w * 0.54, cy + h * 0.02), 180, 360, fill=hair)
        d.pieslice((cx - w * 0.5, top - h * 0.02, cx + w * 0.3, cy - h * 0.12), 180, 300, fill=hair)

    # inner features slide with the head's yaw; the far eye narrows
    shift = yaw * w * 0.18
    ey = cy - h * 0.07
    ew, eh = h * identity.eye_size, h * identity.eye_size * 0.5
    socket = tuple(int(c * 0.72) for c in skin)
    brow_colour = tuple(int(min(a, b * 0.45)) for a, b in zip(hair, skin, strict=True))
    for side_sign in (-1, 1):
        ex = cx + shift + side_sign * h * identity.eye_spacing
        squeeze = 1.0 - 0.35 * max(0.0, side_sign * yaw)
        ewx = ew * squeeze
        d.ellipse((ex - ewx * 1.4, ey - eh * 2.2, ex + ewx * 1.4, ey + eh * 1.6), fill=socket)
        by = ey - eh - h * 0.05
        d.line(
            (ex - ewx * 1.1, by + h * 0.01, ex + ewx * 1.1, by - h * 0.005 * side_sign),
            fill=brow_colour,
            width=max(2, int(h * identity.brow)),
        )
        if blink:
            d.line((ex - ewx, ey, ex + ewx, ey), fill=(40, 25, 20), width=max(1, int(h * 0.015)))
            continue
        d.ellipse((ex - ewx, ey - eh, ex + ewx, ey + eh), fill=(248, 248, 245))
        ir = eh * 0.95
        ix = ex + yaw * ewx * 0.3
        d.ellipse((ix - ir, ey - ir, ix + ir, ey + ir), fill=identity.iris)
        d.ellipse(
            (ix - ir * 0.45, ey - ir * 0.45, ix + ir * 0.45, ey + ir * 0.45), fill=(15, 10, 10)
        )
        d.ellipse((ex - ewx, ey - eh, ex + ewx, ey + eh), outline=(40, 28, 25), width=max(1, s))
    # nose: a lit bridge, shaded sides, dark nostrils
    nx = cx + yaw * w * 0.26
    nw, nl = h * identity.nose_width / 2, h * identity.nose_length
    ny0 = ey + eh * 0.3
    light = tuple(min(255, int(c * 1.18 + 12)) for c in skin)
    d.polygon([(nx, ny0), (nx - nw, ny0 + nl), (nx + nw, ny0 + nl)], fill=shade)
    d.polygon(
        [(nx, ny0), (nx - nw * 0.3, ny0 + nl * 0.9), (nx + nw * 0.3, ny0 + nl * 0.9)], fill=light
    )
    d.ellipse(
        (nx - nw * 1.05, ny0 + nl - nw * 0.25, nx + nw * 1.05, ny0 + nl + nw * 0.3), fill=socket
    )
    for side_sign in (-1, 1):
        px = nx + side_sign * nw * 0.45
        d.ellipse(
            (px - nw * 0.22, ny0 + nl - nw * 0.15, px + nw * 0.22, ny0 + nl + nw * 0.12),
            fill=(35, 20, 18),
        )
    # mouth: lips, opening with the voice
    mx = cx + yaw * w * 0.2
    my = ny0 + nl + h * 0.1
    mw = h * identity.mouth_width / 2 * (1.0 - 0.15 * abs(yaw))
    lip = h * 0.035
    lips = tuple(
        int(0.5 * a + 0.5 * b * f)
        for a, b, f in zip(identity.lips, skin, (0.9, 0.55, 0.55), strict=True)
    )
    opening = lip * 0.2 + mouth_open * h * 0.07
    d.ellipse((mx - mw, my - lip - opening / 2, mx + mw, my + lip + opening / 2), fill=lips)
    d.ellipse(
        (mx - mw * 0.75, my - opening / 2, mx + mw * 0.75, my + opening / 2), fill=(45, 15, 20)
    )
    # soft light from the front: brighter centre, darker rim
    rgba = np.asarray(img).astype(np.float32)
    pixels = np.arange(side)  # a row and a column broadcast: the full grid's values, faster
    across = ((pixels - cx - shift) / (w * 0.6))[None, :] ** 2  # (1, side)
    down = ((pixels - cy) / (h * 0.6))[:, None] ** 2  # (side, 1)
    r2 = across + down
    rgba[..., :3] *= np.clip(1.12 - 0.3 * r2, 0.6, 1.12)[..., None]
    np.minimum(rgba, 255, out=rgba)  # never below 0: the light only scales
    img = Image.fromarray(rgba.astype(np.uint8), "RGBA")
    if s > 1:
        img = img.resize((side // s, side // s), Image.Resampling.LANCZOS)
    return img


def draw_background(rng: np.random.Generator, size: int) -> Image.Image:
    """A smooth two-colour gradient with a few soft blobs: a plausible room."""
    c0, c1 = rng.integers(40, 220, 3), rng.integers(40, 220, 3)
    t = np.linspace(0.0, 1.0, size)[:, None, None]
    grad = (c0[None, None, :] * (1 - t) + c1[None, None, :] * t) * np.ones((1, size, 1))
    img = Image.fromarray(grad.astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    for _ in range(4):
        x, y = rng.integers(0, size, 2)
        r = int(rng.integers(size // 10, size // 4))
        d.rectangle(
            (x - r, y - r, x + r, y + r // 2), fill=tuple(int(v) for v in rng.integers(30, 230, 3))
        )
    return img.filter(ImageFilter.GaussianBlur(size / 40))


def render_frame(
    background: Image.Image,
    faces: list[tuple[Identity, float, float, float, float, float, bool]],
) -> np.ndarray:
    """Composite faces onto a copy of ``background``.

    ``faces``: ``(identity, centre_x, centre_y, height, yaw, mouth_open, blink)`` in pixels.
    Returns ``(H, W, 3)`` uint8 RGB.
    """
    frame = background.copy()
    for identity, x, y, height, yaw, mouth, blink in faces:
        head = render_face(identity, height, yaw=yaw, mouth_open=mouth, blink=blink)
        frame.paste(head, (int(round(x - head.width / 2)), int(round(y - head.height / 2))), head)
    return np.asarray(frame)
