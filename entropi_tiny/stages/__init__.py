"""The pipeline's stages, one module per command, all under one contract.

Usage:
    from entropi_tiny.stages.contract import Run
    from entropi_tiny.stages.select import run_select
    table = run_select(Run(cfg, RunPaths(Path("export/default"))))

contract (keys, manifests, fresh/stale/missing), lock (one writer per run
folder), runconfig (the run folder's config, overridden by options), and the
stages in order: prune, select, transfer, report, export, codegen, build,
emulate; status reports them all. Imports flow cli -> stages -> the parts
(pruning, selection, transfer, export, codegen, toolchain) -> core.
"""
