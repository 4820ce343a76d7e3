"""What `entropi-tiny device` does: talk to the streaming firmware, checked against a run folder.

Usage:
    with Link.open(port) as link:
        s = Session(link, RunPaths(Path("export/default")))
        s.info()                                   # dict; UserError on a build hash mismatch
        s.train(images_q, labels, progress=True)   # streamed SGD steps, then loss and accuracy
        s.evaluate(); s.predict([image_q]); s.reset_head()

Every session begins with INFO: it tells the board, the protocol version and
the CRC-32 of the flashed image (the firmware's build hash), which must be
that of the run folder's streaming image for that board, so a device flashed
from another run is refused before anything is sent that changes it. INFO
also clears the device's memory of the last executed frame, so this
session's sequence numbers cannot be mistaken for retransmissions of an
earlier session's. The host never resets the head or ends the device's
serving on its own: whatever it fails on, what the device trained stays.
Figures the device measured (counter units: cycles on the board,
instructions on the twin) are stored per board in the run folder,
`device/<board>.json`, beside the twin's emulator.json.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from .. import atomic
from ..errors import UserError
from ..paths import RunPaths
from ..toolchain import frames
from . import protocol as P
from .link import DeviceRefused, DeviceReset, Link

FIGURES_FORMAT = "entropi-tiny/device-figures-v1"


def figures_path(paths: RunPaths, board: str) -> Path:
    return paths.root / "device" / f"{board}.json"


def image_identity(path: Path) -> tuple[int, int] | None:
    """(CRC-32, size) of a firmware.bin, or None when it is missing."""
    if not path.is_file():
        return None
    data = path.read_bytes()
    return zlib.crc32(data), len(data)


def expected_image(paths: RunPaths, board: str) -> Path:
    return paths.board_dir(board) / "stream" / "firmware.bin"


class Session:
    def __init__(self, link: Link, paths: RunPaths, check_build: bool = True):
        self.link, self.paths = link, paths
        self.device = P.parse_info(link.request(frames.INFO))
        self.firmware = self._check_firmware(check_build)

    # -- the run folder --------------------------------------------------------
    def _check_firmware(self, required: bool) -> dict:
        d = self.device
        image = expected_image(self.paths, d.board)
        ident = image_identity(image)
        out = {"device_image_crc32": f"{d.image_crc32:08x}", "device_image_bytes": d.image_bytes,
               "run_image": str(image)}
        if ident is None:
            out["matches"] = None
            if required:
                raise UserError(f"{image} is missing: build this run for {d.board} first "
                                f"(`entropi-tiny build --run-dir {self.paths.root}`)")
            return out
        out["run_image_crc32"] = f"{ident[0]:08x}"
        out["matches"] = ident == (d.image_crc32, d.image_bytes)
        if not out["matches"] and required:
            raise UserError(
                f"the device on {self.link.name} runs firmware {d.image_crc32:08x} "
                f"({d.image_bytes:,} B), not this run's {d.board} streaming image "
                f"{ident[0]:08x} ({ident[1]:,} B) from {self.paths.root}: flash that image "
                f"(`entropi-tiny flash --run-dir {self.paths.root}`) or pass that run's --run-dir")
        return out

    def samples(self) -> dict:
        if not self.paths.samples_npz.is_file():
            raise UserError(f"{self.paths.samples_npz} is missing: run `entropi-tiny build "
                            f"--run-dir {self.paths.root}` first")
        return load_npz(self.paths.samples_npz)

    # -- requests ----------------------------------------------------------------
    def info(self) -> dict:
        d = self.device.as_dict()
        d["firmware"] = self.firmware
        d["port"] = self.link.name
        return d

    def train(self, images_q: np.ndarray, labels: np.ndarray, progress: bool = False) -> dict:
        """One SGD step per sample on the device, in order; then the device's accuracy."""
        from tqdm import tqdm

        d = self.device
        payloads = [P.sample_payload(y, q, d.sample_bytes, d.classes)
                    for q, y in zip(images_q, labels)]       # every sample checked first
        losses, extract, step = [], [], []
        streamed_before = d.streamed
        bar = tqdm(total=len(payloads), desc="train", unit="sample", disable=not progress,
                   leave=False)   # erased at the end: an error stays one line
        try:
            for i, payload in enumerate(payloads):
                try:
                    r = P.parse_sample(self.link.request(frames.SAMPLE, payload))
                except DeviceReset:
                    raise DeviceReset(
                        f"the device on {self.link.name} reset after {i} of {len(payloads)} "
                        "samples were acknowledged: it restarted from its boot training and "
                        "lost the streamed samples; run `device train` again") from None
                except DeviceRefused as e:
                    raise UserError(f"the device refused sample {i}: "
                                    f"{frames.status_name(e.status)}") from None
                losses.append(r.loss)
                extract.append(r.extract_units)
                step.append(r.step_units)
                bar.update(1)
        finally:
            bar.close()
        acc = self.evaluate()
        out = {"samples": len(payloads), "mean_loss": float(np.mean(losses)) if losses else None,
               "losses": [float(v) for v in losses], "streamed_before": streamed_before,
               "head_from_boot": d.head_from_boot, "resends": self.link.resends,
               "resend_reasons": dict(self.link.resend_reasons),
               "accuracy": acc["accuracy"], "correct": acc["correct"], "test_samples": acc["n"],
               "counter_unit": d.counter_unit}
        if extract:
            out["per_inference"] = float(np.mean(extract))
            out["per_sgd_step"] = float(np.mean(step))
            self.store_figures({"per_inference": out["per_inference"],
                                "per_sgd_step": out["per_sgd_step"]})
        return out

    def evaluate(self) -> dict:
        r = P.parse_eval(self.link.request(frames.EVAL))
        if r.n == 0:
            raise UserError("the device has no test samples to evaluate on")
        return {"correct": r.correct, "n": r.n, "accuracy": 100.0 * r.correct / r.n,
                "units": r.units, "counter_unit": self.device.counter_unit}

    def predict(self, images_q: list[np.ndarray]) -> list[dict]:
        d = self.device
        payloads = [P.image_payload(q, d.sample_bytes) for q in images_q]
        out = []
        for payload in payloads:
            r = P.parse_predict(self.link.request(frames.PREDICT, payload), d.classes)
            out.append({"class": r.label, "logits": list(r.logits),
                        "scores": softmax(np.array(r.logits)).tolist(),
                        "extract_units": r.extract_units, "head_units": r.head_units})
        if out:
            self.store_figures({"per_inference": float(np.mean([o["extract_units"] for o in out]))})
        return out

    def reset_head(self) -> dict:
        self.link.request(frames.RESET_HEAD)
        return {"reset": True, "streamed_before": self.device.streamed}

    # -- figures ----------------------------------------------------------------
    def store_figures(self, measured: dict) -> None:
        """Per-board figures in the run folder, beside what INFO says of the run since boot."""
        d = self.device
        path = figures_path(self.paths, d.board)
        old = atomic.read_json(path) if path.is_file() else {}
        fig = {**(old if old.get("image_crc32") == f"{d.image_crc32:08x}" else {}),
               "format": FIGURES_FORMAT, "board": d.board, "counter_unit": d.counter_unit,
               "image_crc32": f"{d.image_crc32:08x}",
               "per_inference_since_boot": d.inference_units / max(d.inferences, 1),
               "boot_per_sgd_step": d.boot_train_units / max(d.boot_sgd_steps, 1),
               "stack_high_water_bytes": d.stack_high_water_bytes, **measured}
        atomic.write_json(path, fig)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def load_npz(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise UserError(f"{path} is not a readable .npz file: {e}") from None


def training_set(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Samples to stream from an .npz: train_q/train_y (samples.npz) or images/labels."""
    z = load_npz(path)
    for xk, yk in (("train_q", "train_y"), ("images", "labels")):
        if xk in z and yk in z:
            x, y = z[xk], z[yk]
            if len(x) != len(y) or y.ndim != 1:
                raise UserError(f"{path}: {len(x)} samples but {y.shape} labels")
            if not np.issubdtype(y.dtype, np.integer):
                raise UserError(f"{path}: labels must be integers, not {y.dtype}")
            return x, y
    raise UserError(f"{path} has neither train_q/train_y nor images/labels arrays")
