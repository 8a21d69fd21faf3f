"""The JSON API of `alzmri serve` through FastAPI's test client, on real slices and real NIfTI volumes."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import io
import json
import socket
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
nib = pytest.importorskip("nibabel")

import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from alzmri import __version__  # noqa: E402
from alzmri.cli import main  # noqa: E402
from alzmri.data.images import decode_image  # noqa: E402
from alzmri.inference.predict import predict_files  # noqa: E402
from alzmri.serve import DEFAULT_BACKEND, DEFAULT_MICRO_BATCH, create_app  # noqa: E402
from alzmri.serve.batching import MicroBatcher  # noqa: E402


@pytest.fixture(scope="module")
def app(tiny_run):
    return create_app(tiny_run)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def batched_app(tiny_run):
    return create_app(tiny_run, micro_batch=True, batch_wait_s=0.01)


@pytest.fixture(scope="module")
def slices(data_6400):
    """One real slice per class folder of the 6,400 set (the first file by name)."""
    return [sorted(d.glob("*.jpg"))[0] for d in sorted(p for p in data_6400.iterdir() if p.is_dir())]


@pytest.fixture(scope="module")
def mni(tmp_path_factory):
    """The MNI152 T1 template shipped with nilearn (offline), 2 mm, as a gzipped NIfTI file."""
    nilearn_datasets = pytest.importorskip("nilearn.datasets")
    t = nilearn_datasets.load_mni152_template(resolution=2)
    path = tmp_path_factory.mktemp("mni") / "mni152.nii.gz"
    nib.save(nib.Nifti1Image(np.round(np.asarray(t.dataobj, np.float64) * 1000).astype(np.uint16), t.affine), path)
    return path


def post(client, name: str, data: bytes, content_type: str = "image/jpeg", **params):
    return client.post("/predict", params=params, files={"file": (name, data, content_type)})


def assert_clean_error(r, status: int, *needles: str) -> str:
    """A 4xx JSON body {"detail": one line}: no stack trace, no server-side path."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert list(body) == ["detail"] and isinstance(body["detail"], str)
    msg = body["detail"]
    assert "\n" not in msg and len(msg) < 400
    for bad in ("Traceback", 'File "', "alzmri-serve-", "/tmp/", "site-packages", "Error:"):
        assert bad not in r.text, r.text
    for n in needles:
        assert n in msg, msg
    return msg


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height 8-bit gray pixels, with one tiny IDAT chunk."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


# --------------------------------------------------------------------------- health, docs


def test_health_names_the_model_and_its_version(client, tiny_run):
    r = client.get("/health")
    assert r.status_code == 200
    h = r.json()
    sha = hashlib.sha256((tiny_run / "model.safetensors").read_bytes()).hexdigest()
    m = h["model"]
    assert h["status"] == "ok"
    assert m["version"] == f"{__version__}+{sha[:12]}" and m["weights_sha256"] == sha
    assert m["run"] == tiny_run.name and m["name"] == "altzcnn" and m["image_size"] == 32
    assert m["classes"] == ["NonDemented", "VeryMildDemented", "MildDemented", "ModerateDemented"]
    assert m["backend"] == DEFAULT_BACKEND
    assert m["calibrated"] is False and m["temperature"] == 1.0
    assert h["micro_batching"] is DEFAULT_MICRO_BATCH
    assert h["limits"]["max_request_bytes"] == 20_000_000
    assert "Research use only" in h["disclaimer"]


def test_openapi_schema_and_docs_page(client):
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]) == {"/health", "/predict", "/predict/brain"}
    post_op = spec["paths"]["/predict"]["post"]
    assert "multipart/form-data" in post_op["requestBody"]["content"]
    assert {"200", "400", "413", "415", "422"} <= set(post_op["responses"])
    props = spec["components"]["schemas"]["Prediction"]["properties"]
    assert {"predicted_class", "confidence", "probabilities", "model"} <= set(props)
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower() and "openapi.json" in docs.text


