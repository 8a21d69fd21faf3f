"""Hub download -> class folders, tested offline on parquet files built from real images."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import alzmri.data.download as dl
from alzmri.data.classes import CLASS_NAMES
from alzmri.data.download import MARKER_NAME, download_dataset, is_complete_dataset
from alzmri.data.locations import default_cache_dir, default_dataset_dir
from alzmri.data.parquet import HF_LABEL_TO_CLASS, parquet_to_folders
from alzmri.errors import AlzmriError

# Source folder (the Kaggle/Hub spelling) -> the Hub's integer label code.
HUB_CODE = {"Mild_Demented": 0, "Moderate_Demented": 1, "Non_Demented": 2, "Very_Mild_Demented": 3}
PER_CLASS = 3


def real_data_dir() -> Path:
    """The shared 6,400-image set next to the repo, or skip with the reason."""
    root = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "alzheimer-mri-6400"
    if not all((root / name).is_dir() for name in HUB_CODE):
        pytest.skip(f"real Alzheimer MRI images not found at {root} (folders {', '.join(HUB_CODE)})")
    return root


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def real_samples(per_class: int = PER_CLASS) -> list[tuple[bytes, int, str]]:
    """``(jpeg_bytes, hub_label, source_name)`` for ``per_class`` real images of each class."""
    root = real_data_dir()
    out = []
    for folder, code in HUB_CODE.items():
        files = sorted((root / folder).glob("*.jpg"))[:per_class]
        assert len(files) == per_class
        out += [(f.read_bytes(), code, f"{folder}/{f.name}") for f in files]
    return out


def write_hub_parquet(path: Path, rows: list[tuple[bytes, int, str]], *, struct: bool = True) -> Path:
    """Write ``rows`` with the Hub's schema: image struct {bytes, path} (or binary) + int64 label."""
    images = [{"bytes": b, "path": p} for b, _, p in rows] if struct else [b for b, _, _ in rows]
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())]) if struct else pa.binary()
    table = pa.table(
        {"image": pa.array(images, type=image_type), "label": pa.array([l for _, l, _ in rows], type=pa.int64())}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=4)  # several row groups: exercises batching
    return path


def fake_snapshot(root: Path, rows: list[tuple[bytes, int, str]]) -> Path:
    """A folder laid out like the Hub snapshot: data/{train,test}-00000-of-00001.parquet."""
    write_hub_parquet(root / "data" / "train-00000-of-00001.parquet", rows[::2])
    write_hub_parquet(root / "data" / "test-00000-of-00001.parquet", rows[1::2])
    return root


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ALZMRI_CACHE_DIR", str(tmp_path / "cache"))


# --------------------------------------------------------------------------- locations


def test_default_dirs_follow_env(tmp_path, monkeypatch):
    monkeypatch.setenv("ALZMRI_CACHE_DIR", str(tmp_path / "a"))
    assert default_cache_dir() == tmp_path / "a"
    assert default_dataset_dir() == tmp_path / "a" / "datasets" / "alzheimer-mri-6400"
    monkeypatch.delenv("ALZMRI_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "alzmri"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "alzmri"


def test_label_map_is_explicit_and_complete():
    assert HF_LABEL_TO_CLASS == {0: "MildDemented", 1: "ModerateDemented", 2: "NonDemented", 3: "VeryMildDemented"}
    assert sorted(HF_LABEL_TO_CLASS.values()) == sorted(CLASS_NAMES)


# --------------------------------------------------------------------------- parquet_to_folders


@pytest.mark.parametrize("struct", [True, False], ids=["image-struct", "plain-binary"])
def test_parquet_to_folders_writes_identical_bytes_in_canonical_classes(tmp_path, struct):
    rows = real_samples()
    pq_path = write_hub_parquet(tmp_path / "train-00000-of-00001-abcdef.parquet", rows, struct=struct)
    dest = tmp_path / "out"

    counts = parquet_to_folders([pq_path], dest)

    assert counts == {name: PER_CLASS for name in CLASS_NAMES}
    assert list(counts) == list(CLASS_NAMES)
    for cls in CLASS_NAMES:
        expected = {
            f"train_{i:05d}.jpg": sha(b) for i, (b, code, _) in enumerate(rows) if HF_LABEL_TO_CLASS[code] == cls
        }
        got = {f.name: sha(f.read_bytes()) for f in (dest / cls).iterdir()}
        assert got == expected, cls
    # Spot-check the mapping from source folder to canonical class.
    for i, (b, code, src) in enumerate(rows):
        canonical = {"Mild_Demented": "MildDemented", "Moderate_Demented": "ModerateDemented",
                     "Non_Demented": "NonDemented", "Very_Mild_Demented": "VeryMildDemented"}[src.split("/")[0]]
        assert (dest / canonical / f"train_{i:05d}.jpg").read_bytes() == b
    # Mild_Demented is Hub label 0 and must land in MildDemented (not NonDemented, our label 0).
    mild = [b for b, code, src in rows if src.startswith("Mild_Demented/")]
    assert {sha(b) for b in mild} == {sha(f.read_bytes()) for f in (dest / "MildDemented").iterdir()}


def test_split_names_and_row_numbers_continue_across_shards(tmp_path):
    rows = real_samples(1)  # one per class: labels 0, 1, 2, 3
    a = write_hub_parquet(tmp_path / "train-00000-of-00002-x.parquet", rows[:2])
    b = write_hub_parquet(tmp_path / "train-00001-of-00002-y.parquet", rows[2:])
    t = write_hub_parquet(tmp_path / "test-00000-of-00001.parquet", rows[:1])
    dest = tmp_path / "out"
    counts = parquet_to_folders([a, b, t], dest)
    assert counts == {"NonDemented": 1, "VeryMildDemented": 1, "MildDemented": 2, "ModerateDemented": 1}
    names = sorted(f"{p.parent.name}/{p.name}" for p in dest.rglob("*.jpg"))
    assert names == [
        "MildDemented/test_00000.jpg",
        "MildDemented/train_00000.jpg",
        "ModerateDemented/train_00001.jpg",
        "NonDemented/train_00002.jpg",
        "VeryMildDemented/train_00003.jpg",
    ]


def test_png_bytes_get_png_extension(tmp_path):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (8, 8), 128).save(buf, format="PNG")
    pq_path = write_hub_parquet(tmp_path / "test-00000-of-00001.parquet", [(buf.getvalue(), 1, "x.png")])
    parquet_to_folders([pq_path], tmp_path / "out")
    assert (tmp_path / "out" / "ModerateDemented" / "test_00000.png").read_bytes() == buf.getvalue()


