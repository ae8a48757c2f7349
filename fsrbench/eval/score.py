"""Scoring SR images made elsewhere: ``fsrbench score --sr DIR --hr DIR`` and :func:`fsrbench.score`.

Most users run their own SR code and want fsrbench's numbers for its outputs (as ``pyiqa lpips -t SR -r HR``
does for one metric).  :func:`score` pairs the images of two folders by file name and runs the evaluation
runner on them, so everything ``fsrbench run`` gives comes with it: every metric, the per-image table, the
summaries with CIs, resume (a cell is keyed by the SHA-256 of the SR files), ``metrics.json`` and the leaderboard.
Several methods' outputs scored into one ``--out`` (``--name`` each) make one board.

Pairing: the HR folder is read like ``folder:DIR`` (images in sorted file-name order, ``labels.csv`` honoured;
id = HR file name), but every HR image must already be ``hr_size`` square (128×128) — an HR of another size
fails with its reason instead of being resized.  The SR image of HR ``a.jpg`` is the SR file whose name without
its last suffix is ``a.jpg`` or ``a`` (``a.png``, ``a.jpg.png`` — the layout of a run's ``sr/`` folder — or
``a.jpg``).  An HR without SR image is a failed row ("no SR image"); SR files without HR are listed in the log.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fsrbench.api import Batch, DataError, Method, Sample
from fsrbench.data.folder import FolderDataset
from fsrbench.eval.components import Components
from fsrbench.eval.runner import RunResult, Runner, RunSpec
from fsrbench.imageio import IMAGE_SUFFIXES, read_image, to_tensor
from fsrbench.protocols import DEFAULT_PROTOCOL
from fsrbench.results import slug


class HRFolder(FolderDataset):
    """The HR side of ``score``: ``folder:DIR`` without resizing (an HR image of another size fails)."""

    name = "hr-folder"

    def __init__(self, arg: str | None = None, label: str | None = None, **options: Any) -> None:
        super().__init__(arg, **options)
        self.label = label or self.root.name

    @property
    def display_name(self) -> str:
        return self.label

    def load(self, sample_id: str) -> Sample:
        path = self.root / sample_id
        img = read_image(path)
        if img.shape[:2] != (self.hr_size, self.hr_size):
            raise DataError(f"{path}: HR is {img.shape[1]}x{img.shape[0]}, expected {self.hr_size}x{self.hr_size}; "
                            "score compares SR and HR pixel by pixel, so give the HR crops the SR images were made "
                            "from (fsrbench run --datasets folder:DIR resizes other sizes itself)")
        return Sample(sample_id, img, dict(self.labels.get(sample_id, {}), path=str(path)))


def match_pairs(hr_ids: list[str], sr_dir: Path) -> tuple[dict[str, Path], list[str]]:
    """({HR id: SR file}, SR file names that match no HR id) — see the module docstring for the rule."""
    if not sr_dir.is_dir():
        raise FileNotFoundError(f"--sr {sr_dir} is not a directory; give the folder of SR images")
    files = sorted(p for p in sr_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"--sr {sr_dir}: no images ({', '.join(IMAGE_SUFFIXES)}) in it")
    by_key: dict[str, list[Path]] = {}
    for p in files:
        by_key.setdefault(p.stem, []).append(p)
    pairs: dict[str, Path] = {}
    used: set[Path] = set()
    for hid in hr_ids:
        keys = list(dict.fromkeys([hid, slug(hid), Path(hid).stem]))
        hits = [p for k in keys for p in by_key.get(k, [])]
        hits = list(dict.fromkeys(hits))
        exact = [p for p in hits if p.name == hid]  # same file name first (a.png for HR a.png)
        if len(hits) > 1 and not exact:
            raise ValueError(f"--sr {sr_dir}: {', '.join(p.name for p in hits)} all match HR {hid}; keep one")
        if hits:
            pairs[hid] = (exact or hits)[0]
            used.add(pairs[hid])
    return pairs, [p.name for p in files if p not in used]


class SRFolder(Method):
    """A "method" whose outputs already exist: ``super_resolve`` reads the SR file of every id of the batch."""

    name = "sr-folder"
    any_scale = True

    def __init__(self, pairs: dict[str, Path], sr_dir: Path, label: str = "sr", **options: Any) -> None:
        super().__init__(**options)
        self.pairs = dict(pairs)
        self.sr_dir = sr_dir
        self.label = label
        h = hashlib.sha256()
        for hid in sorted(self.pairs):
            h.update(f"{hid}\0{self.pairs[hid].name}\0".encode())
            h.update(hashlib.sha256(self.pairs[hid].read_bytes()).digest())
        # the cell key holds this hash: other SR bytes (or other pairs) -> the cell is recomputed
        self.weights_card = {"kind": "sr-folder", "sha256": h.hexdigest(), "sr": str(sr_dir), "n_files": len(pairs)}

    def setup(self, scale: int, device: Any = "cpu", weights: str | None = None) -> None:
        self.scale, self.device = scale, device

    def super_resolve(self, batch: Batch) -> Any:
        imgs = []
        for sid in batch.ids:
            p = self.pairs.get(sid)
            if p is None:
                raise FileNotFoundError(f"no SR image for {sid} in {self.sr_dir}")
            img = read_image(p)
            if img.shape[:2] != (batch.hr_size, batch.hr_size):
                raise ValueError(f"SR image {p.name} is {img.shape[1]}x{img.shape[0]}, expected "
                                 f"{batch.hr_size}x{batch.hr_size} (the protocol's HR size)")
            imgs.append(img)
        return to_tensor(np.stack(imgs), self.device)

    def info(self) -> dict[str, Any]:
        return {"sr_dir": str(self.sr_dir), "source": "SR images made outside fsrbench"}


class _ScoreComponents(Components):
    method_object: SRFolder | None = None

    def method(self, name: str, scale: int) -> tuple[Method | None, str | None]:
        m = self.method_object
        assert m is not None
        m.setup(scale=scale, device=self.device)
        return m, None


class ScoreRunner(Runner):
    """The evaluation runner with one dataset (the HR folder) and one method (the SR folder)."""

    def __init__(self, spec: RunSpec, hr: HRFolder, sr_dir: Path, log: Any = None, on_results: Any = None) -> None:
        super().__init__(spec, log=log, on_results=on_results)
        c = self.components
        self.components = _ScoreComponents(**{f.name: getattr(c, f.name) for f in dataclasses.fields(c)})
        self.hr = hr
        ids = hr.ids()[: spec.limit] if spec.limit else hr.ids()
        pairs, orphans = match_pairs(ids, sr_dir)
        if not pairs:
            raise ValueError(f"no SR image in {sr_dir} matches an HR image of {hr.root} by file name (e.g. HR "
                             f"{ids[0] if ids else '?'} needs SR {Path(ids[0]).stem if ids else '?'}.png); see "
                             "docs/quickstart.md")
        self.n_missing = len(ids) - len(pairs)
        if self.n_missing:
            self.log(f"score: {self.n_missing} of {len(ids)} HR images have no SR image in {sr_dir}; they count as "
                     "failed images")
        if orphans:
            more = f" … and {len(orphans) - 5} more" if len(orphans) > 5 else ""
            self.log(f"score: {len(orphans)} SR file(s) match no HR image and are not scored: "
                     f"{', '.join(orphans[:5])}{more}")
        self.components.method_object = SRFolder(pairs, sr_dir, spec.methods[0])

    def _resolve_methods(self) -> list[str]:
        return list(self.spec.methods)

    def _method_class(self, name: str) -> Any:
        return SRFolder  # not a registered name: the SR files' hash (weights_card) keys the cell

    def _ready_method(self, name: str, scale: int) -> tuple[Any, str | None]:
        return self.components.method(name, scale)  # reads image files only: nothing to isolate

    def _open_dataset(self, spec: str) -> Any:
        return self.hr


@dataclass
class ScoreSpec:
    """What ``fsrbench score`` evaluates (stored in run.json as the runner's spec)."""

    sr: str
    hr: str
    scale: int
    protocol: str = DEFAULT_PROTOCOL
    name: str = "sr"
    dataset: str | None = None  # label of the HR set (default: the HR folder's name)
    metrics: list[str] | None = None
    out: str = ""
    batch_size: int = 16
    device: str = "cpu"
    force: bool = False
    strict: bool = False
    limit: int | None = None
    seed: int = 0
    metric_options: dict[str, Any] = field(default_factory=dict)
    cache_dir: str | None = None
    progress: bool = False


def score_run(spec: ScoreSpec, log: Any = None, on_results: Any = None) -> RunResult:
    """Score the SR images of ``spec.sr`` against the HR images of ``spec.hr`` into the results directory;
    ``on_results`` as for :func:`fsrbench.eval.runner.run` (called while the results directory is locked)."""
    hr_dir = Path(spec.hr).expanduser().resolve()
    sr_dir = Path(spec.sr).expanduser().resolve()
    hr = HRFolder(str(hr_dir), label=spec.dataset)
    label = hr.display_name
    out = spec.out or str(Path("runs") / f"{slug(label)}_{Path(spec.protocol).stem}")
    run_spec = RunSpec(methods=[spec.name], datasets=[label], scales=[int(spec.scale)], metrics=spec.metrics,
                       protocol=spec.protocol, out=out, batch_size=spec.batch_size, device=spec.device,
                       force=spec.force, strict=spec.strict, save_sr=False, limit=spec.limit, seed=spec.seed,
                       metric_options=dict(spec.metric_options), dataset_options={"sr": str(sr_dir), "hr": str(hr_dir)},
                       cache_dir=spec.cache_dir, progress=spec.progress)
    return ScoreRunner(run_spec, hr, sr_dir, log=log, on_results=on_results).run()


__all__ = ["HRFolder", "SRFolder", "ScoreRunner", "ScoreSpec", "match_pairs", "score_run"]
