"""The UART frame protocol, host side: encode frames, decode a byte stream.

Usage:
    from entropi_tiny.toolchain import frames
    wire = frames.encode(frames.SAMPLE, seq=0, payload=b"...")
    dec = frames.Decoder(max_payload=256)
    for event in dec.feed(received_bytes):      # Frame(...) or Reject(...)
        ...
    dec.timeout(); dec.counts                   # {"ok": 3, "bad_crc": 1, ...}

The format is specified in docs/uart_frames.md (protocol version 2: the
request types SAMPLE, END, PING, INFO, EVAL, PREDICT, RESET_HEAD and ACK,
whose payload is a status byte then the reply; the replies' layouts are in
entropi_tiny/device/protocol.py). Decoder mirrors the C
parser (firmware/src/et_frames.c) decision for decision, so for any byte
stream and any sequence of timeouts both report the same frames, the same
rejections and the same counts; the tests hold them to it.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

SYNC = b"\xeb\x90"
HEADER_BYTES = 7
CRC_BYTES = 4
OVERHEAD = HEADER_BYTES + CRC_BYTES
MAX_LENGTH = 0xFFFF

# The protocol version the device reports in its INFO reply (ET_FRAMES_PROTOCOL_VERSION).
PROTOCOL_VERSION = 2

# Frame types
SAMPLE, END, PING, ACK = 0x01, 0x02, 0x03, 0x80
INFO, EVAL, PREDICT, RESET_HEAD = 0x10, 0x11, 0x12, 0x13
KNOWN_TYPES = frozenset((SAMPLE, END, PING, INFO, EVAL, PREDICT, RESET_HEAD, ACK))

# Statuses: why a frame was refused, and the first payload byte of an ACK.
# 0..5 are the parser's; 6 and 7 the application's, for a good frame whose
# payload it refuses.
OK, BAD_CRC, BAD_LENGTH, UNKNOWN_TYPE, TRUNCATED, BAD_HEADER, BAD_LABEL, BAD_SIZE = range(8)
STATUS_NAMES = ("ok", "bad_crc", "bad_length", "unknown_type", "truncated", "bad_header",
                "bad_label", "bad_size")
# Statuses that mean the frame was damaged on the way: send it again.
RETRY_STATUSES = frozenset((BAD_CRC, TRUNCATED))
COUNT_NAMES = ("ok", "bad_crc", "bad_length", "unknown_type", "truncated", "bad_header",
               "skipped_bytes")


def crc8(data: bytes) -> int:
    """CRC-8, polynomial 0x07, initial value 0, no reflection (the header check)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def encode(ftype: int, seq: int, payload: bytes = b"") -> bytes:
    """One frame on the wire."""
    if len(payload) > MAX_LENGTH:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_LENGTH}")
    head = struct.pack("<BBH", ftype & 0xFF, seq & 0xFF, len(payload))
    crc = zlib.crc32(payload, zlib.crc32(head))
    return SYNC + head + bytes([crc8(head)]) + payload + struct.pack("<I", crc)


def ack_status(frame: "Frame") -> int:
    """The status byte of an ACK frame."""
    return frame.payload[0] if frame.type == ACK and frame.payload else -1


def status_name(status: int) -> str:
    return STATUS_NAMES[status] if 0 <= status < len(STATUS_NAMES) else f"status {status}"


@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    payload: bytes


@dataclass(frozen=True)
class Reject:
    """A refused frame whose header was intact: bad_crc, bad_length, unknown_type, truncated."""
    type: int
    seq: int
    status: int


class Decoder:
    """Byte-stream decoder with a bounded buffer, the twin of et_frames_parser."""

    def __init__(self, max_payload: int = MAX_LENGTH):
        self.capacity = max_payload + OVERHEAD
        self.buf = bytearray()
        self.counts = dict.fromkeys(COUNT_NAMES, 0)

    @property
    def pending(self) -> bool:
        return bool(self.buf)

    def feed(self, data: bytes) -> list[Frame | Reject]:
        events: list[Frame | Reject] = []
        for byte in data:
            if not self.buf and byte != SYNC[0]:
                self.counts["skipped_bytes"] += 1
                continue
            self.buf.append(byte)
            self._scan(events)
        return events

    def timeout(self) -> list[Frame | Reject]:
        """The stream paused: what is buffered can never complete."""
        events: list[Frame | Reject] = []
        while self.buf:
            if len(self.buf) >= 2:
                self.counts["truncated"] += 1
                if len(self.buf) >= HEADER_BYTES:
                    events.append(Reject(self.buf[2], self.buf[3], TRUNCATED))
            self._drop(1, 1)
            self._scan(events)
        return events

    # -- the same steps as et_check / et_drop / et_scan in et_frames.c ----------
    def _check(self) -> int | None:
        b = self.buf
        if len(b) < 2:
            return None
        if b[1] != SYNC[1]:
            return -1  # noise: a SYNC0 without SYNC1
        if len(b) < HEADER_BYTES:
            return None
        if crc8(b[2:6]) != b[6]:
            return BAD_HEADER
        length = b[4] | b[5] << 8
        if length > self.capacity - OVERHEAD:
            return BAD_LENGTH
        if len(b) < OVERHEAD + length:
            return None
        crc = zlib.crc32(b[HEADER_BYTES:HEADER_BYTES + length], zlib.crc32(b[2:6]))
        if crc != struct.unpack_from("<I", b, HEADER_BYTES + length)[0]:
            return BAD_CRC
        if b[2] not in KNOWN_TYPES:
            return UNKNOWN_TYPE
        return OK

    def _drop(self, n: int, skipped: int) -> None:
        while n < len(self.buf) and self.buf[n] != SYNC[0]:
            n += 1
            skipped += 1
        del self.buf[:n]
        self.counts["skipped_bytes"] += skipped

    def _scan(self, events: list) -> None:
        while True:
            status = self._check()
            if status is None:
                return
            b = self.buf
            if status == OK:
                length = b[4] | b[5] << 8
                self.counts["ok"] += 1
                events.append(Frame(b[2], b[3], bytes(b[HEADER_BYTES:HEADER_BYTES + length])))
                self._drop(OVERHEAD + length, 0)
                continue
            if status >= 0:
                self.counts[STATUS_NAMES[status]] += 1
                if status != BAD_HEADER:
                    events.append(Reject(b[2], b[3], status))
            self._drop(1, 1)


class StopAndWait:
    """A feeder for run_qemu: send each message, then wait for the device's ACK of its
    sequence number before the next; messages without an intact header are not waited for.

    Usage:
        sw = StopAndWait([encode(SAMPLE, 0, b"x"), encode(END, 1)])
        run_qemu(elf, stdin=sw);  sw.acks   # [(seq, status), ...]
    """

    def __init__(self, messages: list[bytes]):
        self.messages = list(messages)
        self.next = 0
        self.waiting_for: int | None = None
        self.decoder = Decoder()
        self.acks: list[tuple[int, int]] = []

    def __call__(self, chunk: bytes) -> bytes:
        for event in self.decoder.feed(chunk):
            if isinstance(event, Frame) and event.type == ACK:
                self.acks.append((event.seq, ack_status(event)))
                if event.seq == self.waiting_for:
                    self.waiting_for = None
        out = bytearray()
        while self.waiting_for is None and self.next < len(self.messages):
            msg = self.messages[self.next]
            self.next += 1
            out += msg
            if len(msg) >= HEADER_BYTES and msg[:2] == SYNC and crc8(msg[2:6]) == msg[6]:
                self.waiting_for = msg[3]
        return bytes(out)
