"""The `entropi-tiny` command line.

Usage:
    entropi-tiny prune --preset quick
    entropi-tiny prune --config my.toml --set prune.epochs=5 --run-dir runs/a

Every command reads its settings from a preset, an optional TOML file and
`--set section.key=value` overrides (see config.py), works in one run folder
(see paths.py), and skips work whose outputs already exist. Bad input ends
with one line on stderr and exit status 2.
"""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from . import atomic
from .config import PRESETS, Config, load_config
from .errors import UserError
from .paths import DEFAULT_RUN_DIR, RunPaths
from .seeds import SeedList, for_each_seed


def common_options(fn):
    """--preset, --config, --set, --run-dir and --quiet, turned into (cfg, paths, quiet)."""
    @click.option("--preset", type=click.Choice(sorted(PRESETS)), default="quick",
                  show_default=True, help="Hyperparameter preset.")
    @click.option("--config", "config_file", type=click.Path(dir_okay=False),
                  help="TOML file with [data], [model], [prune], [select], [transfer] tables.")
    @click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                  help="Override one config key; repeatable.")
    @click.option("--run-dir", type=click.Path(file_okay=False), default=str(DEFAULT_RUN_DIR),
                  show_default=True, help="Folder holding every artifact of the run.")
    @click.option("--quiet", "-q", is_flag=True, help="No progress bars or log lines.")
    @functools.wraps(fn)
    def wrapper(preset, config_file, overrides, run_dir, quiet, **kwargs):
        extra = [f"{key}={json.dumps(value)}" for key, value in
                 kwargs.pop("_shortcuts", {}).items() if value is not None]
        cfg = load_config(preset, config_file, list(overrides) + extra)
        return fn(cfg=cfg, paths=RunPaths(Path(run_dir)), quiet=quiet, **kwargs)
    return wrapper


def shortcut_options(**mapping):
    """Options like --epochs that are short for --set prune.epochs=..."""
    def decorate(fn):
        @functools.wraps(fn)
        def collect(*args, **kwargs):
            kwargs["_shortcuts"] = {key: kwargs.pop(opt) for opt, (key, _, _) in mapping.items()}
            return fn(*args, **kwargs)
        for opt, (key, typ, help_text) in reversed(mapping.items()):
            collect = click.option(f"--{opt.replace('_', '-')}", opt, type=typ,
                                   help=f"{help_text} (= --set {key}=...)")(collect)
        return collect
    return decorate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="entropi-tiny")
def cli() -> None:
    """Entropy-selected pruned CNN encoders, fine-tuned on a microcontroller (ENTROPI)."""


@cli.command()
@shortcut_options(
    arch=("model.arch", str, "resnet18, mobilenet_v3_small or mobilenet_v3_large"),
    width=("model.width", float, "Channel width multiplier"),
    source=("data.source", str, "builtin, cifar10, cifar100 or imagefolder:PATH"),
    data_root=("data.data_root", str, "Where CIFAR lives or downloads to"),
    epochs=("prune.epochs", int, "Training epochs per level"),
    levels=("prune.levels", int, "Number of pruning levels, dense included"),
    rate=("prune.rate", float, "Fraction of survivors pruned per level"),
    seed=("prune.seed", int, "Random seed"),
    source_seeds=("prune.source_seeds", SeedList(), "IMP once per seed, in seeds/seed_N/"),
)
@common_options
def prune(cfg: Config, paths: RunPaths, quiet: bool) -> None:
    """Train on the source task with iterative magnitude pruning (one checkpoint per level)."""
    from .pruning.imp import run_imp

    rows = run_imp(cfg, paths, quiet=quiet)
    if not quiet and rows:
        click.echo(_level_table(rows))


@cli.command()
@shortcut_options(
    target=("data.target", str, "builtin, cifar10, cifar100 or imagefolder:PATH"),
    levels_m=("select.levels_m", int, "Quantization levels M of eq. 3"),
    criterion=("select.criterion", str, "exact (eq. 6) or bound (eq. 8)"),
)
@common_options
@click.option("--json", "as_json", is_flag=True, help="Print the entropy table as JSON.")
def select(cfg: Config, paths: RunPaths, quiet: bool, as_json: bool) -> None:
    """Entropy of every level's encoder on the target train set; pick the maximum."""
    from .pipeline import run_select

    table = for_each_seed(run_select, cfg, paths, quiet=quiet)[-1]   # seeds.py
    if as_json:
        click.echo(json.dumps(table, indent=2))
    elif not quiet:
        click.echo(_entropy_table(table))


