"""UART frames: the C parser (built for the host with ASan/UBSan) against the Python
decoder on thousands of streams, and frames streamed into the QEMU twin.

Usage: .venv/bin/python -m pytest tests/test_board_frames.py
"""
from __future__ import annotations

import random
import re
import struct
import subprocess
import zlib

import pytest
from board_support import build_selftest

from entropi_tiny.toolchain import frames as F
from entropi_tiny.toolchain import frames_fuzz
from entropi_tiny.toolchain import run_qemu


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    return frames_fuzz.build_fuzzer(tmp_path_factory.mktemp("host"), mode="driver")


# -- stream generation ------------------------------------------------------------

def payload(rng: random.Random, max_len: int) -> bytes:
    return rng.randbytes(rng.randint(0, max_len))


def garbage(rng: random.Random) -> bytes:
    """Random bytes, sometimes with a sync pair and a valid header claiming some length."""
    out = bytearray(rng.randbytes(rng.randint(0, 40)))
    if rng.random() < 0.5:
        head = struct.pack("<BBH", rng.choice([1, 2, 3, 0x80, 0x55]), rng.randrange(256),
                           rng.randint(0, 300))
        fake = F.SYNC + head + bytes([F.crc8(head) if rng.random() < 0.7 else rng.randrange(256)])
        out[rng.randint(0, len(out)):0] = fake[:rng.randint(2, len(fake))]
    return bytes(out)


def make_case(rng: random.Random, kind: str):
    """(capacity, commands, good frames expected to be delivered in order or None)."""
    max_payload = rng.choice([0, 16, 64, 200])
    capacity = F.OVERHEAD + max_payload
    cmds, good = [], []

    def frame(ftype=None, length=None):
        p = rng.randbytes(length) if length is not None else payload(rng, max_payload)
        return F.encode(ftype if ftype is not None else rng.choice(sorted(F.KNOWN_TYPES)),
                        rng.randrange(256), p)

    for _ in range(rng.randint(1, 8)):
        wire = frame()
        roll = rng.random()
        if kind == "good" or roll < 0.5:
            cmds.append(("B", wire))
            good.append(wire)
        elif kind == "garbage":
            cmds.append(("B", garbage(rng)))
            cmds.append(("B", wire))
            good.append(wire)
        elif kind == "flip":
            i = rng.randrange(len(wire))
            cmds.append(("B", wire[:i] + bytes([wire[i] ^ rng.randint(1, 255)]) + wire[i + 1:]))
        elif kind == "truncate":
            # Not cut before a 0xEB: the next frame's first byte would complete it.
            cut = rng.randrange(1, len(wire))
            while wire[cut] == F.SYNC[0]:
                cut = rng.randrange(1, len(wire))
            cmds.append(("B", wire[:cut]))
            if rng.random() < 0.5:
                cmds.append(("T", b""))
        elif kind == "oversize":
            cmds.append(("B", frame(length=max_payload + rng.randint(1, 40))))
        elif kind == "unknown":
            cmds.append(("B", frame(ftype=rng.choice([0x00, 0x04, 0x7F, 0x81, 0xFF]))))
        if rng.random() < 0.2:
            cmds.append(("T", b""))  # a pause between frames changes nothing
    if kind == "noise":
        cmds = [(rng.choice("BBBT"), rng.randbytes(rng.randint(0, 300))) for _ in range(4)]
        good = None
    cmds.append(("T", b""))
    return capacity, cmds, good


def python_events(capacity: int, cmds) -> tuple[list[str], list[bytes]]:
    dec = F.Decoder(capacity - F.OVERHEAD)
    lines, delivered = [], []
    for op, data in cmds:
        events = dec.feed(data) if op == "B" else dec.timeout()
        for e in events:
            if isinstance(e, F.Frame):
                lines.append(f"F {e.type} {e.seq} {len(e.payload)} {zlib.crc32(e.payload):08x}")
                delivered.append(F.encode(e.type, e.seq, e.payload))
            else:
                lines.append(f"R {e.type} {e.seq} {e.status}")
    lines.append("C " + " ".join(str(dec.counts[k]) for k in F.COUNT_NAMES))
    return lines, delivered


def harness_input(capacity: int, cmds) -> bytes:
    out = bytearray(b"I" + struct.pack("<I", capacity))
    for op, data in cmds:
        out += b"B" + struct.pack("<I", len(data)) + data if op == "B" else b"T"
    return bytes(out + b"C")


KINDS = ["good", "garbage", "flip", "truncate", "oversize", "unknown", "noise"]


