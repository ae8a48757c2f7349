"""Named, versioned evaluation protocols.

A protocol is a YAML file in this folder (or any path given by the user). It fixes the HR size, the
scales, the LR generator and the metric convention. Its identity is ``id`` plus a SHA-256 of its
canonical JSON form (key-sorted, so comments and formatting do not change it); both are stored with every
result row. See docs/protocols.md.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from fsrbench.errors import ProtocolError, RegistryError, unknown_name_message

PROTOCOL_DIR = Path(__file__).resolve().parent
DEFAULT_PROTOCOL = "dic-v1"

_REQUIRED = ("id", "version", "hr_size", "scales", "lr_generator", "upsampler", "metric")
_METRIC_KEYS = {
    "quantize": {"round", "truncate"},
    "color": {"y_bt601", "rgb"},
    "y_rounding": {"round", "truncate", "none"},
    "reduction": {"mean_of_per_image"},
}
_RESIZERS = {"pil_bicubic", "matlab_imresize"}
# optional metric.implementation: an exact replica of a paper's evaluation code (fsrbench.metrics.conventions)
# and the convention values it implies (a file must state them, so that the YAML reads true)
_IMPLEMENTATIONS = {
    "fsrbench": {},
    "dic-calc-metrics": {"color": "y_bt601", "y_rounding": "round", "crop_border": "scale"},
    "sparnet-psnr-ssim": {"color": "y_bt601", "y_rounding": "truncate", "crop_border": 0},
}


@dataclass(frozen=True)
class Protocol:
    id: str
    version: int
    definition: dict[str, Any]
    sha256: str
    path: str

    @property
    def metric(self) -> dict[str, Any]:
        return self.definition["metric"]

    @property
    def implementation(self) -> str:
        """``fsrbench`` (the fast implementation of the convention) or an official replica."""
        return str(self.metric.get("implementation", "fsrbench"))

    @property
    def quantize(self) -> str:
        return str(self.metric.get("quantize", "round"))

    @property
    def lr_generator(self) -> str:
        return str(self.definition["lr_generator"])

    @property
    def upsampler(self) -> str:
        return str(self.definition["upsampler"])

    @property
    def hr_size(self) -> int:
        return int(self.definition["hr_size"])

    @property
    def scales(self) -> list[int]:
        return [int(s) for s in self.definition["scales"]]

    @property
    def short_hash(self) -> str:
        return self.sha256[:12]

    def crop_border(self, scale: int | None) -> int:
        crop = self.metric["crop_border"]
        if crop == "scale":
            if not scale:
                raise ValueError(f"protocol {self.id} crops `scale` pixels per side; pass the scale (4 or 8)")
            return int(scale)
        return int(crop)

    def valid_scales(self) -> list[int]:
        """Scale factors this protocol can evaluate: integers >= 2 that divide ``hr_size``, give an LR image of at
        least 2x2 pixels and leave the metrics an image of at least the SSIM window after their border crop."""
        window = int((self.metric.get("ssim") or {}).get("size", 11))
        return [s for s in range(2, self.hr_size // 2 + 1)
                if self.hr_size % s == 0 and self.hr_size - 2 * self.crop_border(s) >= window]

    def lr_size(self, scale: int) -> int:
        """The LR side at ``scale``; ValueError listing the valid scales for any other scale (0, 1, negative,
        non-divisors, or one whose border crop would leave the metrics no image)."""
        valid = self.valid_scales()
        if isinstance(scale, bool) or not isinstance(scale, int) or scale not in valid:
            raise ValueError(f"scale x{scale} cannot be evaluated under protocol {self.id} (HR {self.hr_size}x"
                             f"{self.hr_size}): a scale is an integer >= 2 that divides {self.hr_size}, gives an LR image "
                             f"of at least 2x2 and leaves the metrics an image after their border crop; valid scales: "
                             f"{', '.join(map(str, valid))} (the protocol's own: {', '.join(map(str, self.scales))})")
        return self.hr_size // scale

    def card(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "sha256": self.sha256}


def canonical_hash(definition: dict[str, Any]) -> str:
    blob = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _validate(d: Any, path: Path) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise ProtocolError(f"{path}: a protocol file must be a YAML mapping")
    missing = [k for k in _REQUIRED if k not in d]
    if missing:
        raise ProtocolError(f"{path}: protocol is missing {', '.join(missing)}")
    m = d["metric"]
    for key, allowed in _METRIC_KEYS.items():
        if m.get(key) not in allowed:
            raise ProtocolError(f"{path}: metric.{key} = {m.get(key)!r}; allowed: {sorted(allowed)}")
    if not (m.get("crop_border") == "scale" or isinstance(m.get("crop_border"), int)):
        raise ProtocolError(f"{path}: metric.crop_border must be 'scale' or an integer")
    for key in ("lr_generator", "upsampler"):
        if d[key] not in _RESIZERS:
            raise ProtocolError(f"{path}: {key} = {d[key]!r}; supported: {sorted(_RESIZERS)}")
    impl = m.get("implementation", "fsrbench")
    if impl not in _IMPLEMENTATIONS:
        raise ProtocolError(f"{path}: metric.implementation = {impl!r}; allowed: {sorted(_IMPLEMENTATIONS)}")
    for key, want in _IMPLEMENTATIONS[impl].items():
        if m.get(key) != want:
            raise ProtocolError(f"{path}: metric.implementation {impl} computes with {key} = {want!r}; "
                                f"the file says {m.get(key)!r}")
    return d


def list_protocols() -> list[str]:
    return sorted(p.stem for p in PROTOCOL_DIR.glob("*.yaml"))


@lru_cache(maxsize=None)
def _load(path: str) -> Protocol:
    p = Path(path)
    try:
        with p.open() as fh:
            raw = yaml.safe_load(fh)  # never yaml.load: a protocol file must not be able to run code
    except yaml.YAMLError as exc:
        raise ProtocolError(f"{p}: not a valid protocol YAML file ({exc})") from exc
    d = _validate(raw, p)
    return Protocol(id=str(d["id"]), version=int(d["version"]), definition=d, sha256=canonical_hash(d),
                    path=str(p))


def get_protocol(name: str | Protocol | None = None) -> Protocol:
    """A protocol by id (``dic-v1``) or by path to a YAML file; ``None`` gives the default."""
    if isinstance(name, Protocol):
        return name
    name = name or DEFAULT_PROTOCOL
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return _load(str(candidate.resolve()))
    path = PROTOCOL_DIR / f"{name}.yaml"
    if not path.is_file():
        raise RegistryError(unknown_name_message("protocols", name, list_protocols()))
    proto = _load(str(path))
    if proto.id != name:
        raise ProtocolError(f"{path}: file name and id disagree ({proto.id!r})")
    return proto
