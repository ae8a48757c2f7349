"""``fsrbench report``: one self-contained static HTML page for a results directory.

Everything is inline: CSS, a small plain-JS table sorter (click a header; numbers sort numerically, "–"
last), images as base64 ``data:`` URIs.  No network access, no server.  Sections: run card (run.json),
leaderboard (the markdown board of :mod:`fsrbench.leaderboard`, converted by :func:`md_to_html`; it carries
each board's FER card and paired ECM table, :mod:`fsrbench.report.fer_card`), reported
vs reproduced, comparison grids (fixed images and best/worst by a metric), plots (with the FER's confusion
matrix on the labelled HR faces).  Sections whose inputs
are missing are skipped with a one-line reason (e.g. grids without the SR images or the dataset).

JS errors and ``console.error`` calls are written into ``<ul id="js-errors">`` so a headless browser test
can read them from the DOM; after set-up the body gets ``data-ready="1"``.  Opening the page with
``#selftest`` sorts the first table by its first numeric column and records the new order in
``data-selftest`` on the body.
"""
from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path
from typing import Any, Callable

from fsrbench.report.leaderboard import (REFERENCE_METHODS, _models, build_boards, render_boards_markdown,
                                         render_compare_reported)
from fsrbench.report.metric_index import MetricIndex
from fsrbench.report import plots
from fsrbench.report.grids import grid_for, select_images
from fsrbench.results import load_json, load_run, slug

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em auto;max-width:1400px;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.6em 0 1em;font-size:.82em}th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3;cursor:pointer;user-select:none}
th.sorted-asc::after{content:" \\25B2"}th.sorted-desc::after{content:" \\25BC"}
tr:nth-child(even) td{background:#fafafa}.card td{text-align:left;white-space:normal}
.wrap{overflow-x:auto}img{max-width:100%;border:1px solid #eee}figure{display:inline-block;margin:.5em;vertical-align:top}
figcaption{font-size:.8em;color:#555}#js-errors{color:#b00}.skip{color:#777;font-style:italic}nav a{margin-right:1em}
"""

JS = r"""
(function(){
  function cellValue(td){
    var t=(td.textContent||"").trim();
    if(t===""||t==="–"||t==="-")return null;
    t=t.replace("−","-").replace("-∞","-Infinity").replace("∞","Infinity");
    var v=parseFloat(t);
    return isNaN(v)?t.toLowerCase():v;
  }
  function cmp(a,b){
    if(a===null&&b===null)return 0;if(a===null)return 1;if(b===null)return -1;
    if(typeof a==="number"&&typeof b==="number")return a-b;
    return String(a)<String(b)?-1:(String(a)>String(b)?1:0);
  }
  function sortTable(table,col,asc){
    var tbody=table.tBodies[0];var rows=Array.prototype.slice.call(tbody.rows);
    rows.sort(function(r1,r2){var a=cellValue(r1.cells[col]),b=cellValue(r2.cells[col]);
      if(a===null||b===null)return cmp(a,b);var c=cmp(a,b);return asc?c:-c;});
    rows.forEach(function(r){tbody.appendChild(r);});
    Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,i){
      th.classList.remove("sorted-asc","sorted-desc");if(i===col)th.classList.add(asc?"sorted-asc":"sorted-desc");});
  }
  function init(){
    var tables=document.querySelectorAll("table.sortable");
    Array.prototype.forEach.call(tables,function(table){
      if(!table.tHead)return;
      Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,i){
        th.addEventListener("click",function(){var asc=!th.classList.contains("sorted-asc");sortTable(table,i,asc);});
      });
    });
    if(location.hash==="#selftest"&&tables.length){
      var t=tables[0],col=-1;
      for(var i=1;i<t.tHead.rows[0].cells.length&&col<0;i++){
        if(typeof cellValue(t.tBodies[0].rows[0].cells[i])==="number")col=i;}
      if(col>0){t.tHead.rows[0].cells[col].click();
        document.body.setAttribute("data-selftest",Array.prototype.map.call(t.tBodies[0].rows,function(r){
          return r.cells[0].textContent.trim()+"="+r.cells[col].textContent.trim();}).join("|"));}
    }
    document.body.setAttribute("data-ready","1");
  }
  if(document.readyState==="loading")document.addEventListener("DOMContentLoaded",init);else init();
})();
"""

ERROR_HOOK = r"""
(function(){
  function log(msg){
    var ul=document.getElementById("js-errors");
    if(!ul){window.__pending=(window.__pending||[]).concat([msg]);return;}
    var li=document.createElement("li");li.textContent=String(msg);ul.appendChild(li);
  }
  window.addEventListener("error",function(e){log("error: "+e.message);});
  window.addEventListener("unhandledrejection",function(e){log("unhandled rejection: "+e.reason);});
  var ce=console.error;console.error=function(){log("console.error: "+Array.prototype.join.call(arguments," "));
    if(ce)ce.apply(console,arguments);};
  document.addEventListener("DOMContentLoaded",function(){(window.__pending||[]).forEach(log);});
})();
"""


# ------------------------------------------------------------------------------------------------
# markdown (as written by fsrbench.leaderboard) -> HTML
# ------------------------------------------------------------------------------------------------
def _inline(text: str) -> str:
    t = html.escape(text, quote=False)
    t = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", t)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    return t


def md_to_html(md: str, heading_offset: int = 0) -> str:
    """The subset of markdown the leaderboard writes: headings, paragraphs, '- ' lists, github tables."""
    out: list[str] = []
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        ln = lines[i]
        if ln.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i])
                i += 1
            rows = [[c.strip() for c in r.strip().strip("|").split("|")] for r in block]
            head, body = rows[0], [r for r in rows[2:]]
            out.append('<div class="wrap"><table class="sortable"><thead><tr>'
                       + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr></thead><tbody>")
            for r in body:
                out.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>")
            out.append("</tbody></table></div>")
            continue
        m = re.match(r"^(#{1,6}) (.*)$", ln)
        if m:
            level = min(6, len(m.group(1)) + heading_offset)
            out.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
        elif ln.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        elif ln.strip():
            out.append(f"<p>{_inline(ln)}</p>")
        i += 1
    return "\n".join(out)


def _img(data: bytes, mime: str, caption: str) -> str:
    b64 = base64.b64encode(data).decode()
    return (f'<figure><img alt="{html.escape(caption)}" src="data:{mime};base64,{b64}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _png(pil_image: Any) -> bytes:
    buf = io.BytesIO()
    pil_image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _dataset_text(d: Any) -> str:
    if isinstance(d, dict):
        rest = ", ".join(f"{k} {str(v)[:16]}" for k, v in sorted(d.items()) if k != "name")
        return f"{d.get('name', '?')} ({rest})"
    return str(d)


def _face_models_text(doc: dict[str, Any] | None) -> str:
    """The analysis-model ids recorded in the summaries of metrics.json (FER, AU, landmarks, identity)."""
    models = _models((doc or {}).get("cells", []))
    return "; ".join(f"{fam}: {', '.join(v)}" for fam, v in models.items())


def run_card(run: dict[str, Any] | None, profile: dict[str, Any] | None,
             doc: dict[str, Any] | None = None) -> str:
    if not run:
        return '<p class="skip">run.json not found: no run card.</p>'
    spec = run.get("spec", {})
    res = run.get("resolved", {})
    proto = run.get("protocol", {})
    rows = [
        ("command", " ".join(map(str, run.get("command", [])))),
        ("started / finished (UTC)", f"{run.get('started')} / {run.get('finished')}"),
        ("git commit", run.get("git_commit")),
        ("protocol", f"{proto.get('id')} v{proto.get('version')} sha256 {str(proto.get('sha256', ''))[:16]}"),
        ("datasets", "; ".join(_dataset_text(d) for d in res.get("datasets", spec.get("datasets", [])))),
        ("scales", ", ".join(f"x{s}" for s in spec.get("scales", []))),
        ("methods", ", ".join(res.get("methods", spec.get("methods", [])))),
        ("metrics", ", ".join(res.get("metrics", []))),
        ("face models", _face_models_text(doc)),
        ("device", res.get("device")),
        ("platform", run.get("platform")),
        ("versions", ", ".join(f"{k} {v}" for k, v in (run.get("versions") or {}).items())),
        ("seed", spec.get("seed")),
    ]
    if profile:
        rows.append(("profile", f"{profile.get('device')}, measured {profile.get('measured')}"))
    body = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f'<table class="card"><tbody>{body}</tbody></table>'


def _safe(section: str, fn: Callable[[], str], log: Callable[[str], None]) -> str:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - one failing section must not cost the whole report
        log(f"report: {section} skipped ({type(exc).__name__}: {exc})")
        return f'<p class="skip">{html.escape(section)} skipped: {html.escape(type(exc).__name__ + ": " + str(exc))}</p>'


def grids_section(run_dir: Path, doc: dict[str, Any], per_image: Any, n_fixed: int = 3, k: int = 2,
                  column: str = "psnr", save_dir: Path | None = None, log: Callable[[str], None] = print) -> str:
    if not (run_dir / "sr").is_dir():
        return '<p class="skip">No SR images in this results directory (run without --no-save-sr to get grids).</p>'
    if per_image is None:
        return '<p class="skip">per_image.csv missing: no grids.</p>'
    parts = []
    for b in build_boards(doc, None):
        methods = [m for m in b.methods if m not in REFERENCE_METHODS]
        if not methods:
            continue
        ids = (per_image[(per_image["dataset"] == b.dataset) & (per_image["scale"] == b.scale)]["image_id"]
               .astype(str).drop_duplicates().tolist())
        ranked = sorted(methods, key=lambda m: (b.ranks.get(m, 1e9), m))
        sel = select_images(per_image, b.dataset, b.scale, column, ranked[0], k=k,
                            higher_is_better=b.direction.get(column, True))
        groups = [("fixed images", ids[:n_fixed])]
        if sel["best"]:
            groups.append((f"best {column} of {ranked[0]}", sel["best"]))
            groups.append((f"worst {column} of {ranked[0]}", sel["worst"]))
        for label, chosen in groups:
            if not chosen:
                continue
            title = f"{b.dataset} x{b.scale}: {label}"
            img, _ = grid_for(run_dir, b.dataset, b.scale, chosen, methods, title=title, per_image=per_image,
                              caption_column=column if column in per_image else None)
            data = _png(img)
            if save_dir is not None:
                save_dir.mkdir(parents=True, exist_ok=True)
                (save_dir / f"grid_{slug(b.dataset)}_x{b.scale}_{slug(label)}.png").write_bytes(data)
            parts.append(_img(data, "image/png", title))
    return "\n".join(parts) or '<p class="skip">No method rows to show.</p>'


def plots_section(doc: dict[str, Any], per_image: Any, fmt: str = "png", save_dir: Path | None = None) -> str:
    figs: list[tuple[str, Any]] = []
    datasets = sorted({c["dataset"] for c in doc.get("cells", [])})
    for ds in datasets:
        cells = [c for c in doc["cells"] if c["dataset"] == ds]
        keys = MetricIndex(cells).headline({k for c in cells for k in c.get("metrics", {})})
        for k in keys:
            figs.append((f"{k} vs scale — {ds}", plots.metric_vs_scale(doc, k, ds)))
        figs.append((f"PSNR vs ECM — {ds}", plots.psnr_vs_ecm(doc, ds)))
        if any(k in c.get("metrics", {}) for c in doc["cells"] if c["dataset"] == ds
               for k in ("expression_agreement", "ecm")):
            figs.append((f"FER confusion matrix on labelled HR faces — {ds}", plots.fer_confusion(per_image, doc, ds)))
    for b in build_boards(doc, None):
        figs.append((f"identity threshold curves — {b.dataset} x{b.scale}",
                     plots.identity_threshold_curves(per_image, b.dataset, b.scale)))
        for m in [m for m in b.methods if m not in REFERENCE_METHODS]:
            figs.append((f"FER histograms HR vs SR — {m}, {b.dataset} x{b.scale}",
                         plots.fer_histograms(per_image, doc, b.dataset, b.scale, m)))
    parts, skipped = [], []
    mime = "image/svg+xml" if fmt == "svg" else "image/png"
    for title, fig in figs:
        if fig is None:
            skipped.append(title)
            continue
        data = plots.save(fig, fmt=fmt)
        if save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
            (save_dir / f"plot_{slug(title)}.{fmt}").write_bytes(data)
        parts.append(_img(data, mime, title))
    if skipped:
        parts.append('<p class="skip">Skipped (data absent in this run): ' + html.escape("; ".join(skipped)) + "</p>")
    return "\n".join(parts)


def build_report(run_dir: str | Path, title: str | None = None, grids: bool = True, plots_fmt: str = "png",
                 save_dir: str | Path | None = None, reported_dataset: str | None = None,
                 log: Callable[[str], None] = print) -> str:
    run_dir = Path(run_dir)
    doc, per_image, profile = load_run(run_dir)
    run = load_json(run_dir / "run.json") if (run_dir / "run.json").is_file() else None
    if reported_dataset is None and (run_dir / "board.yaml").is_file():  # stored results (leaderboards/results)
        import yaml

        reported_dataset = (yaml.safe_load((run_dir / "board.yaml").read_text()) or {}).get("reported_dataset")
    title = title or f"fsrbench report — {run_dir.name}"
    sdir = Path(save_dir) if save_dir else None
    boards = build_boards(doc, per_image, profile)
    board_md = render_boards_markdown(boards, doc, title="Leaderboard", profile=profile)
    sections = [
        ("run", "Run card", run_card(run, profile, doc)),
        ("leaderboard", None, md_to_html(board_md, heading_offset=1)),
        ("reported", None, _safe("reported vs reproduced",
                                 lambda: md_to_html(render_compare_reported(boards, doc, reported_dataset)), log)),
        ("grids", "Comparison grids", _safe("grids", lambda: grids_section(run_dir, doc, per_image, save_dir=sdir,
                                                                          log=log), log) if grids
         else '<p class="skip">Grids not requested.</p>'),
        ("plots", "Plots", _safe("plots", lambda: plots_section(doc, per_image, plots_fmt, sdir), log)),
    ]
    nav = "".join(f'<a href="#{sid}">{sid}</a>' for sid, _, _ in sections)
    body = "\n".join(f'<section id="{sid}">' + (f"<h2>{html.escape(h)}</h2>" if h else "") + content + "</section>"
                     for sid, h, content in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style><script>{ERROR_HOOK}</script></head>"
            f"<body><h1>{html.escape(title)}</h1><nav>{nav}</nav><ul id=\"js-errors\"></ul>\n{body}\n"
            f"<script>{JS}</script></body></html>\n")


def write_report(run_dir: str | Path, out: str | Path | None = None, **kw: Any) -> Path:
    path = Path(out) if out else Path(run_dir) / "report.html"
    path.write_text(build_report(run_dir, **kw), encoding="utf-8")
    return path
