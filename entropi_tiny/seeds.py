"""Several IMP source seeds in one run folder: seeds/seed_N/ is a whole run per seed.

Usage:
    for run_cfg, run_paths in seed_runs(cfg, paths):        # prune (pruning/imp.py)
        run_imp_once(run_cfg, run_paths)
    tables = for_each_seed(run_select, cfg, paths, quiet=True)   # any later stage

With `prune.source_seeds = [0, 1, 2]` (`prune --source-seeds 0,1,2`), the run
folder holds its config.json and one sub-run per seed, seeds/seed_N/, made with
`prune.seed = N` and otherwise the same settings. The later stages find the seeds
in the folder's config.json, so they need no flag, and `report` aggregates the
sub-runs (mean and spread of every number). Without seeds a run folder is one run,
as before.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterator

import click

from . import atomic
from .config import Config
from .paths import RunPaths


def seed_dir(paths: RunPaths, seed: int) -> RunPaths:
    return RunPaths(paths.root / "seeds" / f"seed_{seed}")


def folder_seeds(paths: RunPaths) -> list[int]:
    """The source seeds a run folder was made with ([] for a one-seed folder)."""
    if not paths.config.is_file():
        return []
    saved = atomic.read_json(paths.config).get("prune", {}).get("source_seeds") or []
    return [int(s) for s in saved]


def seed_runs(cfg: Config, paths: RunPaths, write: bool = True) -> Iterator[tuple[Config, RunPaths]]:
    """(config, run folder) of every seed's sub-run, or just (cfg, paths)."""
    seeds = list(cfg.prune.source_seeds) or folder_seeds(paths)
    if not seeds:
        yield cfg, paths
        return
    if cfg.prune.source_seeds and write:
        from .pruning.imp import check_run_config

        check_run_config(paths, cfg)
        if not paths.config.is_file():
            atomic.write_json(paths.config, cfg.to_dict())
    for seed in seeds:
        prune = dataclasses.replace(cfg.prune, seed=seed, source_seeds=())
        yield dataclasses.replace(cfg, prune=prune), seed_dir(paths, seed)


def for_each_seed(stage: Callable, cfg: Config, paths: RunPaths, **kwargs) -> list:
    """stage(cfg, paths, **kwargs) for every seed's sub-run; the list of results."""
    return [stage(run_cfg, run_paths, **kwargs) for run_cfg, run_paths in seed_runs(cfg, paths)]


def seed_report_dirs(paths: RunPaths) -> list[tuple[int, RunPaths]]:
    """The seed sub-runs of a folder as (seed, paths), in seed order."""
    return [(s, seed_dir(paths, s)) for s in folder_seeds(paths)]


class SeedList(click.ParamType):
    """A comma-separated list of seeds on the command line: 0,1,2."""

    name = "SEEDS"

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        try:
            return [int(v) for v in str(value).split(",") if v.strip()]
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of integers", param, ctx)
