"""Every artifact of a run folder, named in one place.

Usage:
    paths = RunPaths(Path("export/default"))
    paths.level_checkpoint(3)   # export/default/levels/level_03/checkpoint.pt

A stage reads the files of the stages before it and writes its own here;
each stage's manifest (prune.json, entropy.json, transfer.json, report.json,
model/export.json, firmware/generated/codegen.json, firmware/build.json,
emulator.json) records the key of what it read and the sha256 of every file
it wrote (see entropi_tiny/stages/contract.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_RUN_DIR = Path("export") / "default"


@dataclass(frozen=True)
class RunPaths:
    root: Path

    # -- whole run ---------------------------------------------------------
    @property
    def config(self) -> Path:
        """The whole configuration of the run (every section), as last used."""
        return self.root / "config.json"

    @property
    def lock(self) -> Path:
        """Held (flock) by the one process writing into the run folder; holds its pid."""
        return self.root / ".lock"

    def rel(self, path: Path) -> str:
        """A run-folder file's name relative to the folder, as manifests store it."""
        return Path(path).relative_to(self.root).as_posix()

    # -- prune -------------------------------------------------------------
    @property
    def levels_dir(self) -> Path:
        return self.root / "levels"

    def level_dir(self, level: int) -> Path:
        return self.levels_dir / f"level_{level:02d}"

    def level_checkpoint(self, level: int) -> Path:
        return self.level_dir(level) / "checkpoint.pt"

    def level_partial(self, level: int) -> Path:
        """Model and optimizer after the last finished epoch of an unfinished level."""
        return self.level_dir(level) / "partial.pt"

    @property
    def levels_settings(self) -> Path:
        """The prune settings the levels are made with, written before level 0."""
        return self.levels_dir / "settings.json"

    @property
    def rewind_checkpoint(self) -> Path:
        return self.levels_dir / "rewind.pt"

    @property
    def prune_summary(self) -> Path:
        return self.root / "prune.json"

    # -- select ------------------------------------------------------------
    @property
    def entropy_json(self) -> Path:
        return self.root / "entropy.json"

    # -- transfer ----------------------------------------------------------
    def features(self, level: int) -> Path:
        return self.root / "features" / f"level_{level:02d}.pt"

    @property
    def transfer_json(self) -> Path:
        return self.root / "transfer.json"

    @property
    def controls_json(self) -> Path:
        """The dense controls' heads and the holdout baseline (stages/control.py)."""
        return self.root / "controls.json"

    # -- report and profile ------------------------------------------------
    @property
    def report_json(self) -> Path:
        return self.root / "report.json"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def figure3_png(self) -> Path:
        return self.root / "entropy_vs_alpha.png"

    @property
    def profile_json(self) -> Path:
        return self.root / "profile.json"

    # -- export --------------------------------------------------------------
    @property
    def export_dir(self) -> Path:
        return self.root / "model"

    @property
    def onnx(self) -> Path:
        return self.export_dir / "encoder.onnx"

    @property
    def tflite(self) -> Path:
        return self.export_dir / "encoder_int8.tflite"

    @property
    def user_tflite(self) -> Path:
        """A user's own int8 model, copied in byte for byte (never overwritten)."""
        return self.export_dir / "user_model.tflite"

    @property
    def export_report(self) -> Path:
        return self.export_dir / "export_report.json"

    @property
    def sparse_image(self) -> Path:
        return self.export_dir / "encoder_weights.etsw"

    @property
    def export_json(self) -> Path:
        """The export's summary; written last, so it marks a complete export."""
        return self.export_dir / "export.json"

    # -- firmware ------------------------------------------------------------
    @property
    def firmware_dir(self) -> Path:
        return self.root / "firmware"

    @property
    def generated_dir(self) -> Path:
        """Generated C: model tables and schedule, head config, embedded samples."""
        return self.firmware_dir / "generated"

    def board_dir(self, board: str) -> Path:
        return self.firmware_dir / board

    @property
    def samples_npz(self) -> Path:
        """The embedded samples as the host sees them (int8 inputs, labels)."""
        return self.generated_dir / "samples.npz"

    @property
    def codegen_json(self) -> Path:
        """The codegen stage's manifest: what the generated C was made from."""
        return self.generated_dir / "codegen.json"

    @property
    def build_json(self) -> Path:
        return self.firmware_dir / "build.json"

    @property
    def emulator_json(self) -> Path:
        return self.root / "emulator.json"

    def existing_levels(self) -> list[int]:
        """Levels whose final checkpoint exists, in order."""
        if not self.levels_dir.is_dir():
            return []
        found = []
        for d in sorted(self.levels_dir.glob("level_*")):
            suffix = d.name.removeprefix("level_")
            if suffix.isdigit() and (d / "checkpoint.pt").is_file():
                found.append(int(suffix))
        return found
