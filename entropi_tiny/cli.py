"""The `entropi-tiny` command line.

Usage:
    entropi-tiny prune --preset quick
    entropi-tiny prune --config my.toml --set prune.epochs=5 --run-dir runs/a
    entropi-tiny status --run-dir runs/a

Every command works in one run folder (--run-dir, see paths.py) and reads
its settings from the folder's config.json (a new folder: the preset),
overridden by an optional TOML file, `--set section.key=value` and the
shortcut options (--target, --arch, ...), which are then recorded there.
A stage skips itself when its key (what it read) is unchanged and
recomputes when it changed (entropi_tiny/stages/). Bad input ends with one
line on stderr and exit status 2.
"""
from __future__ import annotations

import errno
import functools
import json
import sys
from pathlib import Path

import click

from .config import PRESETS
from .errors import UserError
from .paths import DEFAULT_RUN_DIR, RunPaths
from .seeds import SeedList, for_each_seed


DATA_OPTIONS = {
    "source": ("data.source", str, "Source task: builtin, cifar10, cifar100 or imagefolder:PATH"),
    "source_domains": ("data.source_domains", str, "Source domains of a domain tree, comma-separated"),
    "target": ("data.target", str, "Target task: builtin, cifar10, cifar100 or imagefolder:PATH"),
    "target_domains": ("data.target_domains", str, "Target domains of a domain tree, comma-separated"),
    "data_root": ("data.data_root", str, "Where CIFAR lives or downloads to"),
    "arch": ("model.arch", str, "resnet18, mobilenet_v3_small or mobilenet_v3_large"),
    "width": ("model.width", float, "Channel width multiplier"),
}


def common_options(fn):
    """--preset, --config, --set, --run-dir, --quiet and the data/model options,
    turned into a stage context `run` (config from the run folder, overridden)."""
    @click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None,
                  help="Start from this preset instead of the run folder's config.json "
                       "(a new folder starts from 'quick').")
    @click.option("--config", "config_file", type=click.Path(dir_okay=False),
                  help="TOML file with [data], [model], [prune], [select], [transfer] tables.")
    @click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                  help="Override one config key; repeatable; recorded in the run folder.")
    @click.option("--run-dir", type=click.Path(file_okay=False), default=None,
                  help=f"Folder holding every artifact of the run [default: {DEFAULT_RUN_DIR}].")
    @click.option("--quiet", "-q", is_flag=True, help="No progress bars or log lines.")
    @shortcut_options(**DATA_OPTIONS)
    @functools.wraps(fn)
    def wrapper(preset, config_file, overrides, run_dir, quiet, **kwargs):
        from .stages.contract import Run
        from .stages.runconfig import resolve_config

        extra = [f"{key}={json.dumps(value)}" for key, value in
                 kwargs.pop("_shortcuts", {}).items() if value is not None]
        run_dir = kwargs.pop("_run_dir", None) or run_dir or str(DEFAULT_RUN_DIR)
        paths = RunPaths(Path(run_dir))
        cfg = resolve_config(paths, preset, config_file, list(overrides) + extra)
        return fn(run=Run(cfg, paths, quiet), **kwargs)
    return wrapper


def shortcut_options(**mapping):
    """Options like --epochs that are short for --set prune.epochs=..."""
    def decorate(fn):
        @functools.wraps(fn)
        def collect(*args, **kwargs):
            found = {key: kwargs.pop(opt) for opt, (key, _, _) in mapping.items()}
            kwargs["_shortcuts"] = {**kwargs.get("_shortcuts", {}), **found}
            return fn(*args, **kwargs)
        for opt, (key, typ, help_text) in reversed(mapping.items()):
            collect = click.option(f"--{opt.replace('_', '-')}", opt, type=typ,
                                   help=f"{help_text} (= --set {key}=...)")(collect)
        return collect
    return decorate


