"""Documentation: how tests/data/conventions_reference.{json,npz} were recorded (run once, NOT part of the tests).

It runs the ORIGINAL evaluation code of DIC, SPARNet and a MATLAB-imresize port on small inputs. The original
files are not in this repository: their text was fetched into a temporary folder (``/tmp/fer-ref/orig``;
verbatim copies of the functions named below, from the repositories and commits in ``rec["sources"]``):

* ``dic_util.py``: Maclory/Deep-Iterative-Collaboration code/utils/util.py (rgb2ycbcr, calc_metrics,
  calc_psnr, ssim, calc_ssim);
* ``sparnet_psnr_ssim.py`` / ``sparnet_utils.py``: chaofengc/Face-SPARNet psnr_ssim.py (rgb2y_matlab, PSNR,
  SSIM) and utils/utils.py (tensor_to_img);
* ``imresize.py``: fatheral/matlab_imresize imresize.py.

Two shims let SPARNet's 2020 code run on today's stack (recorded in the JSON): ``np.float = float`` (the
removed alias was the builtin float) and ``skimage.measure.compare_ssim`` = ``skimage.metrics
.structural_similarity`` (the same function, renamed in scikit-image 0.16 -> 0.18).

    .venv/bin/python tests/data/make_conventions_reference.py tests/data/conventions_reference

Stored: the input pairs (uint8), DIC's (PSNR, SSIM) per pair and crop, SPARNet's (PSNR, SSIM) per pair (as
``repr`` of the float64 values, for bit-exact comparison), both codes' Y planes of the tie-colour images,
SPARNet's tensor_to_img of a float32 network output, and the port's imresize outputs.
"""
import json, sys, hashlib
import numpy as np
sys.path.insert(0, "/tmp/fer-ref/orig")
np.float = float  # numpy >= 1.24 removed the alias SPARNet's PSNR uses (np.float was the builtin float)
import skimage.measure, skimage.metrics
skimage.measure.compare_ssim = skimage.metrics.structural_similarity  # renamed in scikit-image 0.16 -> 0.18+
import dic_util, sparnet_psnr_ssim, sparnet_utils, imresize as mport
import torch, skimage, cv2, scipy
from PIL import Image

out = {}
# ---- tie colours: exact .5 (DIC rounding) and exact integers (SPARNet truncation) of Y --------------------
r, g, b = np.meshgrid(np.arange(256), np.arange(256), np.arange(256), indexing="ij")
num = 65481 * r + 128553 * g + 24966 * b  # = 255000 * (Y - 16), exactly
half = np.argwhere(num % 255000 == 127500)
integ = np.argwhere(num % 255000 == 0)
print("exact-half colours", len(half), "exact-integer colours", len(integ))
def tile(cols, n=32):
    rng = np.random.default_rng(5)
    idx = rng.choice(len(cols), size=n * n, replace=len(cols) < n * n)
    return cols[idx].reshape(n, n, 3).astype(np.uint8)
tie_half = tile(half); tie_int = tile(integ)
# ---- realistic pair: a face crop of scikit-image's astronaut and its PIL-bicubic x4 round trip -------------
import skimage.data
astro = skimage.data.astronaut()[40:168, 160:288].copy()  # 128x128 face region
hr64 = np.asarray(Image.fromarray(astro).resize((64, 64), Image.BICUBIC))
sr64 = np.asarray(Image.fromarray(np.asarray(Image.fromarray(hr64).resize((16, 16), Image.BICUBIC))).resize((64, 64), Image.BICUBIC))
rng = np.random.default_rng(7)
noise_a = rng.integers(0, 256, size=(48, 48, 3), dtype=np.uint8)
noise_b = np.clip(noise_a.astype(int) + rng.integers(-30, 31, size=noise_a.shape), 0, 255).astype(np.uint8)
bright = np.full((40, 40, 3), 255, np.uint8); bright[10:30, 10:30] = (250, 240, 230)
darkish = np.full((40, 40, 3), 0, np.uint8); darkish[5:35, 5:35] = (128, 128, 128)
half_b = np.clip(tie_half.astype(int) + rng.integers(-3, 4, size=tie_half.shape), 0, 255).astype(np.uint8)
int_b = np.clip(tie_int.astype(int) + rng.integers(-3, 4, size=tie_int.shape), 0, 255).astype(np.uint8)
pairs = {"astronaut64": (hr64, sr64), "noise48": (noise_a, noise_b), "extremes40": (bright, darkish),
         "tie_half32": (tie_half, half_b), "tie_int32": (tie_int, int_b)}
