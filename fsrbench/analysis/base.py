"""The face-model contracts moved to :mod:`fsrbench.api.face`; this module keeps the old import path."""
from __future__ import annotations

from fsrbench.api.face import (AUEstimator, FaceBox, FERModel, IdentityModel, LandmarkModel, LandmarkResult,
                               as_rgb_u8, face_image)

__all__ = ["AUEstimator", "FaceBox", "FERModel", "IdentityModel", "LandmarkModel", "LandmarkResult", "as_rgb_u8",
           "face_image"]
