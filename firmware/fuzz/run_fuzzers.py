"""Build and run every coverage-guided fuzz target of fuzz_targets.py for a set time.

Usage:
    .venv/bin/python firmware/fuzz/run_fuzzers.py [--seconds 300] [--jobs 2] [--work runs/fuzz]
                                                  [--tflite MODEL.tflite ...] [TARGET ...]
    make fuzz FUZZ_SECONDS=300

Each target is compiled with clang-14 -fsanitize=fuzzer,address,undefined
(UBSan fatal, LeakSanitizer on), seeded by fuzz_seeds.py into WORK/TARGET/seeds,
and run with -max_total_time; new inputs accumulate in WORK/TARGET/corpus
across runs. --jobs targets run side by side. A finding is any crash,
sanitizer report, leak, timeout or out-of-memory: the runner prints the
reproducer's path, its first bytes in hex and the report, and exits 1.
WORK/summary.json records, per target, the executions, coverage, corpus
size, seconds and findings. Exit 0: no finding; 2: a build or setup error
(one line on stderr).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(HERE)]

import fuzz_seeds as seed_builders  # noqa: E402
from fuzz_targets import TARGETS, Target  # noqa: E402

CLANG = "clang-14"
CFLAGS = ["-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-fsanitize=fuzzer,address,undefined",
          "-fno-sanitize-recover=all", "-DET_FUZZ_LIBFUZZER", f"-I{ROOT / 'firmware/include'}",
          f"-I{ROOT / 'firmware/src'}"]
FINDING_PREFIXES = ("crash-", "leak-", "timeout-", "oom-")


class SetupError(Exception):
    pass


def build(target: Target, work: Path) -> list[str]:
    """The command that runs the target (compiling a libFuzzer target first)."""
    if target.kind == "atheris":
        return [sys.executable, str(ROOT / target.sources[0])]
    if shutil.which(CLANG) is None:
        raise SetupError(f"{CLANG} not found: run `make setup` (it installs clang-14 and libclang-rt-14-dev)")
    exe = work / "bin" / f"fuzz_{target.name}"
    exe.parent.mkdir(parents=True, exist_ok=True)
    defines = [f"-D{d}" for d in target.defines]
    r = subprocess.run([CLANG, *CFLAGS, *defines, *(str(ROOT / s) for s in target.sources), "-o", str(exe)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise SetupError(f"building fuzz target {target.name} failed: {last}")
    return [str(exe)]


def make_seeds(target: Target, folder: Path, tflite: list[Path]) -> list[Path]:
    shutil.rmtree(folder, ignore_errors=True)
    return getattr(seed_builders, target.seeds)(folder, tflite=tflite)


def fuzz(target: Target, command: list[str], work: Path, seconds: int, seeds: list[Path]) -> dict:
    """Run one target for `seconds`; a dict of what happened."""
    tw = work / target.name
    corpus, artifacts = tw / "corpus", tw / "artifacts"
    for d in (corpus, artifacts):
        d.mkdir(parents=True, exist_ok=True)
    for old in artifacts.iterdir():
        old.unlink()
    max_len = min(max([4096] + [2 * p.stat().st_size for p in seeds]), 1 << 20)
    args = [*command, f"-max_total_time={seconds}", "-timeout=10", "-rss_limit_mb=2048", "-print_final_stats=1",
            f"-max_len={max_len}", f"-artifact_prefix={artifacts}/", str(corpus), str(tw / "seeds")]
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    t0 = time.monotonic()
    with open(tw / "log.txt", "w") as log:
        rc = subprocess.run(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tw,
                            timeout=seconds + 300).returncode
    text = (tw / "log.txt").read_text(errors="replace")
    stat = dict(re.findall(r"^stat::(\w+):\s*(\d+)", text, re.M))
    cov = re.findall(r"cov: (\d+) ft: (\d+)", text)
    findings = sorted(str(p) for p in artifacts.iterdir() if p.name.startswith(FINDING_PREFIXES))
    return {"target": target.name, "kind": target.kind, "rc": rc, "seconds": round(time.monotonic() - t0, 1),
            "execs": int(stat.get("number_of_executed_units", 0)), "seeds": len(seeds),
            "corpus": sum(1 for _ in corpus.iterdir()), "coverage": int(cov[-1][0]) if cov else 0,
            "features": int(cov[-1][1]) if cov else 0, "findings": findings,
            "ok": rc == 0 and not findings, "log": str(tw / "log.txt"), "command": command}


def describe(result: dict) -> str:
    """Several lines: the reproducers, their bytes and the tail of the report."""
    lines = [f"FINDING in fuzz target {result['target']} (exit {result['rc']}), log {result['log']}"]
    for path in result["findings"]:
        data = Path(path).read_bytes()
        lines += [f"reproducer: {path} ({len(data)} bytes); replay: {' '.join(result['command'])} {path}",
                  "first bytes: " + data[:256].hex()]
    report = Path(result["log"]).read_text(errors="replace").splitlines()
    start = next((i for i, s in enumerate(report) if "ERROR:" in s or "runtime error" in s), max(0, len(report) - 40))
    lines += report[start:start + 60]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("targets", nargs="*", help="names from targets.py (default: all)")
    ap.add_argument("--seconds", type=int, default=300)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "fuzz")
    ap.add_argument("--tflite", type=Path, action="append", default=[], help="add this model's image as a seed")
    a = ap.parse_args(argv)
    chosen = [t for t in TARGETS if not a.targets or t.name in a.targets]
    unknown = set(a.targets) - {t.name for t in TARGETS}
    try:
        if unknown or not chosen or a.seconds < 1 or a.jobs < 1:
            raise SetupError(f"unknown targets {sorted(unknown)} or bad --seconds/--jobs")
        work = a.work.resolve()
        plans = [(t, build(t, work), make_seeds(t, work / t.name / "seeds", a.tflite)) for t in chosen]
    except (SetupError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with ThreadPoolExecutor(max_workers=a.jobs) as pool:
        results = list(pool.map(lambda p: fuzz(p[0], p[1], work, a.seconds, p[2]), plans))
    (work / "summary.json").write_text(json.dumps(results, indent=2) + "\n")
    for r in results:
        print(f"{r['target']}: {r['execs']} execs in {r['seconds']} s, coverage {r['coverage']}, "
              f"features {r['features']}, corpus {r['corpus']} (from {r['seeds']} seeds): "
              f"{'no finding' if r['ok'] else 'FINDING'}")
    for r in results:
        if not r["ok"]:
            print(describe(r))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
