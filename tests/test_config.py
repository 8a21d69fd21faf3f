import pytest

from alzmri.config import load_train_config
from alzmri.errors import AlzmriError


def test_defaults_are_the_notebooks():
    cfg = load_train_config()
    assert (cfg.model, cfg.epochs, cfg.batch_size, cfg.lr, cfg.in_chans, cfg.fractions) == ("altzcnn", 20, 128, 3e-4, 1, (0.7, 0.15, 0.15))


def test_yaml_then_command_line_precedence(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("epochs: 5\nlr: 0.001\ndata: ./somewhere\n")
    cfg = load_train_config(f, epochs=7, lr=None)
    assert cfg.epochs == 7 and cfg.lr == 0.001
    assert cfg.data == tmp_path / "somewhere"


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("lerning_rate: 0.1\n", r"c.yaml: unknown key 'lerning_rate'"),
        ("epochs: ten\n", r"c.yaml: 'epochs' input should be a valid integer.*got 'ten'"),
        ("lr: -0.1\n", r"c.yaml: 'lr' input should be greater than 0; got -0.1"),
        ("in_chans: 2\n", r"'in_chans'"),
        ("- a\n- b\n", r"a config must be a YAML mapping"),
        ("epochs: [1\n", r"not valid YAML"),
    ],
)
def test_bad_config_files_give_one_line_errors(tmp_path, text, pattern):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(AlzmriError, match=pattern) as exc:
        load_train_config(f)
    assert "\n" not in str(exc.value)


def test_bad_command_line_value():
    with pytest.raises(AlzmriError, match=r"command line: 'batch_size' input should be greater than 0"):
        load_train_config(batch_size=0)
