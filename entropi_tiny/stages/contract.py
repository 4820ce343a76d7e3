"""The stage contract: what a stage read (its key), what it wrote (sha256s), fresh or stale.

Usage:
    run = Run(cfg, RunPaths(root), quiet=False)
    inputs = {**run.settings("select.levels_m"), "data:target": run.target_digest()}
    state = check(run, "select", run.paths.entropy_json, inputs)
    if state.status != "fresh":
        ...  # recompute, then
        commit(run, "select", run.paths.entropy_json, inputs, [other files], payload)

Every stage names its inputs as one flat dict: settings by their config key
("select.levels_m"), files by "file:<name in the run folder>" with their
sha256, and data by "data:target" with a hash of the decoded images, labels
and class names (not the folder's name or its count of files). The key is
the sha256 of that dict. The stage's manifest (one JSON file, written last
and atomically) holds the payload, the inputs, the key, and the sha256 of
every other file the stage wrote. A stage is then
    fresh    its manifest exists, vouches for files that still have those
             hashes, and its key equals the key of the inputs now;
    stale    otherwise, naming the first input (or output file) that changed;
    missing  no manifest.
A kill between two of a stage's renames therefore leaves a manifest that
does not vouch for the new files, and nothing downstream trusts them.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import atomic, data
from ..config import NO_TARGET, Config
from ..errors import UserError
from ..paths import RunPaths
from .lock import hold_run_lock

_task_cache: dict[tuple, tuple[data.Task, str]] = {}


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def task_digest(task: data.Task) -> str:
    """sha256 of what a task *is*: class names, and every image and label of both splits."""
    h = hashlib.sha256(json.dumps(list(task.classes)).encode())
    for split in (task.train, task.test):
        h.update(str(tuple(split.images.shape)).encode())
        h.update(split.images.contiguous().numpy().tobytes())
        h.update(split.labels.numpy().astype("<i8").tobytes())
    return h.hexdigest()


@dataclass
class Run:
    """One command's view of a run folder: its config, paths, and cached data."""
    cfg: Config
    paths: RunPaths
    quiet: bool = False
    _recorded: bool = field(default=False, repr=False)

    def setting(self, dotted: str) -> Any:
        section, key = dotted.split(".", 1)
        value = getattr(getattr(self.cfg, section), key)
        return list(value) if isinstance(value, tuple) else value

    def settings(self, *dotted: str) -> dict:
        return {k: self.setting(k) for k in dotted}

    def task(self, role: str) -> tuple[data.Task, str]:
        spec = self.cfg.data.source if role == "source" else self.cfg.data.target
        domains = self.cfg.data.source_domains if role == "source" else self.cfg.data.target_domains
        k = (role, spec, domains, self.cfg.data.test_fraction, self.cfg.data.data_root)
        if role == "target" and spec == NO_TARGET:
            raise UserError("data.target is 'none': only a user's own model (--tflite) runs "
                            "without target data; give --target")
        if k not in _task_cache:
            task = data.load_task(spec, role, self.cfg.data)
            if role == "target" and len(task.train) == 0:
                raise UserError("the target training set is empty")
            _task_cache[k] = (task, task_digest(task))
        return _task_cache[k]

    def target(self) -> data.Task:
        return self.task("target")[0]

    @property
    def has_target(self) -> bool:
        return self.cfg.data.target != NO_TARGET

    def target_inputs(self) -> dict:
        """The target data as a stage input: its settings and its content hash."""
        if not self.has_target:
            return self.settings("data.target")
        return {**self.settings("data.target", "data.target_domains", "data.test_fraction"),
                "data:target": self.task("target")[1]}

    def begin_writes(self) -> None:
        """Before a command's first write: take the folder's lock, record the config."""
        hold_run_lock(self.paths)
        if not self._recorded:
            record_config(self.paths, self.cfg)
            self._recorded = True


def record_config(paths: RunPaths, cfg: Config) -> None:
    now = cfg.to_dict()
    if not paths.config.is_file() or atomic.read_json(paths.config) != now:
        atomic.write_json(paths.config, now)


@dataclass(frozen=True)
class State:
    name: str
    status: str                   # fresh | stale | missing
    reason: str = ""
    manifest: dict | None = None


