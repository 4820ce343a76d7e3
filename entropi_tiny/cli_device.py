"""The `flash`, `device` and `twin` commands: from the run folder to a board, or its twin.

Usage:
    entropi-tiny flash [--run-dir R] [--board nucleo-f746] [--probe auto|drive|st-flash|openocd|pyocd]
    entropi-tiny twin [--run-dir R]                       # prints /dev/pts/N, runs until stopped
    entropi-tiny device --port /dev/pts/N [--run-dir R] info|train|eval|predict IMAGE...|reset-head

Registered on the main group by cli.py (`register(cli)`). The work is in
entropi_tiny/device/; these functions only parse options and print. Every
command prints JSON with --json; bad input is one line and exit 2.
"""
from __future__ import annotations

import json
import signal
from pathlib import Path

import click

from .errors import UserError
from .paths import DEFAULT_RUN_DIR, RunPaths

RUN_DIR = click.option("--run-dir", type=click.Path(file_okay=False), default=str(DEFAULT_RUN_DIR),
                       show_default=True, help="Run folder whose firmware and samples to use.")
JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


def _emit(result: dict | list, as_json: bool, text: str) -> None:
    click.echo(json.dumps(result, indent=2) if as_json else text)


def _build(paths: RunPaths) -> dict:
    from . import atomic

    if not paths.build_json.is_file():
        raise UserError(f"{paths.build_json} is missing: run `entropi-tiny build --run-dir "
                        f"{paths.root}` first")
    return atomic.read_json(paths.build_json)


@click.command()
@RUN_DIR
@click.option("--board", default="nucleo-f746", show_default=True, help="Board to flash.")
@click.option("--probe", type=click.Choice(["auto", "drive", "st-flash", "openocd", "pyocd"]),
              default="auto", show_default=True, help="How to reach the board.")
@click.option("--variant", type=click.Choice(["stream", "plain"]), default="stream",
              show_default=True, help="stream: serves `device` commands after its boot run.")
@click.option("--drive-wait", default=10.0, show_default=True,
              help="Seconds to watch the ST-LINK drive for FAIL.TXT after the copy.")
@JSON
def flash(run_dir: str, board: str, probe: str, variant: str, drive_wait: float,
          as_json: bool) -> None:
    """Write the board image (ST-LINK drive, st-flash or openocd), verify, reset."""
    from .boards import get_board
    from .device.flash import flash_image

    if get_board(board).qemu_machine:
        raise UserError(f"{board} is the QEMU twin, nothing to flash: run `entropi-tiny twin`")
    paths = RunPaths(Path(run_dir))
    folder = paths.board_dir(board) / ("stream" if variant == "stream" else "")
    r = flash_image(folder / "firmware.bin", probe, drive_wait)
    _emit(r, as_json, f"flashed {r['image']} ({r['bytes']:,} B, crc32 {r['crc32']}) with "
                      f"{r['probe']}: {r['detail']}")


@click.command()
@RUN_DIR
@click.option("--ready-timeout", default=300.0, show_default=True,
              help="Seconds to wait for the firmware to boot and serve frames.")
@JSON
def twin(run_dir: str, ready_timeout: float, as_json: bool) -> None:
    """Run the QEMU twin of the streaming image with its UART on a pty, until stopped."""
    from .boards import get_board
    from .device.twin import Twin

    paths = RunPaths(Path(run_dir))
    name = _build(paths).get("twin")
    if not name:
        raise UserError(f"the run in {paths.root} was built without an emulated twin")
    elf = paths.board_dir(name) / "stream" / "firmware.elf"

    def stop(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)
    with Twin(elf, get_board(name).qemu_machine) as t:
        try:
            port = t.start(ready_timeout)
            info = {"port": port, "board": name, "elf": str(elf), "qemu_pid": t.proc.pid}
            click.echo(json.dumps(info) if as_json else
                       f"twin {name} serving on {port} (stop with Ctrl-C)\n"
                       f"  entropi-tiny device --port {port} --run-dir {paths.root} info")
            code = t.wait()
        except KeyboardInterrupt:
            code = 0
    if code:
        raise UserError(f"the twin's QEMU exited with status {code}")


@click.group()
@click.option("--port", required=True, help="Serial port: /dev/ttyACM0, or the twin's /dev/pts/N.")
@RUN_DIR
@click.option("--timeout", default=10.0, show_default=True,
              help="Seconds to wait for each answer before sending again.")