def test_missing_label_column_is_a_one_line_error(tmp_path):
    b = real_samples(1)[0][0]
    pq_path = tmp_path / "train-00000-of-00001.parquet"
    pq.write_table(pa.table({"image": pa.array([{"bytes": b, "path": "a.jpg"}])}), pq_path)
    with pytest.raises(AlzmriError) as exc:
        parquet_to_folders([pq_path], tmp_path / "out")
    msg = str(exc.value)
    assert "\n" not in msg and str(pq_path) in msg and "'label'" in msg


@pytest.mark.parametrize("bad", [4, -1])
def test_label_outside_0_3_is_an_error(tmp_path, bad):
    rows = real_samples(1)
    rows = rows[:2] + [(rows[2][0], bad, rows[2][2])]
    pq_path = write_hub_parquet(tmp_path / "train-00000-of-00001.parquet", rows)
    with pytest.raises(AlzmriError) as exc:
        parquet_to_folders([pq_path], tmp_path / "out")
    msg = str(exc.value)
    assert "\n" not in msg and str(pq_path) in msg and "row 2" in msg and str(bad) in msg


def test_not_parquet_is_an_error(tmp_path):
    fake = tmp_path / "train-00000-of-00001.parquet"
    fake.write_bytes(b"this is not parquet at all")
    with pytest.raises(AlzmriError) as exc:
        parquet_to_folders([fake], tmp_path / "out")
    assert "\n" not in str(exc.value) and str(fake) in str(exc.value) and "parquet" in str(exc.value)


def test_non_image_bytes_is_an_error(tmp_path):
    pq_path = write_hub_parquet(tmp_path / "train.parquet", [(b"GIF89a....", 0, "x.gif")])
    with pytest.raises(AlzmriError, match="neither JPEG nor PNG"):
        parquet_to_folders([pq_path], tmp_path / "out")


# --------------------------------------------------------------------------- download_dataset (offline)


def _raiser(exc: BaseException):
    def fake(*args, **kwargs):
        raise exc

    return fake


def _offline_exceptions():
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    out = [
        LocalEntryNotFoundError(
            "An error happened while trying to locate the files on the Hub and we cannot find the\n"
            "appropriate snapshot folder for the specified revision on the local disk."
        ),
        OfflineModeIsEnabled("Cannot reach https://huggingface.co: offline mode is enabled."),
        ConnectionError("[Errno -3] Temporary failure in name resolution"),
        OSError("Network is unreachable"),
        TimeoutError("timed out"),
    ]
    try:
        import httpx2

        out.append(httpx2.ConnectError("[Errno -3] Temporary failure in name resolution"))
    except ImportError:
        pass
    return out