def model_file_options(fn):
    """--tflite and --feature-tensor: a user's own int8 model instead of a pruned level."""
    @click.option("--tflite", type=click.Path(dir_okay=False), default=None,
                  help="Use this int8 .tflite (copied in) instead of a pruned level "
                       "(= --set export.tflite=...).")
    @click.option("--feature-tensor", default=None, metavar="NAME",
                  help="The .tflite tensor whose values are the features (default: the input "
                       "of its last classifier layer) (= --set export.feature_tensor=...).")
    @functools.wraps(fn)
    def wrapper(*args, tflite, feature_tensor, **kwargs):
        found = {"export.tflite": str(Path(tflite).resolve()) if tflite else None,
                 "export.feature_tensor": feature_tensor}
        kwargs["_shortcuts"] = {**kwargs.get("_shortcuts", {}), **found}
        return fn(*args, **kwargs)
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="entropi-tiny")
def cli() -> None:
    """Entropy-selected pruned CNN encoders, fine-tuned on a microcontroller (ENTROPI)."""


@cli.command()
@shortcut_options(
    epochs=("prune.epochs", int, "Training epochs per level"),
    levels=("prune.levels", int, "Number of pruning levels, dense included"),
    rate=("prune.rate", float, "Fraction of survivors pruned per level"),
    seed=("prune.seed", int, "Random seed"),
    source_seeds=("prune.source_seeds", SeedList(), "IMP once per seed, in seeds/seed_N/"),
)
@common_options
@click.option("--replace-levels", is_flag=True,
              help="Delete levels made with other settings and prune again.")
def prune(run, replace_levels: bool) -> None:
    """Train on the source task with iterative magnitude pruning (one checkpoint per level)."""
    from .stages.prune import run_prune

    manifest = for_each_seed(run_prune, run, replace=replace_levels)[-1]
    if not run.quiet and manifest["levels"]:
        click.echo(_level_table(manifest["levels"]))


@cli.command()
@shortcut_options(
    levels_m=("select.levels_m", int, "Quantization levels M of eq. 3"),
    criterion=("select.criterion", str, "exact (eq. 6), bound (eq. 8) or subset"),
)
@common_options
@click.option("--json", "as_json", is_flag=True, help="Print the entropy table as JSON.")
def select(run, as_json: bool) -> None:
    """Entropy of every level's encoder on the target train set; pick the maximum."""
    from .stages.select import run_select

    table = for_each_seed(run_select, run)[-1]              # per source seed (seeds.py)
    if as_json:
        click.echo(json.dumps(table, indent=2))
    elif not run.quiet:
        click.echo(_entropy_table(table, run.paths.entropy_json))


def _entropy_table(table: dict, path) -> str:
    lines = [f"{'level':>5} {'alpha':>8} {'H exact':>9} {'bound':>9} {'max':>8} saturated"]
    for r in table["rows"]:
        mark = " <- selected" if r["level"] == table["selected_level"] else ""
        lines.append(f"{r['level']:>5} {r['alpha']:>8.4f} {r['exact_bits']:>9.4f} "
                     f"{r['bound_bits']:>9.2f} {r['max_bits']:>8.3f} "
                     f"{'yes' if r['saturated'] else 'no':>9}{mark}")
    lines.append(f"entropy in bits (log2), M = {table['levels_m']}, criterion: "
                 f"{table['criterion']}; wrote {path}")
    return "\n".join(lines)


@cli.command()
@shortcut_options(epochs=("transfer.epochs", int, "Head training epochs"),
                  lr=("transfer.lr", float, "Adam learning rate"))
@common_options
@click.option("--all-levels", is_flag=True, help="Train a head on every level (Figure 3).")
def transfer(run, all_levels: bool) -> None:
    """Train the linear head on the frozen selected and dense encoders."""
    from .stages.transfer import run_transfer

    result = for_each_seed(run_transfer, run, all_levels=all_levels)[-1]
    if not run.quiet:
        for r in result["rows"]:
            tag = {result["selected_level"]: " (selected)", result["dense_level"]: " (dense)"}
            click.echo(f"level {r['level']:>2} alpha {r['alpha']:.4f}: top-1 "
                       f"{r['test_acc_mean']:.2f} +- {r['test_acc_std']:.2f}{tag.get(r['level'], '')}")