def _entropy_table(table: dict) -> str:
    lines = [f"{'level':>5} {'alpha':>8} {'H exact':>9} {'bound':>9} {'max':>8} saturated"]
    for r in table["rows"]:
        mark = " <- selected" if r["level"] == table["selected_level"] else ""
        lines.append(f"{r['level']:>5} {r['alpha']:>8.4f} {r['exact_bits']:>9.4f} "
                     f"{r['bound_bits']:>9.2f} {r['max_bits']:>8.3f} "
                     f"{'yes' if r['saturated'] else 'no':>9}{mark}")
    lines.append(f"entropy in bits (log2), M = {table['levels_m']}, criterion: "
                 f"{table['criterion']}; wrote {table.get('path', 'entropy.json')}")
    return "\n".join(lines)


@cli.command()
@shortcut_options(target=("data.target", str, "builtin, cifar10, cifar100 or imagefolder:PATH"),
                  epochs=("transfer.epochs", int, "Head training epochs"),
                  lr=("transfer.lr", float, "Adam learning rate"))
@common_options
@click.option("--all-levels", is_flag=True, help="Train a head on every level (Figure 3).")
def transfer(cfg: Config, paths: RunPaths, quiet: bool, all_levels: bool) -> None:
    """Train the linear head on the frozen selected and dense encoders."""
    from .pipeline import run_transfer

    result = for_each_seed(run_transfer, cfg, paths, all_levels=all_levels, quiet=quiet)[-1]
    if not quiet:
        for r in result["rows"]:
            tag = {result["selected_level"]: " (selected)", result["dense_level"]: " (dense)"}
            click.echo(f"level {r['level']:>2} alpha {r['alpha']:.4f}: top-1 "
                       f"{r['test_acc_mean']:.2f} +- {r['test_acc_std']:.2f}{tag.get(r['level'], '')}")


@cli.command()
@common_options
def report(cfg: Config, paths: RunPaths, quiet: bool) -> None:
    """Table 1, Figure 3 (PNG), report.json and report.md from the run folder."""
    from .report import markdown, write_report

    summary = write_report(paths)
    if not quiet:
        click.echo(markdown(summary))
        click.echo(f"wrote {paths.report_md}, {paths.report_json}, {paths.figure3_png}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the rows as a JSON list.")
@click.option("--batch", default=16, show_default=True, type=click.IntRange(1),
              help="Batch size of the profiled training step.")
@click.option("--classes", default=5, show_default=True, type=click.IntRange(2),
              help="Target classes (the paper's VLCS has 5).")
@click.option("--run-dir", type=click.Path(file_okay=False), default=None,
              help="Also profile this run's pruned levels (non-zero MACs).")
def profile(as_json: bool, batch: int, classes: int, run_dir: str | None) -> None:
    """Paper Table 2: FLOPs and memory of one backprop step, frozen head vs full."""
    from .profiling import profile_rows, table2_text

    rows = profile_rows(batch, classes, RunPaths(Path(run_dir)) if run_dir else None)
    click.echo(json.dumps(rows, indent=2) if as_json else table2_text(rows))


@cli.command("export")
@common_options
@click.option("--level", type=int, default=None,
              help="Level to export (default: the entropy-selected one).")
@click.option("--tflite", "tflite", type=click.Path(dir_okay=False), default=None,
              help="Derive the sparse image from this int8 .tflite instead of a level.")
@click.option("--json", "as_json", is_flag=True, help="Print the export report as JSON.")
def export_cmd(cfg: Config, paths: RunPaths, quiet: bool, level: int | None, tflite: str | None,
               as_json: bool) -> None:
    """Int8 TFLite (verified in TFLM), ONNX and the sparse weight image of an encoder."""
    from .export.sparse_image import format_report
    from .pipeline import run_export

    s = run_export(cfg, paths, level=level, quiet=quiet, tflite=tflite)
    if as_json:
        click.echo(json.dumps(s, indent=2))
        return
    if quiet:
        return
    click.echo(format_report(s["sparse_image"]))
    if s["level"] is None:
        click.echo(f"{s['source']} -> {paths.sparse_image}: {s['sparse_image_bytes']:,} B "
                   f"({s['bytes_per_nnz']:.3f} B per non-zero)")
    else:
        click.echo(f"level {s['level']} (alpha {s['alpha']:.4f}) -> {paths.export_dir}\n"
                   f"  {s['files']['tflite']}: {s['tflite_bytes']:,} B, TFLM arena "
                   f"{s['tflm_arena_bytes']:,} B, TFLM == LiteRT reference: "
                   f"{s['tflm_bitexact_litert_ref']}\n"
                   f"  int8 vs float features: cosine mean {s['int8_cosine_mean']:.5f}, "
                   f"min {s['int8_cosine_min']:.5f}\n"
                   f"  {s['files']['sparse_image']}: {s['sparse_image_bytes']:,} B for "
                   f"{s['nonzero_weights']:,} non-zeros ({s['bytes_per_nnz']:.3f} B per non-zero)")


