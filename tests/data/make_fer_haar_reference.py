"""Documentation: how tests/data/fer_haar_reference.json was recorded (run once, NOT part of the test suite).

It runs the ``fer`` package's OWN face detection and preprocessing — ``fer.FER(use_tflite=False)
.detect_emotions(bgr_image)`` of PyPI ``fer==25.10.3`` (fer/fer.py: ``find_faces`` with its default Haar
cascade ``cv2.data.haarcascades + "haarcascade_frontalface_default.xml"``, scale factor 1.1, 5 neighbours,
50 px minimum; then ``tosquare``, the 10 px offsets, the 40 px padding, the 64x64 resize and the scaling).
Only the classifier is stubbed: tensorflow is not installed, so ``load_model`` returns an object that records
the preprocessed faces fer's code hands it.  Recorded per faces-dev image: fer's boxes (x, y, w, h) and the
SHA-256 of each float32 64x64 input.

    .venv/bin/python tests/data/make_fer_haar_reference.py ../shared/data/faces-dev tests/data/fer_haar_reference.json
"""
import hashlib, json, sys, types, glob, os
import numpy as np
from PIL import Image

captured = []
class StubModel:
    input_shape = (None, 64, 64, 1)
    def __call__(self, x):
        x = np.asarray(x); captured.append(x.copy())
        return np.full((x.shape[0], 7), 1 / 7)
tf = types.ModuleType("tensorflow"); keras = types.ModuleType("tensorflow.keras"); km = types.ModuleType("tensorflow.keras.models")
km.load_model = lambda *a, **k: StubModel()
sys.modules.update({"tensorflow": tf, "tensorflow.keras": keras, "tensorflow.keras.models": km})
pr = types.ModuleType("pkg_resources"); pr.resource_filename = lambda pkg, p: p; sys.modules["pkg_resources"] = pr
sys.modules.setdefault("requests", types.ModuleType("requests"))
from fer.fer import FER
import cv2, fer as ferpkg
f = FER(use_tflite=False)  # fer's defaults: Haar cascade from cv2.data, scale 1.1, neighbours 5, min size 50, offsets (10, 10)
out = {"recorded_with": {"fer": "25.10.3", "opencv": cv2.__version__, "numpy": np.__version__,
                         "code": "fer/fer.py FER.detect_emotions (default Haar cascade path), classifier stubbed"},
       "faces": {}}
for path in sorted(glob.glob(sys.argv[1] + "/*.png")):
    rgb = np.asarray(Image.open(path).convert("RGB"))
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    captured.clear()
    res = f.detect_emotions(bgr)
    boxes = [[int(v) for v in r["box"]] for r in res]
    inputs = captured[0] if captured else np.zeros((0, 64, 64), np.float32)
    out["faces"][os.path.basename(path)] = {
        "boxes": boxes,  # fer's (x, y, w, h) before tosquare, in detection order
        "input_sha256": [hashlib.sha256(np.ascontiguousarray(inputs[i], dtype=np.float32).tobytes()).hexdigest() for i in range(len(inputs))],
        "input_mean": [float(inputs[i].astype(np.float64).mean()) for i in range(len(inputs))],
    }
json.dump(out, open(sys.argv[2], "w"), indent=1)
print(sum(1 for v in out["faces"].values() if v["boxes"]), "of", len(out["faces"]), "with a face;", sum(len(v["boxes"]) > 1 for v in out["faces"].values()), "with several")
