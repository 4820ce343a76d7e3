"""Config: presets, TOML files, overrides and their errors."""
import pytest

from entropi_tiny.config import Config, load_config, parse_override
from entropi_tiny.errors import UserError


def test_paper_preset_is_the_papers_hyperparameters():
    cfg = load_config("paper")
    assert cfg == Config()
    assert (cfg.prune.lr, cfg.prune.momentum, cfg.prune.weight_decay) == (0.1, 0.9, 1e-4)
    assert (cfg.prune.epochs, cfg.prune.batch_size, cfg.prune.rate) == (90, 128, 0.25)
    assert (cfg.transfer.lr, cfg.transfer.lr_decay, cfg.transfer.seeds) == (1e-5, 0.99, (0, 1, 2))
    assert cfg.select.levels_m == 4


def test_toml_then_overrides(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[model]\narch = "mobilenet_v3_small"\n[prune]\nepochs = 7\ninclude = ["conv"]\n')
    cfg = load_config("quick", f, ["prune.epochs=9", "data.source=imagefolder:/x"])
    assert cfg.model.arch == "mobilenet_v3_small"
    assert cfg.prune.epochs == 9 and cfg.prune.include == ("conv",)
    assert cfg.data.source == "imagefolder:/x"
    assert cfg.model.width == 0.25          # from the quick preset


@pytest.mark.parametrize("text,needle", [
    ('[prune]\nepoch = 3\n', "prune.epoch"),
    ('[pruning]\nepochs = 3\n', "pruning"),
    ('[prune]\nepochs = "three"\n', "integer"),
    ('[model]\narch = "vgg"\n', "vgg"),
    ('[select]\nlevels_m = 1\n', "select.levels_m"),
    ('[prune\n', "not valid TOML"),
])
def test_bad_config_files(tmp_path, text, needle):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(UserError, match=needle):
        load_config("quick", f)


def test_override_syntax():
    assert parse_override("prune.rate=0.5") == {"prune": {"rate": 0.5}}
    with pytest.raises(UserError):
        parse_override("rate=0.5")


# -- hostile settings (issue 16): one line, exit 2, nothing written ------------------

import dataclasses  # noqa: E402
import math  # noqa: E402

from entropi_tiny.config import RANGES, validate  # noqa: E402
from helpers import assert_one_line_error, run_cli  # noqa: E402

DEEP = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize("override,needle", [
    ("model.width=nan", "finite"),
    ("model.width=inf", "finite"),
    ("model.width=-inf", "finite"),
    ("model.width=1e9", "model.width"),
    ("model.width=1" + "0" * 400, "too large"),
    ("prune.seed=100000000000000000000", "prune.seed"),
    ("prune.seed=-1", "prune.seed"),
    ("prune.momentum=-5", "prune.momentum"),
    ("prune.lr=0", "prune.lr"),
    ("prune.lr=nan", "finite"),
    ("prune.epochs=1e400", "integer"),
    ("prune.min_alpha=1", "prune.min_alpha"),
    ("transfer.seeds=[0, -3]", "transfer.seeds"),
    ("transfer.seeds=[" + "1," * 5000 + "]", "more than 1000"),
    ("transfer.lr_decay=0", "transfer.lr_decay"),
    ("firmware.stack_bytes=0", "firmware.stack_bytes"),
    ("firmware.stack_bytes=-4096", "firmware.stack_bytes"),
    ("firmware.stack_bytes=4100", "multiple of 8"),
    ("firmware.stack_bytes=100000000", "firmware.stack_bytes"),
    ("firmware.train_per_class=0", "firmware.train_per_class"),
    ("firmware.batch_size=100000", "firmware.batch_size"),
    ("firmware.lr=-0.1", "firmware.lr"),
    ("firmware.momentum=1", "firmware.momentum"),
    ("firmware.seed=4294967296", "firmware.seed"),
    ("firmware.lr_decay=nan", "finite"),
    ("export.calib_images=0", "export.calib_images"),
    ("select.levels_m=100000", "select.levels_m"),
    ("model.width=" + DEEP, "too deeply"),
    ("prune.include=" + DEEP, "too deeply"),
])
def test_out_of_range_settings_are_refused(override, needle):
    with pytest.raises(UserError, match=needle) as e:
        load_config("quick", None, [override])
    assert "\n" not in str(e.value) and len(str(e.value)) < 300


def test_every_numeric_setting_has_a_declared_range():
    """A new numeric key must say which values make sense (config.RANGES)."""
    cfg = Config()
    for section in dataclasses.fields(cfg):
        for f in dataclasses.fields(getattr(cfg, section.name)):
            value = getattr(getattr(cfg, section.name), f.name)
            items = value if isinstance(value, tuple) else (value,)
            if any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
                key = f"{section.name}.{f.name}"
                assert key in RANGES, f"{key} has no declared range in config.RANGES"
                assert all(RANGES[key].holds(v) for v in items), (key, value)


def test_a_config_built_in_code_is_range_checked_too():
    bad = dataclasses.replace(Config(), model=dataclasses.replace(Config().model, width=math.nan))
    with pytest.raises(UserError, match="finite"):
        validate(bad)


@pytest.mark.parametrize("make,needle", [
    (lambda: "[model]\nwidth = " + "[" * 3000 + "]" * 3000 + "\n", "too deeply"),
    (lambda: "x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n", "too deeply"),
    (lambda: b"[model]\narch = \"r\xe9snet\"\n", "not UTF-8"),
    (lambda: b"\xff\xfe[\x00m\x00", "not UTF-8"),
    (lambda: "[prune]\nmomentum = -5\n", "prune.momentum"),
    (lambda: "[model]\nwidth = nan\n", "finite"),
    (lambda: '[prune]\n"ep\\u001b[31mochs" = 3\n', "ep\\x1b[31mochs"),
])
def test_hostile_config_files(tmp_path, make, needle):
    f = tmp_path / "c.toml"
    content = make()
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(UserError, match=None) as e:
        load_config("quick", f)
    assert needle in str(e.value) and "\n" not in str(e.value), str(e.value)[:300]


@pytest.mark.parametrize("args,needle", [
    (("--set", "model.width=nan"), "finite"),
    (("--set", "prune.seed=100000000000000000000"), "prune.seed"),
    (("--set", "prune.momentum=-5"), "prune.momentum"),
    (("--set", "firmware.stack_bytes=0"), "firmware.stack_bytes"),
    (("--set", "model.width=" + DEEP), "too deeply"),
    (("--config", "CONFIG_NOT_UTF8"), "not UTF-8"),
    (("--config", "CONFIG_DEEP"), "too deeply"),
])
def test_cli_refuses_in_one_line_and_leaves_the_folder_untouched(tmp_path, args, needle):
    (tmp_path / "CONFIG_NOT_UTF8").write_bytes(b"[model]\narch = \"\xff\"\n")
    (tmp_path / "CONFIG_DEEP").write_text("[model]\nwidth = " + "[" * 3000 + "]" * 3000 + "\n")
    args = tuple(str(tmp_path / a) if a.startswith("CONFIG_") else a for a in args)
    run = tmp_path / "run"
    assert_one_line_error(run_cli("prune", "--run-dir", str(run), *args), needle)
    assert not run.exists()          # nothing recorded, so the folder is not poisoned:
    from entropi_tiny.paths import RunPaths
    from entropi_tiny.stages.contract import Run
    from entropi_tiny.stages.prune import guard_levels
    guard_levels(Run(load_config("quick"), RunPaths(run)))   # a good setting is welcome there
