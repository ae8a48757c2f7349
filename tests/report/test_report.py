"""HTML report, comparison grids and plots; the page is checked in a real headless browser (Debian chromium)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fsrbench.eval.runner import RunSpec, run
from fsrbench.leaderboard import load_run
from fsrbench.report import plots
from fsrbench.report.grids import CROP_W, FIXED_EYES, FIXED_MOUTH, TILE, grid_for, select_images
from fsrbench.report.html import ERROR_HOOK, build_report, md_to_html, write_report

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # the checkout root, wherever this file sits under tests/
STORED = REPO / "leaderboards" / "results" / "faces-dev"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "r"
    run(RunSpec(methods=["bicubic", "hr-oracle"], datasets=["demo"], scales=[4, 8], metrics=["psnr", "ssim"],
                out=str(out), limit=4, progress=False), log=lambda m: None)
    return out


def _browser_dom(html_path: Path, tmp_path: Path, fragment: str = "") -> str:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
           f"--user-data-dir={tmp_path / 'chrome-profile'}", "--virtual-time-budget=5000", "--dump-dom",
           html_path.resolve().as_uri() + fragment]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


def test_md_to_html_tables_and_bold():
    h = md_to_html("## a — x4\n\n| m | psnr ↑ |\n|---|---|\n| b | **1.0 ± 0.1** |\n| c | 0.5 † |\n\n- note <x>\n")
    assert '<table class="sortable">' in h and "<th>psnr ↑</th>" in h
    assert "<td><strong>1.0 ± 0.1</strong></td>" in h and "<td>0.5 †</td>" in h
    assert "<li>note &lt;x&gt;</li>" in h and "<h2>a — x4</h2>" in h


def test_plots_from_stored_faces_dev_results_and_graceful_skips():
    doc, pi, _ = load_run(STORED)
    ds = doc["cells"][0]["dataset"]
    fig = plots.fer_histograms(pi, doc, ds, 8, "bicubic")
    assert fig is not None and len([a for a in fig.axes if a.has_data()]) == 7  # 7 FER classes
    data = plots.save(fig, fmt="png")
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    curves = plots.identity_threshold_curves(pi, ds, 8)
    (line,) = [ln for ln in curves.axes[0].lines if ln.get_label().startswith("bicubic")]
    cos = pi[(pi["method"] == "bicubic") & (pi["scale"] == 8)]["id_cos"].to_numpy(float)
    x, y = line.get_data()
    i = int(np.argmin(np.abs(x - 0.9)))
    assert y[i] == pytest.approx(np.mean(cos >= x[i]))  # share of images at threshold 0.9, recomputed here
    assert plots.save(plots.psnr_vs_ecm(doc, ds), fmt="svg").lstrip().startswith(b"<?xml")
    assert plots.metric_vs_scale(doc, "psnr", ds) is not None
    # columns absent -> None (skipped), never an exception
    assert plots.fer_histograms(pi.drop(columns=[c for c in pi if c.startswith("ecm_p_")]), doc, ds, 8, "bicubic") is None
    assert plots.identity_threshold_curves(pi.drop(columns=["id_cos"]), ds, 8) is None
    assert plots.psnr_vs_ecm(doc, "no-such-dataset") is None
    assert plots.metric_vs_scale(doc, "no_such_metric", ds) is None


def test_grid_layout_and_crops(demo_run):
    doc, pi, _ = load_run(demo_run)
    sel = select_images(pi, "demo", 8, "psnr", "bicubic", k=1)
    t = pi[(pi["scale"] == 8) & (pi["method"] == "bicubic")]
    v = t.set_index("image_id")["psnr"]
    assert v[sel["best"][0]] == v.max() and v[sel["worst"][0]] == v.min()
    ids = sel["best"] + sel["worst"]
    img, src = grid_for(demo_run, "demo", 8, ids, ["bicubic", "hr-oracle"], per_image=pi, use_landmarks=False)
    assert src == "fixed"
    assert img.width == 4 * (TILE + 4) + 4  # LR | bicubic | hr-oracle | HR
    # the HR column's enlarged eye crop is HR[eyes box] scaled to the crop width
    from fsrbench.data import open_dataset

    hr = open_dataset("demo").load(ids[0]).hr
    x0, y0, x1, y1 = FIXED_EYES
    h = round(CROP_W * (y1 - y0) / (x1 - x0))
    want = np.asarray(Image.fromarray(hr).crop(FIXED_EYES).resize((CROP_W, h), Image.NEAREST))
    col_x = 4 + 3 * (TILE + 4)
    row_y = 16 * 2 + 16
    got = np.asarray(img)[row_y + TILE + 2: row_y + TILE + 2 + h, col_x: col_x + CROP_W]
    assert np.array_equal(got, want)
    assert FIXED_MOUTH[1] > FIXED_EYES[3]  # mouth below the eyes


def test_report_without_sr_images_skips_grids():
    html = build_report(STORED, log=lambda m: None)
    assert "No SR images" in html and "Reported vs reproduced" in html
    assert "vs published CelebA" in html and "Different images" in html  # board.yaml's reported_dataset
    assert html.count("data:image/png;base64,") >= 5  # plots embedded
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html  # self-contained


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")
def test_report_in_headless_chromium(demo_run, tmp_path):
    path = write_report(demo_run, tmp_path / "report.html", log=lambda m: None)
    dom = _browser_dom(path, tmp_path, "#selftest")
    assert 'data-ready="1"' in dom, "page script did not finish"
    errors = re.search(r'<ul id="js-errors">(.*?)</ul>', dom, re.S).group(1)
    assert errors.strip() == "", f"JS errors: {errors}"
    for sec in ("run", "leaderboard", "grids", "plots"):
        assert f'<section id="{sec}">' in dom
    rows = re.findall(r"<tr><td>(bicubic|hr-oracle)</td>", dom)
    assert rows.count("bicubic") >= 2 and rows.count("hr-oracle") >= 2  # both boards (x4, x8)
    assert dom.count("<img") >= 4  # grids + plots rendered as images
    # the self-test sorted the first table by its first numeric column (psnr): ascending, "∞" last
    order = re.search(r'data-selftest="([^"]*)"', dom).group(1).split("|")
    assert [o.split("=")[0] for o in order] == ["bicubic", "hr-oracle"] and order[1].endswith("∞")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")
def test_browser_check_catches_js_errors(tmp_path):
    """Negative control: a page that throws must show the error in #js-errors."""
    page = tmp_path / "bad.html"
    page.write_text(f"<!DOCTYPE html><html><head><script>{ERROR_HOOK}</script></head><body>"
                    "<ul id=\"js-errors\"></ul><script>console.error('boom1'); null.f();</script></body></html>")
    dom = _browser_dom(page, tmp_path)
    errors = re.search(r'<ul id="js-errors">(.*?)</ul>', dom, re.S).group(1)
    assert "boom1" in errors and "error:" in errors
