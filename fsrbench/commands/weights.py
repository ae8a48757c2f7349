"""``fsrbench weights``: the offline model files fsrbench uses, and the shipped reference weights.

* ``check``     — every face-model file (path, sha256, fix) and every shipped reference entry (sha256, loads
                  into its registered method); exit 1 when a required file is missing, corrupt or unloadable;
* ``list``      — the reference weight cards: method, scale, size, budget, faces-val PSNR against bicubic;
* ``reproduce`` — retrain one entry from its recipe (the card's chain of ``fsrbench train`` stages), export it
                  as float16 and score it on a validation folder, next to the shipped card;
* ``export``    — (maintainers) export finished training chains into the weights package, replacing a shipped
                  file only when its card improves.

Nothing is downloaded; see docs/weights.md and docs/analysis.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("weights", help="face-model files and the shipped reference weights (check, list, reproduce)")
    wsub = p.add_subparsers(dest="weights_command", metavar="ACTION")
    c = wsub.add_parser("check", help="verify every pinned face-model file and every shipped reference entry")
    c.add_argument("--json", action="store_true", help="print machine-readable JSON instead of tables")
    c.add_argument("--no-load", action="store_true", help="only check the reference files' sha256 (skip loading)")
    c.add_argument("--dir", default=None, help="check the reference cards of this folder instead of the installed "
                                              "weights packages")
    c.set_defaults(func=check)
    ls = wsub.add_parser("list", help="show the shipped reference weight cards")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--dir", default=None, help="a weights folder instead of the installed packages")
    ls.set_defaults(func=list_cards)
    r = wsub.add_parser("reproduce", help="retrain a reference entry from its recipe, export and score it")
    r.add_argument("entries", nargs="+", metavar="ENTRY", help="entry names (see `fsrbench weights list`), or all")
    _data_args(r)
    r.add_argument("--work", default="runs/reference", help="training folder (resumable; default runs/reference)")
    r.add_argument("--out", default=None, help="where the exported entries go (default WORK/export)")
    r.add_argument("--jobs", type=int, default=1, help="training stages run at a time (default 1)")
    r.add_argument("--recipes", default=None, help="recipe file (default: the installed package's recipes.yaml)")
    r.set_defaults(func=reproduce)
    e = wsub.add_parser("export", help="(maintainers) export trained chains into a weights folder, replacing a "
                                       "shipped entry only when its faces-val card improves")
    e.add_argument("entries", nargs="+", metavar="ENTRY")
    _data_args(e)
    e.add_argument("--work", required=True, help="the training folder of `reproduce` / the recipe driver")
    e.add_argument("--into", required=True, help="the weights folder, e.g. weights/fsrbench_weights")
    e.add_argument("--recipes", default=None)
    e.add_argument("--force", action="store_true", help="replace even when the new card is not better")
    e.set_defaults(func=export)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train-data", required=True, help="the faces-train folder (e.g. ../shared/data/faces-train)")
    p.add_argument("--val-data", required=True, help="the faces-val folder scored on every card")


def _recipes(path: str | None) -> Any:
    from fsrbench.train.checkpoints import weight_package_dirs
    from fsrbench.train.reference import Recipes

    if path is None:
        found = [d / "recipes.yaml" for d in weight_package_dirs() if (d / "recipes.yaml").is_file()]
        if not found:
            raise SystemExit("fsrbench weights: no installed weights package with a recipes.yaml; pass --recipes FILE "
                             "(the repository's weights/fsrbench_weights/recipes.yaml) or run `make setup`")
        path = str(found[0])
    return Recipes.load(path)


def _entries(rec: Any, names: list[str]) -> list[str]:
    if names == ["all"]:
        return list(rec.entries)
    bad = [n for n in names if n not in rec.entries]
    if bad:
        raise SystemExit(f"fsrbench weights: unknown entr{'ies' if len(bad) > 1 else 'y'} {', '.join(bad)}; "
                         f"known: {', '.join(rec.entries)}")
    return names


def _check_dirs(*dirs: str) -> None:
    for d in dirs:
        if not Path(d).is_dir():
            raise SystemExit(f"fsrbench weights: {d} is not a folder of training/validation images")


# ------------------------------------------------------------------------------------------------
# check / list
# ------------------------------------------------------------------------------------------------
def face_model_rows() -> list[dict[str, Any]]:
    from fsrbench.analysis import carriers

    return [carriers.check(key) for key in carriers.WEIGHTS]


def reference_rows(directory: str | None = None, load: bool = True) -> list[dict[str, Any]]:
    from fsrbench.train.checkpoints import read_card, weight_package_dirs
    from fsrbench.train.reference import check_card

    roots = [Path(directory)] if directory else weight_package_dirs()
    rows = []
    for root in roots:
        for path in sorted(root.glob("*.card.json")):
            try:
                card = read_card(path)
                problem = check_card(card, load=load)
            except ValueError as exc:
                card, problem = {"_path": str(path)}, str(exc)
            ref = card.get("reference") or {}
            rows.append({"entry": ref.get("entry") or path.name[: -len(".card.json")], "method": card.get("method"),
                         "scale": card.get("scale"), "card": str(path), "ok": problem is None, "problem": problem})
    return rows


def check(args: argparse.Namespace) -> int:
    faces = face_model_rows()
    refs = reference_rows(getattr(args, "dir", None), load=not getattr(args, "no_load", False))
    failed = [r for r in faces if r["required"] and not r["sha256_ok"]]
    bad_refs = [r for r in refs if not r["ok"]]
    if getattr(args, "json", False):
        print(json.dumps({"ok": not failed and not bad_refs, "files": faces, "reference": refs}, indent=1))
        return 1 if failed or bad_refs else 0
    from tabulate import tabulate

    table = [[r["key"], r["used_by"], "yes" if r["required"] else "optional",
              "yes" if r["sha256_ok"] else ("MISMATCH" if r["exists"] else "MISSING"),
              r["path"] or "(package not installed)", r["fix"]] for r in faces]
    print(tabulate(table, headers=["file", "used by", "required", "sha256 verified", "path", "fix"], tablefmt="github"))
    print()
    if refs:
        print(tabulate([[r["entry"], r["method"], r["scale"], "yes" if r["ok"] else "NO", r["problem"] or ""]
                        for r in refs], headers=["reference entry", "method", "scale", "verified + loads", "problem"],
                       tablefmt="github"))
    else:
        print("no reference weights package installed (`make setup` installs weights/ as fsrbench-weights)")
    if failed:
        print(f"\n{len(failed)} required face-model file(s) missing or corrupt; run the fix command(s) above.")
    if bad_refs:
        print(f"\n{len(bad_refs)} reference entr{'ies' if len(bad_refs) > 1 else 'y'} failed: the file is corrupt, "
              "was replaced, or does not fit its method; restore it with `git checkout -- weights/` (or reinstall "
              "fsrbench-weights)")
    if not failed and not bad_refs:
        print("\nall required weight files verified.")
    return 1 if failed or bad_refs else 0


def card_summary(card: dict[str, Any]) -> dict[str, Any]:
    ref = card.get("reference") or {}
    fv = (ref.get("faces_val") or {}).get("by_scale") or {}
    return {"entry": ref.get("entry"), "method": card.get("method"),
            "scales": ",".join(f"x{s}" for s in fv) or f"x{card.get('scale')}",
            "params_M": round((ref.get("parameters") or 0) / 1e6, 2),
            "MiB": round((ref.get("size_bytes") or 0) / 2**20, 1),
            "reduced": "yes" if ref.get("reduced") else "",
            "budget": ref.get("budget", ""),
            "faces_val": "; ".join(f"x{s}: {v['psnr']:.2f} dB, {v['delta_psnr']:+.2f} "
                                   f"[{v['delta_psnr_ci95'][0]:+.2f}, {v['delta_psnr_ci95'][1]:+.2f}] vs bicubic"
                                   for s, v in fv.items()) or "not scored"}


def list_cards(args: argparse.Namespace) -> int:
    from fsrbench.train.reference import LABEL, package_cards

    cards = package_cards(Path(args.dir) if getattr(args, "dir", None) else None)
    rows = [card_summary(c) for c in cards]
    pending = _pending(args)
    if getattr(args, "json", False):
        print(json.dumps({"shipped": rows, "pending": pending} if pending else rows, indent=1))
        return 0
    if not rows:
        print("no reference weights installed (`make setup` installs weights/ as fsrbench-weights)")
    else:
        from tabulate import tabulate

        print(tabulate([list(r.values()) for r in rows], headers=list(rows[0]), tablefmt="github"))
        total = sum(r["MiB"] for r in rows)
        print(f"\n{len(rows)} entries, {total:.1f} MiB. {LABEL}")
    if pending:
        print(f"\nnot shipped yet ({len(pending)} entries of the recipe file):")
        for name, why in pending.items():
            print(f"  {name}: {why}")
    return 0


def _pending(args: argparse.Namespace) -> dict[str, str]:
    """The recipe file's entries that are not shipped, with their reasons (none when there is no recipe file)."""
    folder = getattr(args, "dir", None)
    path = Path(folder) / "recipes.yaml" if folder else None
    try:
        return _recipes(str(path) if path and path.is_file() else None).pending()
    except (Exception, SystemExit):  # noqa: BLE001 - listing the shipped cards never fails because of the recipe file
        return {}


