"""AffectSRNet network (METHODS.md §7.3): RRDB backbone + GCN over MediaPipe landmarks + three MSAF fusions.

* Backbone: ESRGAN RRDBNet with ``nb`` RRDBs (nf 64, gc 32), InstanceNorm(affine) after every conv inside
  the RRDBs (``instance_norm``), log2(scale) stages of bicubic ×2 → conv3×3 → LeakyReLU(0.2), HRconv,
  conv_last, and a bicubic ×scale global skip of the LR input. Module names follow the original ESRGAN
  checkpoint layout (``conv_first``, ``RRDB_trunk.i.RDBk.convj``, ``trunk_conv``, ``HRconv``,
  ``conv_last``; up-convs are ``upconvs.k``) so :func:`load_esrgan` can initialise from one.
* Graph branch (``graph=True``): node features = normalised (x, y, z) landmarks [B,478,3] → 4 GCNConv
  layers (torch-geometric, one ``Batch`` of B copies of the edge set in ``edges.json``) with ReLU → node
  embeddings [B,478,512] → graph map [B,16,8,8] (``graph_map="linear"``: mean-pool + Linear; ``"splat"``:
  per-node Linear to 16 ch, bilinearly splatted at each node's (x, y) on a ``graph_base``² grid).
  Before fusion k the map of the previous fusion (first: the base map) is nearest-resized to the
  backbone feature size and passed through a 1×1 conv; MSAF (msaf.py) fuses it with the backbone.
  Fusions: after the trunk (LR size), after up-stage 1, after up-stage 2 (none after stage 3 at ×8).

Input: LR float [B,3,s,s] in [0,1] (any s); landmarks [B,478,3] already normalised (x, y in [0,1] of the
image, z in the same units) — see method.py for the pixel → normalised conversion and the fallback.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fsrbench.weights import read_state_dict as _read_state_dict

from .msaf import MSAFFusion

EDGES_FILE = Path(__file__).resolve().parent / "edges.json"
NUM_LANDMARKS = 478


# ------------------------------------------------------------------------------------------------
# edge set (data)
# ------------------------------------------------------------------------------------------------
def load_polylines(path: str | Path = EDGES_FILE, include_optional: Sequence[str] = ()) -> dict[str, list[int]]:
    """The named poly-lines of ``edges.json`` (plus the optional ones named in ``include_optional``)."""
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    lines = {k: [int(i) for i in v] for k, v in doc["polylines"].items()}
    for name in include_optional:
        if name not in doc.get("optional_polylines", {}):
            raise ValueError(f"{path}: no optional poly-line {name!r} (have {sorted(doc.get('optional_polylines', {}))})")
        lines[name] = [int(i) for i in doc["optional_polylines"][name]]
    return lines


def edge_index_from_polylines(lines: Mapping[str, Sequence[int]], num_nodes: int = NUM_LANDMARKS) -> torch.Tensor:
    """Unique undirected edges (both directions) from consecutive points of each poly-line → [2, 2E] long."""
    pairs = set()
    for name, pts in lines.items():
        for a, b in zip(pts[:-1], pts[1:]):
            if not (0 <= a < num_nodes and 0 <= b < num_nodes):
                raise ValueError(f"poly-line {name!r}: index out of range 0..{num_nodes - 1}")
            if a != b:
                pairs.add((min(a, b), max(a, b)))
    und = sorted(pairs)
    src = [a for a, b in und] + [b for a, b in und]
    dst = [b for a, b in und] + [a for a, b in und]
    return torch.tensor([src, dst], dtype=torch.long)


# ------------------------------------------------------------------------------------------------
# backbone
# ------------------------------------------------------------------------------------------------
class ResidualDenseBlock(nn.Module):
    """5 densely connected 3×3 convs (nf + (i−1)·gc → gc, i=1..4; nf + 4gc → nf), each + InstanceNorm
    (affine) when ``norm``; LeakyReLU(0.2) after conv1..4; output x + 0.2·conv5."""

    def __init__(self, nf: int = 64, gc: int = 32, norm: bool = True) -> None:
        super().__init__()
        for i in range(1, 5):
            setattr(self, f"conv{i}", nn.Conv2d(nf + (i - 1) * gc, gc, 3, 1, 1))
            setattr(self, f"norm{i}", nn.InstanceNorm2d(gc, affine=True) if norm else nn.Identity())
        self.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)
        self.norm5 = nn.InstanceNorm2d(nf, affine=True) if norm else nn.Identity()
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for i in range(1, 5):
            conv, norm = getattr(self, f"conv{i}"), getattr(self, f"norm{i}")
            feats.append(self.lrelu(norm(conv(torch.cat(feats, 1)))))
        return x + 0.2 * self.norm5(self.conv5(torch.cat(feats, 1)))


class RRDB(nn.Module):
    """Residual-in-residual dense block: x + 0.2·RDB3(RDB2(RDB1(x)))."""

    def __init__(self, nf: int = 64, gc: int = 32, norm: bool = True) -> None:
        super().__init__()
        self.RDB1 = ResidualDenseBlock(nf, gc, norm)
        self.RDB2 = ResidualDenseBlock(nf, gc, norm)
        self.RDB3 = ResidualDenseBlock(nf, gc, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.RDB3(self.RDB2(self.RDB1(x)))


# ------------------------------------------------------------------------------------------------
# graph branch
# ------------------------------------------------------------------------------------------------
class LandmarkGCN(nn.Module):
    """Stacked GCNConv layers (ReLU after each) over B copies of a fixed edge set, batched with PyG Batch."""

    def __init__(self, widths: Sequence[int] = (3, 64, 128, 256, 512),
                 edge_index: torch.Tensor | None = None, num_nodes: int = NUM_LANDMARKS) -> None:
        super().__init__()
        import warnings

        with warnings.catch_warnings():  # torch-geometric 2.8 warns about torch.jit.script on import
            warnings.simplefilter("ignore", FutureWarning)
            from torch_geometric.nn import GCNConv
        self.num_nodes = num_nodes
        self.widths = [int(w) for w in widths]
        self.convs = nn.ModuleList(GCNConv(a, b) for a, b in zip(self.widths[:-1], self.widths[1:]))
        if edge_index is None:
            edge_index = edge_index_from_polylines(load_polylines(), num_nodes)
        self.register_buffer("edge_index", edge_index, persistent=False)

    @property
    def out_channels(self) -> int:
        return self.widths[-1]

    def forward(self, nodes: torch.Tensor) -> torch.Tensor:
        """nodes [B, N, C_in] → node embeddings [B, N, C_out]."""
        from torch_geometric.data import Batch, Data

        b, n, _ = nodes.shape
        if n != self.num_nodes:
            raise ValueError(f"expected {self.num_nodes} landmarks, got {n}")
        graph = Batch.from_data_list([Data(x=nodes[i], edge_index=self.edge_index, num_nodes=n) for i in range(b)])
        h = graph.x
        for conv in self.convs:
            h = F.relu(conv(h, graph.edge_index))
        return h.view(b, n, -1)


def splat_bilinear(values: torch.Tensor, xy: torch.Tensor, size: int, eps: float = 1e-6) -> torch.Tensor:
    """Bilinear splatting of per-node values [B,N,C] at positions xy [B,N,2] (in [0,1]) on a size² grid.

    Each node spreads its value over the 4 surrounding pixel centres with bilinear weights; the map is the
    weight-normalised sum (0 where no node lands). Returns [B, C, size, size].
    """
    b, n, c = values.shape
    u = xy[..., 0].clamp(0, 1) * size - 0.5
    v = xy[..., 1].clamp(0, 1) * size - 0.5
    u0, v0 = u.floor(), v.floor()
    acc = values.new_zeros(b, size * size, c)
    wsum = values.new_zeros(b, size * size, 1)
    for du in (0, 1):
        for dv in (0, 1):
            uu, vv = u0 + du, v0 + dv
            w = (1 - (u - uu).abs()) * (1 - (v - vv).abs())
            valid = (uu >= 0) & (uu < size) & (vv >= 0) & (vv < size)
            w = (w * valid).unsqueeze(-1)
            idx = (vv.clamp(0, size - 1) * size + uu.clamp(0, size - 1)).long().unsqueeze(-1)
            acc.scatter_add_(1, idx.expand(b, n, c), values * w)
            wsum.scatter_add_(1, idx, w)
    out = acc / (wsum + eps)
    return out.transpose(1, 2).reshape(b, c, size, size)


# ------------------------------------------------------------------------------------------------
# full network
# ------------------------------------------------------------------------------------------------
VARIANTS = {"rrdb": (False, False), "rrdb_in": (True, False), "full": (True, True)}  # (instance_norm, graph)


class AffectSRNet(nn.Module):
    """AffectSRNet for one scale (2, 4 or 8). ``forward(lr, landmarks=None, return_nodes=False)``."""

    def __init__(self, scale: int = 4, nf: int = 64, gc: int = 32, nb: int = 8, instance_norm: bool = True,
                 graph: bool = True, gcn_widths: Sequence[int] = (3, 64, 128, 256, 512),
                 graph_channels: int = 16, graph_base: int = 8, graph_map: str = "linear",
                 fusions: int = 3, msaf_block_channel: int = 16, msaf_reduction: int = 4,
                 msaf_block_dropout: float = 0.2, msaf_lowest_atten: float = 0.0,
                 edge_index: torch.Tensor | None = None) -> None:
        super().__init__()
        if scale < 2 or scale & (scale - 1):
            raise ValueError(f"scale must be a power of two >= 2, got {scale}")
        if graph_map not in ("linear", "splat"):
            raise ValueError(f"graph_map must be 'linear' or 'splat', not {graph_map!r}")
        self.scale, self.nf = scale, nf
        self.n_up = int(math.log2(scale))
        self.use_graph = bool(graph)
        self.graph_map_kind = graph_map
        self.graph_channels, self.graph_base = int(graph_channels), int(graph_base)
        self.n_fusions = min(int(fusions), self.n_up + 1) if graph else 0

        self.conv_first = nn.Conv2d(3, nf, 3, 1, 1)
        self.RRDB_trunk = nn.Sequential(*[RRDB(nf, gc, instance_norm) for _ in range(nb)])
        self.trunk_conv = nn.Conv2d(nf, nf, 3, 1, 1)
        self.upconvs = nn.ModuleList(nn.Conv2d(nf, nf, 3, 1, 1) for _ in range(self.n_up))
        self.HRconv = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, 3, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

        if self.use_graph:
            self.gcn = LandmarkGCN(gcn_widths, edge_index)
            emb = self.gcn.out_channels
            if graph_map == "linear":
                self.graph_proj = nn.Linear(emb, self.graph_channels * self.graph_base ** 2)
            else:
                self.graph_proj = nn.Linear(emb, self.graph_channels)
            self.graph_convs = nn.ModuleList(nn.Conv2d(self.graph_channels, self.graph_channels, 1)
                                             for _ in range(self.n_fusions))
            self.fusions = nn.ModuleList(
                MSAFFusion(nf, self.graph_channels, msaf_block_channel, msaf_reduction, msaf_block_dropout,
                           msaf_lowest_atten) for _ in range(self.n_fusions))

    # -- graph branch ----------------------------------------------------------------------------
    def node_embeddings(self, landmarks: torch.Tensor) -> torch.Tensor:
        """Normalised landmarks [B,478,3] → GCN node embeddings [B,478,C]."""
        return self.gcn(landmarks.to(self.conv_first.weight.dtype))

    def graph_base_map(self, nodes: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        b = nodes.shape[0]
        if self.graph_map_kind == "linear":
            return self.graph_proj(nodes.mean(1)).view(b, self.graph_channels, self.graph_base, self.graph_base)
        return splat_bilinear(self.graph_proj(nodes), landmarks[..., :2], self.graph_base)

    def _fuse(self, k: int, fea: torch.Tensor, gmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gmap = self.graph_convs[k](F.interpolate(gmap, size=fea.shape[-2:], mode="nearest"))
        return self.fusions[k](fea, gmap), gmap

    # -- forward ---------------------------------------------------------------------------------
    def forward(self, lr: torch.Tensor, landmarks: torch.Tensor | None = None,
                return_nodes: bool = False, ref_landmarks: torch.Tensor | None = None, ref_grad: bool = True) -> Any:
        """SR (and, with ``return_nodes``, the node embeddings of ``landmarks``).  ``ref_landmarks``: also the
        node embeddings of these (the HR-landmark graph of the node loss; without gradient unless ``ref_grad``),
        returned third — computed here so that the node loss, too, runs through a DDP wrapper's forward."""
        nodes = gmap = None
        if self.use_graph:
            if landmarks is None:
                raise ValueError("AffectSRNet with the graph branch needs landmarks [B,478,3]")
            nodes = self.node_embeddings(landmarks)
            gmap = self.graph_base_map(nodes, landmarks)
        fea = self.conv_first(lr)
        fea = fea + self.trunk_conv(self.RRDB_trunk(fea))
        k = 0
        if k < self.n_fusions:
            fea, gmap = self._fuse(k, fea, gmap)
            k += 1
        for conv in self.upconvs:
            fea = self.lrelu(conv(F.interpolate(fea, scale_factor=2, mode="bicubic", align_corners=False)))
            if k < self.n_fusions:
                fea, gmap = self._fuse(k, fea, gmap)
                k += 1
        out = self.conv_last(self.lrelu(self.HRconv(fea)))
        out = out + F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False)
        if ref_landmarks is not None:
            with torch.set_grad_enabled(ref_grad and torch.is_grad_enabled()):
                return out, nodes, self.node_embeddings(ref_landmarks)
        return (out, nodes) if return_nodes else out


