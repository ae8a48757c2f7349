"""FER plugin "ddamfn": DDAMFN++ (Zhang et al., the FER model behind AffectSRNet's ECM; docs/spec/conventions.md §5).

DDAMFN++ weights are not shipped by any package registry, so this plugin needs the official checkpoint
from the DDAMFN repository (``SainingZhang/DDAMFN``, ``DDAMFN++/checkpoints_ver2.0/*.pth``; e.g. the RAF-DB
one ``rafdb_epoch20_acc0.9204_bacc0.8617.pth``) given as the ``weights`` option
(``fsrbench run ... --fer ddamfn --fer-weights PATH`` / ``get_fer("ddamfn", weights=PATH)``). Without it
the plugin raises :class:`fsrbench.api.Unavailable` saying so.

The network is written here from the published architecture (MixedFeatureNet backbone truncated after
``conv_6_sep`` -> [N,512,7,7], ``num_head`` coordinate-attention heads combined by element-wise max,
a 7x7 depthwise linear block, fc to ``num_class``), with the same module names as the official code so
its ``model_state_dict`` loads strictly. The checkpoint is read with ``torch.load(weights_only=True)``
(no arbitrary pickles); its sha256 is part of the model id.

Preprocessing (the official test scripts): RGB face, PIL bilinear resize to 112x112, [0,1], ImageNet
mean/std. Output: softmax of the logits. Class order of the RAF-DB / AffectNet-7 checkpoints:
neutral, happy, sad, surprise, fear, disgust, angry (AffectNet-8 adds contempt; ``num_class=8``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fsrbench.api.face import FaceBox, FERModel
from fsrbench.api import Unavailable

CLASSES7 = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "angry")
CLASSES8 = CLASSES7 + ("contempt",)
INPUT_SIZE = 112
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def build_ddamnet(num_class: int = 7, num_head: int = 2) -> Any:
    """DDAMFN++ network (random init) with the official module names."""
    import torch
    from torch import nn

    class ConvBlock(nn.Module):  # official name: Conv_block
        def __init__(self, cin: int, cout: int, kernel=(1, 1), stride=(1, 1),  # noqa: ANN001
                     padding=(0, 0), groups=1) -> None:  # noqa: ANN001
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False)
            self.bn = nn.BatchNorm2d(cout)
            self.prelu = nn.PReLU(cout)

        def forward(self, x: Any) -> Any:
            return self.prelu(self.bn(self.conv(x)))

    class LinearBlock(nn.Module):  # official name: Linear_block
        def __init__(self, cin: int, cout: int, kernel=(1, 1), stride=(1, 1),  # noqa: ANN001
                     padding=(0, 0), groups=1) -> None:  # noqa: ANN001
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False)
            self.bn = nn.BatchNorm2d(cout)

        def forward(self, x: Any) -> Any:
            return self.bn(self.conv(x))

    class HSwish(nn.Module):
        def forward(self, x: Any) -> Any:
            return x * torch.nn.functional.relu6(x + 3) / 6

    class PoolCoordAtt(nn.Module):  # MixedFeatureNet's CoordAtt (average pooling along H and W)
        def __init__(self, inp: int, oup: int, groups: int = 32) -> None:
            super().__init__()
            mip = max(8, inp // groups)
            self.conv1 = nn.Conv2d(inp, mip, 1)
            self.bn1 = nn.BatchNorm2d(mip)
            self.conv2 = nn.Conv2d(mip, oup, 1)
            self.conv3 = nn.Conv2d(mip, oup, 1)
            self.relu = HSwish()

        def forward(self, x: Any) -> Any:
            n, c, h, w = x.shape
            x_h = x.mean(dim=3, keepdim=True)  # [n,c,h,1]
            x_w = x.mean(dim=2, keepdim=True).permute(0, 1, 3, 2)  # [n,c,w,1]
            y = self.relu(self.bn1(self.conv1(torch.cat([x_h, x_w], dim=2))))
            a_h, a_w = torch.split(y, [h, w], dim=2)
            a_h = self.conv2(a_h).sigmoid()
            a_w = self.conv3(a_w.permute(0, 1, 3, 2)).sigmoid()
            return x * a_w.expand(-1, -1, h, w) * a_h.expand(-1, -1, h, w)

    class MDConv(nn.Module):  # mixed depthwise conv; bn/prelu exist in the checkpoint but are unused
        def __init__(self, channels: int, kernel_size: list[int], split: list[int], stride) -> None:  # noqa: ANN001
            super().__init__()
            self.split_channels = split
            self.mixed_depthwise_conv = nn.ModuleList(
                nn.Conv2d(s, s, k, stride=stride, padding=k // 2, groups=s, bias=False)
                for k, s in zip(kernel_size, split))
            self.bn = nn.BatchNorm2d(channels)
            self.prelu = nn.PReLU(channels)

        def forward(self, x: Any) -> Any:
            if len(self.mixed_depthwise_conv) == 1:
                return self.mixed_depthwise_conv[0](x)
            parts = torch.split(x, self.split_channels, dim=1)
            return torch.cat([conv(t) for conv, t in zip(self.mixed_depthwise_conv, parts)], dim=1)

    class MixDepthWise(nn.Module):  # official name: Mix_Depth_Wise
        def __init__(self, cin: int, cout: int, residual: bool, stride,  # noqa: ANN001
                     groups: int, kernel_size: list[int], split: list[int]) -> None:
            super().__init__()
            self.conv = ConvBlock(cin, groups)
            self.conv_dw = MDConv(groups, kernel_size, split, stride)
            self.CA = PoolCoordAtt(groups, groups)
            self.project = LinearBlock(groups, cout)
            self.residual = residual

        def forward(self, x: Any) -> Any:
            y = self.project(self.CA(self.conv_dw(self.conv(x))))
            return x + y if self.residual else y

    class MixResidual(nn.Module):  # official name: Mix_Residual
        def __init__(self, c: int, num_block: int, groups: int, kernel_size: list[int], split: list[int]) -> None:
            super().__init__()
            self.model = nn.Sequential(*[MixDepthWise(c, c, True, (1, 1), groups, kernel_size, split)
                                         for _ in range(num_block)])

        def forward(self, x: Any) -> Any:
            return self.model(x)

    class DDAHead(nn.Module):  # DDAM's CoordAtt (learned 1x7 / 7x1 depthwise "pooling")
        def __init__(self, inp: int = 512, oup: int = 512, groups: int = 32) -> None:
            super().__init__()
            self.Linear_h = LinearBlock(inp, inp, kernel=(1, 7), groups=inp)
            self.Linear_w = LinearBlock(inp, inp, kernel=(7, 1), groups=inp)
            mip = max(8, inp // groups)
            self.conv1 = nn.Conv2d(inp, mip, 1)
            self.bn1 = nn.BatchNorm2d(mip)
            self.conv2 = nn.Conv2d(mip, oup, 1)
            self.conv3 = nn.Conv2d(mip, oup, 1)
            self.relu = HSwish()
            self.Linear = LinearBlock(oup, oup, kernel=(7, 7), groups=oup)  # in the checkpoint, unused

        def forward(self, x: Any) -> Any:
            n, c, h, w = x.shape
            x_h = self.Linear_h(x)
            x_w = self.Linear_w(x).permute(0, 1, 3, 2)
            y = self.relu(self.bn1(self.conv1(torch.cat([x_h, x_w], dim=2))))
            a_h, a_w = torch.split(y, [h, w], dim=2)
            a_h = self.conv2(a_h).sigmoid()
            a_w = self.conv3(a_w.permute(0, 1, 3, 2)).sigmoid()
            return a_w.expand(-1, -1, h, w) * a_h.expand(-1, -1, h, w)

    class CatHead(nn.Module):  # official name: CoordAttHead
        def __init__(self) -> None:
            super().__init__()
            self.CoordAtt = DDAHead(512, 512)

        def forward(self, x: Any) -> Any:
            return self.CoordAtt(x)

    class DDAMNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(  # MixedFeatureNet children up to conv_6_sep (112 -> 7x7x512)
                ConvBlock(3, 64, (3, 3), (2, 2), (1, 1)),
                ConvBlock(64, 64, (3, 3), (1, 1), (1, 1), groups=64),
                MixDepthWise(64, 64, False, (2, 2), 128, [3, 5, 7], [64, 32, 32]),
                MixResidual(64, 9, 128, [3, 5], [96, 32]),
                MixDepthWise(64, 128, False, (2, 2), 256, [3, 5, 7], [128, 64, 64]),
                MixResidual(128, 16, 256, [3, 5], [192, 64]),
                MixDepthWise(128, 256, False, (2, 2), 1024, [3, 5, 7, 9], [256, 256, 256, 256]),
                MixResidual(256, 6, 512, [3, 5, 7], [172, 170, 170]),
                ConvBlock(256, 512),
            )
            self.num_head = num_head
            for i in range(num_head):
                setattr(self, f"cat_head{i}", CatHead())
            self.Linear = LinearBlock(512, 512, kernel=(7, 7), groups=512)
            self.fc = nn.Linear(512, num_class)
            self.bn = nn.BatchNorm1d(num_class)  # in the checkpoint, unused by the official forward

        def forward(self, x: Any) -> Any:
            f = self.features(x)
            y = getattr(self, "cat_head0")(f)
            for i in range(1, self.num_head):
                y = torch.max(y, getattr(self, f"cat_head{i}")(f))
            y = self.Linear(f * y).flatten(1)
            return self.fc(y)  # logits

    return DDAMNet().eval()


class DDAMFN(FERModel):
    """DDAMFN++ FER from a user-given official checkpoint. Options: ``weights`` (path, required),
    ``num_class`` (7; 8 for the AffectNet-8 checkpoint), ``num_head`` (2), ``batch_size`` (64), ``device``."""

    name = "ddamfn"
    description = "DDAMFN++ (AffectSRNet ECM FER); needs the official checkpoint via --fer-weights PATH"
    classes = CLASSES7
    input_size = INPUT_SIZE

    def __init__(self, weights: str | None = None, num_class: int = 7, num_head: int = 2, batch_size: int = 64,
                 device: Any = "cpu", **_: Any) -> None:
        if not weights:
            raise Unavailable(
                "FER 'ddamfn' (DDAMFN++) needs its official checkpoint, which no package registry ships: download "
                "a DDAMFN++ .pth from https://github.com/SainingZhang/DDAMFN (DDAMFN++/checkpoints_ver2.0, RAF-DB "
                "for ECM) and pass it with --fer-weights PATH (Python: get_fer('ddamfn', weights=PATH)); "
                "or use the default offline FER 'mini-xception' (not comparable with the paper's ECM values)")
        path = Path(weights).expanduser()
        if not path.is_file():
            raise Unavailable(f"FER 'ddamfn': checkpoint {path} does not exist (from --fer-weights)")
        import torch

        from fsrbench.analysis.carriers import sha256_file

        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable/unsafe file is a user-fixable problem
            raise Unavailable(f"FER 'ddamfn': cannot read {path} as a weights-only torch checkpoint "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
        state = ckpt.get("model_state_dict", ckpt) if isinstance(ckpt, dict) else None
        if not isinstance(state, dict):
            raise Unavailable(f"FER 'ddamfn': {path} holds no state dict")
        state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
        fc = state.get("fc.weight")
        if fc is not None and int(fc.shape[0]) != int(num_class):
            num_class = int(fc.shape[0])
        self.model = build_ddamnet(num_class, num_head)
        try:
            self.model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise Unavailable(f"FER 'ddamfn': {path} is not a DDAMFN++ checkpoint with {num_head} heads "
                              f"({str(exc).splitlines()[0]})") from exc
        self.model = self.model.to(device).eval()
        self.device = device
        self.batch_size = int(batch_size)
        self.classes = CLASSES8 if num_class == 8 else CLASSES7  # type: ignore[misc]
        if num_class not in (7, 8):
            self.classes = tuple(f"class{i}" for i in range(num_class))  # type: ignore[misc]
        self.id = f"ddamfn++-{sha256_file(path)[:12]}-c{num_class}h{num_head}"

    @staticmethod
    def preprocess(face: np.ndarray, box: FaceBox | None = None) -> np.ndarray:
        """uint8 RGB face -> float32 [3,112,112], ImageNet-normalised (box: crop first, clipped)."""
        from PIL import Image

        a = np.asarray(face)
        if a.ndim == 2:
            a = np.repeat(a[:, :, None], 3, axis=2)
        a = a[:, :, :3]
        if box is not None:
            h, w = a.shape[:2]
            x0, y0 = max(0, int(round(box.x0))), max(0, int(round(box.y0)))
            x1, y1 = min(w, int(round(box.x1))), min(h, int(round(box.y1)))
            if x1 - x0 < 2 or y1 - y0 < 2:
                raise ValueError(f"face box {box} is outside the {w}x{h} image")
            a = a[y0:y1, x0:x1]
        img = Image.fromarray(np.ascontiguousarray(a)).resize((INPUT_SIZE, INPUT_SIZE), Image.BILINEAR)
        x = np.asarray(img, dtype=np.float32) / 255.0
        x = (x - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
        return x.transpose(2, 0, 1)

    def predict_proba(self, faces: np.ndarray, boxes: Sequence[FaceBox | None] | None = None) -> np.ndarray:
        import torch

        arr = np.asarray(faces)
        if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (3, 4)):
            arr = arr[None]
        n = len(arr)
        if boxes is not None and len(boxes) != n:
            raise ValueError(f"{n} faces but {len(boxes)} boxes")
        x = np.zeros((n, 3, INPUT_SIZE, INPUT_SIZE), np.float32)
        ok = np.ones(n, bool)
        for i in range(n):
            try:
                x[i] = self.preprocess(arr[i], None if boxes is None else boxes[i])
            except ValueError:
                ok[i] = False
        out = np.empty((n, len(self.classes)), np.float64)
        with torch.no_grad():
            for s in range(0, n, self.batch_size):
                t = torch.from_numpy(x[s:s + self.batch_size]).to(self.device)
                out[s:s + len(t)] = torch.softmax(self.model(t), dim=1).double().cpu().numpy()
        out[~ok] = np.nan
        return out
