"""The device side of the paper's Table 2: SRAM by component, flash and instructions per SGD step.

Usage:
    python benchmarks/bench_backprop_memory.py [--out benchmarks/results/backprop_memory.json]
        [--work runs/bench_backprop] [--models resnet18:0.0077,mobilenet_v3_large:0.0038,...]
        [--classes 5,10,100] [--optimizers sgd,momentum] [--batches 1,16] [--epochs 2]

For each model (width 1 at the given alpha) one sizing run (pruning/oneshot.py:
untrained, pruned by global magnitude, BatchNorm re-estimated) is exported and
built once with the ordinary CLI; every cell of the grid then keeps that
encoder's generated C (weight image, schedule, arena plan) and regenerates only
the head and the embedded samples, links the twin image and runs it under
QEMU (mps2-an500, -icount shift=0: exact instruction counts). The head's
storage is the richest that fits (entropi_tiny/codegen/head_budget.py);
a cell that still does not fit records the linker's verdict and the
predicted breakdown. For each cell that runs, the device's per-epoch losses
and test accuracy are compared with entropi_tiny/head_reference.py run on
TFLM's features of the same samples.

Labels: the built-in target's own 5 classes for 5-class cells (real data);
10- and 100-class cells train on seeded random labels over the same images
(memory and instruction counts do not depend on the labels; their accuracy
is meaningless and marked so). Training rows are the embedded images,
repeated to max(20, classes) samples.
Beside each row: the paper's frozen row and the analytic full fine-tuning
memory of the same dense model (entropi_tiny/profiling.py, host). A
stacked-bar PNG of SRAM by component, with the 320 KB line, is written
next to the JSON.
"""
from __future__ import annotations

import argparse
import functools
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from entropi_tiny import atomic  # noqa: E402
from entropi_tiny.boards import FIRMWARE_DIR, get_board  # noqa: E402
from entropi_tiny.stages.build import APP_MAIN, firmware_sources  # noqa: E402
from entropi_tiny.codegen.head import HeadSpec, generate_head_sources, head_memory  # noqa: E402
from entropi_tiny.codegen.head_budget import PARTS, choose_head  # noqa: E402
from entropi_tiny.codegen.samples import generate_sample_sources  # noqa: E402
from entropi_tiny.stages.emulate import parse_output  # noqa: E402
from entropi_tiny.errors import UserError  # noqa: E402
from entropi_tiny.head_reference import HeadReference  # noqa: E402
from entropi_tiny.toolchain.build import compile_firmware  # noqa: E402
from entropi_tiny.toolchain.qemu import run_qemu  # noqa: E402

FW = ("--set", "firmware.train_per_class=2", "--set", "firmware.test_per_class=1",
      "--set", "firmware.epochs=1", "--set", "export.calib_images=100",
      "--set", "export.check_images=10")
SRAM_LIMIT, FLASH_LIMIT = 327_680, 1_048_576
MOMENTUM = 0.9


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "entropi_tiny.cli", *args], cwd=ROOT,
                          capture_output=True, text=True)


def ensure_model(work: Path, arch: str, alpha: float) -> Path:
    """A built sizing run of arch at width 1 and alpha (reused when already built)."""
    from entropi_tiny.config import load_config
    from entropi_tiny.paths import RunPaths
    from entropi_tiny.stages.sizing import make_sizing_run

    run = work / f"{arch}-{alpha:g}"
    if not (run / "firmware" / "build.json").is_file():
        cfg = load_config("paper", overrides=[f"model.arch={json.dumps(arch)}", "model.width=1"])
        make_sizing_run(RunPaths(run), cfg, alpha=alpha)
        # No --preset: the sizing folder's config.json (arch, width) is the base.
        r = cli("build", "--quiet", "--run-dir", str(run), *FW)
        if r.returncode != 0:
            raise UserError(f"{arch} alpha {alpha}: {r.stderr.strip().splitlines()[-1]}")
    return run


def cell_samples(s: dict, classes: int) -> dict:
    """Training/test rows for a cell: the embedded images repeated, real or random labels."""
    n = max(20, classes)            # at least a batch of 16
    idx = np.arange(n) % len(s["train_q"])
    real = classes == int(s["num_classes"])
    rng = np.random.default_rng(classes)
    out = {"train_q": s["train_q"][idx], "train_features": s["train_features"][idx],
           "test_q": s["test_q"], "test_features": s["test_features"], "real_labels": real}
    out["train_y"] = (s["train_y"][idx] if real else rng.integers(0, classes, n)).astype(np.uint8)
    out["test_y"] = (s["test_y"] if real else rng.integers(0, classes, len(s["test_q"]))).astype(np.uint8)
    return out


