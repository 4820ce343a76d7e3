"""C code generators: Jinja2 templates for structure, small Python emitters for numbers.

Usage:
    from entropi_tiny.codegen.head import HeadSpec, generate_head_sources
    report = generate_head_sources(out_dir, HeadSpec(feature_dim=64, num_classes=5, ...))

    from entropi_tiny.codegen.model import generate_model_sources
    report = generate_model_sources(Path("encoder_int8.tflite"), Path("encoder_weights.etsw"), Path("build/gen"),
                                    name="et_model")
    report["arena_size"], report["files"], report["notes"]

The encoder's generator (model.py) reads a .tflite into nodes with the host
quantization math (graph.py, quant_params.py), fuses PAD and ADD into convs
(fuse.py), plans the static arena (plan.py) and renders et_model.h.j2 /
et_model.c.j2 for the int8 runtime (firmware/include/et_runtime.h).
"""