def test_page_is_served_with_a_strict_content_security_policy(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert 'id="disclaimer"' in r.text and "Research use only" in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "predict?explain=true" in js.text and "innerHTML" not in js.text


# --------------------------------------------------------------------------- predictions


def test_predict_real_slices_matches_alzmri_predict(client, tiny_run, slices):
    expected = predict_files(tiny_run, slices)
    for path, exp in zip(slices, expected):
        r = post(client, path.name, path.read_bytes())
        assert r.status_code == 200, r.text
        p = r.json()
        probs = p["probabilities"]
        assert list(probs) == p["model"]["classes"]
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-6)
        assert all(0.0 <= v <= 1.0 for v in probs.values())
        assert p["predicted_class"] == max(probs, key=probs.get) == exp["predicted_class"]
        assert p["confidence"] == pytest.approx(max(probs.values()))
        for c in probs:
            assert probs[c] == pytest.approx(exp["probabilities"][c], abs=1e-6)
        assert p["input"] == {**p["input"], "kind": "image", "format": "jpeg", "filename": path.name, "width": 128, "height": 128}
        assert p["explanation"] is None and "Research use only" in p["disclaimer"]


def test_a_photo_is_answered_with_a_not_an_mri_warning_and_a_slice_is_not(client, tiny_run, slices):
    skimage_data = pytest.importorskip("skimage.data")
    buf = io.BytesIO()
    Image.fromarray(skimage_data.chelsea()).save(buf, format="JPEG", quality=90)
    r = post(client, "chelsea.jpg", buf.getvalue())
    assert r.status_code == 200, r.text
    p = r.json()
    expected = predict_files(tiny_run, [slices[0]])[0]  # the CLI's verdict on a real slice, for contrast
    assert p["looks_like_mri"] is False and expected["looks_like_mri"] is True
    assert p["warning"].startswith("chelsea.jpg does not look like a brain MRI slice")
    assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    q = post(client, slices[0].name, slices[0].read_bytes()).json()
    assert q["looks_like_mri"] is True and q["warning"] is None


def test_explain_returns_the_slice_and_a_gradcam_overlay(client, slices):
    path = slices[2]
    p = post(client, path.name, path.read_bytes(), explain="true").json()
    ex = p["explanation"]
    assert ex["explained_class"] == p["predicted_class"] and ex["slice_index"] == 0
    for key in ("overlay_png", "slice_png"):
        assert ex[key].startswith("data:image/png;base64,")
    overlay = np.asarray(Image.open(io.BytesIO(base64.b64decode(ex["overlay_png"].split(",", 1)[1]))))
    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(ex["slice_png"].split(",", 1)[1]))))
    assert overlay.shape == (128, 128, 3) and overlay.dtype == np.uint8
    np.testing.assert_array_equal(shown, decode_image(path, None))
    # the heat map is coloured: the overlay is not the gray slice
    assert np.abs(overlay.astype(int) - shown[..., None]).max() > 20


