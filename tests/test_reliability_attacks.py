"""The second attack campaign (issue 24): each test replays one attack that used to lose or falsify results
(or end the run with a traceback) and checks that it is now survived.  docs/reliability.md lists them."""
from __future__ import annotations

import json
import re
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fsrbench import registry as reg
from fsrbench.eval.runner import RunSpec, run

REPO = Path(__file__).resolve().parents[1]
HOSTILE = REPO / "tests" / "fixture_plugins" / "hostile.py"
QUIET = {"log": lambda m: None}


def _spec(out: Path, **kw) -> RunSpec:
    base = dict(methods=["bicubic"], datasets=["demo"], scales=[8], metrics=["psnr"], out=str(out), progress=False,
                limit=4, batch_size=4)
    base.update(kw)
    return RunSpec(**base)


def _cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "fsrbench", *args], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), timeout=timeout)


def _main(capsys, *args) -> tuple[int, str, str]:
    """``fsrbench ARGS`` in this process: (exit status, stdout, stderr)."""
    from fsrbench.cli import main

    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture()
def restore_registry():
    """Plugins registered by a test (even ones replacing built-ins) are gone after it."""
    saved = {k: (dict(r._entries), r._discovered) for k, r in reg.REGISTRIES.items()}
    yield
    for k, r in reg.REGISTRIES.items():
        r._entries.clear()
        r._entries.update(saved[k][0])
        r._discovered = saved[k][1]


# ------------------------------------------------------------------------------------------------
# 1. a plugin named "." / ".." / with path separators
# ------------------------------------------------------------------------------------------------
def test_item01_unsafe_names_are_refused_at_registration_and_nothing_is_deleted(tmp_path, capsys, restore_registry):
    out = tmp_path / "r"
    run(_spec(out), **QUIET)
    before = _tree(out / "cells") | {f"sr/{k}": v for k, v in _tree(out / "sr").items()}
    for cls in ("Dot", "DotDot", "Slash"):
        with pytest.raises(reg.PluginLoadError, match="not allowed"):
            reg.load_plugin(f"{HOSTILE}:{cls}")
    for name in (".", "..", "a/b", "a\\b", ".hidden", "", "x" * 65):
        with pytest.raises(reg.RegistryError, match="not allowed"):
            reg.methods.register(name, "fsrbench_baselines.bicubic.method:BicubicMethod")
    # the campaign's command: the plugin is reported as not loadable, `--methods .` is an unknown name
    code, _, err = _main(capsys, "run", "--plugin", f"{HOSTILE}:Dot", "--methods", ".", "--scales", "8",
                         "--metrics", "psnr", "--limit", "4", "--out", out, "--no-progress", "--no-leaderboard")
    assert code == 2 and "unknown method '.'" in err and "Traceback" not in err
    after = _tree(out / "cells") | {f"sr/{k}": v for k, v in _tree(out / "sr").items()}
    assert after == before
    # and no folder name the results layout makes from any text is a dot name
    from fsrbench.results import slug

    for text in (".", "..", ".x", "", "-", "a/../b"):
        s = slug(text)
        assert s not in ("", ".", "..") and not s.startswith(".") and "/" not in s


# ------------------------------------------------------------------------------------------------
# 2. a plugin taking a built-in's name
# ------------------------------------------------------------------------------------------------
def test_item02_a_plugin_cannot_take_a_builtin_name_and_never_shares_its_cells(tmp_path, restore_registry):
    with pytest.raises(reg.PluginLoadError, match="already taken.*--plugin-override"):
        reg.load_plugin(f"{HOSTILE}:ShadowBicubic")
    assert reg.methods.get("bicubic").__module__ == "fsrbench_baselines.bicubic.method"
    clean = run(_spec(tmp_path / "clean"), **QUIET).metrics["cells"][0]["metrics"]["psnr"]["value"]
    assert clean > 20
    out = tmp_path / "r"
    # without the flag the run reports the plugin and scores the real bicubic
    res = run(_spec(out, plugins=[f"{HOSTILE}:ShadowBicubic"]), **QUIET)
    assert res.metrics["cells"][0]["metrics"]["psnr"]["value"] == clean
    # with the explicit flag the plugin replaces it for that run ...
    shadow = run(_spec(out, plugins=[f"{HOSTILE}:ShadowBicubic"], plugin_override=True, force=True), **QUIET)
    assert shadow.metrics["cells"][0]["metrics"]["psnr"]["value"] < 10
    # ... and a later run of the built-in recomputes instead of reusing the plugin's cell
    for r in reg.REGISTRIES.values():
        r._entries.pop("bicubic", None)
        r._discovered = False
    res = run(_spec(out), **QUIET)
    assert res.computed and not res.cached
    assert res.metrics["cells"][0]["metrics"]["psnr"]["value"] == clean