@cli.command()
@common_options
@click.option("--json", "as_json", is_flag=True, help="Print the generator reports as JSON.")
def codegen(cfg: Config, paths: RunPaths, quiet: bool, as_json: bool) -> None:
    """C sources from the exported model: weight tables, op schedule, arena plan, head, samples."""
    from .build import ensure_export, generate_sources

    ensure_export(cfg, paths, quiet)
    g = generate_sources(cfg, paths)
    if as_json:
        click.echo(json.dumps(g, indent=2, default=str))
    elif not quiet:
        m, h = g["model"], g["head"]["memory"]
        click.echo(f"model {g['model_sha256'][:16]}: {m['op_count']} ops, arena plan "
                   f"{m['arena_size']:,} B, weight image {m['image_size']:,} B\n"
                   f"head: state {h['state_bytes']:,} B, feature cache {h['cache_bytes']:,} B; "
                   f"samples: {g['samples']['train']} train + {g['samples']['test']} test\n"
                   f"wrote {paths.generated_dir}")


@cli.command()
@click.option("--board", default="nucleo-f746", show_default=True, help="Target board.")
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Run folder (same as --run-dir).")
@common_options
@click.option("--json", "as_json", is_flag=True, help="Print the build summary as JSON.")
def build(cfg: Config, paths: RunPaths, quiet: bool, board: str, out: str | None,
          as_json: bool) -> None:
    """Flash-ready firmware for a board (and its QEMU twin), running missing stages first."""
    from .build import run_build

    if out is not None:
        paths = RunPaths(Path(out))
    s = run_build(cfg, paths, board, quiet=quiet)
    if as_json:
        click.echo(json.dumps(s, indent=2))
    elif not quiet:
        click.echo(_build_table(s, paths))


def _build_table(s: dict, paths: RunPaths) -> str:
    lines = [f"{s['arch']} w={s['width']:g} level {s['level']} alpha {s['alpha']:.4f}: arena "
             f"{s['arena_bytes']:,} B (TFLM: {s['tflm_arena_bytes']:,} B), head state "
             f"{s['head_memory']['state_bytes']:,} B + feature cache "
             f"{s['head_memory']['cache_bytes']:,} B",
             f"{'image':<24} {'flash used':>12} {'of':>10} {'static RAM':>11} {'stack':>7} {'of':>9}"]
    for name, b in s["boards"].items():
        lines.append(f"{name:<24} {b['flash_used']:>12,} {b['flash_budget']:>10,} "
                     f"{b['ram_static']:>11,} {b['stack_bytes']:>7,} {b['ram_budget']:>9,}")
    lines.append(f"flash {paths.board_dir(s['board']) / 'firmware.bin'} (see README: Flashing)")
    return "\n".join(lines)


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False), default=str(DEFAULT_RUN_DIR))
@click.option("--stream", is_flag=True, help="Also stream samples over the emulated UART.")
@click.option("--timeout", default=600.0, show_default=True, help="Wall-clock limit in seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print emulator.json.")
def emulate(run_dir: str, stream: bool, timeout: float, as_json: bool) -> None:
    """Run the board's QEMU twin headless and write emulator.json."""
    from .emulate import run_emulate

    paths = RunPaths(Path(run_dir))
    result = run_emulate(paths, stream=False, timeout=timeout)
    if stream:
        result["stream"] = run_emulate(paths, stream=True, timeout=timeout)["stream"]
    atomic.write_json(paths.emulator_json, result)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    keys = ("board", "model", "alpha", "flash_bytes", "static_ram_bytes", "stack_high_water_bytes",
            "arena_bytes", "head_state_bytes", "total_sram_bytes", "instructions_per_inference",
            "instructions_per_sgd_step", "device_accuracy_before", "device_accuracy_after",
            "host_accuracy", "budgets_ok")
    for k in keys:
        click.echo(f"{k:>28}: {result[k]}")
    click.echo(f"{'features bit-exact vs TFLM':>28}: {result['features']['bit_exact']} "
               f"({result['features']['samples']} samples)")
    click.echo(f"wrote {paths.emulator_json}")


def _level_table(rows: list[dict]) -> str:
    lines = [f"{'level':>5} {'alpha':>8} {'actual':>8} {'train%':>7} {'test%':>7}"]
    for r in rows:
        lines.append(f"{r['level']:>5} {r['alpha_target']:>8.4f} {r['alpha_actual']:>8.4f} "
                     f"{r['train_acc']:>7.2f} {r['test_acc']:>7.2f}")
    return "\n".join(lines)


def main() -> None:
    try:
        code = cli.main(standalone_mode=False, prog_name="entropi-tiny")
    except UserError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted: rerun the same command to resume", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
