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
the prune levels alone are protected (stages/prune.py). A new folder for a
user's own model (--tflite) has no target data unless --target names some:
its firmware then runs inference only.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

from .. import atomic
from ..config import NO_TARGET, Config, config_from_dict, load_config
from ..paths import RunPaths


def resolve_config(paths: RunPaths, preset: str | None, toml_path: str | Path | None,
                   overrides: list[str]) -> Config:
    base = None
    if preset is None and paths.config.is_file():
        base = config_from_dict(atomic.read_json_object(paths.config), str(paths.config))
    if base is None and _new_user_model(overrides) and not _names_target(toml_path, overrides):
        overrides = [f'data.target="{NO_TARGET}"', *overrides]
    return load_config(preset or "quick", toml_path, overrides, base=base)


def _new_user_model(overrides: list[str]) -> bool:
    """A new run folder for a user's own model: its target is none unless one is given
    (the built-in images are an example target for our encoders, not for any model)."""
    return any(o.split("=", 1)[0].strip() == "export.tflite" for o in overrides)


def _names_target(toml_path: str | Path | None, overrides: list[str]) -> bool:
    if any(o.split("=", 1)[0].strip() == "data.target" for o in overrides):
        return True
    if toml_path is None:
        return False
    try:
        table = tomllib.loads(Path(toml_path).read_text())
    except (OSError, ValueError):
        return False                 # load_config reports the file's problem
    return isinstance(table.get("data"), dict) and "target" in table["data"]