def test_item02_implementation_identity():
    from fsrbench_baselines.bicubic.method import BicubicMethod

    ident = reg.implementation_id(BicubicMethod)
    assert ident["target"] == "fsrbench_baselines.bicubic.method:BicubicMethod" and ident["version"].startswith("fsrbench==")
    plug = reg.import_target(f"{HOSTILE}:ShadowBicubic")
    ident = reg.implementation_id(plug)
    import hashlib

    assert ident["target"].endswith(":ShadowBicubic")
    assert ident["source_sha256"] == hashlib.sha256(HOSTILE.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------------
# 3. damaged analysis-cache entries
# ------------------------------------------------------------------------------------------------
def _damage(files: list[Path]) -> None:
    """The campaign's four kinds of damage: truncated, zeroed, junk, and another image's entry copied over."""
    files[0].write_bytes(files[0].read_bytes()[: len(files[0].read_bytes()) // 2])
    files[1].write_bytes(b"\0" * len(files[1].read_bytes()))
    files[2].write_bytes(b"junk" * 100)
    files[3].write_bytes(files[4].read_bytes())


def test_item03_damaged_cache_entries_are_misses_that_are_recomputed_replaced_and_counted(tmp_path):
    from fsrbench.cache import Cache

    rng = np.random.default_rng(0)
    truth = {f"k{i}": {"v": rng.normal(size=(3, 2)), "ok": bool(i % 2), "n": i} for i in range(6)}
    arrays = {f"a{i}": rng.normal(size=50).astype(np.float16) for i in range(6)}
    c = Cache(tmp_path)
    for k, v in truth.items():
        c.put("model", k, v)
    for k, v in arrays.items():
        c.put_array("model", k, v)
    for suffix, keys in ((".npz", list(truth)), (".npy", list(arrays))):
        files = [c._path("model", k, suffix) for k in keys]
        _damage(files)
    fresh = Cache(tmp_path)
    for k in list(truth)[:4]:
        assert fresh.get("model", k) is None  # a miss: the caller recomputes
    for k in list(arrays)[:4]:
        assert fresh.get_array("model", k) is None
    assert fresh.bad_entries == 8 and fresh.misses == 8
    assert not fresh._path("model", "k0").exists() and not fresh._path("model", "a3", ".npy").exists()
    for k in list(truth)[4:]:  # the entries that were not touched are still served, verified
        np.testing.assert_array_equal(fresh.get("model", k)["v"], truth[k]["v"])
    np.testing.assert_array_equal(fresh.get_array("model", "a4"), arrays["a4"])
    for k in list(truth)[:4]:  # recomputed values replace the bad entries
        fresh.put("model", k, truth[k])
    again = Cache(tmp_path)
    for k, v in truth.items():
        got = again.get("model", k)
        np.testing.assert_array_equal(got["v"], v["v"])
        assert (got["ok"], got["n"]) == (v["ok"], v["n"])
    assert again.bad_entries == 0


def test_item03_a_run_over_a_damaged_cache_gives_the_clean_numbers(tmp_path):
    from fsrbench.cache import Cache

    cache = tmp_path / "cache"
    kw = dict(metrics=["psnr", "lpips"], cache_dir=str(cache), limit=6, batch_size=6)
    clean = run(_spec(tmp_path / "a", **kw), **QUIET)
    entries = sorted(cache.rglob("*.npy"))
    assert len(entries) == 6
    _damage(entries)
    logs: list[str] = []
    res = run(_spec(tmp_path / "b", **kw), log=logs.append)
    assert (tmp_path / "a" / "per_image.csv").read_bytes() == (tmp_path / "b" / "per_image.csv").read_bytes()
    assert res.metrics["cells"] == clean.metrics["cells"]
    assert any("4 unreadable or mismatching entries were recomputed" in m for m in logs)
    assert json.loads((tmp_path / "b" / "run.json").read_text())["analysis_cache"]["bad_entries_replaced"] == 4
    from fsrbench.metrics.lpips import LPIPSMetric

    c = Cache(cache)  # replaced on disk: every entry verifies again
    mid = LPIPSMetric()._model_id()
    assert all(c.get_array(mid, p.stem) is not None for p in sorted(cache.rglob("*.npy"))) and c.bad_entries == 0


# ------------------------------------------------------------------------------------------------
# 4. a damaged cell on reuse (and 11: summary.json = [1, 2])
# ------------------------------------------------------------------------------------------------
CELL_DAMAGE = {
    "truncated table": lambda d: (d / "per_image.csv").write_text(
        "\n".join((d / "per_image.csv").read_text().splitlines()[:3]) + "\n"),
    "empty table": lambda d: (d / "per_image.csv").write_bytes(b""),
    "deleted table": lambda d: (d / "per_image.csv").unlink(),
    "garbage summary": lambda d: (d / "summary.json").write_bytes(b"\x00garbage{"),
    "summary is a list": lambda d: (d / "summary.json").write_text("[1, 2]"),
    "edited summary": lambda d: (d / "summary.json").write_text(
        (d / "summary.json").read_text().replace('"n_failed": 0', '"n_failed": 1')),
}


def test_item04_a_damaged_cell_is_recomputed_not_reused(tmp_path):
    clean = tmp_path / "clean"
    run(_spec(clean, limit=6, batch_size=6), **QUIET)
    out = tmp_path / "r"
    run(_spec(out, limit=6, batch_size=6), **QUIET)
    cell = out / "cells" / "demo" / "x8" / "bicubic"
    for what, damage in CELL_DAMAGE.items():
        damage(cell)
        logs: list[str] = []
        res = run(_spec(out, limit=6, batch_size=6), log=logs.append)
        assert res.computed == [("demo", 8, "bicubic")] and not res.cached, what
        assert any("its stored cell is damaged" in m for m in logs), what
        assert (out / "per_image.csv").read_bytes() == (clean / "per_image.csv").read_bytes(), what
        assert (out / "metrics.json").read_bytes() == (clean / "metrics.json").read_bytes(), what
        assert len(pd.read_csv(cell / "per_image.csv")) == 6
    res = run(_spec(out, limit=6, batch_size=6), **QUIET)  # a verified cell is still reused
    assert res.cached and not res.computed


def test_item04_a_damaged_cell_outside_the_run_stops_it_up_front_with_the_fix(tmp_path, capsys):
    out = tmp_path / "r"
    run(_spec(out, methods=["bicubic", "hr-oracle"]), **QUIET)
    cell = out / "cells" / "demo" / "x8" / "hr-oracle"
    CELL_DAMAGE["summary is a list"](cell)
    before = _tree(out / "cells")
    code, _, err = _main(capsys, "run", "--methods", "bicubic", "--scales", "8", "--metrics", "psnr", "--limit", "4",
                         "--batch-size", "4", "--out", out, "--no-progress", "--no-leaderboard", "--force")
    assert code == 2 and "Traceback" not in err
    assert str(cell) in err and "summary.json is not a cell summary" in err and "delete that folder" in err
    assert _tree(out / "cells") == before  # refused before any work
    res = run(_spec(out, methods=["bicubic", "hr-oracle"]), **QUIET)  # its own method's run repairs it
    assert res.computed == [("demo", 8, "hr-oracle")]


# ------------------------------------------------------------------------------------------------
# 5. two trainings into one --out
# ------------------------------------------------------------------------------------------------
TINY = f"{REPO / 'tests' / 'plugins' / 'tiny_method.py'}:TinySR"


@pytest.fixture(scope="module")
def train_images(tmp_path_factory) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from plugins.synthetic import write_images
    finally:
        sys.path.remove(str(REPO / "tests"))
    return write_images(tmp_path_factory.mktemp("synthetic") / "imgs", n=12)


def test_item05_a_second_training_into_the_same_out_is_refused(tmp_path, capsys, train_images, restore_registry):
    import signal
    import time

    out = tmp_path / "run"
    args = ["train", "tiny-test", "--plugin", TINY, "--no-progress", "--scale", "8", "--dataset",
            f"folder:{train_images}", "--device", "cpu", "--out", str(out), "--set", "val_holdout=0"]
    first = subprocess.Popen([sys.executable, "-m", "fsrbench", *args, "--set", "step_sleep=5"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (out / "run.json").is_file() and first.poll() is None:
            time.sleep(0.1)
        assert (out / "run.json").is_file(), first.stderr.read() if first.poll() is not None else "timeout"
        code, _, err = _main(capsys, *args)
        assert code == 2 and f"another fsrbench train (pid {first.pid}) is writing to {out}" in err
        assert "choose another --out" in err and "Traceback" not in err
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert not list(out.glob("step_*.card.json"))  # the refused run wrote nothing


# ------------------------------------------------------------------------------------------------
# 6. all-black / all-white images: PSNR = inf
# ------------------------------------------------------------------------------------------------
def test_item06_infinite_values_are_left_out_of_the_mean_and_counted():
    from scipy import stats as st

    from fsrbench.stats import mean_ci

    vals = np.array([31.0, np.inf, 28.5, 30.25, np.nan, np.inf, 29.0])
    finite = np.array([31.0, 28.5, 30.25, 29.0])
    half = st.t.ppf(0.975, 3) * finite.std(ddof=1) / 2
    got = mean_ci(vals)
    assert got["value"] == pytest.approx(finite.mean(), abs=1e-12)
    assert got["ci_low"] == pytest.approx(finite.mean() - half) and got["ci_high"] == pytest.approx(finite.mean() + half)
    assert (got["n"], got["n_inf"], got["n_missing"]) == (6, 2, 1)
    oracle = mean_ci(np.full(5, np.inf))  # every image perfect: the value is inf, as before
    assert oracle["value"] == oracle["ci_low"] == oracle["ci_high"] == np.inf and oracle["n_inf"] == 5
    assert "n_inf" not in mean_ci(finite)  # ordinary summaries keep their bytes


def test_item06_one_black_face_cannot_turn_a_board_into_inf(tmp_path):
    from PIL import Image

    from fsrbench.leaderboard import leaderboard

    d = tmp_path / "faces"
    d.mkdir()
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:128, 0:128] / 127.0
    for i in range(4):  # smooth, different images: finite PSNR for both methods
        a = rng.random((3, 3))
        img = np.stack([a[c, 0] * xx + a[c, 1] * yy + 0.3 * np.sin(9 * (xx + yy) * a[c, 2]) for c in range(3)], -1)
        Image.fromarray((np.clip(img / img.max(), 0, 1) * 255).astype(np.uint8)).save(d / f"face{i}.png")
    Image.fromarray(np.zeros((128, 128, 3), np.uint8)).save(d / "all_black.png")
    Image.fromarray(np.full((128, 128, 3), 255, np.uint8)).save(d / "all_white.png")
    out = tmp_path / "r"
    res = run(_spec(out, methods=["bicubic", "nearest"], datasets=[f"folder:{d}"], limit=None, batch_size=6,
                    plugins=[f"{REPO}/docs/examples/nearest_plugin.py:Nearest"]), **QUIET)
    table = res.per_image
    for cell in res.metrics["cells"]:
        col = table[table["method"] == cell["method"]].set_index("image_id")["psnr"]
        assert np.isinf(col["all_black.png"]) and np.isinf(col["all_white.png"])  # the per-image value stays exact
        s = cell["metrics"]["psnr"]
        assert np.isfinite(s["value"]) and np.isfinite(s["ci_low"]) and s["n"] == 6 and s["n_inf"] == 2
        assert s["value"] == pytest.approx(col[np.isfinite(col)].mean(), abs=1e-9)
    md = leaderboard(out)
    rows = {r.split("|")[1].strip(): r for r in md.splitlines() if r.startswith("| bicubic") or r.startswith("| nearest")}
    assert all(re.search(r"\| \**[0-9.]+ ± [0-9.]+ \(2 ∞\)", r) for r in rows.values()), rows
    ranks = {m: float(r.split("|")[2]) for m, r in rows.items()}
    assert sorted(ranks.values()) == [1.0, 2.0]  # no tie on an infinite mean


# ------------------------------------------------------------------------------------------------
# 7. what a folder dataset used to skip silently; EXIF orientation; NaN in float TIFFs
# ------------------------------------------------------------------------------------------------
def _hostile_folder(d: Path) -> dict[str, str]:
    """Image-looking entries that cannot be used -> the words their reason must contain; plus good images."""
    from PIL import Image

    d.mkdir()
    rng = np.random.default_rng(2)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(d / f"good{i}.png")
    (d / "loop.png").symlink_to(d / "loop.png")
    (d / "dangling.png").symlink_to(d / "no_such_target.png")
    (d / "folder.png").mkdir()
    (d / "locked.jpg").mkdir(mode=0o000)
    os.mkfifo(d / "pipe.png")
    frames = [Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(3)]
    frames[0].save(d / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    nan = rng.random((128, 128)).astype(np.float32)
    nan[5, 7] = np.nan
    nan[9, 9] = np.inf
    Image.fromarray(nan, mode="F").save(d / "float_nan.tif")
    return {"loop.png": "symbolic link loop", "dangling.png": "dangling symbolic link", "folder.png": "is a directory",
            "locked.jpg": "is a directory", "pipe.png": "named pipe", "animated.gif": "animated or multi-frame",
            "float_nan.tif": "NaN or inf at 2 pixel"}


def test_item07_every_image_looking_entry_is_listed_with_its_reason(tmp_path, capsys):
    d = tmp_path / "faces"
    expect = _hostile_folder(d)
    logs: list[str] = []
    out = tmp_path / "r"
    res = run(_spec(out, datasets=[f"folder:{d}"], limit=None, batch_size=16), log=logs.append)
    t = res.per_image.set_index("image_id")
    assert set(t.index) == set(expect) | {"good0.png", "good1.png", "good2.png"}
    for name, words in expect.items():
        assert t.loc[name, "status"] == "failed" and words in t.loc[name, "error"], (name, t.loc[name, "error"])
        assert any(name in m and words in m for m in logs), name
    reasons = {f["image_id"]: f["reason"] for f in res.metrics["cells"][0]["failures"]}
    assert set(reasons) == set(expect)
    saved = pd.read_csv(out / "per_image.csv", keep_default_na=False).set_index("image_id")
    assert all(words in saved.loc[n, "error"] for n, words in expect.items())
    # and `fsrbench data check` lists the same entries with their reasons
    code, text, _ = _main(capsys, "data", "check", f"folder:{d}", "--max-problems", "50")
    assert code == 0 and "usable 3" in text and "skipped 7" in text
    for name, words in expect.items():
        assert any(name in line and words in line for line in text.splitlines()), name


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file; permissions cannot be attacked")
def test_item07_unreadable_file_and_folder_are_reported(tmp_path, capsys):
    from PIL import Image

    d = tmp_path / "faces"
    d.mkdir()
    Image.fromarray(np.zeros((128, 128, 3), np.uint8) + 50).save(d / "ok.png")
    Image.fromarray(np.zeros((128, 128, 3), np.uint8) + 90).save(d / "secret.png")
    (d / "secret.png").chmod(0)
    res = run(_spec(tmp_path / "r", datasets=[f"folder:{d}"], limit=None), **QUIET)
    t = res.per_image.set_index("image_id")
    assert t.loc["secret.png", "status"] == "failed" and "Permission denied" in t.loc["secret.png", "error"]
    d.chmod(0)
    try:
        code, _, err = _main(capsys, "run", "--methods", "bicubic", "--datasets", f"folder:{d}", "--scales", "8",
                             "--metrics", "psnr", "--out", tmp_path / "r3", "--no-progress", "--no-leaderboard")
    finally:
        d.chmod(0o755)
    assert code == 2 and "cannot list" in err and "permissions" in err and "Traceback" not in err


def test_item07_exif_orientation_is_applied_as_pil_does(tmp_path):
    from PIL import Image, ImageOps

    from fsrbench.imageio import read_image

    upright = np.zeros((96, 64, 3), np.uint8)  # tall and asymmetric: a sideways read has another shape
    upright[:30] = (200, 30, 30)
    upright[30:, :, 1] = np.linspace(0, 250, 64, dtype=np.uint8)[None, :]
    for orientation, stored in ((6, np.rot90(upright, 1)), (8, np.rot90(upright, -1)), (3, upright[::-1, ::-1])):
        path = tmp_path / f"o{orientation}.jpg"
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(np.ascontiguousarray(stored)).save(path, quality=100, exif=exif.tobytes())
        with Image.open(path) as im:
            reference = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
            raw = np.asarray(im.convert("RGB"))
        got = read_image(path)
        assert np.array_equal(got, reference), orientation
        assert got.shape == upright.shape and np.abs(got.astype(int) - upright).mean() < 3
        assert not (raw.shape == got.shape and np.array_equal(raw, got))  # the file really is stored rotated


# ------------------------------------------------------------------------------------------------
# 8. checkpoint weights files are byte-deterministic
# ------------------------------------------------------------------------------------------------
_SAVE_SCRIPT = """
import sys, torch
from fsrbench.train.checkpoints import save_weights
torch.manual_seed(0)
class Tied(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = torch.nn.Linear(6, 4)
        self.dec = torch.nn.Linear(4, 6)
        self.head = self.enc  # a shared module: its tensors appear twice in the state dict
        self.register_buffer("count", torch.arange(3))
meta = {k: str(i) for i, k in enumerate(["method", "scale", "step", "zeta", "alpha", "mid"])}
print(save_weights(Tied(), sys.argv[1], meta))
"""


def test_item08_weights_files_are_byte_identical_across_processes(tmp_path):
    import hashlib

    import torch
    from safetensors.torch import load_file, load_model

    paths = []
    for seed in ("1", "2"):  # the hash seed changes the order of an unordered map between processes
        p = tmp_path / f"w{seed}.safetensors"
        r = subprocess.run([sys.executable, "-c", _SAVE_SCRIPT, str(p)], capture_output=True, text=True,
                           env=dict(os.environ, PYTHONHASHSEED=seed), timeout=300)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == hashlib.sha256(p.read_bytes()).hexdigest()
        paths.append(p)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    # de-duplicated like safetensors.torch.save_model: one copy of the shared tensors, and it loads back
    stored = load_file(str(paths[0]))
    assert not ({"head.weight", "head.bias"} & set(stored)) and {"enc.weight", "dec.weight", "count"} <= set(stored)
    ns: dict = {}
    exec(_SAVE_SCRIPT.split("meta =")[0].replace("import sys, torch", "import torch"), ns)
    fresh = ns["Tied"]()
    load_model(fresh, str(paths[0]), strict=True)
    torch.manual_seed(0)
    assert torch.equal(fresh.head.weight, ns["Tied"]().enc.weight)


# ------------------------------------------------------------------------------------------------
# 9. methods that exit, interrupt, hang or print; metrics whose setup raises
# ------------------------------------------------------------------------------------------------
def test_item09_a_plugin_cannot_end_the_run_or_write_into_the_leaderboard(tmp_path):
    out = tmp_path / "r"
    hostile = ["exits", "hard-exit", "interrupts", "hangs", "prints"]
    plugins = [a for c in ("Exits", "HardExit", "Interrupts", "Hangs", "Prints", "SetupFails", "ExitsMetric")
               for a in ("--plugin", f"{HOSTILE}:{c}")]
    p = _cli("run", *plugins, "--methods", ",".join(["bicubic", *hostile]), "--metrics", "psnr,setupfails,exitsmetric",
             "--scales", "8", "--limit", "2", "--batch-size", "2", "--batch-timeout", "4", "--out", str(out),
             "--no-progress")
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    doc = json.loads((out / "metrics.json").read_text())
    cells = {c["method"]: c for c in doc["cells"]}
    assert set(cells) == {"bicubic", *hostile}
    assert cells["bicubic"]["n_failed"] == 0 and cells["prints"]["n_failed"] == 0
    expect = {"exits": "SystemExit: 3", "hard-exit": "worker process ended (exit status 7)",
              "interrupts": "KeyboardInterrupt", "hangs": "no result within 4 s (--batch-timeout)"}
    for m, words in expect.items():
        assert cells[m]["n_failed"] == 2 and all(words in f["reason"] for f in cells[m]["failures"]), cells[m]
    # a metric whose setup raises is skipped with its reason; one that exits costs its column, with a note
    assert doc["skipped_metrics"] == [{"metric": "setupfails",
                                       "reason": "setupfails failed to set up: RuntimeError: metric model file is corrupt"}]
    assert any("exitsmetric: MethodRaised: SystemExit: 4" in n for n in cells["bicubic"]["notes"])
    # stdout is the leaderboard only: the plugin's prints (Python and file descriptor 1) went to stderr
    assert "CHATTER" not in p.stdout and p.stdout.startswith("# fsrbench leaderboard")
    assert "PLUGIN-PRINT-CHATTER" in p.stderr and "PLUGIN-FD1-CHATTER" in p.stderr
    assert (out / "leaderboard.md").read_text().rstrip("\n") == p.stdout.rstrip("\n")


def test_item09_inline_methods_exit_and_hang_are_recorded(tmp_path):
    res = run(_spec(tmp_path / "r", methods=["bicubic", "exits", "hangs"], isolate="inline", batch_timeout=2,
                    limit=4, batch_size=2, plugins=[f"{HOSTILE}:Exits", f"{HOSTILE}:Hangs"]), **QUIET)
    cells = {c["method"]: c for c in res.metrics["cells"]}
    assert cells["bicubic"]["n_failed"] == 0
    assert [f["reason"] for f in cells["exits"]["failures"]] == ["method: SystemExit: 3"] * 4
    reasons = [f["reason"] for f in cells["hangs"]["failures"]]  # first batch times out, the second is not run
    assert all("no result within 2 s" in r for r in reasons[:2]) and all("not run" in r for r in reasons[2:])


def test_item09_an_isolated_method_gives_the_same_bytes_as_inline(tmp_path):
    plug = [f"{REPO}/docs/examples/nearest_plugin.py:Nearest"]
    a = run(_spec(tmp_path / "a", methods=["nearest"], plugins=plug, isolate="process"), **QUIET)
    b = run(_spec(tmp_path / "b", methods=["nearest"], plugins=plug, isolate="inline"), **QUIET)
    assert a.metrics["cells"] == b.metrics["cells"]
    assert (tmp_path / "a" / "per_image.csv").read_bytes() == (tmp_path / "b" / "per_image.csv").read_bytes()


# ------------------------------------------------------------------------------------------------
# 10. argument validation: exit 2 naming the option and the fix
# ------------------------------------------------------------------------------------------------
RUN_ARGS = {  # the campaign's arguments -> words the message must hold
    ("--scales", "0"): "valid scales: 2, 4, 8, 16, 32",
    ("--scales", "-4"): "scale x-4 cannot be evaluated",
    ("--scales", "1"): "scale x1 cannot be evaluated",
    ("--scales", "128"): "scale x128 cannot be evaluated",
    ("--scales", "x"): "--scales expects whole numbers",
    ("--scales", ","): "--scales is empty",
    ("--limit", "0"): "--limit must be a whole number of at least 1",
    ("--limit", "-3"): "--limit must be a whole number of at least 1",
    ("--batch-size", "0"): "--batch-size must be a whole number of at least 1",
    ("--batch-size", "-2"): "--batch-size must be a whole number of at least 1",
    ("--weights", "nosuch=/x"): "--weights nosuch=...: unknown method 'nosuch'",
    ("--weights", "srcnn=/x"): "srcnn is not one of this run's methods (bicubic); add it to --methods",
    ("--methods", ","): "--methods is empty",
    ("--metrics", ","): "--metrics is empty",
    ("--datasets", ","): "--datasets is empty",
    ("--device", "tpu"): "--device 'tpu' is not a device torch knows; use cpu, cuda, cuda:N or auto",
    ("--batch-timeout", "-1"): "--batch-timeout must be a number of seconds >= 0",
}


@pytest.mark.parametrize("option,value", list(RUN_ARGS))
def test_item10_run_arguments_are_validated(tmp_path, capsys, option, value):
    args = {"--methods": "bicubic", "--scales": "8", "--metrics": "psnr", "--limit": "2", "--out": str(tmp_path / "r")}
    args[option] = value
    code, out, err = _main(capsys, "run", *[x for kv in args.items() for x in kv], "--no-progress")
    assert code == 2, err
    assert RUN_ARGS[(option, value)] in err and "Traceback" not in err, err
    assert out == "" and not (tmp_path / "r" / "cells").exists()


TRAIN_SETS = {"steps=0": "steps=0: must be a whole number of at least 1", "steps=-5": "steps=-5: must be",
              "epochs=0": "epochs=0: must be", "flip=maybe": "flip='maybe': must be true or false",
              "tensorboard=1": "tensorboard=1: must be true or false"}


@pytest.mark.parametrize("item", list(TRAIN_SETS))
def test_item10_train_arguments_are_validated(tmp_path, capsys, item, restore_registry):
    code, _, err = _main(capsys, "train", "tiny-test", "--plugin", TINY, "--scale", "8", "--dataset", "demo",
                         "--out", tmp_path / "t", "--set", item, "--no-progress")
    assert code == 2 and TRAIN_SETS[item] in err and "Traceback" not in err, err
    assert not list((tmp_path / "t").glob("step_*")) if (tmp_path / "t").exists() else True


def test_item10_train_device_is_validated(tmp_path, capsys, restore_registry):
    code, _, err = _main(capsys, "train", "tiny-test", "--plugin", TINY, "--scale", "8", "--dataset", "demo",
                         "--out", tmp_path / "t", "--device", "tpu", "--no-progress")
    assert code == 2 and "--device 'tpu' is not a device torch knows" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------------
# 11. a full disk, a malicious state.pt
# ------------------------------------------------------------------------------------------------
class _FullDisk:
    """``open`` for fsrbench.results: files opened for writing raise ENOSPC once ``budget`` bytes are written in
    total, or as soon as a file whose name holds ``when`` is written."""

    def __init__(self, budget: int = 1 << 60, when: str = "") -> None:
        self.left, self.when, self.hit = budget, when, False

    def __call__(self, path, mode="r", *a, **kw):
        import builtins
        import errno

        fh = builtins.open(path, mode, *a, **kw)
        if "w" not in mode:
            return fh
        outer, real_write = self, fh.write

        def write(data):
            n = len(memoryview(data).cast("B")) if not isinstance(data, str) else len(data)
            if (outer.when and outer.when in str(path)) or n > outer.left:
                outer.hit = True
                raise OSError(errno.ENOSPC, "No space left on device")
            outer.left -= n
            return real_write(data)

        fh.write = write
        return fh


def _no_partial_files(d: Path) -> None:
    assert not [p for p in d.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".cell-")]


def test_item11_a_full_disk_mid_run_is_exit_2_and_the_rerun_completes(tmp_path, capsys, monkeypatch):
    from fsrbench import results

    clean = tmp_path / "clean"
    run(_spec(clean, methods=["bicubic", "hr-oracle"], scales=[4, 8]), **QUIET)
    out = tmp_path / "r"
    args = ["run", "--methods", "bicubic,hr-oracle", "--scales", "4,8", "--metrics", "psnr", "--limit", "4",
            "--batch-size", "4", "--out", out, "--no-progress", "--no-leaderboard"]
    full = _FullDisk(budget=150_000)
    monkeypatch.setattr(results, "open", full, raising=False)
    code, _, err = _main(capsys, *args)
    monkeypatch.undo()
    assert full.hit and code == 2 and "Traceback" not in err
    assert "no space left on the device while writing " + str(out) in err and "run the same command again" in err
    _no_partial_files(out)
    for cell in (out / "cells").glob("*/x*/*"):
        from fsrbench.results import verify_cell

        verify_cell(cell)  # every visible cell is complete
    code, _, err = _main(capsys, *args)
    assert code == 0, err
    assert (out / "per_image.csv").read_bytes() == (clean / "per_image.csv").read_bytes()
    assert (out / "metrics.json").read_bytes() == (clean / "metrics.json").read_bytes()


def _train_args(out: Path, images: Path, *extra: str) -> list[str]:
    return ["train", "tiny-test", "--plugin", TINY, "--no-progress", "--scale", "8", "--dataset", f"folder:{images}",
            "--device", "cpu", "--out", str(out), "--set", "val_holdout=0", *extra]


def test_item11_a_full_disk_during_a_checkpoint_leaves_no_half_checkpoint(tmp_path, capsys, monkeypatch, train_images,
                                                                         restore_registry, one_torch_thread):
    from fsrbench import results

    out = tmp_path / "t"
    full = _FullDisk(when="step_00000008.state.pt")
    monkeypatch.setattr(results, "open", full, raising=False)
    code, _, err = _main(capsys, *_train_args(out, train_images))
    monkeypatch.undo()
    assert full.hit and code == 2 and "Traceback" not in err and "inline_container" not in err
    assert f"no space left on the device while writing {out / 'step_00000008.state.pt'}" in err and "--resume" in err
    assert sorted(p.name for p in out.glob("step_*")) == [f"step_00000004.{s}" for s in ("card.json", "safetensors",
                                                                                           "state.pt")]
    _no_partial_files(out)
    code, _, err = _main(capsys, *_train_args(out, train_images, "--resume"))
    assert code == 0, err
    assert [p.name for p in sorted(out.glob("step_*.card.json"))] == ["step_00000008.card.json", "step_00000012.card.json"]


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_item11_a_malicious_state_on_resume_is_refused_with_the_fix(tmp_path, capsys, train_images, restore_registry,
                                                                    one_torch_thread):
    import torch

    out = tmp_path / "t"
    code, _, err = _main(capsys, *_train_args(out, train_images, "--set", "steps=4"))
    assert code == 0, err
    marker = tmp_path / "pwned"
    state = out / "step_00000004.state.pt"
    torch.save({"step": 4, "optimizer": _Payload(marker)}, state)
    code, _, err = _main(capsys, *_train_args(out, train_images, "--set", "steps=8", "--resume"))
    assert code == 2 and "Traceback" not in err and not marker.exists()
    assert f"{state}: refused to load" in err and "posix.system" in err and "could run code" in err
    assert "Delete step_00000004.card.json" in err and "--out NEW_DIR" in err
    assert "weights_only" not in err  # torch's advice to load it unsafely is never passed on
    state.write_bytes(state.read_bytes()[:100])  # and a damaged one: the same kind of answer
    code, _, err = _main(capsys, *_train_args(out, train_images, "--set", "steps=8", "--resume"))
    assert code == 2 and f"{state}: unreadable" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------------
# 12. weight cards pointing outside their folder; results written under the lock; the gathered pair
# ------------------------------------------------------------------------------------------------
def _srcnn_weights(path: Path) -> dict:
    from fsrbench.train.checkpoints import save_weights
    from fsrbench.train.config import resolve_config
    from fsrbench_baselines.srcnn.method import SRCNNMethod

    cfg = resolve_config(SRCNNMethod(), "default")
    digest = save_weights(SRCNNMethod().build_model(8, cfg), path)
    return {"format": "fsrbench-weights/1", "method": "srcnn", "scale": 8, "kind": "best", "step": 1,
            "sha256": digest, "config": cfg, "created_ns": 1}


@pytest.mark.parametrize("where", ["../outside.safetensors", "ABSOLUTE", "sub/../../outside.safetensors"])
def test_item12_a_card_cannot_point_outside_its_folder(tmp_path, where, monkeypatch):
    import fsrbench.weights as W

    cards = tmp_path / "cards"
    cards.mkdir()
    outside = tmp_path / "outside.safetensors"
    card = _srcnn_weights(outside)  # a valid file, with the right SHA-256: only its place is wrong
    card["weights"] = str(outside) if where == "ABSOLUTE" else where
    (cards / "srcnn-x8.card.json").write_text(json.dumps(card))
    hashed: list[str] = []
    real = W.sha256_file
    monkeypatch.setattr(W, "sha256_file", lambda p: hashed.append(str(p)) or real(p))
    # refused with the reason (an explicit --weights that cannot be loaded is an error, issue 25), nothing scored
    with pytest.raises(ValueError, match="--weights srcnn=.*is not a file in the card's folder"):
        run(_spec(tmp_path / "r", methods=["srcnn"], weights={"srcnn": str(cards)}), **QUIET)
    assert not (tmp_path / "r" / "metrics.json").exists()
    assert str(outside) not in hashed and not any("outside" in h for h in hashed)
    # the same card with the file beside it is used
    card["weights"] = "inside.safetensors"
    outside.rename(cards / "inside.safetensors")
    (cards / "srcnn-x8.card.json").write_text(json.dumps(card))
    res = run(_spec(tmp_path / "r2", methods=["srcnn"], weights={"srcnn": str(cards)}), **QUIET)
    assert [c["method"] for c in res.metrics["cells"]] == ["srcnn"]


def _lock_is_held(out: Path) -> bool:
    import fcntl

    with open(out / ".lock", "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return False


def test_item12_leaderboard_md_is_written_under_the_lock_atomically(tmp_path, capsys, monkeypatch):
    import fsrbench.leaderboard as lb

    out = tmp_path / "r"
    seen: list[bool] = []
    real = lb.leaderboard

    def spy(run_dir, *a, **kw):
        seen.append(_lock_is_held(Path(run_dir)))
        return real(run_dir, *a, **kw)

    monkeypatch.setattr(lb, "leaderboard", spy)
    code, text, err = _main(capsys, "run", "--methods", "bicubic", "--scales", "8", "--metrics", "psnr", "--limit",
                            "2", "--out", out, "--no-progress")
    assert code == 0, err
    assert seen == [True]
    assert (out / "leaderboard.md").read_text() == real(out) and text.rstrip("\n") == real(out).rstrip("\n")
    _no_partial_files(out)


def test_item12_a_kill_between_the_gathered_files_is_detected_not_rendered(tmp_path, capsys, monkeypatch):
    from fsrbench import results
    from fsrbench.leaderboard import leaderboard

    clean = tmp_path / "clean"
    run(_spec(clean, methods=["bicubic", "hr-oracle"]), **QUIET)
    out = tmp_path / "r"
    run(_spec(out, methods=["bicubic"]), **QUIET)
    real = results.atomic_write_bytes

    def killed_before_metrics(path, data):
        if Path(path).name == "metrics.json" and Path(path).parent == out:
            raise KeyboardInterrupt  # as if the process died right here
        return real(path, data)

    monkeypatch.setattr(results, "atomic_write_bytes", killed_before_metrics)
    with pytest.raises(KeyboardInterrupt):
        run(_spec(out, methods=["bicubic", "hr-oracle"]), **QUIET)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="were written by different runs"):
        leaderboard(out)
    code, _, err = _main(capsys, "leaderboard", out)
    assert code == 2 and "run the same `fsrbench run --out" in err and "Traceback" not in err
    res = run(_spec(out, methods=["bicubic", "hr-oracle"]), **QUIET)  # the next run makes the pair whole again
    assert res.cached and not res.computed
    assert (out / "per_image.csv").read_bytes() == (clean / "per_image.csv").read_bytes()
    assert (out / "metrics.json").read_bytes() == (clean / "metrics.json").read_bytes()
    assert leaderboard(out) == leaderboard(clean)


def test_item12_a_metrics_file_that_is_not_one_is_exit_2(tmp_path, capsys):
    out = tmp_path / "r"
    run(_spec(out), **QUIET)
    for junk in ("[1, 2]", "{not json"):
        (out / "metrics.json").write_text(junk)
        code, _, err = _main(capsys, "leaderboard", out)
        assert code == 2 and str(out / "metrics.json") in err and "Traceback" not in err


def test_item12_profile_and_leaderboard_output_respect_the_lock_and_write_atomically(tmp_path, capsys):
    from fsrbench.report.profile import profile_run
    from fsrbench.results import run_lock

    out = tmp_path / "r"
    run(_spec(out), **QUIET)
    with run_lock(out):  # a run is writing the directory: profile.json is not written beside it
        with pytest.raises(ValueError, match="another fsrbench run"):
            profile_run(out, repeats=1, warmup=0)
    assert not (out / "profile.json").exists()
    code, _, err = _main(capsys, "leaderboard", out, "--output", tmp_path / "board.md")
    assert code == 0 and (tmp_path / "board.md").read_text().startswith("# fsrbench leaderboard")
    _no_partial_files(tmp_path)
