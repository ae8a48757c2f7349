"""The reported-tables data files against the paper text files (parsed here independently of the YAML)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from fsrbench.reported import find, load_reported, load_tables_meta

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # the checkout root, wherever this file sits under tests/
PAPERS = REPO.parent / "shared" / "papers"
if not PAPERS.is_dir():
    PAPERS = Path("/work/shared/papers")
needs_papers = pytest.mark.skipif(not PAPERS.is_dir(), reason="paper text files (../shared/papers) not present")

AFFECT_METHODS = ["Bicubic", "SRCNN", "EDSR", "FSRNet", "DIC", "SPARNet", "AffectSRNet"]


@pytest.fixture(scope="module")
def values():
    return load_reported()


def _block(text: str, start: str, end: str) -> str:
    i = text.index(start)
    j = text.index(end, i + len(start))
    return text[i:j]


def _affect_table(block: str) -> dict[tuple[str, str], list[str]]:
    """{(dataset, metric): [7 printed cells]} from the tab-separated rows of AffectSRNet Table I/II."""
    out = {}
    dataset = None
    for line in block.splitlines():
        cells = line.split("\t")
        if len(cells) < 9:
            continue
        if cells[0].strip():
            dataset = re.sub(r"\[\d+\]", "", cells[0]).strip()
        metric = cells[1].split("\\")[0].strip().lower()
        if metric in ("psnr", "ssim", "lpips", "ecm"):
            out[(dataset, metric)] = [c.strip() for c in cells[2:9]]
    return out


@needs_papers
@pytest.mark.parametrize("table_id,start,end", [("affectsrnet-table1", "TABLE I\n", "TABLE II\n"),
                                                ("affectsrnet-table2", "TABLE II\n", "TABLE III\n")])
def test_affectsrnet_tables_match_paper_text(values, table_id, start, end):
    text = (PAPERS / "affectsrnet.txt").read_text()
    parsed = _affect_table(_block(text, start, end))
    assert len(parsed) == 12  # 3 datasets x 4 metrics
    for (dataset, metric), cells in parsed.items():
        got = {v.method: v.text for v in find(values, table=table_id, dataset=dataset, metric=metric)}
        assert [got[m] for m in AFFECT_METHODS] == cells, (dataset, metric)


@needs_papers
def test_wnet_table1_rows_match_paper_text(values):
    text = (PAPERS / "wnet.txt").read_text()
    rows = [re.sub(r"</?u>", "", ln).split("\t") for ln in _block(text, "Methods\tYear", "Table 2:").splitlines()]
    wnet = [r for r in rows if r[0].startswith("W-Net")]
    bic = [r for r in rows if r[0].startswith("Bicubic")][0]
    assert len(wnet) == 2
    cols = [(d, s, m) for d, s in (("CelebA", 4), ("CelebA", 8), ("Helen", 4), ("Helen", 8))
            for m in ("psnr", "ssim", "lpips")]
    for label, row in (("W-Net (Mode I)", wnet[0]), ("W-Net (Mode II)", wnet[1]), ("Bicubic", bic)):
        for (d, s, m), cell in zip(cols, row[2:14]):
            (v,) = find(values, table="wnet-table1", dataset=d, scale=s, method=label, metric=m)
            assert v.text == cell.strip(), (label, d, s, m)
            assert v.fsrbench_method == ("wnet" if label.startswith("W-Net") else "bicubic")


@needs_papers
def test_mpenet_and_ufvnet_rows_match_paper_text(values):
    mp = (PAPERS / "mpenet.txt").read_text()
    row = re.search(r"^MPENet\t([\d.]+)\t([\d.]+)\t([\d.]+)\t([\d.]+)$", mp, re.M).groups()
    got = [find(values, table="mpenet-table1", dataset=d, method="MPENet", metric=m)[0].text
           for d in ("BP4D", "DISFA") for m in ("psnr", "ssim")]
    assert got == list(row)
    f1 = re.search(r"^MPENet\t([\d.]+)\t([\d.]+)\t([\d.]+)\t([\d.]+)$", mp[mp.index("F1-score\tAcc\tF1-score"):], re.M).groups()
    got = [find(values, table="mpenet-table2", dataset=d, method="MPENet", metric=m)[0].text
           for d in ("BP4D", "DISFA") for m in ("au_f1", "au_acc")]
    assert got == list(f1)
    uf = (PAPERS / "ufvnet.txt").read_text()
    t2 = _block(uf, "TABLE II", "Fig. 5")
    row = re.search(r"^UFVNet\(Ours\)\t(.*)$", t2, re.M).group(1).split("\t")
    got = [find([v for v in values if v.train == tr], table="ufvnet-table2", dataset=d, method="UFVNet",
                metric=m)[0].text
           for tr in ("CelebA-MR8", "CelebA-MR3") for d in ("CelebA-MR8", "Helen-MR8") for m in ("psnr", "ssim")]
    assert got == [c.strip() for c in row[:8]]


@needs_papers
def test_every_printed_value_occurs_in_its_paper(values):
    texts = {f: (PAPERS / f).read_text() for f in ("affectsrnet.txt", "mpenet.txt", "wnet.txt", "ufvnet.txt")}
    n = 0
    for v in values:
        name = Path(v.source_file).name
        if name not in texts or v.value is None:
            continue
        assert re.search(rf"(?<![\d.]){re.escape(v.text)}(?![\d])", texts[name]), (v.table_id, v.method, v.metric, v.text)
        n += 1
    assert n > 400


def test_caveats_and_labels(values):
    (ssim,) = find(values, table="affectsrnet-table1", dataset="Helen", method="Bicubic", metric="ssim")
    assert ssim.value == 0.6628 and any("x8" in c for c in ssim.caveats)
    (lp,) = find(values, table="affectsrnet-table1", dataset="Helen", method="SRCNN", metric="lpips")
    assert lp.text == "0.556" and any("(sic)" in c for c in lp.caveats)
    (t2,) = find(values, table="affectsrnet-table2", dataset="CelebA", method="affectsrnet", metric="psnr")
    (t3,) = find(values, table="affectsrnet-table3", dataset="CelebA", method="affectsrnet", metric="psnr")
    assert (t2.value, t3.value) == (27.39, 27.46) and t2.caveats and t3.caveats
    assert find(values, table="affectsrnet-table1", dataset="FFHQ", method="DIC", metric="psnr")[0].value is None
    meta = load_tables_meta()
    assert meta["affectsrnet-table1"]["table"] == "Table I" and "DDAMFN" in meta["affectsrnet-table1"]["protocol"]
    assert {v.paper for v in values} >= {"AffectSRNet", "MPENet", "W-Net", "UFVNet"}
