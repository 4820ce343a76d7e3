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
    ('[select]\nlevels_m = 1\n', "M"),
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
