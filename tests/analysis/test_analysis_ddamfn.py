"""FER plugin "ddamfn" (DDAMFN++): unavailable without a checkpoint; loads official-format checkpoints strictly.

No DDAMFN++ checkpoint is installable offline, so the network's *accuracy* cannot be tested here; these
tests cover the contract (clear Unavailable messages, strict loading of the official
``{'iter', 'model_state_dict', 'optimizer_state_dict'}`` format, refusal of unsafe pickles, output shape).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fsrbench.api import Unavailable


def test_unavailable_without_weights() -> None:
    from fsrbench.analysis import get_fer

    with pytest.raises(Unavailable, match="--fer-weights"):
        get_fer("ddamfn")
    with pytest.raises(Unavailable, match="does not exist"):
        get_fer("ddamfn", weights="/nonexistent/ddamfn.pth")


def test_official_format_checkpoint_roundtrip(tmp_path: Path) -> None:
    import torch

    from fsrbench.analysis.fer_ddamfn import DDAMFN, build_ddamnet

    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = build_ddamnet(7, 2)
    # official module names (keys the published checkpoints use)
    keys = net.state_dict().keys()
    for k in ("features.0.conv.weight", "features.3.model.8.conv_dw.mixed_depthwise_conv.1.weight",
              "features.7.model.5.CA.conv3.bias", "cat_head1.CoordAtt.Linear_h.conv.weight",
              "Linear.bn.running_var", "fc.weight", "bn.weight"):
        assert k in keys, k
    p = tmp_path / "rafdb.pth"
    torch.save({"iter": 20, "model_state_dict": net.state_dict(), "optimizer_state_dict": {}}, p)
    fer = DDAMFN(weights=str(p))
    assert fer.classes == ("neutral", "happy", "sad", "surprise", "fear", "disgust", "angry")
    assert fer.id.startswith("ddamfn++-") and "c7h2" in fer.id
    faces = np.random.default_rng(0).integers(0, 256, (3, 128, 128, 3), dtype=np.uint8)
    prob = fer.predict_proba(faces)
    assert prob.shape == (3, 7)
    np.testing.assert_allclose(prob.sum(1), 1.0, atol=1e-6)
    with torch.no_grad():  # the plugin's preprocessing + net == the net on the documented preprocessing
        x = torch.from_numpy(np.stack([DDAMFN.preprocess(f) for f in faces]))
        np.testing.assert_allclose(prob, torch.softmax(net(x), 1).numpy(), atol=1e-5)


def test_wrong_or_unsafe_checkpoint_is_unavailable(tmp_path: Path) -> None:
    import pickle

    import torch

    from fsrbench.analysis.fer_ddamfn import DDAMFN

    bad = tmp_path / "bad.pth"
    torch.save({"model_state_dict": {"fc.weight": torch.zeros(7, 512)}}, bad)
    with pytest.raises(Unavailable, match="not a DDAMFN"):
        DDAMFN(weights=str(bad))

    class Evil:
        def __reduce__(self):  # noqa: ANN204
            return (print, ("pwned",))

    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps(Evil(), protocol=2))
    with pytest.raises(Unavailable, match="weights-only"):
        DDAMFN(weights=str(evil))
