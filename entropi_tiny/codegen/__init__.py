"""Host-side code generation for the int8 runtime: op schedule, arena plan, weight image as C.

Usage:
    from entropi_tiny.codegen import generate_model_sources
    report = generate_model_sources(Path("encoder_int8.tflite"), Path("build/gen"), name="et_model")
    report["arena_size"], report["files"], report["notes"]

Modules: graph.py (.tflite -> nodes, host quantization math in
quant_params.py), fuse.py (PAD and ADD into convs), plan.py (static arena),
emit.py (Jinja2 templates in templates/ + number emitters).
"""
from .emit import generate_model_sources

__all__ = ["generate_model_sources"]