def test_predict_nifti_volumes(client, tiny_run, mni):
    from nibabel.testing import data_path

    expected = predict_files(tiny_run, [mni])[0]
    r = post(client, mni.name, mni.read_bytes(), "application/gzip", explain="true")
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["input"]["kind"] == "volume" and p["input"]["format"] == "nifti-gz"
    assert p["input"]["n_slices"] == nib.load(mni).shape[2] == expected["n_slices"]
    assert p["input"]["central_slices"] == expected["central_slices"]
    assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    assert p["predicted_class"] == expected["predicted_class"]
    for c, v in p["probabilities"].items():
        assert v == pytest.approx(expected["probabilities"][c], abs=1e-6)
    first, stop = expected["central_slices"]
    assert p["explanation"]["slice_index"] == (first + stop - 1) // 2
    # an uncompressed .nii (nibabel's real anatomical example), declared as octet-stream
    raw = (data_path / "anatomical.nii").read_bytes()
    q = post(client, "anatomical.nii", raw, "application/octet-stream").json()
    assert q["input"]["kind"] == "volume" and q["input"]["format"] == "nifti" and q["input"]["n_slices"] == 25
    assert sum(q["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)


def test_concurrent_requests_share_forward_passes_and_get_the_same_answers(batched_app, client, slices):
    single = {p.name: post(client, p.name, p.read_bytes()).json()["probabilities"] for p in slices}
    stats = batched_app.state.batcher.stats

    async def burst():
        transport = httpx.ASGITransport(app=batched_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://alzmri") as ac:
            reqs = [ac.post("/predict", files={"file": (p.name, p.read_bytes(), "image/jpeg")}) for p in slices * 4]
            return await asyncio.gather(*reqs)

    answers = asyncio.run(burst())
    assert all(r.status_code == 200 for r in answers)
    for r, p in zip(answers, slices * 4):
        for c, v in r.json()["probabilities"].items():
            assert v == pytest.approx(single[p.name][c], abs=1e-6)
    assert stats["requests"] == 16 and stats["slices"] == 16
    assert stats["batches"] < 16  # some requests shared a forward pass
    assert stats["largest_batch"] > 1


def test_micro_batcher_groups_waiting_requests_and_never_splits_one():
    calls = []

    def fn(x):
        calls.append(len(x))
        return np.stack([x.reshape(len(x), -1).mean(axis=1), np.arange(len(x), dtype=float)], axis=1)

    async def run():
        b = MicroBatcher(fn, max_batch=8, max_wait_s=0.05)
        reqs = [np.full((n, 4, 4), i, np.uint8) for i, n in enumerate([1, 2, 3, 1, 6])]
        out = await asyncio.gather(*(b.submit(r) for r in reqs))
        await b.aclose()
        return reqs, out, b.stats

    reqs, out, stats = asyncio.run(run())
    for r, o in zip(reqs, out):
        assert o.shape == (len(r), 2) and np.all(o[:, 0] == r[0, 0, 0])
    assert calls == [7, 6]  # 1+2+3+1 fit in 8; the 6-slice request waits for the next batch
    assert stats == {"requests": 5, "batches": 2, "slices": 13, "largest_batch": 7}


def test_forward_passes_only_see_bucketed_batch_sizes(tiny_run, slices):
    from alzmri.inference.inputs import load_image_files
    from alzmri.runs import predict_proba
    from alzmri.runs import load_model
    from alzmri.inference.backends import BATCH_BUCKETS, bucketed

    model, info = load_model(tiny_run)
    seen = []

    def fn(x):
        seen.append(len(x))
        return predict_proba(model, info, x)

    imgs = load_image_files(slices * 20, info.image_size)  # 80 real slices
    for n in (1, 3, 5, 17, 80):
        np.testing.assert_allclose(bucketed(fn)(imgs[:n]), predict_proba(model, info, imgs[:n]), atol=1e-6)
    assert set(seen) <= set(BATCH_BUCKETS) and seen[:3] == [1, 4, 8]
    assert seen[-3:] == [32, 32, 16]  # 80 = 32 + 32 + 16


def test_onnx_backend_in_the_other_batching_mode_gives_the_same_probabilities(tiny_run, slices, _isolated_cache):
    ref = predict_files(tiny_run, slices[:2])
    onnx_app = create_app(tiny_run, backend="onnx", micro_batch=not DEFAULT_MICRO_BATCH)
    with TestClient(onnx_app) as c:
        h = c.get("/health").json()
        assert h["model"]["backend"] == "onnx" and h["micro_batching"] is not DEFAULT_MICRO_BATCH
        assert (h["batching_stats"] is None) is DEFAULT_MICRO_BATCH
        for path, exp in zip(slices[:2], ref):
            p = post(c, path.name, path.read_bytes(), explain="1").json()
            assert p["predicted_class"] == exp["predicted_class"] and p["explanation"]["explained_class"] == exp["predicted_class"]
            for cls, v in p["probabilities"].items():
                assert v == pytest.approx(exp["probabilities"][cls], abs=1e-4)
    # the run had no .onnx: one was exported into the cache, named by the weights' hash
    sha = hashlib.sha256((tiny_run / "model.safetensors").read_bytes()).hexdigest()
    assert (_isolated_cache / "onnx" / f"{tiny_run.name}-{sha[:12]}.onnx").is_file()


# --------------------------------------------------------------------------- limits and errors


def test_request_over_20_mb_is_413(client):
    big = b"\xff\xd8\xff" + bytes(20_000_000)
    assert_clean_error(post(client, "big.jpg", big), 413, "20,000,000 bytes")

    def chunks():  # no Content-Length: the limit is counted while the body streams in
        yield b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
        for _ in range(25):
            yield bytes(1_000_000)

    r = client.post("/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert_clean_error(r, 413, "limit")
    assert client.get("/health").status_code == 200  # the service is still up


def test_decompression_bombs_are_413(client, tmp_path):
    # a real bomb: 5000 x 5000 black pixels (25 M, over the 16.7 M limit) in a few kB of PNG
    bomb = png_bytes(np.zeros((5000, 5000), np.uint8))
    assert len(bomb) < 100_000
    assert_clean_error(post(client, "bomb.png", bomb, "image/png"), 413, "25,000,000 pixels")
    # a header claiming 40,000 x 40,000 pixels: refused before any pixel is decoded
    assert_clean_error(post(client, "huge.png", png_header_only(40_000, 40_000), "image/png"), 413, "decompression bomb")
    # a gzipped NIfTI whose header claims 1024^3 voxels
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((1024, 1024, 1024))
    hdr.set_data_dtype(np.uint8)
    raw = hdr.binaryblock + b"\x00" * 4 + bytes(100_000)
    assert_clean_error(post(client, "bomb.nii.gz", gzip.compress(raw), "application/gzip"), 413, "voxels")


def test_wrong_content_types_are_415(client, slices):
    jpeg = slices[0].read_bytes()
    assert_clean_error(post(client, "slice.txt", jpeg, "text/plain"), 415, "text/plain")
    assert_clean_error(post(client, "slice.pdf", jpeg, "application/pdf"), 415, "application/pdf")
    assert_clean_error(client.post("/predict", content=jpeg, headers={"content-type": "image/jpeg"}), 415, "multipart/form-data")
    assert_clean_error(client.post("/predict", json={"file": "x"}), 415, "application/json")


def test_unreadable_uploads_are_400_with_a_short_message(client, slices):
    from nibabel.testing import data_path

    rng = np.random.default_rng(0)
    assert_clean_error(post(client, "noise.jpg", rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()), 400, "match none")
    jpeg = slices[0].read_bytes()
    msg = assert_clean_error(post(client, "cut.jpg", jpeg[: len(jpeg) // 3]), 400, "cut.jpg")
    assert "truncated" in msg
    assert_clean_error(post(client, "empty.jpg", b""), 400, "empty")
    assert_clean_error(post(client, "x.gz", gzip.compress(b"not a volume" * 100), "application/gzip"), 400, "match none")
    msg = assert_clean_error(post(client, "example4d.nii.gz", (data_path / "example4d.nii.gz").read_bytes(), "application/gzip"), 400, "example4d.nii.gz", "4D image")
    assert_clean_error(client.post("/predict", files={"other": ("a.jpg", jpeg, "image/jpeg")}), 422, "file")
    assert_clean_error(client.post("/predict", content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data; boundary=b"}), 400)


def test_an_internal_failure_is_a_json_500_without_details(app, slices, monkeypatch):
    import alzmri.serve.predictor as predictor

    def broken(*args, **kwargs):
        raise RuntimeError("secret detail /srv/private/path")

    monkeypatch.setattr(predictor, "decode_upload", broken)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = post(c, "a.jpg", slices[0].read_bytes())
        assert r.status_code == 500 and r.json() == {"detail": "internal error; see the server log"}
        assert "secret" not in r.text and "Traceback" not in r.text
        assert c.get("/health").status_code == 200


# --------------------------------------------------------------------------- the command


def test_serve_command_errors_are_one_line(tmp_path, tiny_run, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        # the port is taken while this socket listens
        s.listen(1)
        assert main(["serve", str(tiny_run), "--port", str(port)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: cannot listen on 127.0.0.1:") and len(err.splitlines()) == 1
    assert main(["serve", str(tmp_path / "missing"), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert "run folder not found" in err and len(err.splitlines()) == 1
    assert main(["serve", str(tiny_run), "--port", str(port), "--backend", "tensorflow"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown backend 'tensorflow'" in err and len(err.splitlines()) == 1
    json.dumps(err)  # plain text, no rich markup objects
