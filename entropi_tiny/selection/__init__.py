"""Encoder selection: activation entropy of pruned encoders (ENTROPI).

Usage:
    from entropi_tiny.selection.entropy import encoder_entropy, select_level
"""
