#!/usr/bin/env python3
"""Write a deterministic folder of small DICOM files for the indexing benchmark (issue 5, item 8).

Usage: make_files.py DIR COUNT

COUNT files (rounded up to whole studies of 100) under DIR/study-NNN/series-N/NNN.dcm, each a 64x64
16-bit CT image with the attributes a real header carries (patient, study, series, equipment, a
sequence of undefined length, a private element). Per study of 100 instances the series use the
transfer syntaxes an archive mixes: 45 explicit VR little endian, 25 implicit VR little endian, 25
RLE Lossless (encapsulated: the pixel data is one fragment that is never decoded here) and 5 deflated
explicit VR little endian. UIDs derive from a fixed root and counters; nothing depends on the clock or
on random numbers, so the same COUNT gives byte-identical files. A folder already written for the same
COUNT by the same script is kept as it is.
"""

import hashlib
import pathlib
import struct
import sys

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

ROOT = "2.25.271828182845904523536028747135"
SERIES = [
    (1, ExplicitVRLittleEndian, 45),
    (2, ImplicitVRLittleEndian, 25),
    (3, RLELossless, 25),
    (4, DeflatedExplicitVRLittleEndian, 5),
]
PER_STUDY = sum(n for _, _, n in SERIES)


def pixels(seed):
    return b"".join(struct.pack("<H", (seed * 31 + i * 7) % 4096) for i in range(64 * 64))


def instance(study, series, number, syntax):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = f"{ROOT}.3.{study}.{series}.{number}"
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = f"{ROOT}.99"
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyDate = f"2024{1 + study % 12:02d}{1 + study % 28:02d}"
    ds.StudyTime = "093000"
    ds.AccessionNumber = f"ACC-{study:05d}"
    ds.Modality = "CT"
    ds.Manufacturer = "Bench Medical"
    ds.ReferringPhysicianName = "Smith^John"
    ds.StudyDescription = "CT CHEST W/O CONTRAST"
    ds.SeriesDescription = f"AXIAL {series} MM"
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    ref.ReferencedSOPInstanceUID = f"{ROOT}.4.{study}"
    ds.ReferencedStudySequence = Sequence([ref])
    ds.PatientName = f"Müller^Anna^{study}"
    ds.PatientID = f"MRN-{study:05d}"
    ds.PatientBirthDate = "19700412"
    ds.PatientSex = "F"
    ds.SliceThickness = "5"
    ds.add_new(0x00091010, "LO", "BENCH PRIVATE")
    ds.StudyInstanceUID = f"{ROOT}.1.{study}"
    ds.SeriesInstanceUID = f"{ROOT}.2.{study}.{series}"
    ds.StudyID = str(study)
    ds.SeriesNumber = series
    ds.InstanceNumber = number
    ds.ImagePositionPatient = [0, 0, -5 * number]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = 64
    ds.Columns = 64
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    data = pixels(study * 1000 + series * 100 + number)
    if syntax == RLELossless:
        # One fragment of stand-in bytes: the header readers measured here never decode pixel data.
        ds.PixelData = encapsulate([data[:2048]])
        ds["PixelData"].VR = "OB"
    else:
        ds.PixelData = data
        ds["PixelData"].VR = "OW"
    return ds


def main():
    folder, count = pathlib.Path(sys.argv[1]), int(sys.argv[2])
    studies = -(-count // PER_STUDY)
    stamp = folder.with_name(folder.name + ".made-by")  # beside the folder, so that it is not indexed
    recipe = f"{studies} studies\n{hashlib.sha256(pathlib.Path(__file__).read_bytes()).hexdigest()}\n"
    if stamp.exists() and stamp.read_text() == recipe:
        print(f"{folder}: already holds {studies * PER_STUDY} files")
        return
    folder.mkdir(parents=True, exist_ok=True)
    for study in range(1, studies + 1):
        for series, syntax, n in SERIES:
            out = folder / f"study-{study:03d}" / f"series-{series}"
            out.mkdir(parents=True, exist_ok=True)
            for number in range(1, n + 1):
                ds = instance(study, series, number, syntax)
                ds.save_as(out / f"{number:03d}.dcm", enforce_file_format=True)
    stamp.write_text(recipe)
    print(f"{folder}: wrote {studies * PER_STUDY} files")


if __name__ == "__main__":
    main()