@click.option("--retries", default=3, show_default=True, type=click.IntRange(0, 20),
              help="Times a request is sent again after a damaged frame or no answer.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@JSON
@click.pass_context
def device(ctx, port: str, run_dir: str, timeout: float, retries: int, quiet: bool,
           as_json: bool) -> None:
    """Talk to the streaming firmware on a board or on the twin (frames over a serial port)."""
    ctx.obj = {"port": port, "paths": RunPaths(Path(run_dir)), "timeout": timeout,
               "retries": retries, "quiet": quiet, "json": as_json}


def _session(ctx, check_build: bool = True):
    from .device.link import Link
    from .device.session import Session

    o = ctx.obj
    link = Link.open(o["port"], o["timeout"], o["retries"])
    try:
        return Session(link, o["paths"], check_build)
    except BaseException:
        link.close()
        raise


def _run(ctx, as_json: bool, work, text, check_build: bool = True) -> None:
    s = _session(ctx, check_build)
    try:
        result = work(s)
    finally:
        s.link.close()
    _emit(result, as_json or ctx.obj["json"], text(result))


@device.command()
@JSON
@click.pass_context
def info(ctx, as_json: bool) -> None:
    """Firmware build hash, board, model dimensions and budgets; checked against the run."""
    s = _session(ctx, check_build=False)
    s.link.close()
    d = s.info()
    f = d["firmware"]
    if f["matches"]:
        s.store_figures({})    # the boot run's figures, e.g. a board's cycles
    verdict = {True: "matches", False: "DOES NOT match", None: "cannot be checked against"}
    _emit(d, as_json or ctx.obj["json"],
          f"{d['board']} on {d['port']}: protocol {d['version']}, firmware crc32 "
          f"{f['device_image_crc32']} ({f['device_image_bytes']:,} B) {verdict[f['matches']]} "
          f"{f['run_image']}\n"
          f"model: {d['sample_bytes']:,} B int8 input -> {d['features']} features -> "
          f"{d['classes']} classes; {d['train_samples']} train + {d['test_samples']} test "
          f"samples embedded\n"
          f"memory: arena {d['arena_bytes']:,} B, head state {d['head_state_bytes']:,} B, "
          f"stack {d['stack_high_water_bytes']:,} of {d['stack_bytes']:,} B used; budgets "
          f"{d['flash_budget']:,} B flash, {d['ram_budget']:,} B RAM\n"
          f"head: {d['streamed']} streamed samples on top of "
          f"{'the boot training' if d['head_from_boot'] else 'a reset head'}; counter: "
          f"{d['counter_unit']}")
    if f["matches"] is False:
        raise UserError(f"the device's firmware {f['device_image_crc32']} is not this run's "
                        f"{f.get('run_image_crc32')} ({f['run_image']})")


@device.command()
@click.option("--samples", "samples_file", type=click.Path(dir_okay=False), default=None,
              help="An .npz with train_q/train_y or images/labels (default: the run's "
                   "samples.npz).")
@click.option("--limit", type=click.IntRange(1), default=None, help="Stream only the first N.")
@JSON
@click.pass_context
def train(ctx, samples_file: str | None, limit: int | None, as_json: bool) -> None:
    """Stream target training samples, one SGD step each on the device; loss and accuracy."""
    from .device.session import training_set

    def work(s):
        x, y = training_set(Path(samples_file) if samples_file else s.paths.samples_npz)
        return s.train(x[:limit], y[:limit], progress=not ctx.obj["quiet"])
    _run(ctx, as_json, work, lambda r: (
        f"trained {r['samples']} samples on the device: mean loss {r['mean_loss']:.5f}, "
        f"test accuracy {r['accuracy']:.2f}% ({r['correct']}/{r['test_samples']}); "
        f"{r.get('per_inference', 0):,.0f} {r['counter_unit']} per inference, "
        f"{r.get('per_sgd_step', 0):,.0f} per SGD step"))


@device.command("eval")
@JSON
@click.pass_context
def eval_cmd(ctx, as_json: bool) -> None:
    """Accuracy of the device's head on the target test set, measured on the device."""
    _run(ctx, as_json, lambda s: s.evaluate(), lambda r: (
        f"device test accuracy {r['accuracy']:.2f}% ({r['correct']}/{r['n']}), "
        f"{r['units']:,} {r['counter_unit']}"))


@device.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@JSON
@click.pass_context
def predict(ctx, images: tuple[str, ...], as_json: bool) -> None:
    """Class and scores of each IMAGE (a picture, or an int8 .npy input) from the device."""
    from .device.images import load_inputs

    def work(s):
        qs = load_inputs([Path(p) for p in images], s.paths, s.device.sample_bytes)
        return [{"image": p, **r} for p, r in zip(images, s.predict(qs))]
    _run(ctx, as_json, work, lambda rows: "\n".join(
        f"{r['image']}: class {r['class']} (scores "
        f"{' '.join(f'{v:.3f}' for v in r['scores'])})" for r in rows))


@device.command("reset-head")
@JSON
@click.pass_context
def reset_head(ctx, as_json: bool) -> None:
    """Put the device's head back to its initial weights (forgets all its training)."""
    _run(ctx, as_json, lambda s: s.reset_head(), lambda r: (
        f"head reset ({r['streamed_before']} streamed samples and the boot training dropped)"))


def register(group: click.Group) -> None:
    for command in (flash, twin, device):
        group.add_command(command)
