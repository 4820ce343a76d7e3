"""The run folder holds the whole configuration; a command's options override it.

Usage:
    cfg = resolve_config(paths, preset=None, toml_path=None, overrides=["data.target=cifar10"])

The base is the run folder's config.json (every section, as the last command
that wrote there left it); a new folder, or an explicit --preset, starts from
the preset instead. A TOML file and --set overrides (and the shortcut options
such as --target) then apply on top. The result is recorded in config.json by
the first write of the command (contract.Run.begin_writes), so the next
command, with no options at all, uses the same settings. A changed setting
makes stale only the stages that read it (their keys), and they recompute;
the prune levels alone are protected (stages/prune.py).
"""
from __future__ import annotations

from pathlib import Path

from .. import atomic
from ..config import Config, config_from_dict, load_config
from ..paths import RunPaths


def resolve_config(paths: RunPaths, preset: str | None, toml_path: str | Path | None,
                   overrides: list[str]) -> Config:
    base = None
    if preset is None and paths.config.is_file():
        base = config_from_dict(atomic.read_json_object(paths.config), str(paths.config))
    return load_config(preset or "quick", toml_path, overrides, base=base)