@pytest.mark.parametrize("exc", _offline_exceptions(), ids=lambda e: type(e).__name__)
def test_offline_failure_is_a_one_line_error_and_leaves_nothing(tmp_path, monkeypatch, exc):
    monkeypatch.setattr(dl, "snapshot_download", _raiser(exc))
    dest = tmp_path / "ds"
    with pytest.raises(AlzmriError) as info:
        download_dataset(dest)
    msg = str(info.value)
    assert "\n" not in msg
    assert "offline" in msg and "Falah/Alzheimer_MRI" in msg and "--data PATH" in msg
    assert type(exc).__name__ in msg
    assert not dest.exists()
    assert list(tmp_path.glob(".ds.*")) == []


def test_hf_hub_offline_mode_with_the_real_snapshot_download(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE=1 and an empty Hub cache: the real function fails without any network call."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import time
    dest = tmp_path / "ds"
    with pytest.raises(AlzmriError) as info:
        download_dataset(dest)
    assert "\n" not in str(info.value) and "offline" in str(info.value)
    assert not dest.exists()


def test_download_materialises_once_then_reuses(tmp_path, monkeypatch):
    rows = real_samples()
    snap = fake_snapshot(tmp_path / "snapshot", rows)
    calls = []

    def fake_snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(snap)

    monkeypatch.setattr(dl, "snapshot_download", fake_snapshot_download)
    dest = tmp_path / "ds"

    assert download_dataset(dest) == dest
    assert len(calls) == 1
    repo_id, kwargs = calls[0]
    assert repo_id == "Falah/Alzheimer_MRI"
    assert kwargs["repo_type"] == "dataset" and kwargs["allow_patterns"] == ["*.parquet"]

    marker = json.loads((dest / MARKER_NAME).read_text())
    assert marker["counts"] == {name: PER_CLASS for name in CLASS_NAMES}
    assert marker["total"] == 4 * PER_CLASS
    assert is_complete_dataset(dest)
    written = {sha(f.read_bytes()) for f in dest.rglob("*.jpg")}
    assert written == {sha(b) for b, _, _ in rows}
    splits = {f.name.split("_")[0] for f in dest.rglob("*.jpg")}
    assert splits == {"train", "test"}
    assert list(tmp_path.glob(".ds.*")) == []

    # Second call: complete dataset, no network.
    monkeypatch.setattr(dl, "snapshot_download", _raiser(AssertionError("must not be called")))
    assert download_dataset(dest) == dest

    # force=True re-downloads and replaces it.
    monkeypatch.setattr(dl, "snapshot_download", fake_snapshot_download)
    assert download_dataset(dest, force=True) == dest
    assert len(calls) == 2 and is_complete_dataset(dest)


def test_default_dest_is_under_the_cache(tmp_path, monkeypatch):
    snap = fake_snapshot(tmp_path / "snapshot", real_samples(1))
    monkeypatch.setattr(dl, "snapshot_download", lambda *a, **k: str(snap))
    out = download_dataset()
    assert out == tmp_path / "cache" / "datasets" / "alzheimer-mri-6400"
    assert is_complete_dataset(out)


def test_incomplete_dataset_is_redownloaded(tmp_path, monkeypatch):
    snap = fake_snapshot(tmp_path / "snapshot", real_samples(1))
    calls = []
    monkeypatch.setattr(dl, "snapshot_download", lambda *a, **k: calls.append(1) or str(snap))
    dest = download_dataset(tmp_path / "ds")
    next(dest.rglob("*.jpg")).unlink()  # now the counts disagree with the marker
    assert not is_complete_dataset(dest)
    download_dataset(dest)
    assert len(calls) == 2 and is_complete_dataset(dest)


def test_bad_snapshot_leaves_no_half_dataset(tmp_path, monkeypatch):
    rows = real_samples(1)
    snap = tmp_path / "snapshot"
    write_hub_parquet(snap / "data" / "train-00000-of-00001.parquet", rows)
    write_hub_parquet(snap / "data" / "test-00000-of-00001.parquet", [(rows[0][0], 7, "x.jpg")])
    monkeypatch.setattr(dl, "snapshot_download", lambda *a, **k: str(snap))
    dest = tmp_path / "ds"
    with pytest.raises(AlzmriError, match="label 7"):
        download_dataset(dest)
    assert not dest.exists()
    assert list(tmp_path.glob(".ds.*")) == []


def test_refuses_to_overwrite_a_foreign_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "snapshot_download", _raiser(AssertionError("must not be called")))
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "notes.txt").write_text("keep me")
    with pytest.raises(AlzmriError, match="not empty"):
        download_dataset(dest, force=True)
    assert (dest / "notes.txt").read_text() == "keep me"