def base_other_bytes(build: dict, samples: dict) -> int:
    """Static RAM of the base build outside arena, head state, caches: stack + the rest."""
    sizes = build["boards"][build["twin"]]
    mem = build["head_memory"]
    d = samples["train_features"].shape[1]
    return (sizes["ram_static"] + sizes["stack_bytes"] - build["arena_bytes"] - mem["state_bytes"]
            - mem["cache_bytes"] - len(samples["test_q"]) * d)


def run_cell(run: Path, build: dict, base: dict, classes: int, momentum: float, batch: int,
             epochs: int, tmp: Path) -> dict:
    s = cell_samples(base, classes)
    d = s["train_features"].shape[1]
    hs = build["head_spec"]
    spec = HeadSpec(feature_dim=d, num_classes=classes, num_samples=len(s["train_q"]),
                    feature_scale=hs["feature_scale"], feature_zero_point=hs["feature_zero_point"],
                    lr=hs["lr"], momentum=momentum, weight_decay=hs["weight_decay"],
                    lr_decay=hs["lr_decay"], batch_size=batch, epochs=epochs, seed=hs["seed"])
    plan = choose_head(spec, SRAM_LIMIT, build["arena_bytes"], len(s["test_q"]),
                       base_other_bytes(build, base))
    spec = plan.spec
    row = {"classes": classes, "optimizer": "sgd+momentum" if momentum else "sgd", "batch": batch,
           "train_samples": spec.num_samples, "test_samples": len(s["test_q"]),
           "real_labels": s["real_labels"], "weight_bits": spec.weight_bits,
           "momentum_bits": spec.momentum_bits if momentum else None, "rounding": spec.rounding,
           "predicted_sram": plan.breakdown, "predicted_fits": plan.fits}
    gen = tmp / "gen"
    shutil.rmtree(gen, ignore_errors=True)
    shutil.copytree(run / "firmware" / "generated", gen)
    for f in ("et_samples.c", "et_samples.h", "et_head_config.h", "et_head_data.c", "samples.npz"):
        (gen / f).unlink(missing_ok=True)
    generate_head_sources(gen, spec)
    generate_sample_sources(gen, s["train_q"], s["train_y"], s["test_q"], s["test_y"],
                            atomic.sha256_file(run / "model" / "encoder_int8.tflite"))
    twin = get_board(build["twin"])
    try:
        r = compile_firmware(twin, [APP_MAIN, *firmware_sources(), *sorted(gen.glob("*.c"))],
                             [FIRMWARE_DIR / "src", gen], tmp / "fw", {}, 8192)
    except UserError as e:
        row.update(fits=False, verdict=str(e).splitlines()[0][:300])
        return row
    total = r.ram_static + r.stack_bytes
    t0 = time.monotonic()
    res = run_qemu(r.elf, timeout=1800, machine=twin.qemu_machine)
    parsed = parse_output(res.uart_output.decode("utf-8", errors="replace"))
    rep = parsed["report"]
    if res.exit_code != 0 or rep is None:
        row.update(fits=False, verdict=f"twin run failed: {parsed['error']}")
        return row
    ref = HeadReference(spec)
    losses = ref.fit(s["train_features"], s["train_y"])
    host_acc = 100.0 * ref.evaluate(s["test_features"], s["test_y"]) / len(s["test_y"])
    dev_losses = [e["loss"] for e in parsed["epochs"] if e["loss"] is not None]
    mem = head_memory(spec)
    measured = {"arena": rep["arena"], "head_weights": mem["weight_bytes"],
                "optimizer_state": mem["optimizer_bytes"], "gradient": mem["gradient_bytes"],
                "feature_cache": mem["cache_bytes"] + len(s["test_q"]) * d,
                "head_scratch": mem["scratch_bytes"], "stack": r.stack_bytes}
    measured["rest"] = total - sum(measured.values())
    assert rep["head_state"] == mem["state_bytes"], "sizeof(et_head_t) != head_memory()"
    row.update(fits=total <= SRAM_LIMIT and r.flash_used <= FLASH_LIMIT,
               total_sram_bytes=total, flash_bytes=r.flash_used, sram=measured,
               stack_high_water_bytes=rep["stack_high_water"],
               instructions_per_sgd_step=rep["train_total"] / rep["sgd_steps"],
               instructions_per_inference=rep["infer_total"] / rep["infer_count"],
               device_losses=dev_losses, host_losses=losses,
               losses_match=bool(np.allclose(dev_losses, losses, rtol=1e-5, atol=1e-5)),
               device_accuracy=rep["acc_after_bp"] / 100.0, host_accuracy=host_acc,
               accuracy_match=abs(rep["acc_after_bp"] / 100.0 - host_acc) < 1e-9,
               qemu_wall_s=round(time.monotonic() - t0, 1))
    return row


@functools.lru_cache(maxsize=None)
def _table2(arch: str, classes: int, batch: int, mode: str) -> dict:
    import torch

    from entropi_tiny.models import build_model
    from entropi_tiny.profiling import table2_row

    torch.manual_seed(0)
    return table2_row(arch, build_model(arch, classes, 1.0), mode, batch)


