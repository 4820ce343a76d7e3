"""Several IMP source seeds in one run folder: seeds/seed_N/ is a whole run per seed.

Usage:
    for sub in seed_runs(run):                      # Run objects, one per seed
        run_prune(sub)
    tables = for_each_seed(run_select, run)         # any later stage, per seed

With `prune.source_seeds = [0, 1, 2]` (`prune --source-seeds 0,1,2`), the run
folder's config.json records the seeds, and each seed is a sub-run folder,
seeds/seed_N/, made with `prune.seed = N` (and no seeds of its own), otherwise
the same settings. Each sub-run is a run folder like any other: its own
config.json, levels/settings.json (a changed prune setting is refused there,
stages/prune.py), manifests and lock. The later stages find the seeds in the
folder's config (commands start from it), so they need no flag, and `report`
aggregates the sub-runs (mean and spread of every number). Without seeds a
run folder is one run, as before.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterator

import click

from .config import Config
from .paths import RunPaths


def seed_dir(paths: RunPaths, seed: int) -> RunPaths:
    return RunPaths(paths.root / "seeds" / f"seed_{seed}")


def seed_config(cfg: Config, seed: int) -> Config:
    """The sub-run's config: prune.seed = seed and no seeds of its own."""
    return dataclasses.replace(cfg, prune=dataclasses.replace(cfg.prune, seed=seed,
                                                              source_seeds=()))


def seed_runs(run) -> Iterator:
    """A stage Run per seed's sub-run (run itself without seeds). The parent's
    config.json is recorded (under its lock) so later commands find the seeds."""
    seeds = list(run.cfg.prune.source_seeds)
    if not seeds:
        yield run
        return
    run.begin_writes()
    for seed in seeds:
        yield type(run)(seed_config(run.cfg, seed), seed_dir(run.paths, seed), run.quiet)


def for_each_seed(stage: Callable, run, **kwargs) -> list:
    """stage(sub_run, **kwargs) for every seed's sub-run; the list of results."""
    return [stage(sub, **kwargs) for sub in seed_runs(run)]


def seed_report_dirs(paths: RunPaths, cfg: Config) -> list[tuple[int, RunPaths]]:
    """The seed sub-runs of a folder as (seed, paths), in seed order."""
    return [(s, seed_dir(paths, s)) for s in sorted(cfg.prune.source_seeds)]


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