@cli.command()
@common_options
def report(run) -> None:
    """Table 1, Figure 3 (PNG), report.json and report.md from the run folder."""
    from .report import markdown
    from .stages.report import run_report

    summary = run_report(run)
    if not run.quiet:
        p = run.paths
        click.echo(markdown(summary))
        click.echo(f"wrote {p.report_md}, {p.report_json}, {p.figure3_png}")


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
@shortcut_options(level=("export.level", int, "Level to export (-1: the entropy-selected one)"))
@model_file_options
@common_options
@click.option("--json", "as_json", is_flag=True, help="Print the export report as JSON.")
def export_cmd(run, as_json: bool) -> None:
    """Int8 TFLite (verified in TFLM), ONNX and the sparse weight image of an encoder."""
    from .export.sparse_image import format_report
    from .stages.export import run_export

    s = run_export(run)
    if as_json:
        click.echo(json.dumps(s, indent=2))
        return
    if run.quiet:
        return
    p = run.paths
    click.echo(format_report(s["sparse_image"]))
    if s["level"] is None:
        click.echo(f"{s['source']} (features: {s['feature_tensor']}) -> {p.sparse_image}: "
                   f"{s['sparse_image_bytes']:,} B ({s['bytes_per_nnz']:.3f} B per non-zero)")
    else:
        click.echo(f"level {s['level']} (alpha {s['alpha']:.4f}) -> {p.export_dir}\n"
                   f"  {s['files']['tflite']}: {s['tflite_bytes']:,} B, TFLM arena "
                   f"{s['tflm_arena_bytes']:,} B, TFLM == LiteRT reference: "
                   f"{s['tflm_bitexact_litert_ref']}\n"
                   f"  int8 vs float features: cosine mean {s['int8_cosine_mean']:.5f}, "
                   f"min {s['int8_cosine_min']:.5f}\n"
                   f"  {s['files']['sparse_image']}: {s['sparse_image_bytes']:,} B for "
                   f"{s['nonzero_weights']:,} non-zeros ({s['bytes_per_nnz']:.3f} B per non-zero)")


@cli.command()
@shortcut_options(level=("export.level", int, "Level to export (-1: the entropy-selected one)"))
@model_file_options
@common_options
@click.option("--json", "as_json", is_flag=True, help="Print the generator reports as JSON.")
def codegen(run, as_json: bool) -> None:
    """C sources from the exported model: weight tables, op schedule, arena plan, head, samples."""
    from .stages.codegen import run_codegen
    from .stages.prune import ensure_levels

    if not run.cfg.export.tflite:
        ensure_levels(run)
    g = run_codegen(run)
    if as_json:
        click.echo(json.dumps(g, indent=2, default=str))
    elif not run.quiet:
        m, h = g["model"], g["head"]["memory"]
        click.echo(f"model {g['model_sha256'][:16]}: {m['op_count']} ops, arena plan "
                   f"{m['arena_size']:,} B, weight image {m['image_size']:,} B\n"
                   f"head: state {h['state_bytes']:,} B, feature cache {h['cache_bytes']:,} B; "
                   f"samples: {g['samples']['train']} train + {g['samples']['test']} test\n"
                   f"wrote {run.paths.generated_dir}")


def _out_alias(fn):
    """build's --out DIR: the same as --run-dir DIR (kept for compatibility)."""
    @click.option("--out", "out", type=click.Path(file_okay=False), default=None,
                  help="Run folder (same as --run-dir).")
    @functools.wraps(fn)
    def wrapper(*args, out, **kwargs):
        return fn(*args, _run_dir=out, **kwargs)
    return wrapper


