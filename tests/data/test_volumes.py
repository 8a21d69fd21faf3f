"""NIfTI and DICOM volumes -> axial slices: real volumes (MNI152 template, nibabel's examples), a DICOM series written here."""

import gzip

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")
pydicom = pytest.importorskip("pydicom")

from nibabel.testing import data_path as NIB_DATA  # noqa: E402

from alzmri.data.volumes import FOREGROUND_LEVEL, N_CENTRAL, is_volume_path, load_volume_slices, volume_to_slices  # noqa: E402
from alzmri.errors import AlzmriError  # noqa: E402


@pytest.fixture(scope="module")
def mni(tmp_path_factory):
    """The MNI152 T1 template (shipped with nilearn, offline), at 2 mm, as uint16-quantised RAS data."""
    nilearn_datasets = pytest.importorskip("nilearn.datasets")
    t = nilearn_datasets.load_mni152_template(resolution=2)
    data = np.asarray(t.dataobj, dtype=np.float64)
    data = np.round(data / data.max() * 4000).astype(np.uint16)
    img = nib.as_closest_canonical(nib.Nifti1Image(data, t.affine))
    path = tmp_path_factory.mktemp("mni") / "mni152.nii.gz"
    nib.save(img, path)
    return path


def write_dicom_series(data: np.ndarray, spacing, folder, *, slope=1.0, shuffle=True):
    """Write a RAS volume (X, Y, Z) as an axial MR DICOM series, one file per slice (files and InstanceNumbers shuffled)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    X, Y, Z = data.shape
    sx, sy, sz = spacing
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    order = np.random.default_rng(0).permutation(Z) if shuffle else np.arange(Z)
    for k in range(Z):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientName, ds.PatientID = "MR", "Test^Volume", "T0"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.InstanceNumber = int(order[k]) + 1
        # LPS: columns run to patient left, rows to posterior; pixel (r, c) = RAS voxel (X-1-c, Y-1-r, k)
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-(X - 1) * sx, -(Y - 1) * sy, k * sz]
        ds.PixelSpacing = [sy, sx]
        ds.SliceThickness = sz
        ds.Rows, ds.Columns = Y, X
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = slope, 0
        ds.PixelData = np.ascontiguousarray(data[::-1, ::-1, k].T.astype(np.uint16)).tobytes()
        ds.save_as(folder / f"IM{order[k]:04d}.dcm", enforce_file_format=True)
    return folder


def test_nifti_slices_and_central_rule(mni):
    v = load_volume_slices(mni, 64)
    shape = nib.load(mni).shape
    assert v.images.shape == (shape[2], 64, 64) and v.images.dtype == np.uint8
    assert v.shape == shape and v.spacing == (2.0, 2.0, 2.0) and v.source == "nifti"
    lo, hi = np.flatnonzero(v.brain)[[0, -1]]
    assert v.brain[lo : hi + 1].all() and 40 < hi - lo + 1 < shape[2]
    first, stop = v.central_range
    assert stop - first == min(N_CENTRAL, hi - lo + 1) == v.central.sum()
    assert abs((first + stop - 1) / 2 - (lo + hi) / 2) <= 1  # centred on the brain extent
    assert not v.images[0].any() or (v.images[0] > FOREGROUND_LEVEL).mean() < 0.01  # below the brain: background
    mid = v.images[(first + stop) // 2]
    assert (mid > FOREGROUND_LEVEL).mean() > 0.5  # the crop leaves the brain filling the frame
    assert mid[0].mean() < mid[32].mean() and mid[:, 0].mean() < mid[:, 32].mean()  # black border, brain inside


def test_anterior_up_and_radiological_left_right(mni):
    img = nib.load(mni)
    data = np.asarray(img.dataobj).copy()
    v0 = load_volume_slices(mni, 64)
    k = sum(v0.central_range) // 2
    X, Y, _ = data.shape
    # a bright marker in the anterior-right of the brain at slice k (RAS: small x = right... x grows to the right)
    fg = np.argwhere(data[:, :, k] > 0.3 * data.max())
    xr = fg[:, 0].max() - 6  # patient right: largest x in RAS
    ya = fg[:, 1].max() - 6  # anterior: largest y
    data[xr - 3 : xr + 3, ya - 3 : ya + 3, k] = data.max()
    v = volume_to_slices(nib.Nifti1Image(data, img.affine), 64)
    diff = np.abs(v.images[k].astype(int) - v0.images[k].astype(int))
    r, c = np.unravel_index(np.argmax(diff), diff.shape)
    assert r < 20 and c < 20  # anterior at the top, patient's right on the image's left


def test_orientation_of_the_file_does_not_matter(mni):
    img = nib.load(mni)
    ref = load_volume_slices(mni, 48)
    # the same scan stored sagittally, left-posterior-superior, axes permuted
    ornt = nib.orientations.ornt_transform(nib.orientations.io_orientation(img.affine), nib.orientations.axcodes2ornt(("P", "S", "L")))
    other = img.as_reoriented(ornt)
    assert nib.aff2axcodes(other.affine) == ("P", "S", "L")
    v = volume_to_slices(other, 48)
    np.testing.assert_array_equal(v.images, ref.images)
    np.testing.assert_array_equal(v.central, ref.central)


def test_dicom_series_matches_the_nifti(mni, tmp_path):
    img = nib.load(mni)
    data = np.asarray(img.dataobj)
    folder = write_dicom_series(data, img.header.get_zooms(), tmp_path / "series", slope=0.5)
    (tmp_path / "series" / "notes.txt").write_text("not dicom")  # ignored
    v = load_volume_slices(folder, 48)
    ref = load_volume_slices(mni, 48)
    assert v.source == "dicom" and v.shape == ref.shape and v.spacing == pytest.approx(ref.spacing)
    assert np.abs(v.images.astype(int) - ref.images.astype(int)).max() <= 1
    np.testing.assert_array_equal(v.central, ref.central)
    # one file of the series: a single-slice volume
    one = load_volume_slices(next(folder.glob("*.dcm")), 48)
    assert one.images.shape == (1, 48, 48)


def test_small_real_nifti_from_nibabel():
    v = load_volume_slices(NIB_DATA / "anatomical.nii", 32)
    assert v.images.shape[1:] == (32, 32) and v.central.sum() == min(N_CENTRAL, v.brain.sum())


def test_bad_volumes_give_one_line_errors(mni, tmp_path):
    with pytest.raises(AlzmriError, match=r"4D image of shape \(128, 96, 24, 2\)") as e:
        load_volume_slices(NIB_DATA / "example4d.nii.gz", 32)
    assert "\n" not in str(e.value)
    cut = tmp_path / "truncated.nii.gz"
    raw = mni.read_bytes()
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(AlzmriError, match="unreadable or truncated NIfTI"):
        load_volume_slices(cut, 32)
    plain = tmp_path / "truncated.nii"
    plain.write_bytes(gzip.decompress(raw)[:100_000])
    with pytest.raises(AlzmriError, match="unreadable or truncated NIfTI"):
        load_volume_slices(plain, 32)
    # a DICOM file without pixel data, alone and as the only file of a folder
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # basic text SR
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID, "SR"
    (tmp_path / "sr").mkdir()
    ds.save_as(tmp_path / "sr" / "report.dcm", enforce_file_format=True)
    with pytest.raises(AlzmriError, match="without pixel data"):
        load_volume_slices(tmp_path / "sr" / "report.dcm", 32)
    with pytest.raises(AlzmriError, match=r"no DICOM image files found \(1 without pixel data\)"):
        load_volume_slices(tmp_path / "sr", 32)
    with pytest.raises(AlzmriError, match="volume not found"):
        load_volume_slices(tmp_path / "nope.nii.gz", 32)
    blank = tmp_path / "blank.nii"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.float32), np.eye(4)), blank)
    with pytest.raises(AlzmriError, match="constant volume"):
        load_volume_slices(blank, 32)
    assert is_volume_path(mni) and is_volume_path(tmp_path) and not is_volume_path(tmp_path / "a.jpg")
