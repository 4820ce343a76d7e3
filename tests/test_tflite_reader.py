"""The one .tflite reader: hostile files refused in one line, in bounded memory and time
(issue 17), per-tensor quantization as TFLM reads it, printable tensor names."""
import subprocess
import sys

import numpy as np
import pytest

from entropi_tiny.errors import UserError
from entropi_tiny.export.sparse_image import encode_model
from entropi_tiny.export.tflite_model import SUPPORTED_OPS, read_tflite
from entropi_tiny.export.tflite_ops import (ALLOWED_OPS, check_allowed_ops, describe_ops, io_quant,
                                            op_counts, parse_tflite, tensor_array)
from helpers import REPO, cli_env
from hostile_tflite import shared_buffer_model, shared_shape_model, small_conv_model

# Runs `export --tflite FILE --feature-tensor y` in-process for each file, after the imports,
# with the address space limited to what is mapped then plus 400 MB; prints one verdict per
# file. The feature tensor is the models' output "y", so no cut happens before the weights
# are read: the budget on reading them is what must refuse the file.
LIMITED_CLI = r"""
import contextlib, io, resource, sys, time
import entropi_tiny.cli as cli, entropi_tiny.stages.export, entropi_tiny.export.sparse_image
pages = int(open("/proc/self/statm").read().split()[0])
limit = pages * resource.getpagesize() + (400 << 20)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
for path in sys.argv[2:]:
    t0, err = time.process_time(), io.StringIO()
    sys.argv = ["entropi-tiny", "export", "--quiet", "--run-dir", sys.argv[1], "--tflite", path,
                "--feature-tensor", "y"]
    with contextlib.redirect_stderr(err):
        try:
            cli.main()
        except SystemExit as e:
            code = e.code
    print(repr((path, code, time.process_time() - t0, err.getvalue())))
"""
HOSTILE = {"shared_shape": (lambda: shared_shape_model(60_000), "elements"),
           "shared_buffer": (lambda: shared_buffer_model(400_000, 3_000), "tensor elements"),
           "shared_data": (lambda: shared_buffer_model(400_000, 3_000, share_data=True), "elements")}


def test_memory_exhaustion_models_are_refused_in_one_line(tmp_path):
    import ast

    paths = []
    for name, (make, _) in HOSTILE.items():
        paths.append(tmp_path / f"{name}.tflite")
        paths[-1].write_bytes(make())
        assert paths[-1].stat().st_size < 1_100_000
    r = subprocess.run([sys.executable, "-c", LIMITED_CLI, str(tmp_path / "run"), *map(str, paths)],
                       capture_output=True, text=True, cwd=REPO, env=cli_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    verdicts = [ast.literal_eval(line) for line in r.stdout.splitlines()]
    assert len(verdicts) == len(HOSTILE), r.stdout
    for (path, code, cpu, err), (name, (_, needle)) in zip(verdicts, HOSTILE.items()):
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (name, code, err)
        assert needle in lines[0] and "budget of its file size" in lines[0], (name, lines)
        assert cpu < 20.0, (name, cpu)
    assert not list((tmp_path / "run").rglob("*.etsw"))


def test_a_good_model_reads_and_describes():
    model = parse_tflite(small_conv_model())
    assert op_counts(model) == {"CONV_2D": 1}
    check_allowed_ops(model)
    (d,) = describe_ops(model)
    assert d == {"op": "CONV_2D", "inputs": [[1, 8, 8, 3], [4, 3, 3, 3], [4]],
                 "outputs": [[1, 8, 8, 4]], "stride": (1, 1), "padding": "SAME",
                 "activation": "RELU", "dilation": (1, 1), "per_channel": 4}
    assert io_quant(model)["input"] == {"shape": [1, 8, 8, 3], "dtype": "int8",
                                        "scale": pytest.approx(0.05), "zero_point": -1}
    assert tensor_array(model, 1).shape == (4, 3, 3, 3)
    assert model.subgraphs[0].operators == model.operators      # the ModelT-style access
    assert ALLOWED_OPS == SUPPORTED_OPS


@pytest.mark.parametrize("qd", [0, 3, 7, -1])
def test_per_tensor_weights_accepted_whatever_their_quantized_dimension(qd):
    data = small_conv_model(per_channel=False, quantized_dimension=qd)
    model = read_tflite(data)
    assert model.tensors[1].quantization.scale.size == 1
    image, report = encode_model(data)
    assert report["totals"]["nnz"] == int(np.count_nonzero(model.tensors[1].array()))


def test_a_bias_quantized_dimension_is_not_checked_as_tflm_does_not():
    """TFLM's person_detect example has a per-channel bias with quantized_dimension 3 of
    a 1-D shape; the reader used to refuse it."""
    model = read_tflite(small_conv_model(per_channel=True, bias_dimension=3))
    assert model.tensors[2].quantization.quantized_dimension == 3
    encode_model(small_conv_model(per_channel=True, bias_dimension=3))


def test_per_channel_scales_must_match_their_dimension():
    with pytest.raises(UserError, match="4 scales along dimension 3"):
        read_tflite(small_conv_model(per_channel=True, quantized_dimension=3))


def test_tensor_names_with_control_characters_are_escaped_in_messages():
    evil = "w\n\x1b[31mred\x1b[0m\rend"
    model = read_tflite(small_conv_model(name=evil))
    assert "\n" not in model.tensors[1].name and "\x1b" not in model.tensors[1].name
    with pytest.raises(UserError) as e:
        read_tflite(small_conv_model(name=evil, quantized_dimension=3))
    msg = str(e.value)
    assert msg.isprintable() and "w\\n\\x1b[31mred" in msg, msg


def test_hostile_label_is_escaped():
    with pytest.raises(UserError) as e:
        read_tflite(b"\0" * 32, label="bad\n\x1b[2Jname.tflite")
    assert str(e.value).isprintable()


@pytest.mark.parametrize("kwargs,needle", [
    ({"conv_inputs": (0,)}, "has no weights"),                  # found by the fuzzer
    ({"conv_inputs": (0, -1, 2)}, "has no weights"),
    ({"model_inputs": (-1,)}, "subgraph input refers to tensor -1"),
])
def test_missing_operator_inputs_are_refused(kwargs, needle):
    with pytest.raises(UserError, match=needle):
        describe_ops(parse_tflite(small_conv_model(**kwargs)))


def test_fuzz_harness_runs_clean_on_its_seeds(tmp_path):
    """The atheris harness (firmware/fuzz/fuzz_tflite.py) starts, reads every seed and a
    few hundred mutations without a finding; CI fuzzes it for 60 s through `make fuzz`."""
    pytest.importorskip("atheris")
    harness = REPO / "firmware" / "fuzz" / "fuzz_tflite.py"
    seeds, corpus = tmp_path / "seeds", tmp_path / "corpus"
    corpus.mkdir()
    r = subprocess.run([sys.executable, str(harness), "--make-seeds", str(seeds)],
                       capture_output=True, text=True, env=cli_env(), timeout=120)
    assert r.returncode == 0 and len(r.stdout.split()) >= 6, r.stderr[-2000:]
    r = subprocess.run([sys.executable, str(harness), "-runs=300", "-timeout=10", "-rss_limit_mb=2048",
                        f"-artifact_prefix={tmp_path}/", str(corpus), str(seeds)],
                       capture_output=True, text=True, env=cli_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Done 300 runs" in r.stderr or "DONE" in r.stderr, r.stderr[-1000:]
    assert not list(tmp_path.glob("crash-*"))