def build_affectsrnet(scale: int, config: Mapping[str, Any]) -> AffectSRNet:
    """AffectSRNet from a flat config (keys of configs/affectsrnet.yaml)."""
    variant = str(config.get("variant", "full"))
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, not {variant!r}")
    instance_norm, graph = VARIANTS[variant]
    edge_index = None
    if graph:
        lines = load_polylines(config.get("edges_file") or EDGES_FILE, tuple(config.get("edges_extra") or ()))
        edge_index = edge_index_from_polylines(lines)
    return AffectSRNet(
        scale=scale, nf=int(config.get("nf", 64)), gc=int(config.get("gc", 32)), nb=int(config.get("nb", 8)),
        instance_norm=instance_norm, graph=graph,
        gcn_widths=tuple(int(w) for w in config.get("gcn_widths", (3, 64, 128, 256, 512))),
        graph_channels=int(config.get("graph_channels", 16)), graph_base=int(config.get("graph_base", 8)),
        graph_map=str(config.get("graph_map", "linear")), fusions=int(config.get("fusions", 3)),
        msaf_block_channel=int(config.get("msaf_block_channel", 16)),
        msaf_reduction=int(config.get("msaf_reduction", 4)),
        msaf_block_dropout=float(config.get("msaf_block_dropout", 0.2)),
        msaf_lowest_atten=float(config.get("msaf_lowest_atten", 0.0)),
        edge_index=edge_index)


