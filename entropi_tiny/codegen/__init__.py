"""C code generators: Jinja2 templates for structure, small Python emitters for numbers.

Usage:
    from entropi_tiny.codegen.head import HeadSpec, generate_head_sources
    report = generate_head_sources(out_dir, HeadSpec(feature_dim=64, num_classes=5, ...))
"""
