"""entropi-tiny: entropy-selected pruned encoders, fine-tuned on a microcontroller.

Usage:
    entropi-tiny --help
"""
__version__ = "0.1.0"