def full_finetune(arch: str, classes: int, batch: int, momentum: bool) -> dict:
    """Analytic full fine-tuning and frozen-head memory of the dense model (host, profiling.py)."""
    from entropi_tiny.profiling import PAPER_TABLE2

    out = {}
    for mode in ("full", "frozen"):
        t = _table2(arch, classes, batch, mode)
        mb = t["memory_mb"] - (0 if momentum else t["optimizer_mb"])
        out[mode] = {"memory_mb": round(mb, 4), "activation_mb": round(t["activation_mb"], 4),
                     "paper_memory_mb": PAPER_TABLE2.get((arch, mode), (None, None))[1]}
    return out


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = ("arena", "head_weights", "optimizer_state", "gradient", "feature_cache",
             "head_scratch", "stack", "rest")
    shown = [r for r in rows if "sram" in r or "predicted_sram" in r]
    fig, ax = plt.subplots(figsize=(max(8, 0.42 * len(shown)), 5))
    bottom = np.zeros(len(shown))
    for part in parts:
        vals = []
        for r in shown:
            src = r.get("sram") or {**r["predicted_sram"], "stack": 8192,
                                    "rest": r["predicted_sram"]["other"] - 8192}
            vals.append(src.get(part, 0) / 1024)
        ax.bar(range(len(shown)), vals, bottom=bottom, label=part.replace("_", " "))
        bottom += vals
    ax.axhline(SRAM_LIMIT / 1024, color="k", ls="--", lw=1, label="320 KB (F746)")
    ax.set_xticks(range(len(shown)))
    ax.set_xticklabels([f"{r['model'].replace('mobilenet_v3_', 'mnv3-')} C{r['classes']} "
                        f"{'m' if r['optimizer'] != 'sgd' else 's'} B{r['batch']}"
                        f"{'' if 'sram' in r else ' (pred.)'}" for r in shown],
                       rotation=75, fontsize=7)
    ax.set_ylabel("SRAM (KiB)")
    ax.set_title("On-device head training: SRAM by component (measured; 'pred.' = did not link)")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/backprop_memory.json")
    ap.add_argument("--work", default="runs/bench_backprop")
    ap.add_argument("--models", default="resnet18:0.0077,mobilenet_v3_large:0.0038,"
                                        "mobilenet_v3_small:0.01")
    ap.add_argument("--classes", default="5,10,100")
    ap.add_argument("--optimizers", default="sgd,momentum")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--resume", action="store_true",
                    help="keep the rows of --out measured on the same base builds (same key)")
    args = ap.parse_args()
    work = Path(args.work)
    out = Path(args.out)
    # A row is only reused when asked, and only if it was measured on a base build with the
    # same stage key (model, generated sources, firmware): a kernel change makes it stale.
    rows = atomic.read_json(out)["rows"] if args.resume and out.is_file() else []
    keys = {}
    for spec in args.models.split(","):
        arch, alpha = spec.split(":")
        run = ensure_model(work, arch, float(alpha))
        build = atomic.read_json(run / "firmware" / "build.json")
        keys[arch] = build["stage"]["key"]
        rows = [r for r in rows if r["model"] != arch or r.get("build_key") == keys[arch]]
        done = {(r["model"], r["classes"], r["optimizer"], r["batch"]) for r in rows}
        base = dict(np.load(run / "firmware" / "generated" / "samples.npz"))
        for classes in map(int, args.classes.split(",")):
            for opt in args.optimizers.split(","):
                for batch in map(int, args.batches.split(",")):
                    name = "sgd+momentum" if opt == "momentum" else "sgd"
                    if (arch, classes, name, batch) in done:
                        continue
                    row = {"model": arch, "width": 1.0, "alpha": build["alpha"],
                           "features": int(base["train_features"].shape[1]),
                           "build_key": keys[arch]}
                    try:
                        row.update(run_cell(run, build, base, classes, MOMENTUM if opt == "momentum"
                                            else 0.0, batch, args.epochs, work / "cell"))
                    except UserError as e:    # recorded, the grid goes on
                        row.update(classes=classes, optimizer=name, batch=batch, fits=False,
                                   error=str(e)[:300])
                    row["host_table2"] = full_finetune(arch, classes, batch, opt == "momentum")
                    rows.append(row)
                    print(json.dumps({k: v for k, v in row.items() if k not in (
                        "predicted_sram", "sram", "host_table2")}), flush=True)
                    atomic.write_json(out, {"benchmark": "backprop_memory", "board": "nucleo-f746",
                                            "twin": "mps2-an500", "sram_limit": SRAM_LIMIT,
                                            "flash_limit": FLASH_LIMIT,
                                            "counter": "instructions, QEMU -icount shift=0",
                                            "encoders": "one-shot sizing runs (untrained), "
                                                        "pruning/oneshot.py", "rows": rows})
    plot(rows, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
