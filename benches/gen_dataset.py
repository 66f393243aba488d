#!/usr/bin/env python3
"""Generate the benchmark's synthetic DICOM dataset (issue 7).

The dataset is written to ``OUT/dicom/<patient>/<study>/<series>/<nnn>.dcm`` and described by
``OUT/manifest.json``, which the benchmark script reads.  It holds:

* the *search* patient (PatientID ``BENCH-SEARCH``, FHIR id ``pat-search``) with 10 CT studies of
  2 series x 10 instances each, for the ImagingStudy search rows;
* the *retrieve* patient (PatientID ``BENCH-RETR``, FHIR id ``pat-retr``) with one CT study of
  3 series x 100 single-frame 512x512 16-bit slices (about 157 MB), the study every retrieve row fetches;
* filler patients (``BENCH-FILL-n``) with studies of the same shape, so that the whole dataset is
  larger than 500 MB and the retrieve study is only part of what the page cache holds.

Everything is deterministic: UIDs are a fixed root plus counters, dates are fixed, and the pixel data is a
fixed pattern rotated per slice, so two runs write byte-identical files.  The pixel bytes are built once
with the ``array`` module and sliced per instance, which keeps generation I/O-bound (numpy is not needed).

Running it again with the same parameters does nothing when ``manifest.json`` says the dataset is
complete; with other parameters it removes the old ``dicom/`` folder and writes a new one.

Usage::

    python3 benches/gen_dataset.py --out /tmp/smart-imaging-bench/data
"""

from __future__ import annotations

import argparse
import array
import json
import math
import os
import shutil
import sys
import time

try:
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
except ImportError:  # pragma: no cover - environment guard
    sys.exit("pydicom is required: pip install pydicom")

# Bump this when the layout or the content of the generated files changes, so that old datasets are
# regenerated instead of reused.
GENERATOR_VERSION = 1

# A fixed root under the 2.25 arc, distinct from the one of the repository's sample data.
UID_ROOT = "2.25.2718281828459045235360287471352"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"

ROWS = 512
COLUMNS = 512


def base_pattern() -> bytes:
    """One 512x512 slice of 12-bit values shaped like a round phantom, as little-endian 16-bit words."""
    pixels = array.array("H", bytes(ROWS * COLUMNS * 2))
    cy, cx = ROWS / 2, COLUMNS / 2
    for y in range(ROWS):
        row = y * COLUMNS
        dy = (y - cy) / cy
        for x in range(COLUMNS):
            dx = (x - cx) / cx
            r = math.sqrt(dx * dx + dy * dy)
            if r < 0.9:
                value = 1024 + int(400 * math.cos(r * 9.0)) + ((x * 7 + y * 13) & 63)
            else:
                value = (x ^ y) & 15
            pixels[row + x] = value
    if sys.byteorder != "little":
        pixels.byteswap()
    return pixels.tobytes()


def slice_bytes(pattern: bytes, k: int) -> bytes:
    """The pattern rotated by a per-slice number of whole pixels, so that every slice differs."""
    shift = ((k * 1031) % (ROWS * COLUMNS)) * 2
    return pattern[shift:] + pattern[:shift]