# ------------------------------------------------------------------------------------------------
# ESRGAN initialisation
# ------------------------------------------------------------------------------------------------
_PREFIX_RENAMES = (("body.", "RRDB_trunk."), ("conv_body.", "trunk_conv."), ("conv_hr.", "HRconv."),
                   ("upconv1.", "upconvs.0."), ("upconv2.", "upconvs.1."), ("upconv3.", "upconvs.2."),
                   ("conv_up1.", "upconvs.0."), ("conv_up2.", "upconvs.1."), ("conv_up3.", "upconvs.2."))


def _esrgan_key(k: str) -> str:
    """Map an ESRGAN key (original xinntao naming or BasicSR naming) to this module's naming."""
    for old, new in _PREFIX_RENAMES:
        if k.startswith(old):
            k = new + k[len(old):]
            break
    for i in (1, 2, 3):
        k = k.replace(f".rdb{i}.", f".RDB{i}.")
    return k


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint, loaded safely (:func:`fsrbench.weights.read_state_dict`: safetensors, or
    torch.load(weights_only=True)); BasicSR wrappers ``{"params_ema": ...}`` / ``{"params": ...}`` /
    ``{"state_dict": ...}`` are unwrapped."""
    sd = _read_state_dict(path, nested=("params_ema", "params", "state_dict"),
                          missing="ESRGAN checkpoint {path} not found (set esrgan_init to a local "
                                  "RRDB_ESRGAN_x4.pth / RRDB_PSNR_x4.pth or a .safetensors file)")
    return {k: v for k, v in sd.items() if torch.is_tensor(v)}


def load_esrgan(model: AffectSRNet, path: str | Path) -> dict[str, Any]:
    """Copy matching ESRGAN weights into ``model`` (first ``nb`` RRDBs, convs, up-convs, HRconv, conv_last).

    Returns ``{"loaded": n, "skipped": [keys not used], "kept_random": [model keys not in the file]}``.
    InstanceNorm and graph/MSAF parameters are not in ESRGAN checkpoints and keep their initialisation.
    Raises ValueError on a shape mismatch of a mapped key.
    """
    src = {_esrgan_key(k): v for k, v in read_state_dict(path).items()}
    own = model.state_dict()
    loaded, skipped = {}, []
    for k, v in src.items():
        if k not in own:
            skipped.append(k)
            continue
        if tuple(own[k].shape) != tuple(v.shape):
            raise ValueError(f"{path}: {k} has shape {tuple(v.shape)}, model expects {tuple(own[k].shape)}")
        loaded[k] = v.to(own[k].dtype)
    model.load_state_dict(loaded, strict=False)
    kept = [k for k in own if k not in loaded and not k.startswith(("gcn.", "graph_", "fusions."))
            and ".norm" not in k]
    return {"loaded": len(loaded), "skipped": sorted(skipped), "kept_random": kept}