@cli.command()
@click.option("--board", default="nucleo-f746", show_default=True, help="Target board.")
@_out_alias
@shortcut_options(level=("export.level", int, "Level to export (-1: the entropy-selected one)"))
@model_file_options
@common_options
@click.option("--json", "as_json", is_flag=True, help="Print the build summary as JSON.")
def build(run, board: str, as_json: bool) -> None:
    """Flash-ready firmware for a board (and its QEMU twin), running stale stages first."""
    from .stages.build import run_build

    s = run_build(run, board)
    if as_json:
        click.echo(json.dumps(s, indent=2))
    elif not run.quiet:
        click.echo(_build_table(s, run.paths))


def _build_table(s: dict, paths: RunPaths) -> str:
    what = (f"{s['arch']} w={s['width']:g} level {s['level']} alpha {s['alpha']:.4f}"
            if s["level"] is not None else s["arch"])
    lines = [f"{what}: arena {s['arena_bytes']:,} B (TFLM: {s['tflm_arena_bytes']:,} B), head "
             f"state {s['head_memory']['state_bytes']:,} B + feature cache "
             f"{s['head_memory']['cache_bytes']:,} B",
             f"{'image':<24} {'flash used':>12} {'of':>10} {'static RAM':>11} {'stack':>7} {'of':>9}"]
    for name, b in s["boards"].items():
        lines.append(f"{name:<24} {b['flash_used']:>12,} {b['flash_budget']:>10,} "
                     f"{b['ram_static']:>11,} {b['stack_bytes']:>7,} {b['ram_budget']:>9,}")
    lines.append(f"flash {paths.board_dir(s['board']) / 'firmware.bin'} (see README: Flashing)")
    return "\n".join(lines)


def _folder_argument(fn):
    """emulate's positional DIR: the same as --run-dir DIR (kept for compatibility)."""
    @click.argument("folder", type=click.Path(file_okay=False), required=False)
    @functools.wraps(fn)
    def wrapper(*args, folder, **kwargs):
        return fn(*args, _run_dir=folder, **kwargs)
    return wrapper


@cli.command()
@_folder_argument
@common_options
@click.option("--stream", is_flag=True, help="Also stream samples over the emulated UART.")
@click.option("--timeout", default=600.0, show_default=True, help="Wall-clock limit in seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print emulator.json.")
def emulate(run, stream: bool, timeout: float, as_json: bool) -> None:
    """Run the board's QEMU twin headless and write emulator.json."""
    from .stages.emulate import record, run_emulate

    result = run_emulate(run, stream=False, timeout=timeout)
    if stream:
        result["stream"] = run_emulate(run, stream=True, timeout=timeout)["stream"]
    result = record(run, result)
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
    if result.get("ops"):                       # per-op profile
        from .toolchain.op_profile import format_heaviest
        click.echo("heaviest ops:\n" + format_heaviest(result["ops"]))
    click.echo(f"wrote {run.paths.emulator_json}")


@cli.command()
@shortcut_options(level=("export.level", int, "Level to export (-1: the entropy-selected one)"))
@model_file_options
@common_options
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def status(run, as_json: bool) -> None:
    """Every stage of the run folder: fresh, stale (and which input changed) or missing."""
    from .stages.status import stage_rows, status_table

    rows = stage_rows(run)
    click.echo(json.dumps(rows, indent=2) if as_json else status_table(rows, run.paths.root))


def _level_table(rows: list[dict]) -> str:
    lines = [f"{'level':>5} {'alpha':>8} {'actual':>8} {'train%':>7} {'test%':>7}"]
    for r in rows:
        lines.append(f"{r['level']:>5} {r['alpha_target']:>8.4f} {r['alpha_actual']:>8.4f} "
                     f"{r['train_acc']:>7.2f} {r['test_acc']:>7.2f}")
    return "\n".join(lines)


from .cli_device import register as _register_device  # noqa: E402  (flash, device, twin)
_register_device(cli)


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
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        where = f" writing {e.filename}" if e.filename else ""
        click.echo(f"error: disk full{where}: free some space and rerun the same command", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