def make_instance(patient: dict, study: dict, series: dict, number: int, pixel_data: bytes) -> Dataset:
    """One single-frame CT image with the attributes the indexer and a DICOMweb server look at."""
    sop_uid = f"{series['uid']}.{number}"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = EXPLICIT_VR_LE
    meta.ImplementationClassUID = UID_ROOT + ".0.1"
    meta.ImplementationVersionName = "SMARTIMG_BENCH1"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = study["date"]
    ds.SeriesDate = study["date"]
    ds.StudyTime = study["time"]
    ds.AccessionNumber = study["accession"]
    ds.Modality = "CT"
    ds.Manufacturer = "smart-imaging bench"
    ds.ReferringPhysicianName = "Bench^Referrer"
    ds.StudyDescription = study["description"]
    ds.SeriesDescription = series["description"]
    ds.PatientName = patient["name"]
    ds.PatientID = patient["patient_id"]
    ds.PatientBirthDate = patient["birth_date"]
    ds.PatientSex = patient["sex"]
    ds.SliceThickness = "1.0"
    ds.StudyInstanceUID = study["uid"]
    ds.SeriesInstanceUID = series["uid"]
    ds.StudyID = study["study_id"]
    ds.SeriesNumber = series["number"]
    ds.InstanceNumber = number
    ds.ImagePositionPatient = ["-250.0", "-250.0", f"{-number * 1.0:.1f}"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.FrameOfReferenceUID = study["uid"] + ".0"
    ds.SliceLocation = f"{-number * 1.0:.1f}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ROWS
    ds.Columns = COLUMNS
    ds.PixelSpacing = ["0.976562", "0.976562"]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.PixelData = pixel_data
    ds["PixelData"].VR = "OW"
    return ds


def plan(args: argparse.Namespace) -> list[dict]:
    """The patients, studies and series to write, with their UIDs and folders."""
    patients = []
    search = {
        "dir": "bench-search",
        "patient_id": "BENCH-SEARCH",
        "name": "Search^Bench",
        "birth_date": "19700101",
        "sex": "F",
        "studies": [],
    }
    for s in range(1, args.search_studies + 1):
        search["studies"].append({"series": args.search_series, "instances": args.search_instances})
    patients.append(search)
    patients.append({
        "dir": "bench-retr",
        "patient_id": "BENCH-RETR",
        "name": "Retrieve^Bench",
        "birth_date": "19650505",
        "sex": "M",
        "studies": [{"series": args.retrieve_series, "instances": args.retrieve_instances}],
    })
    for f in range(1, args.filler_patients + 1):
        patients.append({
            "dir": f"bench-fill-{f}",
            "patient_id": f"BENCH-FILL-{f}",
            "name": f"Filler{f}^Bench",
            "birth_date": "19800202",
            "sex": "O",
            "studies": [{"series": args.retrieve_series, "instances": args.retrieve_instances}],
        })
    # Give every patient, study and series its UIDs, dates and folders.
    for p_index, patient in enumerate(patients, start=1):
        for s_index, study in enumerate(patient["studies"], start=1):
            study["uid"] = f"{UID_ROOT}.1.{p_index}.{s_index}"
            study["dir"] = f"study-{s_index:02d}"
            study["date"] = f"2024{(s_index - 1) % 12 + 1:02d}{(p_index * 3 + s_index) % 28 + 1:02d}"
            study["time"] = f"{8 + s_index % 10:02d}{(s_index * 7) % 60:02d}00"
            study["accession"] = f"ACC-{p_index}-{s_index}"
            study["study_id"] = str(s_index)
            study["description"] = f"CT BENCH STUDY {s_index}"
            study["series_list"] = [
                {
                    "uid": f"{UID_ROOT}.2.{p_index}.{s_index}.{n}",
                    "number": n,
                    "dir": f"series-{n}",
                    "description": f"AXIAL 1MM PART {n}",
                    "instances": study["instances"],
                }
                for n in range(1, study["series"] + 1)
            ]
    return patients


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="data folder: dicom/ and manifest.json are written here")
    parser.add_argument("--search-studies", type=int, default=10)
    parser.add_argument("--search-series", type=int, default=2)
    parser.add_argument("--search-instances", type=int, default=10, help="instances per search series")
    parser.add_argument("--retrieve-series", type=int, default=3)
    parser.add_argument("--retrieve-instances", type=int, default=100, help="instances per retrieve series")
    parser.add_argument("--filler-patients", type=int, default=2)
    args = parser.parse_args()

    out = os.path.abspath(args.out)
    manifest_path = os.path.join(out, "manifest.json")
    params = {k: v for k, v in vars(args).items() if k != "out"}
    params["generator_version"] = GENERATOR_VERSION
    params["pydicom"] = pydicom.__version__

    # Reuse a complete dataset made with the same parameters: the script is meant to be re-run.
    if os.path.exists(manifest_path):
        with open(manifest_path, encoding="utf-8") as f:
            old = json.load(f)
        if old.get("params") == params and os.path.isdir(os.path.join(out, "dicom")):
            print(f"dataset up to date: {old['files']} files, {old['total_bytes'] / 1e6:.0f} MB in {out}")
            return 0
        os.remove(manifest_path)

    dicom_dir = os.path.join(out, "dicom")
    if os.path.exists(dicom_dir):
        shutil.rmtree(dicom_dir)
    os.makedirs(dicom_dir)

    started = time.monotonic()
    pattern = base_pattern()
    patients = plan(args)
    total_bytes = 0
    files = 0
    retrieve = None
    k = 0
    for patient in patients:
        for study in patient["studies"]:
            study_files = []
            study_bytes = 0
            for series in study["series_list"]:
                folder = os.path.join(dicom_dir, patient["dir"], study["dir"], series["dir"])
                os.makedirs(folder, exist_ok=True)
                for number in range(1, series["instances"] + 1):
                    k += 1
                    ds = make_instance(patient, study, series, number, slice_bytes(pattern, k))
                    path = os.path.join(folder, f"{number:03d}.dcm")
                    pydicom.dcmwrite(path, ds, enforce_file_format=True)
                    size = os.path.getsize(path)
                    total_bytes += size
                    study_bytes += size
                    files += 1
                    study_files.append(os.path.relpath(path, out))
            if patient["patient_id"] == "BENCH-RETR":
                retrieve = {
                    "patient_id": patient["patient_id"],
                    "fhir_id": "pat-retr",
                    "study_uid": study["uid"],
                    "instances": len(study_files),
                    "bytes": study_bytes,
                    "files": study_files,
                }

    manifest = {
        "params": params,
        "files": files,
        "total_bytes": total_bytes,
        "search": {
            "patient_id": "BENCH-SEARCH",
            "fhir_id": "pat-search",
            "studies": args.search_studies,
            "instances": args.search_studies * args.search_series * args.search_instances,
        },
        "retrieve": retrieve,
    }
    # The manifest is written last, through a rename, so that it exists only for a complete dataset.
    with open(manifest_path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
    os.replace(manifest_path + ".tmp", manifest_path)
    print(f"wrote {files} files, {total_bytes / 1e6:.0f} MB in {out} in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
