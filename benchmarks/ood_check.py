"""Measure the "does it look like an MRI slice" rule of alzmri.data.slice_check.

Run from the repository root::

    .venv/bin/python benchmarks/ood_check.py [--run runs/main-6400]

Steps
-----
1. **False positives on real slices.** Every file of ``alzheimer-mri-6400`` (6,400) and of
   ``alzheimers-dataset-176x208`` (6,400, train + test) through
   :func:`alzmri.data.slice_check.check_slice_file`; a real slice flagged as "not an MRI
   slice" is a false positive. The range of each measure is printed next to the threshold.
2. **Robustness.** The 6,400 slices re-encoded as RGB JPEG (quality 75, in memory), as
   a user's converter might save them; and, when nilearn is installed, the axial slices
   of the MNI152 T1 template inside its brain extent, brought to 128 x 128 by
   :func:`alzmri.data.volumes.load_volume_slices` (another source, with the skull).
3. **Detection on non-MRI images.** The pictures scikit-image ships (photos, micrographs,
   textures, text; plus three synthetic images reported apart: binary blobs, a
   checkerboard and the Shepp-Logan head phantom), each written as a JPEG file first.
4. **Model confidence** (with ``--run``): the run's maximum probability (its calibration
   temperature applied when ``calibration.json`` exists) on its own test slices and on
   the non-MRI JPEGs, through :func:`alzmri.inference.predict.predict_files`, i.e. the
   whole ``alzmri predict`` path.

The last line printed is one JSON object with every number.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"
sys.path.insert(0, str(REPO / "src"))

from alzmri.data import slice_check as sc  # noqa: E402

PHOTOS = [
    "astronaut", "chelsea", "coffee", "rocket", "camera", "moon", "coins", "page", "text", "horse",
    "hubble_deep_field", "immunohistochemistry", "retina", "brick", "grass", "gravel", "clock",
    "logo", "colorwheel", "microaneurysms", "cell", "skin",
]
SYNTHETIC = ["binary_blobs", "checkerboard", "shepp_logan_phantom"]


def _measures(checks: list[sc.SliceCheck]) -> dict:
    a = np.array([[c.chroma, c.dark_border, c.dark_fraction] for c in checks])
    out = {}
    for j, name in enumerate(("chroma", "dark_border", "dark_fraction")):
        out[name] = {"min": round(float(a[:, j].min()), 4), "p01": round(float(np.percentile(a[:, j], 1)), 4),
                     "median": round(float(np.median(a[:, j])), 4), "p99": round(float(np.percentile(a[:, j], 99)), 4),
                     "max": round(float(a[:, j].max()), 4)}
    return out


def _summary(name: str, checks: list[sc.SliceCheck], files: list[str]) -> dict:
    flagged = [f for f, c in zip(files, checks) if not c.looks_like_mri]
    res = {"n": len(checks), "flagged": len(flagged), "false_positive_rate": round(len(flagged) / max(1, len(checks)), 6),
           "examples": flagged[:5], "measures": _measures(checks)}
    print(f"{name}: {len(flagged)} of {len(checks)} real slices flagged (false-positive rate {res['false_positive_rate']:.4%})")
    for k, v in res["measures"].items():
        print(f"    {k}: min {v['min']}, 1st pct {v['p01']}, median {v['median']}, 99th pct {v['p99']}, max {v['max']}")
    return res


def real_sets() -> dict:
    out = {}
    for ds in ("alzheimer-mri-6400", "alzheimers-dataset-176x208"):
        root = DATASETS / ds
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not files:
            print(f"{ds}: not found at {root}; skipped")
            continue
        out[ds] = _summary(ds, [sc.check_slice_file(f) for f in files], [f.relative_to(root).as_posix() for f in files])
    return out


def rgb_reencoded() -> dict | None:
    root = DATASETS / "alzheimer-mri-6400"
    files = sorted(root.rglob("*.jpg"))
    if not files:
        return None
    checks = []
    for f in files:
        buf = io.BytesIO()
        Image.open(f).convert("RGB").save(buf, "JPEG", quality=75)
        buf.seek(0)
        checks.append(sc.check_image(Image.open(buf)))
    return _summary("alzheimer-mri-6400 re-encoded as RGB JPEG q75", checks, [f.relative_to(root).as_posix() for f in files])


def mni_slices() -> dict | None:
    try:
        import nibabel as nib
        from nilearn import datasets as nd
    except ImportError:
        print("MNI152 slices: nilearn not installed; skipped")
        return None
    from alzmri.data import load_volume_slices

    t = nd.load_mni152_template(resolution=1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mni152.nii.gz"
        nib.save(nib.Nifti1Image(np.asarray(t.dataobj, np.float32), t.affine), path)
        vol = load_volume_slices(path, 128)
    imgs = vol.images[vol.brain]
    checks = [sc.check_gray(im) for im in imgs]
    return _summary(f"MNI152 T1 template (1 mm), {len(imgs)} axial slices of its brain extent at 128x128", checks, [f"slice {i}" for i in np.flatnonzero(vol.brain)])


def _to_uint8(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    if a.dtype != np.uint8:
        a = a.astype(np.float64)
        a = np.round(255 * (a - a.min()) / ((a.max() - a.min()) or 1)).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 4:
        a = a[..., :3]
    return a


def non_mri(folder: Path) -> dict:
    import skimage
    import skimage.data as sd

    rows = {}
    for group, names in (("photos", PHOTOS), ("synthetic", SYNTHETIC)):
        for name in names:
            try:
                a = _to_uint8(getattr(sd, name)())
            except Exception as exc:  # noqa: BLE001 - some images need a download
                rows[name] = {"group": group, "available": False, "why": type(exc).__name__}
                continue
            if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3):
                rows[name] = {"group": group, "available": False, "why": f"shape {a.shape}"}
                continue
            path = folder / f"{name}.jpg"
            Image.fromarray(a).save(path, quality=90)
            c = sc.check_slice_file(path)
            rows[name] = {"group": group, "available": True, "file": str(path), "size": list(a.shape), "flagged": not c.looks_like_mri,
                          **c.as_dict()}
    out = {"scikit_image": skimage.__version__, "images": rows}
    for group in ("photos", "synthetic"):
        got = [r for r in rows.values() if r["group"] == group and r["available"]]
        n_flag = sum(r["flagged"] for r in got)
        out[group] = {"n": len(got), "flagged": n_flag, "detection_rate": round(n_flag / max(1, len(got)), 4),
                      "missed": [k for k, r in rows.items() if r["group"] == group and r["available"] and not r["flagged"]]}
        print(f"non-MRI {group}: {n_flag} of {len(got)} flagged; missed: {', '.join(out[group]['missed']) or 'none'}")
    for name, r in rows.items():
        if r["available"]:
            print(f"    {name:22s} {'FLAGGED' if r['flagged'] else 'passes '}  chroma {r['chroma']:.3f}  dark_border {r['dark_border']:.3f}  dark_fraction {r['dark_fraction']:.3f}")
    return out


def confidence(run: Path, photo_files: list[str]) -> dict:
    import csv

    from alzmri.inference import predict_files
    from alzmri.runs import RunInfo

    info = RunInfo.load(run)
    root = Path(info.data)
    with open(run / "manifest.csv", newline="") as f:
        test = [root / r["path"] for r in csv.DictReader(f) if r["split"] == "test"]
    real = predict_files(run, test)
    photos = predict_files(run, photo_files)

    def stats(res):
        c = np.array([r["confidence"] for r in res])
        return {"n": len(c), "min": round(float(c.min()), 4), "median": round(float(np.median(c)), 4), "max": round(float(c.max()), 4),
                "share_above_0.9": round(float((c > 0.9).mean()), 4), "share_below_0.5": round(float((c < 0.5).mean()), 4)}

    out = {"run": str(run), "calibrated": (run / "calibration.json").is_file(), "test_slices": stats(real), "non_mri": stats(photos),
           "test_slices_flagged": int(sum(not r["looks_like_mri"] for r in real)),
           "non_mri_per_image": {Path(r["path"]).stem: round(r["confidence"], 4) for r in photos}}
    print(f"confidence of {run} (calibrated: {out['calibrated']}): test slices median {out['test_slices']['median']}, "
          f"non-MRI median {out['non_mri']['median']} (max {out['non_mri']['max']}); test slices flagged by the rule: {out['test_slices_flagged']}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="a run folder: also measure its maximum probability on its test slices and the non-MRI images")
    args = ap.parse_args()
    t0 = time.perf_counter()
    result = {"rule": {"max_chroma": sc.MAX_CHROMA, "dark_level": sc.DARK_LEVEL, "border_fraction": sc.BORDER_FRACTION,
                       "min_dark_border": sc.MIN_DARK_BORDER, "dark_fraction_range": list(sc.DARK_FRACTION_RANGE)}}
    result["real"] = real_sets()
    result["rgb_reencoded_6400"] = rgb_reencoded()
    result["mni152"] = mni_slices()
    with tempfile.TemporaryDirectory() as tmp:
        result["non_mri"] = non_mri(Path(tmp))
        if args.run is not None:
            files = [r["file"] for r in result["non_mri"]["images"].values() if r["available"]]
            result["confidence"] = confidence(args.run, files)
        for r in result["non_mri"]["images"].values():
            r.pop("file", None)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
