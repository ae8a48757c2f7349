"""``fsrbench weights check``: every offline model file, where it is, whether its sha256 verifies, the fix.

Exit status 1 when a required file is missing or does not verify (optional files are listed but do not
fail the check). Nothing is downloaded; see docs/analysis.md.
"""
from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("weights", help="check the offline model weight files (path, sha256, fix command)")
    wsub = p.add_subparsers(dest="weights_command", metavar="ACTION")
    c = wsub.add_parser("check", help="verify every pinned weight file")
    c.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
    c.set_defaults(func=check)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def rows() -> list[dict[str, Any]]:
    from fsrbench.analysis import carriers

    return [carriers.check(key) for key in carriers.WEIGHTS]


def check(args: argparse.Namespace) -> int:
    out = rows()
    failed = [r for r in out if r["required"] and not r["sha256_ok"]]
    if getattr(args, "json", False):
        print(json.dumps({"ok": not failed, "files": out}, indent=1))
    else:
        from tabulate import tabulate

        table = [[r["key"], r["used_by"], "yes" if r["required"] else "optional",
                  "yes" if r["sha256_ok"] else ("MISMATCH" if r["exists"] else "MISSING"),
                  r["path"] or "(package not installed)", r["fix"]] for r in out]
        print(tabulate(table, headers=["file", "used by", "required", "sha256 verified", "path", "fix"],
                       tablefmt="github"))
        if failed:
            print(f"\n{len(failed)} required weight file(s) missing or corrupt; run the fix command(s) above.")
        else:
            print("\nall required weight files verified.")
    return 1 if failed else 0