arrays = {}
rec = {"dic_calc_metrics": {}, "sparnet_psnr_ssim": {}}
for name, (hr, sr) in pairs.items():
    arrays[f"{name}_hr"], arrays[f"{name}_sr"] = hr, sr
    for crop in (4, 8):
        if hr.shape[0] - 2 * crop < 11:
            continue
        p, s = dic_util.calc_metrics(sr.copy(), hr.copy(), crop_border=crop)  # DIC's order: (SR, HR)
        rec["dic_calc_metrics"][f"{name}/crop{crop}"] = {"psnr": repr(float(p)), "ssim": repr(float(s))}
    rec["sparnet_psnr_ssim"][name] = {"psnr": repr(float(sparnet_psnr_ssim.PSNR(sr.copy(), hr.copy()))),
                                      "ssim": repr(float(sparnet_psnr_ssim.SSIM(hr.copy(), sr.copy())))}
# Y planes of the tie images (rounding / truncation at exact ties)
for name in ("tie_half32", "tie_int32", "astronaut64"):
    hr = pairs[name][0]
    arrays[f"{name}_y_dic"] = dic_util.rgb2ycbcr(hr.copy())
    arrays[f"{name}_y_sparnet"] = sparnet_psnr_ssim.rgb2y_matlab(hr.copy())
# ---- SPARNet's tensor_to_img on network-range outputs ------------------------------------------------------
x = np.random.default_rng(11).uniform(-1.1, 1.1, size=(1, 3, 16, 16)).astype(np.float32)
x.flat[:64] = (np.arange(64, dtype=np.float32) * 8 / 255 * 2 - 1)  # values on the integer grid (x+1)/2*255 = 8k
arrays["sparnet_net_out"] = x
arrays["sparnet_tensor_to_img"] = sparnet_utils.tensor_to_img(torch.from_numpy(x.copy()), normal=True)
# ---- MATLAB imresize (fatheral port) -----------------------------------------------------------------------
yy, xx = np.mgrid[0:64, 0:64]
pattern = np.stack([(xx * 37 + yy * 91) % 256, (xx * yy) % 256, ((xx - 32) ** 2 + (yy - 32) ** 2) % 256], -1).astype(np.uint8)
# inputs not stored: astro64 = astronaut64_hr; pattern64 = the integer formula above (tests rebuild it)
for src, img in (("astro64", hr64), ("pattern64", pattern)):
    for size in (16, 8):
        arrays[f"imresize_{src}_to{size}"] = mport.imresize(img, output_shape=(size, size))
    small = arrays[f"imresize_{src}_to8"]
    arrays[f"imresize_{src}_8to64"] = mport.imresize(small, output_shape=(64, 64))
odd = pattern[:37, :23].copy()
arrays["imresize_in_odd"] = odd
arrays["imresize_odd_to9x6"] = mport.imresize(odd, output_shape=(9, 6))
rec["recorded_with"] = {"numpy": np.__version__, "opencv": cv2.__version__, "scikit-image": skimage.__version__,
                        "scipy": scipy.__version__, "torch": torch.__version__,
                        "shims": "np.float = float; skimage.measure.compare_ssim = skimage.metrics.structural_similarity"}
rec["sources"] = {
    "dic": "Maclory/Deep-Iterative-Collaboration @ 823df9725ccda975adacbd3309ccb84862f4db7b, code/utils/util.py (rgb2ycbcr, calc_metrics, calc_psnr, ssim, calc_ssim)",
    "sparnet": "chaofengc/Face-SPARNet @ 8d60832452f264d1fef35fb9ccdd41d42718d8da psnr_ssim.py (rgb2y_matlab, PSNR, SSIM); @ d3187c38c0312c189aa41fe42ec2dfbae3771702 utils/utils.py (tensor_to_img)",
    "imresize": "fatheral/matlab_imresize @ 25ca2489700f18dbe60a4c40d8adedfd3fc0423e imresize.py (imresize, output_shape=..., mode='vec')"}
np.savez_compressed(sys.argv[1] + ".npz", **arrays)
json.dump(rec, open(sys.argv[1] + ".json", "w"), indent=1)
print({k: (v.shape, v.dtype) for k, v in arrays.items()})
print(json.dumps(rec["dic_calc_metrics"], indent=0)[:800]); print(rec["sparnet_psnr_ssim"])