def test_c_parser_matches_python_decoder_on_fuzzed_streams(harness):
    rng = random.Random(2024)
    cases = [make_case(rng, KINDS[i % len(KINDS)]) for i in range(3500)]
    stdin = b"".join(harness_input(cap, cmds) for cap, cmds, _ in cases)
    proc = subprocess.run([str(harness)], input=stdin, capture_output=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr.decode()[-2000:]
    c_cases = proc.stdout.decode().split("\n")
    expected_all, totals = [], dict.fromkeys(F.COUNT_NAMES, 0)
    for (cap, cmds, good), kind in zip(cases, (KINDS[i % len(KINDS)] for i in range(len(cases)))):
        lines, delivered = python_events(cap, cmds)
        expected_all += lines
        if good is not None:  # every intact frame comes through, in order
            assert delivered == good, (kind, cmds)
        for k, v in zip(F.COUNT_NAMES, lines[-1].split()[1:]):
            totals[k] += int(v)
    assert c_cases[:-1] == expected_all
    # Every kind of damage occurred and was counted.
    assert all(totals[k] > 50 for k in F.COUNT_NAMES), totals


def test_all_good_frames_accepted_back_to_back(harness):
    rng = random.Random(7)
    wires = [F.encode(rng.choice([F.SAMPLE, F.PING, F.END, F.ACK]), i % 256, rng.randbytes(rng.randint(0, 256)))
             for i in range(1000)]
    stdin = harness_input(F.OVERHEAD + 256, [("B", b"".join(wires))])
    out = subprocess.run([str(harness)], input=stdin, capture_output=True, timeout=60)
    lines = out.stdout.decode().splitlines()
    assert out.returncode == 0 and len(lines) == 1001
    assert lines[-1] == "C 1000 0 0 0 0 0 0"


def test_python_codec_round_trip_and_known_vectors():
    wire = F.encode(F.SAMPLE, 7, b"abc")
    assert wire[:7] == bytes([0xEB, 0x90, 0x01, 0x07, 0x03, 0x00, F.crc8(b"\x01\x07\x03\x00")])
    assert F.crc8(b"123456789") == 0xF4  # the standard check value of CRC-8 (poly 0x07)
    assert struct.unpack("<I", wire[-4:])[0] == zlib.crc32(b"\x01\x07\x03\x00abc")
    dec = F.Decoder(16)
    assert dec.feed(b"xx" + wire) == [F.Frame(1, 7, b"abc")]
    assert dec.counts["skipped_bytes"] == 2
    with pytest.raises(ValueError):
        F.encode(F.SAMPLE, 0, bytes(70000))


# -- the same protocol over the twin's serial port --------------------------------

STREAM_TIMEOUT = 20_000_000  # instructions of silence that end a partial frame (~0.4 s polling)


@pytest.fixture(scope="module")
def stream_fw(tmp_path_factory):
    return build_selftest(tmp_path_factory.mktemp("stream"), ET_SELFTEST_STREAM=1,
                          ET_SELFTEST_TIMEOUT=STREAM_TIMEOUT)


def clean_payload(rng: random.Random, n: int) -> bytes:
    """Random bytes without 0xEB, so rejected frames leave nothing to re-scan."""
    return bytes(b if b != 0xEB else 0x00 for b in rng.randbytes(n))


def device_counts(text: str) -> dict[str, int]:
    m = re.search(r"^frames: (.*)$", text, re.M)
    assert m, text
    return {k: int(v) for k, v in (item.split("=") for item in m.group(1).split())}


def test_twin_acks_each_frame_stop_and_wait(stream_fw):
    rng = random.Random(11)
    samples = [clean_payload(rng, n) for n in (10, 0, 256, 77, 31)]
    flipped = bytearray(F.encode(F.SAMPLE, 2, clean_payload(rng, 40)))
    flipped[20] ^= 0x5A
    truncated = F.encode(F.SAMPLE, 5, clean_payload(rng, 20))[:12]
    messages = [F.encode(F.SAMPLE, 0, samples[0]), F.encode(F.PING, 1, b"ping"), bytes(flipped),
                b"noise\x00\xff", F.encode(F.SAMPLE, 3, clean_payload(rng, 300)),
                F.encode(0x42, 4, b"?"), truncated,
                *(F.encode(F.SAMPLE, 6 + i, p) for i, p in enumerate(samples[1:])),
                F.encode(F.SAMPLE, 0x3FF, samples[0]),  # seq wraps to 0xFF
                F.encode(F.END, 10)]
    sw = F.StopAndWait(messages)
    result = run_qemu(stream_fw.elf, timeout=60, stdin=sw)
    assert result.exit_code == 0, result.text[-500:]
    assert sw.acks == [(0, F.OK), (1, F.OK), (2, F.BAD_CRC), (3, F.BAD_LENGTH), (4, F.UNKNOWN_TYPE),
                       (5, F.TRUNCATED), (6, F.OK), (7, F.OK), (8, F.OK), (9, F.OK), (0xFF, F.OK),
                       (10, F.OK)]
    # The device's counts equal the Python decoder's on the same bytes and pause.
    dec = F.Decoder(256)
    for msg in messages:
        dec.feed(msg)
        if msg is truncated:
            dec.timeout()
    counts = device_counts(result.text)
    assert {k: counts[k if k != "skipped_bytes" else "skipped"] for k in F.COUNT_NAMES} == dec.counts
    assert counts["samples"] == 6
    assert counts["sum"] == sum(map(sum, samples)) + sum(samples[0])


def test_twin_takes_a_whole_stream_at_once(stream_fw):
    rng = random.Random(12)
    wires, expected_acks = [], []
    for seq in range(40):
        wire = F.encode(F.SAMPLE, seq, clean_payload(rng, rng.randint(0, 200)))
        if seq % 7 == 3:
            wire = wire[:-1] + bytes([wire[-1] ^ 1])
            expected_acks.append((seq, F.BAD_CRC))
        else:
            expected_acks.append((seq, F.OK))
        wires.append(wire)
        if seq % 5 == 0:
            wires.append(b"log line\n")
    wires.append(F.encode(F.END, 40))
    stream = b"".join(wires)
    result = run_qemu(stream_fw.elf, timeout=60, stdin=stream)
    acks = [(e.seq, F.ack_status(e)) for e in F.Decoder().feed(result.uart_output)
            if isinstance(e, F.Frame) and e.type == F.ACK]
    assert acks == expected_acks + [(40, F.OK)]
    dec = F.Decoder(256)
    dec.feed(stream)
    counts = device_counts(result.text)
    assert counts["ok"] == dec.counts["ok"] == 35 and counts["bad_crc"] == 6
    assert counts["skipped"] == dec.counts["skipped_bytes"]
