"""Coverage-guided fuzzing of the Python .tflite reader with atheris (issues 16, 17).

Usage:
    .venv/bin/python firmware/fuzz/fuzz_tflite.py -max_total_time=60 CORPUS SEEDS
    .venv/bin/python firmware/fuzz/fuzz_tflite.py --make-seeds SEEDS [MODEL.tflite ...]
    from fuzz_tflite import tflite_seeds          # the seed builder run_fuzzers.py calls

Each input goes through everything that reads a user's .tflite before any
device work: read_tflite (the bounds-checked, budgeted reader), the op and
quantization helpers of tflite_ops, every constant tensor's array(), and the
sparse weight image writer. A UserError is the expected refusal; anything
else (an IndexError, a MemoryError, a struct.error), a refusal that is not
one printable line, or an input that takes more than libFuzzer's -timeout or
-rss_limit_mb is a finding. Bytes 4..7 are forced to the 'TFL3' identifier
so the mutations spend their time past the first check.

Seeds (tflite_seeds): small int8 models built by tests/hostile_tflite.py
(per-channel and per-tensor CONV_2D, fully connected on a shared buffer,
a model sharing one shape vector), the models in ../shared/models/tflm when
that folder exists, and any .tflite named on the command line.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402,F401  (imported before instrumentation: not ours to fuzz)


def tflite_seeds(out: Path, tflite=()) -> list[Path]:
    """Write the seed models into `out`; returns their paths."""
    from hostile_tflite import shared_buffer_model, shared_shape_model, small_conv_model

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = {"conv_per_channel.tflite": small_conv_model(),
             "conv_per_tensor_qd3.tflite": small_conv_model(per_channel=False, quantized_dimension=3),
             "conv_named.tflite": small_conv_model(name="w\n\x1b[31m", channels=2),
             "fc_shared_buffer.tflite": shared_buffer_model(400, 3),
             "fc_shared_data.tflite": shared_buffer_model(400, 3, share_data=True),
             "shared_shape.tflite": shared_shape_model(40)}
    extra = sorted((ROOT.parent / "shared" / "models" / "tflm").glob("*.tflite")) + list(tflite)
    paths = []
    for name, data in seeds.items():
        paths.append(out / name)
        paths[-1].write_bytes(data)
    for src in extra:
        paths.append(out / f"extra_{Path(src).name}")
        paths[-1].write_bytes(Path(src).read_bytes())
    return paths


def _target():
    import atheris

    with atheris.instrument_imports(include=["entropi_tiny"]):
        from entropi_tiny.errors import UserError
        from entropi_tiny.export import flatbuf, tflite_model, tflite_ops  # noqa: F401
        from entropi_tiny.export.sparse_image import encode_model

    def one_input(data: bytes) -> None:
        if len(data) >= 8:
            data = data[:4] + b"TFL3" + data[8:]
        try:
            model = tflite_ops.parse_tflite(data)
            tflite_ops.op_counts(model)
            for t in model.tensors:
                t.array()
            tflite_ops.describe_ops(model)
            if model.inputs and model.outputs:
                tflite_ops.io_quant(model)
            tflite_ops.check_allowed_ops(model)
            encode_model(data)
        except UserError as e:
            msg = str(e)
            if not msg.isprintable() or len(msg) > 2000:
                raise AssertionError(f"refusal is not one printable line: {msg[:200]!r}") from None

    return atheris, one_input


def main(argv: list[str]) -> int:
    if len(argv) > 2 and argv[1] == "--make-seeds":
        for p in tflite_seeds(Path(argv[2]), [Path(a) for a in argv[3:]]):
            print(p)
        return 0
    atheris, one_input = _target()
    atheris.Setup(argv, one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
