"""The export stage: int8 TFLite (verified in TFLM), ONNX and the sparse weight image.

Usage:
    summary = run_export(Run(cfg, paths))       # model/export.json, the manifest

Two sources. A pruned level (export.level, or the entropy-selected one): its
encoder is converted with real target images for calibration, and the key
is the level's checkpoint (sha256), the target images and export.*. Or a
user's own int8 model (export.tflite, `--tflite FILE`): copied in byte for
byte as model/user_model.tflite (never overwritten: a folder that holds
another model, or pruned levels, is refused), cut at its feature tensor
(export/cut.py) into model/encoder_int8.tflite; the key is the file's sha256
and export.feature_tensor. In both, export.json is written last and vouches
for every file by sha256.
"""
from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from .. import atomic, data
from ..errors import UserError
from ..models import split_model
from ..pruning.checkpoint import load_level
from .contract import Run, State, check, commit
from .prune import level_files, require_levels
from .select import chosen_level, select_state

NAME = "export"
SPEC = {"level": (int, type(None)), "alpha": (int, float, type(None)), "arch": str,
        "width": (int, float, type(None)), "tflm_arena_bytes": (int, type(None)),
        "sparse_image": dict}
LEVEL_SETTINGS = ("export.calib_images", "export.check_images")


def user_model(run: Run) -> Path | None:
    """The user's .tflite when the run uses one: the given file, else the copy in the folder."""
    if not run.cfg.export.tflite:
        return None
    src = Path(run.cfg.export.tflite)
    if src.is_file():
        return src
    if run.paths.user_tflite.is_file():
        return run.paths.user_tflite
    raise UserError(f"no such .tflite file: {src}")


def _user_inputs(run: Run, src: Path) -> dict:
    return {"file:user model": atomic.sha256_file(src), **run.settings("export.feature_tensor")}


def _level_inputs(run: Run, level: int) -> dict:
    sha = level_files(require_levels(run))[level]
    return {f"file:levels/level_{level:02d}/checkpoint.pt": sha, "export.level used": level,
            **run.target_inputs(), **run.settings(*LEVEL_SETTINGS)}


def export_state(run: Run) -> State:
    src = user_model(run)
    if src is not None:
        return check(run, NAME, run.paths.export_json, _user_inputs(run, src), SPEC)
    level = run.cfg.export.level
    if level < 0:
        up = select_state(run)
        if up.status != "fresh":
            return State(NAME, "stale" if run.paths.export_json.is_file() else "missing",
                         f"select is {up.status}: {up.reason}")
        level = up.manifest["selected_level"]
    return check(run, NAME, run.paths.export_json, _level_inputs(run, level), SPEC)


def run_export(run: Run) -> dict:
    src = user_model(run)
    if src is not None:
        return _export_user_model(run, src)
    run.target()                               # bad target data fails before any work
    level = chosen_level(run)
    inp = _level_inputs(run, level)
    state = check(run, NAME, run.paths.export_json, inp, SPEC)
    if state.status == "fresh":
        return state.manifest
    return _export_level(run, level, inp)


def _export_level(run: Run, level: int, inp: dict) -> dict:
    from ..export.convert import export_encoder       # loads TensorFlow: only when needed
    from ..export.sparse_image import encode_model

    cfg, paths = run.cfg, run.paths
    model, _, meta = load_level(paths.level_checkpoint(level))
    encoder, _ = split_model(model)
    target = run.target()
    calib = data.normalize(target.train.images[:cfg.export.calib_images]).numpy()
    checks = data.normalize(target.test.images[:cfg.export.check_images]).numpy()
    if not run.quiet:
        tqdm.write(f"exporting level {level} (alpha {meta['alpha_actual']:.4f}): "
                   f"calibrating on {len(calib)} target images")
    run.begin_writes()
    tfl_report = export_encoder(encoder, calib, checks, paths.export_dir)
    image, img_report = encode_model(paths.tflite.read_bytes(), label=str(paths.tflite))
    atomic.write_bytes(paths.sparse_image, image)
    summary = {"level": level, "alpha": meta["alpha_actual"], "arch": meta["arch"],
               "width": meta["width"], "source": f"level {level}", "files": {
                   "onnx": paths.onnx.name, "tflite": paths.tflite.name,
                   "sparse_image": paths.sparse_image.name},
               "tflite_bytes": paths.tflite.stat().st_size, "sparse_image_bytes": len(image),
               "nonzero_weights": img_report["totals"]["nnz"],
               "bytes_per_nnz": img_report["totals"]["bytes_per_nnz"],
               "tflm_arena_bytes": tfl_report["tflm_arena_bytes"],
               "int8_cosine_mean": tfl_report["int8_cosine_mean"],
               "int8_cosine_min": tfl_report["int8_cosine_min"],
               "tflm_bitexact_litert_ref": tfl_report["tflm_bitexact_litert_ref"],
               "sparse_image": img_report, "tflite_report": tfl_report}
    outputs = [paths.onnx, paths.tflite, paths.export_report, paths.sparse_image]
    return commit(run, NAME, paths.export_json, inp, outputs, summary)


def _export_user_model(run: Run, src: Path) -> dict:
    """A user's int8 .tflite: validated, copied in, cut at its feature tensor, encoded."""
    from ..export.cut import feature_extractor
    from ..export.sparse_image import encode_model
    from ..export.tflm import min_arena_size

    paths = run.paths
    raw = src.read_bytes()
    inp = _user_inputs(run, src)
    if paths.existing_levels():
        raise UserError(f"run folder {paths.root} holds pruned levels; build your own model "
                        "in a new --run-dir")
    if paths.user_tflite.is_file() and paths.user_tflite.read_bytes() != raw:
        raise UserError(f"run folder {paths.root} already holds a different model "
                        f"({paths.user_tflite.name}); use a new --run-dir for {src.name}")
    state = check(run, NAME, paths.export_json, inp, SPEC)
    if state.status == "fresh":
        return state.manifest
    feature, encoder = feature_extractor(src, run.cfg.export.feature_tensor)
    image, img_report = encode_model(encoder, label=str(src))
    run.begin_writes()
    if not paths.user_tflite.is_file():
        atomic.write_bytes(paths.user_tflite, raw)
    atomic.write_bytes(paths.tflite, encoder)
    atomic.write_bytes(paths.sparse_image, image)
    summary = {"level": None, "alpha": None, "arch": "user model", "width": None,
               "source": str(src), "user_model_sha256": atomic.sha256_bytes(raw),
               "feature_tensor": feature, "cut": encoder != raw,
               "files": {"user_model": paths.user_tflite.name, "tflite": paths.tflite.name,
                         "sparse_image": paths.sparse_image.name},
               "tflite_bytes": len(encoder), "sparse_image_bytes": len(image),
               "nonzero_weights": img_report["totals"]["nnz"],
               "bytes_per_nnz": img_report["totals"]["bytes_per_nnz"],
               "tflm_arena_bytes": min_arena_size(paths.tflite), "sparse_image": img_report}
    outputs = [paths.user_tflite, paths.tflite, paths.sparse_image]
    return commit(run, NAME, paths.export_json, inp, outputs, summary)
