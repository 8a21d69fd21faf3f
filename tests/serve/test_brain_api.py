"""`POST /predict/brain` (and `/predict` on a brain-level run) through FastAPI's test client, on a real brain.

The brains and tiny runs are those of tests/inference/test_brain_predict.py (built once
per session); each answer must equal `predict_brain` on the same slices.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("nibabel")

from fastapi.testclient import TestClient  # noqa: E402

from alzmri.inference.brain import predict_brain  # noqa: E402
from alzmri.serve import create_app  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "inference"))
from test_brain_predict import brain_run, held_out_brain  # noqa: E402

#: Keys that differ between the service and the library: the service names uploads, not paths, and adds its model block.
_OWN = {"path", "inputs", "model", "disclaimer"}


@pytest.fixture(scope="module")
def brain(groups_6400, tmp_path_factory):
    return held_out_brain(groups_6400, tmp_path_factory.getbasetemp() / "brain-predict")


@pytest.fixture(scope="module")
def runs(brain, tmp_path_factory, tiny_run):
    base = tmp_path_factory.getbasetemp() / "brain-runs"
    return {"mil": brain_run(brain["train"], base / "mil"), "baseline": brain_run(brain["train"], base / "baseline", model="baseline:atrophy"),
            "slice": tiny_run}


@pytest.fixture(scope="module")
def clients(runs):
    out = {}
    for name, run in runs.items():
        c = TestClient(create_app(run))
        c.__enter__()
        out[name] = c
    yield out
    for c in out.values():
        c.__exit__(None, None, None)


def upload(paths: list[Path], content_type: str = "image/jpeg") -> list:
    return [("file", (p.name, p.read_bytes(), content_type)) for p in paths]


def same_answer(served: dict, ref: dict) -> None:
    assert set(served) - _OWN == set(ref) - _OWN
    for k in set(ref) - _OWN - {"probabilities", "slices", "confidence", "p_demented"}:
        assert served[k] == ref[k], k
    for k in ("confidence", "p_demented"):
        assert served[k] == pytest.approx(ref[k], abs=1e-9)
    assert served["probabilities"] == pytest.approx(ref["probabilities"], abs=1e-9)
    assert len(served["slices"]) == len(ref["slices"])
    for a, b in zip(served["slices"], ref["slices"]):
        assert (a["index"], a["name"], a["position"]) == (b["index"], b["name"], b["position"])
        assert a["weight"] == pytest.approx(b["weight"], abs=1e-9)
        assert (a["probabilities"] is None) == (b["probabilities"] is None)


@pytest.mark.parametrize("which", ["mil", "baseline", "slice"])
def test_slices_upload_gives_the_answer_of_predict_brain(which, clients, runs, brain):
    r = clients[which].post("/predict/brain", files=upload(brain["files"]))
    assert r.status_code == 200, r.text
    got = r.json()
    same_answer(got, predict_brain(runs[which], brain["files"]))
    assert got["n_slices"] == 32 and got["source"] == "files" and got["inputs"] == [p.name for p in brain["files"]]
    assert sum(got["probabilities"].values()) == pytest.approx(1.0)
    assert got["model"]["run"] == Path(runs[which]).name and "Research use only" in got["disclaimer"]
    if which == "mil":
        assert sum(s["weight"] for s in got["slices"]) == pytest.approx(1.0, abs=1e-5)
        assert got["model"]["backend"] == "torch"
    if which == "slice":
        p = np.array([list(s["probabilities"].values()) for s in got["slices"]])
        np.testing.assert_allclose(list(got["probabilities"].values()), p.mean(axis=0), atol=1e-12)


@pytest.mark.parametrize("which", ["mil", "slice"])
def test_nifti_upload_is_one_brain(which, clients, runs, brain):
    data = brain["nifti"].read_bytes()
    r = clients[which].post("/predict/brain", files={"file": ("brain.nii.gz", data, "application/gzip")})
    assert r.status_code == 200, r.text
    got = r.json()
    same_answer(got, predict_brain(runs[which], [brain["nifti"]]))
    assert got["source"] == "volume" and got["volume"]["n_slices"] == 32


def test_predict_on_a_brain_level_run_answers_per_brain(clients, runs, brain):
    c = clients["mil"]
    r = c.post("/predict", files={"file": ("brain.nii.gz", brain["nifti"].read_bytes(), "application/gzip")})
    assert r.status_code == 200, r.text
    same_answer(r.json(), predict_brain(runs["mil"], [brain["nifti"]]))
    one = c.post("/predict", files=upload(brain["files"][:1])).json()
    assert one["n_slices"] == 1 and "brain of one slice" in one["notes"][0]
    r = c.post("/predict", params={"explain": "true"}, files=upload(brain["files"][:1]))
    assert r.status_code == 400 and "Grad-CAM is not available for a brain-level run" in r.json()["detail"]
    health = c.get("/health").json()
    assert health["status"] == "ok" and health["model"]["classes"] == ["NonDemented", "Demented"]


@pytest.mark.parametrize("which", ["mil", "slice"])
def test_bad_brain_uploads_are_one_line_4xx(which, clients, brain):
    c = clients[which]
    text = [("file", ("a.jpg", b"a text file renamed .jpg", "image/jpeg")), ("file", ("b.jpg", b"another", "image/jpeg"))]
    for files, status, needle in (
        (text, 400, "no readable slice among 2 uploaded files"),
        (upload(brain["files"][:2]) + [("file", ("brain.nii.gz", brain["nifti"].read_bytes(), "application/gzip"))], 400, "a NIfTI volume among 3 files"),
        ([("file", ("a.txt", b"hello", "text/plain"))], 415, "unsupported content type"),
    ):
        r = c.post("/predict/brain", files=files)
        assert r.status_code == status, r.text
        detail = r.json()["detail"]
        assert needle in detail and "\n" not in detail and "Traceback" not in r.text and "/tmp/" not in detail
    # one unreadable slice among readable ones is left out and named
    r = c.post("/predict/brain", files=upload(brain["files"]) + text[:1])
    assert r.status_code == 200 and r.json()["n_slices"] == 32 and r.json()["skipped"][0].startswith("a.jpg: ")
    assert c.post("/predict/brain").status_code == 415  # not multipart
    r = c.post("/predict/brain", files={"image": ("a.jpg", brain["files"][0].read_bytes(), "image/jpeg")})
    assert r.status_code == 422 and "file" in r.json()["detail"]  # no field 'file'
