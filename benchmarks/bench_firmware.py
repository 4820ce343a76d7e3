"""Instructions per inference, per SGD step and per non-zero MAC on the QEMU twin.

Usage:
    python benchmarks/bench_firmware.py [--out benchmarks/results/firmware.json]
                                        [--archs resnet18,mobilenet_v3_small] [--alphas 1,0.1,0.01]
                                        [--widths 1,0.25]

For each architecture, width and alpha, a sizing run (untrained,
pruned by global magnitude, BatchNorm re-estimated on real images) goes
through export, build and emulate. Instruction counts are exact under QEMU's
-icount, so one run per configuration suffices. A configuration that does not
fit the F746 is recorded with the linker's one-line verdict instead.
Non-zero MACs are counted on the PyTorch encoder: for every conv and linear
layer, output positions times non-zero weights.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from entropi_tiny import atomic  # noqa: E402
from entropi_tiny.config import load_config  # noqa: E402
from entropi_tiny.models import split_model  # noqa: E402
from entropi_tiny.paths import RunPaths  # noqa: E402
from entropi_tiny.pruning.checkpoint import load_level  # noqa: E402
from entropi_tiny.stages.sizing import make_sizing_run  # noqa: E402

FW = ("--set", "firmware.train_per_class=2", "--set", "firmware.test_per_class=1",
      "--set", "firmware.epochs=1", "--set", "export.calib_images=100",
      "--set", "export.check_images=10")


@torch.no_grad()
def nonzero_macs(paths: RunPaths) -> int:
    model, _, _ = load_level(paths.level_checkpoint(1))
    encoder, _ = split_model(model)
    total = [0]

    def hook(mod, inputs, out):
        nz = int(torch.count_nonzero(mod.weight))
        total[0] += nz * (out.shape[-1] * out.shape[-2] if out.dim() == 4 else 1)

    for m in encoder.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            m.register_forward_hook(hook)
    encoder.eval()(torch.zeros(1, 3, 32, 32))
    return total[0]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "entropi_tiny.cli", *args], cwd=ROOT,
                          capture_output=True, text=True)


def measure(arch: str, width: float, alpha: float, tmp: Path) -> dict:
    run = tmp / f"{arch}-{width:g}-{alpha:g}"
    cfg = load_config("paper", overrides=[f"model.arch={json.dumps(arch)}", f"model.width={width}"])
    paths = RunPaths(run)
    make_sizing_run(paths, cfg, alpha=alpha)
    row = {"arch": arch, "width": width, "alpha": alpha, "nonzero_macs": nonzero_macs(paths)}
    r = cli("build", "--quiet", "--run-dir", str(run), *FW)    # the folder holds the config
    if r.returncode != 0:
        row.update(fits=False, verdict=r.stderr.strip().splitlines()[-1][:300])
        return row
    r = cli("emulate", str(run), "--json")
    if r.returncode != 0:
        row.update(fits=True, error=r.stderr.strip()[-300:])
        return row
    e = json.loads(r.stdout)
    row.update(fits=e["budgets_ok"], flash_bytes=e["flash_bytes"],
               total_sram_bytes=e["total_sram_bytes"], arena_bytes=e["arena_bytes"],
               instructions_per_inference=e["instructions_per_inference"],
               instructions_per_sgd_step=e["instructions_per_sgd_step"],
               instructions_per_nonzero_mac=e["instructions_per_inference"] / row["nonzero_macs"],
               features_bit_exact=e["features"]["bit_exact"])
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/firmware.json")
    ap.add_argument("--archs", default="resnet18,mobilenet_v3_small")
    ap.add_argument("--alphas", default="1,0.1,0.01")
    ap.add_argument("--widths", default="1,0.25")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-fw-") as tmp:
        for arch in args.archs.split(","):
            for width, alpha in ((float(w), float(a)) for w in args.widths.split(",")
                                 for a in args.alphas.split(",")):
                row = measure(arch, width, alpha, Path(tmp))
                rows.append(row)
                print(json.dumps(row), flush=True)
    atomic.write_json(Path(args.out), {"benchmark": "firmware", "board": "nucleo-f746",
                                       "counter": "instructions, QEMU mps2-an500 -icount shift=0",
                                       "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