def read_manifest(path: Path, name: str) -> dict | None:
    """A stage's manifest, checked for shape (not yet for freshness); None if absent."""
    if not Path(path).is_file():
        return None
    obj = atomic.read_json_object(path)
    block = obj.get("stage")
    if block is None:
        return obj           # an unfinished stage's progress file: not a manifest
    ok = (isinstance(block, dict) and block.get("name") == name
          and isinstance(block.get("key"), str) and isinstance(block.get("inputs"), dict)
          and isinstance(block.get("outputs"), dict)
          and all(isinstance(k, str) and isinstance(v, str) for k, v in block["outputs"].items()))
    if not ok:
        raise UserError(f"{path} is damaged: its 'stage' record is malformed; delete it and "
                        f"rerun `entropi-tiny {name}`")
    return obj


def _changed(old: dict, new: dict) -> str:
    for k in sorted(set(old) | set(new)):
        if old.get(k) != new.get(k):
            if k.startswith("file:"):
                return f"{k[5:]} changed"
            if k.startswith("data:"):
                return f"the {k[5:]} images changed"
            return f"{k} changed ({_short(old.get(k))} -> {_short(new.get(k))})"
    return "its inputs changed"


def _short(v: Any) -> str:
    text = json.dumps(v, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def verify_outputs(paths: RunPaths, manifest: dict) -> str | None:
    """None if every file the manifest vouches for has its recorded sha256."""
    for name, sha in manifest["stage"]["outputs"].items():
        p = paths.root / name
        if ".." in Path(name).parts or not p.is_file():
            return f"{name} is missing"
        if atomic.sha256_file(p) != sha:
            return f"{name} does not match its manifest (an interrupted write?)"
    return None


def check(run: Run, name: str, path: Path, inputs: dict, spec: dict | None = None) -> State:
    """The stage's state; `spec` (see require_fields) checks its manifest's payload."""
    m = read_manifest(path, name)
    if m is None:
        return State(name, "missing", "not run yet")
    if "stage" not in m:
        return State(name, "missing", "started, not finished")
    if spec:
        require_fields(m, path, spec)
    bad = verify_outputs(run.paths, m)
    if bad:
        return State(name, "stale", bad, m)
    if m["stage"]["key"] != digest(inputs):
        return State(name, "stale", _changed(m["stage"]["inputs"], inputs), m)
    return State(name, "fresh", "", m)


def commit(run: Run, name: str, path: Path, inputs: dict, outputs: list[Path],
           payload: dict) -> dict:
    """Write the manifest last: payload + inputs + key + the sha256 of every output."""
    block = {"name": name, "key": digest(inputs), "inputs": inputs,
             "outputs": {run.paths.rel(p): atomic.sha256_file(p) for p in outputs}}
    manifest = json.loads(json.dumps({**payload, "stage": block}, default=str))
    atomic.write_json(path, manifest)
    return manifest


NUMBER = (int, float)
OPTIONAL_NUMBER = (int, float, type(None))


def require_fields(obj: Any, path: Path, spec: dict[str, Any], where: str = "") -> dict:
    """Refuse (one line) a run-folder record lacking a field or holding the wrong type.

    spec: field -> type or tuple of types; a dict value checks a nested object,
    a one-element list checks every element of a list."""
    if not isinstance(obj, dict):
        raise UserError(f"{path} is damaged: {where or 'the file'} is not an object; "
                        "delete it and rerun")
    for key, want in spec.items():
        value = obj.get(key)
        name = f"{where}.{key}" if where else key
        if isinstance(want, dict):
            require_fields(value, path, want, name)
        elif isinstance(want, list):
            if not isinstance(value, list):
                raise UserError(f"{path} is damaged: {name} must be a list; delete it and rerun")
            for i, item in enumerate(value):
                require_fields(item, path, want[0], f"{name}[{i}]")
        else:
            kinds = want if isinstance(want, tuple) else (want,)
            bad_bool = isinstance(value, bool) and bool not in kinds
            if bad_bool or not isinstance(value, kinds):
                raise UserError(f"{path} is damaged: {name} is {_short(value)}, not "
                                f"{' or '.join(k.__name__ for k in kinds)}; delete it and rerun")
    return obj


def upstream(state: State, command: str) -> dict:
    """An upstream stage's manifest, or a one-line refusal saying what to run."""
    if state.status == "fresh":
        return state.manifest
    raise UserError(f"the {state.name} stage is {state.status} ({state.reason}); "
                    f"run `entropi-tiny {command}` first")
