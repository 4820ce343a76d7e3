"""The entropi firmware's requests and replies, carried in UART frames (protocol version 2).

Usage:
    from entropi_tiny.device import protocol as P
    payload = P.sample_payload(label, image_q)          # bytes of a SAMPLE frame
    info = P.parse_info(reply)                          # reply: ACK payload after the status
    P.parse_sample(reply).loss

The frame layer (sync, header, CRCs, stop and wait) is toolchain/frames.py;
this module is the payload layer of firmware/apps/entropi/main.c, field for
field (little-endian), and checks every length before it reads: a reply of
the wrong size is a ProtocolError, never a short read.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ..errors import UserError

NAME_BYTES = 16
# INFO: version, board, counter unit, image CRC and size, sample bytes, D, C,
# train and test counts, arena, head state, stack size and high water, flash
# and RAM budgets, streamed samples, head origin, the inference count and
# total since boot (embedded and streamed samples), the boot training total and
# its SGD steps.
INFO_FORMAT = f"<B{NAME_BYTES}s{NAME_BYTES}sIIIHHHHIIIIIIIBIQQI"
SAMPLE_FORMAT = "<fIQQ"      # loss, streamed, extract units, SGD step units
EVAL_FORMAT = "<IIQ"         # correct, n, units
PREDICT_TAIL = "<QQ"         # extract units, head units (after class u8 and C logits)


class ProtocolError(UserError):
    """The device answered with something this version of the protocol does not define."""


@dataclass(frozen=True)
class Info:
    version: int
    board: str
    counter_unit: str
    image_crc32: int
    image_bytes: int
    sample_bytes: int
    features: int
    classes: int
    train_samples: int
    test_samples: int
    arena_bytes: int
    head_state_bytes: int
    stack_bytes: int
    stack_high_water_bytes: int
    flash_budget: int
    ram_budget: int
    streamed: int
    head_from_boot: bool
    inferences: int
    inference_units: int
    boot_train_units: int
    boot_sgd_steps: int

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["image_crc32"] = f"{self.image_crc32:08x}"
        return d


@dataclass(frozen=True)
class SampleReply:
    loss: float
    streamed: int
    extract_units: int
    step_units: int


@dataclass(frozen=True)
class EvalReply:
    correct: int
    n: int
    units: int


@dataclass(frozen=True)
class PredictReply:
    label: int
    logits: tuple[float, ...]
    extract_units: int
    head_units: int


def _unpack(fmt: str, reply: bytes, what: str) -> tuple:
    if len(reply) != struct.calcsize(fmt):
        raise ProtocolError(f"the device's {what} reply has {len(reply)} bytes, protocol "
                            f"version 2 needs {struct.calcsize(fmt)}: is it an entropi streaming "
                            "image of this version?")
    return struct.unpack(fmt, reply)


def _name(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("ascii", errors="replace")


def parse_info(reply: bytes) -> Info:
    if reply[:1] and reply[0] != 2:
        raise ProtocolError(f"the device speaks frame protocol version {reply[0]}; this tool "
                            "speaks version 2: flash the firmware this version built")
    v = list(_unpack(INFO_FORMAT, reply, "INFO"))
    v[1], v[2] = _name(v[1]), _name(v[2])
    v[17] = bool(v[17])
    return Info(*v)


def parse_sample(reply: bytes) -> SampleReply:
    return SampleReply(*_unpack(SAMPLE_FORMAT, reply, "SAMPLE"))


def parse_eval(reply: bytes) -> EvalReply:
    return EvalReply(*_unpack(EVAL_FORMAT, reply, "EVAL"))


def parse_predict(reply: bytes, classes: int) -> PredictReply:
    fmt = f"<B{classes}f" + PREDICT_TAIL[1:]
    v = _unpack(fmt, reply, "PREDICT")
    if v[0] >= classes:
        raise ProtocolError(f"the device predicted class {v[0]} of {classes}")
    return PredictReply(v[0], tuple(float(x) for x in v[1:1 + classes]), v[-2], v[-1])


def image_payload(image_q: np.ndarray, sample_bytes: int) -> bytes:
    """An int8 model input as the device takes it (the layout of samples.npz's *_q)."""
    q = np.asarray(image_q)
    if q.dtype != np.int8 or q.size != sample_bytes:
        raise UserError(f"a sample of {q.size} {q.dtype} values does not match the device's "
                        f"input of {sample_bytes} int8 values")
    return q.tobytes()


def sample_payload(label: int, image_q: np.ndarray, sample_bytes: int, classes: int) -> bytes:
    if not 0 <= int(label) < classes:
        raise UserError(f"label {label} is not one of the device's {classes} classes")
    return bytes([int(label)]) + image_payload(image_q, sample_bytes)