# ------------------------------------------------------------------------------------------------
# reproduce / export
# ------------------------------------------------------------------------------------------------
def reproduce(args: argparse.Namespace) -> int:
    from fsrbench.train.checkpoints import read_card, weight_package_dirs
    from fsrbench.train.reference import export_entry, run_stages, score_entry

    _check_dirs(args.train_data, args.val_data)
    rec = _recipes(args.recipes)
    entries = _entries(rec, args.entries)
    work = Path(args.work)
    out = Path(args.out) if args.out else work / "export"
    res = run_stages(rec, [rec.entries[e]["stage"] for e in entries], work, args.train_data, args.val_data,
                     jobs=max(1, int(args.jobs)))
    failed = sorted(n for n, rc in res.items() if rc)
    if failed:
        print(f"fsrbench weights reproduce: stage(s) failed: {', '.join(failed)}; logs in "
              f"{work}/<stage>/reference-stage.log (rerun the same command to resume)", file=sys.stderr)
        return 1
    shipped = {p.name: p for d in weight_package_dirs() for p in d.glob("*.card.json")}
    for e in entries:
        card_path = export_entry(rec, e, work, out, args.train_data, args.val_data)
        new = score_entry(card_path, args.val_data, work)
        old = shipped.get(card_path.name)
        if old is not None:
            ofv = ((read_card(old).get("reference") or {}).get("faces_val") or {}).get("by_scale") or {}
            for s, v in new["by_scale"].items():
                if s in ofv:
                    print(f"  {e} x{s}: reproduced {v['delta_psnr']:+.3f} dB vs bicubic; shipped card "
                          f"{ofv[s]['delta_psnr']:+.3f}")
    print(f"exported to {out}")
    return 0


