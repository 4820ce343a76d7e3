"""Firmware builds with hostile paths, leaked temp folders and overflow hints (issues 16, 17)."""
import fcntl
import os
import re
import time

import pytest

from board_support import build_selftest
from entropi_tiny.errors import UserError
from entropi_tiny.toolchain.checks import find_double_precision


@pytest.mark.parametrize("name", ["-oINJ", "a,-Map=evil.map", "x,--defsym=et_stack_bytes=0", "-T"])
def test_hostile_folder_names_stay_paths(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    src_dir = tmp_path / name
    src_dir.mkdir()
    src = src_dir / "et_extra.c"
    src.write_text("int et_extra(void) { return 7; }\n")
    # Relative paths on purpose: "-oINJ/..." would be read as an option if passed as is.
    build = build_selftest(os.path.join(name, "out"), "mps2-an500",
                           extra_sources=[os.path.join(name, "et_extra.c")], keep=["et_extra"])
    assert build.elf.is_file() and build.elf.parent == tmp_path / name / "out"
    assert build.stack_bytes == 16 * 1024           # the defsym in a folder name had no effect
    assert not list(tmp_path.rglob("evil.map")) and not (tmp_path / "INJ").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    assert find_double_precision(os.path.join(name, "out", "firmware.elf")) == []


def test_leaked_build_folders_are_removed_and_live_ones_kept(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dead_old = out / ".build-killed1"               # from before the lock: no lock file, old
    dead_old.mkdir()
    (dead_old / "firmware.elf").write_bytes(b"x")
    os.utime(dead_old, (time.time() - 3600, time.time() - 3600))
    dead_locked = out / ".build-killed2"            # its process died: the lock is free
    dead_locked.mkdir()
    (dead_locked / ".lock").write_text("")
    young = out / ".build-starting"                 # just created, lock not yet taken
    young.mkdir()
    live = out / ".build-live"                      # a build in progress holds its lock
    live.mkdir()
    held = open(live / ".lock", "w")
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        build_selftest(out, "mps2-an500")
    finally:
        held.close()
    left = sorted(p.name for p in out.glob(".build-*"))
    assert left == [".build-live", ".build-starting"], left


@pytest.mark.parametrize("stack,needle", [(0, "stack of 0 bytes"), (-4096, "stack of -4096"),
                                         (1001, "multiple of 8"), (320 * 1024, "stack of")])
def test_bad_stack_is_one_line_before_the_compiler(tmp_path, stack, needle):
    from entropi_tiny.boards import get_board
    from entropi_tiny.toolchain import compile_firmware
    from board_support import SELFTEST

    with pytest.raises(UserError, match=needle) as e:
        compile_firmware(get_board("mps2-an500"), [SELFTEST], out_dir=tmp_path, stack_bytes=stack)
    assert "\n" not in str(e.value) and "collect2" not in str(e.value)


def test_ram_overflow_from_the_stack_names_the_stack(tmp_path):
    from entropi_tiny.boards import get_board
    from entropi_tiny.toolchain import compile_firmware
    from board_support import SELFTEST

    with pytest.raises(UserError, match="RAM overflowed") as e:
        compile_firmware(get_board("nucleo-f746"), [SELFTEST], out_dir=tmp_path,
                         stack_bytes=318 * 1024)
    msg = str(e.value)
    assert "cause is the stack setting" in msg and "firmware.stack_bytes" in msg, msg
    assert "alpha" not in msg and "\n" not in msg


def _table(path, name, kib):
    path.write_text(f"#include <stdint.h>\nconst uint8_t {name}[{kib} * 1024] = {{1}};\n"
                    f"const uint8_t *{name}_ptr(void) {{ return {name}; }}\n")
    return path


def test_flash_overflow_from_the_samples_alone_names_train_per_class(tmp_path):
    src = _table(tmp_path / "et_samples.c", "et_train_x", 1100)
    with pytest.raises(UserError, match="FLASH overflowed") as e:
        build_selftest(tmp_path / "out", "nucleo-f746", extra_sources=[src], keep=["et_train_x_ptr"])
    msg = str(e.value)
    n = int(re.search(r"embedded samples alone take (\d+) bytes", msg).group(1))
    assert 1100 * 1024 <= n < 1100 * 1024 + 64, msg       # the table and its accessor
    assert "firmware.train_per_class" in msg and "alpha" not in msg and "\n" not in msg


def test_flash_overflow_from_the_model_blames_the_model(tmp_path):
    samples = _table(tmp_path / "et_samples.c", "et_train_x", 4)
    model = _table(tmp_path / "et_model_weights.c", "et_weights", 1100)
    with pytest.raises(UserError, match="FLASH overflowed") as e:
        build_selftest(tmp_path / "out", "nucleo-f746", extra_sources=[samples, model],
                       keep=["et_train_x_ptr", "et_weights_ptr"])
    msg = str(e.value)
    assert "smaller alpha" in msg and "train_per_class" not in msg, msg
