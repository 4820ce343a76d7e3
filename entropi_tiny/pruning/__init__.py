"""Source training with iterative magnitude pruning (paper section 2.3, eq. 7).

Usage:
    from entropi_tiny.pruning.imp import run_imp
"""
