"""`predict` on NIfTI volumes and DICOM series: per-slice probabilities and the central-slice mean."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")

from alzmri.cli import main  # noqa: E402
from alzmri.inference.predict import predict_files  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
from test_volumes import write_dicom_series  # noqa: E402


@pytest.fixture(scope="module")
def mni(tmp_path_factory):
    nilearn_datasets = pytest.importorskip("nilearn.datasets")
    t = nilearn_datasets.load_mni152_template(resolution=2)
    path = tmp_path_factory.mktemp("mni") / "mni152.nii.gz"
    nib.save(nib.as_closest_canonical(nib.Nifti1Image(np.round(np.asarray(t.dataobj, np.float64) * 1000).astype(np.uint16), t.affine)), path)
    return path


def test_volume_prediction_is_the_mean_of_the_central_slices(tiny_run, mni, small_data):
    img = sorted(small_data.rglob("*.jpg"))[0]
    res_img, res = predict_files(tiny_run, [img, mni], n_central=10)
    assert "kind" not in res_img and res["kind"] == "volume"
    assert res["n_slices"] == len(res["slices"]) == nib.load(mni).shape[2]
    first, stop = res["central_slices"]
    assert stop - first == 10 and [s["index"] for s in res["slices"] if s["central"]] == list(range(first, stop))
    names = list(res["probabilities"])
    central = np.array([[s["probabilities"][c] for c in names] for s in res["slices"] if s["central"]])
    np.testing.assert_allclose([res["probabilities"][c] for c in names], central.mean(axis=0), atol=1e-12)
    assert sum(res["probabilities"].values()) == pytest.approx(1.0)
    assert res["predicted_class"] == names[int(np.argmax(central.mean(axis=0)))]


def test_cli_predicts_a_dicom_series_like_its_nifti(tiny_run, mni, tmp_path, capsys):
    img = nib.load(mni)
    series = write_dicom_series(np.asarray(img.dataobj), img.header.get_zooms(), tmp_path / "dicom")
    capsys.readouterr()
    assert main(["predict", str(tiny_run), str(mni), str(series), "--json"]) == 0
    a, b = json.loads(capsys.readouterr().out)
    assert a["central_slices"] == b["central_slices"]
    for c in a["probabilities"]:
        assert a["probabilities"][c] == pytest.approx(b["probabilities"][c], abs=0.02)
    assert main(["predict", str(tiny_run), str(series)]) == 0
    assert "predicted" in capsys.readouterr().out


def test_cli_bad_volume_is_one_line(tiny_run, tmp_path, capsys):
    from nibabel.testing import data_path

    assert main(["predict", str(tiny_run), str(data_path / "example4d.nii.gz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "4D image" in err and len(err.splitlines()) == 1
