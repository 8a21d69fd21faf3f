"""`alzmri models`: every registered model and baseline with its input size."""

from alzmri.models import get_spec, list_models
from alzmri.models.baselines import BASELINES

from _helpers import run_cli


def test_models_lists_registered_models_and_baselines(capsys):
    code, out, _ = run_cli(capsys, "models")
    assert code == 0
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in out.splitlines() if line.count("│") >= 3}
    for name in list_models():
        assert rows[name] == str(get_spec(name).image_size), name
    for name in BASELINES:
        assert rows[name] == "128"
    assert rows["altzcnn"] == "64" and "``" not in out and ":class:" not in out
