"""Experiment files: ``fsrbench run --config FILE`` (what to evaluate, as YAML; the command line wins).

One YAML file a lab can commit that says what to evaluate, like BasicSR's option files or lm-eval's task
configs::

    # configs/celeba-helen.yaml
    datasets:                          # NAME[@SPLIT]: path | {root:, split:, options...}; see docs/datasets.md
      celeba: {split: test}            # no root: --data-root, $FSRBENCH_DATA_ROOT/CelebA or ~/.config/fsrbench
      helen: {split: test-all}
    methods: all                       # or a list
    scales: [4, 8]
    protocol: dic-v1
    metrics: [psnr, ssim, lpips]       # omit: every metric that can run
    fer: mini-xception                 # other keys: fer_box, fer_fallback, fer_flip, out, batch_size, device, amp,
                                       # multires, weights, checkpoint_dir, plugins, limit, seed, strict, save_sr,
                                       # isolate, batch_timeout

The file's ``datasets:`` section is also the dataset config of the run (roots and per-dataset options such as
``split_file`` or ``crop``), so the same file serves ``fsrbench data check NAME --config FILE``.  Options given
on the command line win over the file.  Relative dataset roots, ``weights`` and ``plugins`` files are relative
to the file's folder; ``out`` is relative to the working directory (results go where the command runs).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fsrbench.data.config import dataset_entries, read_document
from fsrbench.data.opener import dataset_class, is_reader
from fsrbench.errors import unknown_name_message

#: experiment keys -> what they set (RunSpec fields, or metric options)
KEYS = ("datasets", "methods", "scales", "metrics", "protocol", "out", "batch_size", "device", "amp", "multires",
        "weights", "checkpoint_dir", "plugins", "limit", "seed", "strict", "save_sr", "fer", "fer_box", "fer_fallback",
        "fer_flip", "isolate", "batch_timeout")
#: where a method's code runs (fsrbench.eval.isolate.ISOLATE_MODES; not imported: it would import torch)
_ISOLATE_MODES = ("auto", "process", "inline")


def _names(value: Any, key: str, path: Path) -> list[str]:
    if isinstance(value, str):
        return [x.strip() for x in value.split(",") if x.strip()]
    if isinstance(value, list) and all(isinstance(x, (str, int)) for x in value):
        return [str(x).strip() for x in value]
    raise ValueError(f"{path}: `{key}:` must be a list or a comma string, got {value!r}")


def _rel(path: Path, value: str) -> str:
    p = Path(str(value)).expanduser()
    return str(p if p.is_absolute() else path.parent / p)


def load_experiment(file: str | Path) -> dict[str, Any]:
    """The run settings of an experiment file as :class:`~fsrbench.eval.runner.RunSpec` fields (only the keys the
    file sets; ``metric_options`` for ``fer``; ``dataset_options`` = ``{"config": FILE}``)."""
    path = Path(file).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"experiment file {path} does not exist (from --config); fix the path")
    doc = read_document(path)
    unknown = [k for k in doc if k not in KEYS]
    if unknown:
        raise ValueError(f"{path}: " + "; ".join(unknown_name_message("keys", str(k), list(KEYS)) for k in unknown))
    out: dict[str, Any] = {"dataset_options": {"config": str(path)}}
    if "datasets" in doc:
        entries = dataset_entries(doc, path)
        if not entries:
            raise ValueError(f"{path}: `datasets:` is empty; list at least one dataset")
        specs = []
        for e in entries:
            # the root stays in the file (the reader finds it there with the entry's options); only a
            # non-reader's argument (folder:DIR) must be part of the spec
            arg = e["root"] if e["root"] is not None and not is_reader(dataset_class(e["name"])) else None
            specs.append(e["name"] + (f":{arg}" if arg else "") + (f"@{e['split']}" if e.get("split") else ""))
        out["datasets"] = specs
    if "methods" in doc:
        out["methods"] = _names(doc["methods"], "methods", path)
    if "metrics" in doc:
        out["metrics"] = _names(doc["metrics"], "metrics", path) if doc["metrics"] not in (None, "all") else None
    if "scales" in doc:
        try:
            out["scales"] = [int(s) for s in _names(doc["scales"] if not isinstance(doc["scales"], int)
                                                   else [doc["scales"]], "scales", path)]
        except ValueError:
            raise ValueError(f"{path}: `scales:` must be integers, got {doc['scales']!r}") from None
    for key in ("protocol", "out", "device", "amp", "multires", "checkpoint_dir"):
        if key in doc and doc[key] is not None:
            out[key] = str(doc[key])
    if "protocol" in out and out["protocol"].endswith((".yaml", ".yml")):
        out["protocol"] = _rel(path, out["protocol"])
    for key in ("batch_size", "limit", "seed"):
        if key in doc and doc[key] is not None:
            if not isinstance(doc[key], int) or isinstance(doc[key], bool):
                raise ValueError(f"{path}: `{key}:` must be an integer, got {doc[key]!r}")
            out[key] = doc[key]
    if "isolate" in doc:
        if doc["isolate"] not in _ISOLATE_MODES:
            raise ValueError(f"{path}: `isolate:` must be one of {', '.join(_ISOLATE_MODES)}, got {doc['isolate']!r}")
        out["isolate"] = doc["isolate"]
    if "batch_timeout" in doc:
        value = doc["batch_timeout"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"{path}: `batch_timeout:` must be a number of seconds >= 0 (0 = no limit), got {value!r}")
        out["batch_timeout"] = float(value)
    for key in ("strict", "save_sr"):
        if key in doc:
            if not isinstance(doc[key], bool):
                raise ValueError(f"{path}: `{key}:` must be true or false, got {doc[key]!r}")
            out[key] = doc[key]
    if "weights" in doc:
        if not isinstance(doc["weights"], dict):
            raise ValueError(f"{path}: `weights:` must map method names to weight files")
        out["weights"] = {str(k): _rel(path, v) for k, v in doc["weights"].items()}
    if "plugins" in doc:
        out["plugins"] = [(_rel(path, p.rpartition(":")[0]) + ":" + p.rpartition(":")[2])
                          if p.rpartition(":")[0].endswith(".py") else p for p in _names(doc["plugins"], "plugins", path)]
    metric_options = {k: (bool(doc[k]) if k == "fer_flip" else str(doc[k])) for k in ("fer", "fer_box", "fer_fallback",
                                                                                      "fer_flip") if doc.get(k)}
    if metric_options:
        out["metric_options"] = metric_options
    return out


__all__ = ["KEYS", "load_experiment"]
