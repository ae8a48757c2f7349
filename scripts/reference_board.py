#!/usr/bin/env python
"""The reference board: ``leaderboards/reference-faces-val.md``, every shipped reference model on faces-val.

    python scripts/reference_board.py --val-data ../shared/data/faces-val   # evaluate (resumable), store, render
    python scripts/reference_board.py --val-data ../shared/data/faces-val --add   # only the shipped entries
                                                 # without a stored cell: evaluated alone, added to the stored
                                                 # result (fsrbench.report.boards.add_run), board re-rendered
    python scripts/reference_board.py --check    # the stored results were made with exactly the shipped
                                                 # files, and the board re-renders identically from them

The evaluation is ``fsrbench run --scales 4,8`` of bicubic and every method with a shipped entry, with every metric on the validation folder, with
no user checkpoints in the way (an empty --checkpoint-dir), so each method uses its shipped reference weights.
Run from anywhere; the dataset is named by its path relative to the repository (no machine paths on the board).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NAME = "reference-faces-val"
TITLE = ("fsrbench CPU reference weights (weights/, fsrbench-weights) on faces-val (300 UTKFace crops): every model "
         "trained by fsrbench on faces-train with the budget on its card (`fsrbench weights list`). Not the papers' "
         "weights; not comparable with the papers' numbers")


def shipped_methods() -> list[str]:
    """bicubic, then every method with a shipped reference entry (ablations included: `all` leaves them out)."""
    from fsrbench.train.reference import package_cards

    return ["bicubic"] + sorted({c["method"] for c in package_cards(REPO / "weights" / "fsrbench_weights")})


def evaluate(val_data: str, out: Path, extra: list[str], methods: list[str] | None = None,
             scales: str = "4,8") -> int:
    rel = os.path.relpath(Path(val_data).resolve(), REPO)
    # no user checkpoints in the way: an empty folder named relative to the repository (no machine paths in
    # the "no trained weights" lines of the board)
    empty = Path("runs") / "no-user-checkpoints"
    (REPO / empty).mkdir(parents=True, exist_ok=True)
    if any((REPO / empty).iterdir()):
        raise SystemExit(f"{REPO / empty} must be empty (it stands for 'no user checkpoints')")
    cmd = [sys.executable, "-m", "fsrbench", "run", "--methods", ",".join(methods or shipped_methods()), "--datasets",
           f"folder:{rel}", "--scales", scales, "--out", str(out), "--checkpoint-dir", str(empty), "--no-save-sr",
           *extra]
    print("$", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=REPO)


def _stored_usage(root: Path) -> tuple[dict[str, list[tuple[str, int]]], dict[str, dict]]:
    """(weights sha256 -> [(method, scale)] of the stored reference cells, shipped sha256 -> card)."""
    from fsrbench.train.reference import package_cards

    cells = json.loads((root / "results" / NAME / "metrics.json").read_text())["cells"]
    used: dict[str, list[tuple[str, int]]] = {}
    for c in cells:
        w = c.get("weights") or {}
        if w.get("kind") == "reference":
            used.setdefault(w.get("sha256"), []).append((c["method"], int(c["scale"])))
    return used, {c["sha256"]: c for c in package_cards(REPO / "weights" / "fsrbench_weights")}


def missing(used: dict[str, list[tuple[str, int]]], shipped: dict[str, dict]) -> list[tuple[str, str, int, str]]:
    """(entry, method, scale, sha256) of every shipped entry's scale without a stored cell made with its file
    (``used``, ``shipped``: from :func:`_stored_usage`)."""
    out = []
    for sha, card in sorted(shipped.items(), key=lambda kv: kv[1]["reference"]["entry"]):
        scales = [int(s) for s in ((card["reference"].get("faces_val") or {}).get("by_scale") or {card["scale"]: 0})]
        have = {s for m, s in used.get(sha, []) if m == card["method"]}
        out += [(card["reference"]["entry"], card["method"], s, sha) for s in scales if s not in have]
    return out


def check(root: Path) -> list[str]:
    """Problems: shipped entries without a stored cell made with their file, stored reference cells whose
    file is no longer shipped, and board drift."""
    from fsrbench.report.boards import regenerate

    stored = root / "results" / NAME / "metrics.json"
    if not stored.is_file():
        return [f"{stored} is missing: run scripts/reference_board.py --val-data DIR"]
    used, shipped = _stored_usage(root)
    problems = [f"{entry} x{s}: no stored cell made with the shipped file ({sha[:12]}…); run "
                f"scripts/reference_board.py --val-data DIR --add" for entry, _, s, sha in missing(used, shipped)]
    for sha, where in used.items():
        if sha not in shipped:
            problems.append(f"stored cells {where} were made with weights {str(sha)[:12]}… that are no longer shipped; "
                            f"re-run scripts/reference_board.py --val-data DIR")
    problems += [p for p in regenerate(root, check=True) if NAME in p.split("\n")[0]]
    return problems


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--val-data", help="the faces-val folder (e.g. ../shared/data/faces-val)")
    p.add_argument("--out", default=str(REPO / "runs" / NAME), help="results directory (resumable)")
    p.add_argument("--check", action="store_true")
    p.add_argument("--add", action="store_true", help="evaluate only the shipped entries without a stored cell "
                                                       "and add their cells to the stored result")
    p.add_argument("extra", nargs="*", help="more `fsrbench run` options after --, e.g. -- --workers 2")
    a = p.parse_args()
    sys.path.insert(0, str(REPO))
    from fsrbench.report.boards import ROOT, regenerate, store_results

    if a.check:
        problems = check(ROOT)
        for msg in problems:
            print(msg, file=sys.stderr)
        print("reference board: " + ("OK" if not problems else f"{len(problems)} problem(s)"))
        return 1 if problems else 0
    if not a.val_data:
        p.error("--val-data is required (or --check)")
    if a.add:
        from fsrbench.report.boards import add_run

        todo: dict[str, list[int]] = {}
        for _, method, scale, _ in missing(*_stored_usage(ROOT)):
            todo.setdefault(method, []).append(scale)
        if not todo:
            print("reference board: every shipped entry has its stored cells; nothing to add")
        for method, scales in sorted(todo.items()):
            out = Path(f"{a.out}-add-{method}")
            rc = evaluate(a.val_data, out, a.extra, [method], ",".join(map(str, sorted(set(scales)))))
            if rc:
                return rc
            print(f"added {add_run(out, NAME)}")
    else:
        rc = evaluate(a.val_data, Path(a.out), a.extra)
        if rc:
            return rc
        store_results(a.out, NAME, title=TITLE)
    problems = [m for m in regenerate(ROOT) if NAME in m]
    for msg in problems:
        print(msg, file=sys.stderr)
    print(f"wrote {ROOT / (NAME + '.md')}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
