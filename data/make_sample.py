#!/usr/bin/env python3
"""Generate the small, synthetic sample DICOM dataset used by the SMART Imaging
Access server for development, demos and tests.

The script writes a deterministic tree of DICOM Part 10 files to ``dicom/``
next to this script (``data/dicom/`` in the repository), laid out as
``<patient>/<study>/<series>/<nnn>.dcm``.  Running it again produces
byte-identical files: every UID is derived from a fixed root under ``2.25``
plus counters, every date and time is written explicitly, the noise in the
images comes from generators seeded per instance, and nothing depends on the
clock or on ``uuid4``.  All data is synthetic; no real patient is described.

The images are computed phantoms (``phantoms.py`` beside this script), 256x256
16-bit MONOCHROME2 with 12 bits stored, so that every series shows something a
person recognises at the window its files carry: the CT studies are axial
slices of a chest and an abdomen in Hounsfield units (RescaleSlope 1,
RescaleIntercept -1024) with a soft tissue window (40/400), or a lung window
(-600/1500) for the lung series (the multi-frame Secondary Capture images
store Hounsfield units plus 1024 with no rescale, and carry the soft tissue
window in those units, 1064/400); the MR study is the modified Shepp-Logan head
phantom, sliced at different heights, in T1, FLAIR and diffusion contrast (no
window: a viewer shows the full range).  The dataset is a few megabytes in all
but varied, so that a header indexer meets the cases it must handle in
practice:

* Patient ``MRN-1001`` (``Müller^Anna``, SpecificCharacterSet ``ISO_IR 100``,
  so the name is stored in Latin-1) has two studies.  The CT chest study
  (with a TimezoneOffsetFromUTC of ``+0100``) holds two CT series in explicit
  VR little endian; every instance carries a ProcedureCodeSequence and one
  instance carries a private element.  The MR brain study (StudyTime with
  fractional seconds, no timezone offset) holds one MR series in implicit VR
  little endian, whose instances carry nested sequences of undefined length,
  one MR series in explicit VR little endian, whose instances carry a
  ReferencedStudySequence of undefined length, and one MR series of two
  instances in deflated explicit VR little endian.
* Patient ``MRN-2002`` (``Tanaka^Yuki``, SpecificCharacterSet ``ISO_IR 192``,
  that is UTF-8) has one CT study without a StudyTime.  It holds one series
  of single-frame CT images in explicit VR big endian (a retired transfer
  syntax that readers should still accept) and one series of two multi-frame
  Secondary Capture images (four frames each) in explicit VR little endian.

Every instance has a complete File Meta Information header (preamble,
``DICM`` prefix, MediaStorageSOPClassUID, MediaStorageSOPInstanceUID,
TransferSyntaxUID, ImplementationClassUID) and an image of its own: single
frame instances are slices at their own ImagePositionPatient, and each frame of
a multi-frame instance is another slice of the abdomen.  The pixel bytes are
built with plain ``struct`` packing, so numpy is not needed.

After writing, the script reads every file back with pydicom, checks the
important attributes, prints a table of patients, studies, series, instance
counts and transfer syntaxes, and fails if the total size reaches 25 MB.
Drawing the phantoms takes some seconds.

Usage::

    pip install pydicom      # pydicom 3.x
    python3 data/make_sample.py [--output DIR]
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
from collections import OrderedDict

try:
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
except ImportError:  # pragma: no cover - environment guard
    sys.exit("pydicom is required: pip install pydicom")

import phantoms

# ---------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------

# Fixed UID root under the 2.25 (UUID-derived integer) arc.  All UIDs are this
# root followed by counters, so they are unique within the sample and stable.
UID_ROOT = "2.25.3141592653589793238462643383279"
IMPLEMENTATION_CLASS_UID = UID_ROOT + ".0.1"
IMPLEMENTATION_VERSION_NAME = "SMARTIMG_SAMPLE1"

IMPLICIT_VR_LE = "1.2.840.10008.1.2"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
EXPLICIT_VR_BE = "1.2.840.10008.1.2.2"
DEFLATED_EXPLICIT_VR_LE = "1.2.840.10008.1.2.1.99"
TS_NAMES = {
    IMPLICIT_VR_LE: "Implicit VR Little Endian",
    EXPLICIT_VR_LE: "Explicit VR Little Endian",
    EXPLICIT_VR_BE: "Explicit VR Big Endian",
    DEFLATED_EXPLICIT_VR_LE: "Deflated Explicit VR Little Endian",
}

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
SC_MF_GRAY_WORD_STORAGE = "1.2.840.10008.5.1.4.1.1.7.3"

ROWS = phantoms.SIZE
COLUMNS = phantoms.SIZE
MAX_TOTAL_BYTES = 25 * 1024 * 1024
CT_SPACING_MM = 1.5  # a 384 mm field of view: the whole body and the couch
MR_SPACING_MM = 0.9375  # a 240 mm field of view: the head
# Stored values of the CT images are Hounsfield units plus 1024 (RescaleIntercept -1024).
HU_OFFSET = 1024
# MR phantom values (0 to about 1) are stored times this.
MR_SCALE = 2000

# ---------------------------------------------------------------------------
# Sample description
# ---------------------------------------------------------------------------

PATIENTS = [
    {
        "dir": "mrn-1001",
        "PatientID": "MRN-1001",
        "PatientName": "Müller^Anna",
        "SpecificCharacterSet": "ISO_IR 100",
        "PatientBirthDate": "19700412",
        "PatientSex": "F",
        "studies": [
            {
                "dir": "ct-chest",
                "StudyDate": "20240105",
                "StudyTime": "093000",
                "TimezoneOffsetFromUTC": "+0100",
                "AccessionNumber": "ACC-1",
                "StudyID": "1",
                "StudyDescription": "CT CHEST W/O CONTRAST",
                "ReferringPhysicianName": "Smith^John",
                "InstitutionName": "Klinikum Süd",
                "BodyPartExamined": "CHEST",
                "procedure_code": ("24627-2", "LN", "CT Chest"),
                "series": [
                    {
                        "dir": "series-1",
                        "Modality": "CT",
                        "SOPClassUID": CT_IMAGE_STORAGE,
                        "SeriesDescription": "AXIAL 5MM SOFT TISSUE",
                        "SeriesTime": "093512",
                        "transfer_syntax": EXPLICIT_VR_LE,
                        "instances": 10,
                        "frames": 1,
                        "phantom": ("chest", None),
                        "window": ("40", "400"),
                    },
                    {
                        "dir": "series-2",
                        "Modality": "CT",
                        "SOPClassUID": CT_IMAGE_STORAGE,
                        "SeriesDescription": "AXIAL 5MM LUNG",
                        "SeriesTime": "093514",
                        "transfer_syntax": EXPLICIT_VR_LE,
                        "instances": 9,
                        "frames": 1,
                        "phantom": ("chest", None),
                        "window": ("-600", "1500"),
                        "private_tag_on_first": True,
                    },
                ],
            },
            {
                "dir": "mr-brain",
                "StudyDate": "20240612",
                "StudyTime": "141500.123",
                "AccessionNumber": "ACC-2",
                "StudyID": "2",
                "StudyDescription": "MR BRAIN W/O CONTRAST",
                "ReferringPhysicianName": "Smith^John",
                "InstitutionName": "Klinikum Süd",
                "BodyPartExamined": "HEAD",
                "series": [
                    {
                        "dir": "series-1",
                        "Modality": "MR",
                        "SOPClassUID": MR_IMAGE_STORAGE,
                        "SeriesDescription": "AX T1",
                        "SeriesTime": "142010",
                        "transfer_syntax": IMPLICIT_VR_LE,
                        "instances": 5,
                        "frames": 1,
                        "phantom": ("head", "T1"),
                        "request_attributes": True,
                    },
                    {
                        "dir": "series-2",
                        "Modality": "MR",
                        "SOPClassUID": MR_IMAGE_STORAGE,
                        "SeriesDescription": "AX T2 FLAIR",
                        "SeriesTime": "142745",
                        "transfer_syntax": EXPLICIT_VR_LE,
                        "instances": 5,
                        "frames": 1,
                        "phantom": ("head", "FLAIR"),
                        "referenced_study": ("patient", 0, 0),
                    },
                    {
                        "dir": "series-3",
                        "Modality": "MR",
                        "SOPClassUID": MR_IMAGE_STORAGE,
                        "SeriesDescription": "AX DWI",
                        "SeriesTime": "143310",
                        "transfer_syntax": DEFLATED_EXPLICIT_VR_LE,
                        "instances": 2,
                        "frames": 1,
                        "phantom": ("head", "DWI"),
                    },
                ],
            },
        ],
    },
    {
        "dir": "mrn-2002",
        "PatientID": "MRN-2002",
        "PatientName": "Tanaka^Yuki",
        "SpecificCharacterSet": "ISO_IR 192",
        "PatientBirthDate": "19881130",
        "PatientSex": "M",
        "studies": [
            {
                "dir": "ct-abdomen",
                "StudyDate": "20231220",
                # No StudyTime on purpose.
                "AccessionNumber": "ACC-3",
                "StudyID": "1",
                "StudyDescription": "CT ABDOMEN PELVIS",
                "ReferringPhysicianName": "Sato^Hiroshi",
                "InstitutionName": "Tōkyō Clinic",
                "BodyPartExamined": "ABDOMEN",
                "procedure_code": ("72251-2", "LN", "CT Abdomen and Pelvis"),
                "series": [
                    {
                        "dir": "series-1",
                        "Modality": "CT",
                        "SOPClassUID": CT_IMAGE_STORAGE,
                        "SeriesDescription": "AXIAL 3MM",
                        "transfer_syntax": EXPLICIT_VR_BE,
                        "instances": 5,
                        "frames": 1,
                        "phantom": ("abdomen", None),
                        "window": ("40", "400"),
                    },
                    {
                        "dir": "series-2",
                        "Modality": "CT",
                        "SOPClassUID": SC_MF_GRAY_WORD_STORAGE,
                        "SeriesDescription": "MULTIFRAME SECONDARY CAPTURE",
                        "transfer_syntax": EXPLICIT_VR_LE,
                        "instances": 2,
                        "frames": 4,
                        "phantom": ("abdomen", None),
                        # Stored values: Hounsfield units plus 1024, with no rescale to undo it.
                        "window": ("1064", "400"),
                    },
                ],
            }
        ],
    },
]

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def study_uid(p: int, s: int) -> str:
    return f"{UID_ROOT}.1.{p}.{s}"


def series_uid(p: int, s: int, se: int) -> str:
    return f"{UID_ROOT}.2.{p}.{s}.{se}"


def instance_uid(p: int, s: int, se: int, i: int) -> str:
    return f"{UID_ROOT}.3.{p}.{s}.{se}.{i}"


def slice_spacing(p: int, series) -> float:
    """Millimetres between the slices of a single-frame series."""
    if series["Modality"] == "MR":
        return 15.0  # five slices through the head, from the ventricles down
    return 5.0 if p == 1 else 3.0


def frame_values(p: int, series, i: int, frame: int, seed: int) -> list[int]:
    """Return ROWS*COLUMNS 12-bit stored values for frame `frame` of instance `i` of `series`.

    A single-frame instance is the slice at its ImagePositionPatient; the frames of the multi-frame
    instances are slices of the abdomen 15 mm apart, one after the other through both instances.
    """
    kind, contrast = series["phantom"]
    if series["frames"] == 1:
        depth = slice_spacing(p, series) * (i - 1)  # millimetres below the first slice
    else:
        depth = 30 + 15 * ((i - 1) * series["frames"] + frame)
    if kind == "head":
        unit = ROWS * MR_SPACING_MM / 2  # the phantom spans the field of view
        # The first slice is 15 mm above the phantom's centre: the textbook slice, both ventricles in it.
        values = phantoms.head((15 - depth) / unit, contrast, MR_SPACING_MM, seed)
        return phantoms.stored_words(values, 0, MR_SCALE)
    draw = phantoms.chest if kind == "chest" else phantoms.abdomen
    return phantoms.stored_words(draw(depth, CT_SPACING_MM, seed), HU_OFFSET, 1)


def pixel_bytes(p: int, series, i: int, seed: int, little_endian: bool) -> bytes:
    """Pack the frames of instance `i` as unsigned 16-bit words; `seed` makes each instance's noise its own.

    pydicom does not byte-swap OW values, so big endian data is packed here.
    """
    fmt = ("<" if little_endian else ">") + f"{ROWS * COLUMNS}H"
    return b"".join(
        struct.pack(fmt, *frame_values(p, series, i, f, seed * 8 + f)) for f in range(series["frames"])
    )


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def undefined_length(seq_elem) -> None:
    """Mark a sequence element and its items as undefined length."""
    seq_elem.is_undefined_length = True
    for item in seq_elem.value:
        item.is_undefined_length_sequence_item = True


# ---------------------------------------------------------------------------
# Dataset construction
# ---------------------------------------------------------------------------


def build_instance(p, patient, s, study, se, series, i, seed):
    """Build one instance; returns (dataset, transfer syntax)."""
    ts = series["transfer_syntax"]
    frames = series["frames"]
    little_endian = ts != EXPLICIT_VR_BE

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = series["SOPClassUID"]
    meta.MediaStorageSOPInstanceUID = instance_uid(p, s, se, i)
    meta.TransferSyntaxUID = ts
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME

    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128

    # SOP Common
    ds.SpecificCharacterSet = patient["SpecificCharacterSet"]
    if series["Modality"] in ("CT", "MR") and frames == 1:
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    else:
        ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.SOPClassUID = series["SOPClassUID"]
    ds.SOPInstanceUID = instance_uid(p, s, se, i)

    # General Study
    ds.StudyDate = study["StudyDate"]
    ds.SeriesDate = study["StudyDate"]
    ds.ContentDate = study["StudyDate"]
    if "StudyTime" in study:
        ds.StudyTime = study["StudyTime"]
    if "SeriesTime" in series:
        ds.SeriesTime = series["SeriesTime"]
        ds.ContentTime = series["SeriesTime"]
    ds.AccessionNumber = study["AccessionNumber"]
    ds.Modality = series["Modality"]
    if frames > 1:
        ds.ConversionType = "WSD"
    ds.Manufacturer = "SMART Imaging Sample Generator"
    ds.InstitutionName = study["InstitutionName"]
    ds.ReferringPhysicianName = study["ReferringPhysicianName"]
    if "TimezoneOffsetFromUTC" in study:
        ds.TimezoneOffsetFromUTC = study["TimezoneOffsetFromUTC"]
    ds.StudyDescription = study["StudyDescription"]
    if "procedure_code" in study:
        ds.ProcedureCodeSequence = Sequence([code_item(*study["procedure_code"])])
    ds.SeriesDescription = series["SeriesDescription"]
    if "referenced_study" in series:
        ref = Dataset()
        ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Mgmt
        ref.ReferencedSOPInstanceUID = study_uid(1, 1)
        ds.ReferencedStudySequence = Sequence([ref])
        undefined_length(ds["ReferencedStudySequence"])

    # Patient
    ds.PatientName = patient["PatientName"]
    ds.PatientID = patient["PatientID"]
    ds.PatientBirthDate = patient["PatientBirthDate"]
    ds.PatientSex = patient["PatientSex"]

    # Equipment / acquisition
    ds.BodyPartExamined = study["BodyPartExamined"]
    if series["Modality"] == "CT" and frames == 1:
        ds.SliceThickness = "5" if p == 1 else "3"
        ds.KVP = "120"
    elif series["Modality"] == "MR":
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = "NONE"
        ds.SliceThickness = "5"
        ds.RepetitionTime = "500" if se == 1 else "9000"
        ds.EchoTime = "12" if se == 1 else "90"
        ds.MagneticFieldStrength = "3"
    if frames > 1:
        ds.FrameTime = "100"

    # General Series / Image / Study identifiers
    ds.StudyInstanceUID = study_uid(p, s)
    ds.SeriesInstanceUID = series_uid(p, s, se)
    ds.StudyID = study["StudyID"]
    ds.SeriesNumber = se
    ds.InstanceNumber = i

    pixel_spacing = CT_SPACING_MM if series["Modality"] == "CT" else MR_SPACING_MM
    if frames == 1:
        z = -slice_spacing(p, series) * (i - 1)
        corner = -ROWS * pixel_spacing / 2 + pixel_spacing / 2  # the centre of the first pixel
        ds.ImagePositionPatient = [f"{corner:g}", f"{corner:g}", f"{z:g}"]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.FrameOfReferenceUID = f"{UID_ROOT}.4.{p}.{s}"
        ds.SliceLocation = f"{z:g}"

    if series.get("request_attributes"):
        req = Dataset()
        req.RequestedProcedureID = f"RP-{p}{s}"
        req.ScheduledProcedureStepID = f"SPS-{p}{s}{se}"
        req.ScheduledProtocolCodeSequence = Sequence(
            [code_item("P-BRAIN-T1", "99SMARTIMG", "Brain T1 axial")]
        )
        undefined_length(req["ScheduledProtocolCodeSequence"])
        ds.RequestAttributesSequence = Sequence([req])
        undefined_length(ds["RequestAttributesSequence"])

    # Image Pixel
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    if frames > 1:
        ds.NumberOfFrames = frames
        ds.FrameIncrementPointer = 0x00181063  # Frame Time
    ds.Rows = ROWS
    ds.Columns = COLUMNS
    ds.PixelSpacing = [f"{pixel_spacing:g}", f"{pixel_spacing:g}"]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    if "window" in series:
        ds.WindowCenter, ds.WindowWidth = series["window"]
    if series["Modality"] == "CT" and frames == 1:
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
    elif frames > 1:
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = "1"
        ds.RescaleType = "US"

    if series.get("private_tag_on_first") and i == 1:
        block = ds.private_block(0x0009, "SMARTIMG SAMPLE", create=True)
        block.add_new(0x01, "LO", "synthetic private value")
        block.add_new(0x02, "US", 42)

    ds.add_new(0x7FE00010, "OW", pixel_bytes(p, series, i, seed, little_endian))
    return ds, ts


def generate(out_dir: str) -> list[str]:
    written = []
    seed = 0  # one per instance, for its noise
    for p, patient in enumerate(PATIENTS, start=1):
        for s, study in enumerate(patient["studies"], start=1):
            for se, series in enumerate(study["series"], start=1):
                series_dir = os.path.join(out_dir, patient["dir"], study["dir"], series["dir"])
                os.makedirs(series_dir, exist_ok=True)
                for i in range(1, series["instances"] + 1):
                    seed += 1
                    ds, ts = build_instance(p, patient, s, study, se, series, i, seed)
                    path = os.path.join(series_dir, f"{i:03d}.dcm")
                    little = ts != EXPLICIT_VR_BE
                    implicit = ts == IMPLICIT_VR_LE
                    ds.save_as(
                        path,
                        implicit_vr=implicit,
                        little_endian=little,
                        enforce_file_format=True,
                    )
                    written.append(path)
    return written


def prune_stale(out_dir: str, written: list[str]) -> list[str]:
    """Remove .dcm files left over from an older layout of the sample."""
    keep = {os.path.abspath(p) for p in written}
    removed = []
    for root, _dirs, files in os.walk(out_dir):
        for name in files:
            path = os.path.abspath(os.path.join(root, name))
            if name.endswith(".dcm") and path not in keep:
                os.remove(path)
                removed.append(path)
    for root, dirs, files in os.walk(out_dir, topdown=False):
        if root != out_dir and not dirs and not files:
            os.rmdir(root)
    return removed


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def validate(out_dir: str, written: list[str]) -> int:
    """Read every file back, check it, print a summary; return total bytes."""
    total = 0
    sop_uids = set()
    tree: "OrderedDict" = OrderedDict()
    required = [
        "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
        "Modality", "SeriesNumber", "SeriesDescription", "InstanceNumber", "Rows",
        "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
        "SamplesPerPixel", "PhotometricInterpretation", "PixelData", "PatientID",
        "PatientName", "StudyDate",
    ]
    for path in written:
        size = os.path.getsize(path)
        total += size
        with open(path, "rb") as fh:
            head = fh.read(132)
        assert head[:128] == b"\x00" * 128 and head[128:132] == b"DICM", path
        ds = pydicom.dcmread(path)
        meta = ds.file_meta
        for kw in ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID",
                   "TransferSyntaxUID", "ImplementationClassUID"):
            assert kw in meta, f"{path}: missing {kw}"
        for kw in required:
            assert kw in ds, f"{path}: missing {kw}"
        assert meta.MediaStorageSOPClassUID == ds.SOPClassUID, path
        assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID, path
        assert ds.SOPInstanceUID not in sop_uids, f"duplicate SOP UID in {path}"
        sop_uids.add(ds.SOPInstanceUID)
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (16, 12, 11), path
        frames = int(ds.get("NumberOfFrames", 1))
        assert len(ds.PixelData) == ds.Rows * ds.Columns * frames * 2, path
        ts = str(meta.TransferSyntaxUID)
        # Pixel values must decode to 12-bit values in the declared byte order (a soft tissue value
        # read in the wrong order is far above 4095).
        order = ">" if ts == EXPLICIT_VR_BE else "<"
        words = struct.unpack(f"{order}{ROWS * COLUMNS}H", ds.PixelData[:ROWS * COLUMNS * 2])
        assert max(words) < 4096, f"{path}: pixel byte order looks wrong ({max(words)})"

        key_p = (str(ds.PatientID), str(ds.PatientName), ds.SpecificCharacterSet)
        key_s = (str(ds.StudyInstanceUID), ds.StudyDate, ds.get("StudyTime", ""),
                 ds.get("StudyDescription", ""))
        key_se = (int(ds.SeriesNumber), str(ds.SeriesInstanceUID), ds.Modality, ts,
                  os.path.relpath(os.path.dirname(path), out_dir))
        series = tree.setdefault(key_p, OrderedDict()).setdefault(
            key_s, OrderedDict()).setdefault(key_se, {"instances": 0, "frames": 0, "bytes": 0})
        series["instances"] += 1
        series["frames"] += frames
        series["bytes"] += size

    # The Latin-1 name must really be stored as Latin-1 bytes on disk.
    latin1_file = next(p for p in written if os.sep + "mrn-1001" + os.sep in p)
    with open(latin1_file, "rb") as fh:
        assert "Müller^Anna".encode("latin-1") in fh.read(), "PatientName not Latin-1"

    n_studies = sum(len(studies) for studies in tree.values())
    n_series = sum(len(se) for studies in tree.values() for se in studies.values())
    modalities = sorted({k[2] for st in tree.values() for se in st.values() for k in se})
    print()
    print(f"Validated {len(written)} files: {len(tree)} patients, {n_studies} studies, "
          f"{n_series} series, modalities {', '.join(modalities)}")
    for (pid, pname, charset), studies in tree.items():
        print(f"\nPatient {pid}  name={pname!r}  charset={charset}")
        for (st_uid, date, time, desc), series_map in studies.items():
            print(f"  Study {st_uid}  date={date} time={time or '-'}  {desc!r}")
            for (num, se_uid, mod, ts, rel), info in series_map.items():
                print(f"    Series {num} {mod} {se_uid}")
                print(f"      dir={rel}  instances={info['instances']}  "
                      f"frames={info['frames']}  bytes={info['bytes']}  "
                      f"ts={ts} ({TS_NAMES.get(ts, '?')})")
    assert len(tree) >= 2 and n_studies >= 3 and len(modalities) >= 2
    assert len(written) >= 30
    return total


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=os.path.join(here, "dicom"),
                        help="output folder (default: dicom/ next to this script)")
    args = parser.parse_args()
    out_dir = os.path.abspath(args.output)
    os.makedirs(out_dir, exist_ok=True)

    print(f"pydicom {pydicom.__version__}; writing sample to {out_dir}")
    written = generate(out_dir)
    removed = prune_stale(out_dir, written)
    for path in removed:
        print(f"removed stale file {path}")
    total = validate(out_dir, written)
    print(f"\nSummary: {len(written)} files, {total} bytes "
          f"({total / 1024:.1f} KiB) in {out_dir}")
    if total >= MAX_TOTAL_BYTES:
        print(f"ERROR: total size {total} is not under {MAX_TOTAL_BYTES} bytes")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