def export(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    from fsrbench.train.checkpoints import read_card
    from fsrbench.train.reference import export_entry, improves, score_entry

    _check_dirs(args.train_data, args.val_data)
    rec = _recipes(args.recipes)
    work, into = Path(args.work), Path(args.into)
    rc = 0
    for e in _entries(rec, args.entries):
        with tempfile.TemporaryDirectory(prefix=f".export-{e}-", dir=str(into)) as tmp:
            card_path = export_entry(rec, e, work, Path(tmp), args.train_data, args.val_data)
            score_entry(card_path, args.val_data, work)
            new = json.loads(card_path.read_text())
            old_path = into / card_path.name
            old = read_card(old_path) if old_path.is_file() else None
            if not new["reference"]["faces_val"]["beats_bicubic"] and not args.force:
                print(f"{e}: NOT exported: it does not beat bicubic PSNR on {args.val_data} (see {card_path}); a "
                      f"model that loses to bicubic is not shipped as a reference (--force ships it, marked so)")
                rc = 1
                continue
            if not (args.force or improves(new, old)):
                print(f"{e}: kept the shipped entry (the new card does not improve on it; --force to replace)")
                continue
            for name in (f"{e}.safetensors", card_path.name):
                (Path(tmp) / name).chmod(0o644)
                shutil.move(str(Path(tmp) / name), str(into / name))
            print(f"{e}: exported to {into}")
    return rc
