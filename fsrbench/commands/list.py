"""``fsrbench list methods|metrics|datasets|protocols|fer|au|landmarks|identity``."""
from __future__ import annotations

import argparse
from typing import Any

KINDS = ["methods", "metrics", "datasets", "protocols", "fer", "au", "landmarks", "identity"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("list", help="list registered methods, metrics, datasets, protocols or face models")
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--plugin", action="append", default=[], help="also load this one-off plugin (FILE.py:Name or module:Name)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from fsrbench import registry as reg

    for spec in args.plugin:
        reg.load_plugin(spec)
    if args.kind == "protocols":
        from fsrbench.protocols import get_protocol, list_protocols

        rows = []
        for pid in list_protocols():
            p = get_protocol(pid)
            m = p.metric
            rows.append([p.id, p.version, p.short_hash, m["color"], m["y_rounding"], m["crop_border"],
                         ",".join(f"x{s}" for s in p.scales)])
        print(tabulate(rows, headers=["protocol", "version", "sha256", "color", "Y rounding", "crop", "scales"],
                       tablefmt="github"))
        return 0
    r = reg.registry(args.kind)
    rows = []
    for name in r.names():
        try:
            obj = r.get(name)
            desc = getattr(obj, "description", "") or (obj.__doc__ or "").strip().split("\n")[0]
            extra = ""
            if args.kind == "methods":
                sc = "any" if getattr(obj, "any_scale", False) else ",".join(f"x{s}" for s in obj.scales)
                extra = f"{sc}; input={obj.input}; {'trainable' if obj.trainable else 'no training'}"
                if not getattr(obj, "in_all", True):
                    extra += "; not in 'all'"
            elif args.kind == "metrics":
                extra = "higher is better" if obj.higher_is_better else "lower is better"
            rows.append([name, extra, desc, r.source(name)])
        except Exception as exc:  # noqa: BLE001 - a broken plugin is listed with its error
            rows.append([name, "BROKEN", str(exc), r.source(name)])
    print(tabulate(rows, headers=[args.kind[:-1] if args.kind.endswith("s") else args.kind, "facts",
                                  "description", "registered by"], tablefmt="github"))
    return 0
