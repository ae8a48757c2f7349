"""A recomputed cell says which input changed (issue 25), issue 24's implementation identity included."""
from __future__ import annotations

from fsrbench.eval.runner import changed_inputs


def _inputs(metrics=("psnr",), method="m:A", metric_impl=None, dataset="d:D"):
    impl = {"method": method, "metrics": metric_impl or [f"metrics:{n}" for n in metrics], "dataset": dataset}
    return {"protocol": "p", "metrics": [[n, []] for n in metrics], "implementation": impl}


def test_implementation_changes_are_named():
    old = {"cell_inputs": _inputs()}
    assert changed_inputs(old, _inputs(method="plugin:B")) == "method implementation"
    assert changed_inputs(old, _inputs(dataset="plugin:E")) == "dataset implementation"
    assert changed_inputs(old, _inputs(metric_impl=["plugin:psnr"])) == "psnr implementation"
    # a metric added: only the metrics changed, every kept metric runs the same code
    assert changed_inputs(old, _inputs(metrics=("psnr", "ssim"))) == "metrics or their options"
    assert changed_inputs(old, _inputs()) == "nothing recorded differs"
