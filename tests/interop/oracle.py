"""Oracles for the interop suite (run.py): what pydicom itself makes of a file when it writes it as Explicit
VR Little Endian, an element-by-element comparison of data sets (values and VRs, at every depth), and a set of
files made here that every native transfer syntax holds: nested sequences of defined and undefined length,
private tags, odd lengths, multi-frame, 8- and 16-bit pixel data, in implicit VR little endian, explicit VR
little endian, explicit VR big endian and deflated explicit VR little endian.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

NATIVE = {ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian}
# The VRs of binary numbers that pydicom leaves as bytes, with the size of their numbers: it does not swap
# them when it changes the byte order (filewriter.dcmwrite says so), so the oracle does.
SWAPPED_BYTES = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
ROOT = "2.25.271828182845904523536028747135266249775"


def swap(value: bytes, width: int) -> bytes:
    """Each number of `width` bytes reversed; a ragged tail as it is."""
    whole = len(value) // width * width
    return b"".join(value[i : i + width][::-1] for i in range(0, whole, width)) + value[whole:]


def little_endian(value: bytes, vr: str, transfer_syntax: str) -> bytes:
    """A binary value as Explicit VR Little Endian holds it: swapped when the file is big endian."""
    if transfer_syntax == ExplicitVRBigEndian and vr in SWAPPED_BYTES:
        return swap(value, SWAPPED_BYTES[vr])
    return value


def explicit_le(path: Path) -> pydicom.FileDataset:
    """The file as pydicom writes it in Explicit VR Little Endian, read back: the oracle of a transcoded
    retrieve. A big endian file's bytes values are swapped first, as pydicom wants its caller to."""
    ds = pydicom.dcmread(path)
    syntax = ds.file_meta.TransferSyntaxUID
    if syntax == ExplicitVRLittleEndian:
        return ds
    if syntax == ExplicitVRBigEndian:
        for element in ds.iterall():
            if element.VR in SWAPPED_BYTES and isinstance(element.value, bytes):
                element.value = swap(element.value, SWAPPED_BYTES[element.VR])
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, implicit_vr=False, little_endian=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def dataset_problems(got: Dataset, want: Dataset, at: str) -> list[str]:
    """Differences of tags, VRs and values, in sequences too."""
    problems = []
    for tag in sorted(set(got.keys()) | set(want.keys())):
        name = f"{at} {tag}"
        if tag not in got:
            problems.append(f"{name}: missing from the retrieved instance")
        elif tag not in want:
            problems.append(f"{name}: not in pydicom's")
        elif got[tag].VR != want[tag].VR:
            problems.append(f"{name}: VR {got[tag].VR}, pydicom's {want[tag].VR}")
        elif got[tag].VR == "SQ":
            items_got, items_want = got[tag].value, want[tag].value
            if len(items_got) != len(items_want):
                problems.append(f"{name}: {len(items_got)} items, pydicom's {len(items_want)}")
            for n, (a, b) in enumerate(zip(items_got, items_want)):
                problems += dataset_problems(a, b, f"{name}[{n}]")
        elif got[tag].value != want[tag].value:
            problems.append(f"{name}: {got[tag].value!r:.60} != {want[tag].value!r:.60}")
    return problems


# ---------------------------------------------------------------------------------------------------
# The files.


def code(value: str, scheme: str, meaning: str, undefined: bool) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    item.is_undefined_length_sequence_item = undefined
    return item


def data_set(n: int, bits: int, syntax: str) -> Dataset:
    """One multi-frame instance of `bits`-bit pixels with nested sequences and a private block."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7.3" if bits == 16 else "1.2.840.10008.5.1.4.1.1.7.2"
    ds.SOPInstanceUID = f"{ROOT}.3.{n}"
    ds.StudyDate = "20250101"
    ds.Modality = "OT"
    ds.InstitutionName = "Klinikum Süd"
    ds.StudyDescription = "TRANSCODING ORACLE"
    ds.SeriesDescription = f"{syntax} {bits}-bit"
    referenced = Dataset()
    referenced.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    referenced.ReferencedSOPInstanceUID = f"{ROOT}.9.{n}"
    ds.ReferencedStudySequence = Sequence([referenced])
    ds["ReferencedStudySequence"].is_undefined_length = True
    ds.PatientName = "Oracle^Ödön"
    ds.PatientID = "ORACLE-1"
    # Private tags of a creator no dictionary knows: UN once read from implicit VR.
    block = ds.private_block(0x0009, "SMART IMAGING ORACLE", create=True)
    block.add_new(0x01, "LO", "private text")
    block.add_new(0x02, "US", [1, 2, 0xFFFE])
    block.add_new(0x03, "FD", [0.5, -2.25])
    ds.FrameTime = "33.3"
    ds.DiffusionBValue = 1000.5
    ds.AcquisitionMatrix = [0, 64, 64, 0]
    ds.StudyInstanceUID = f"{ROOT}.1"
    ds.SeriesInstanceUID = f"{ROOT}.2.{n}"
    ds.SeriesNumber = n
    ds.InstanceNumber = 1
    ds.ImagePositionPatient = [-1.5, 2, 3.25]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = 3
    ds.FrameIncrementPointer = 0x00181063
    ds.Rows = 4
    ds.Columns = 5
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.add_new(0x00280106, "US", 3)  # SmallestImagePixelValue, "US or SS" in the dictionary
    request = Dataset()
    request.ScheduledProtocolCodeSequence = Sequence([code("P-1", "99LOCAL", "Protocol one", True)])
    request.RequestedProcedureID = "RP-7"
    request.is_undefined_length_sequence_item = True
    ds.RequestAttributesSequence = Sequence([request, code("P-2", "99LOCAL", "Second", False)])
    ds["RequestAttributesSequence"].is_undefined_length = True
    values = [(n * 31 + i * 7) % (1 << bits) for i in range(3 * 4 * 5)]
    ds.add_new(0x7FE00010, "OW" if bits == 16 else "OB", struct.pack(f"<{len(values)}{'H' if bits == 16 else 'B'}", *values))
    return ds


def odd_block(syntax: str) -> bytes:
    """Elements of odd length after Pixel Data, which pydicom would pad: a private creator (LO, 3 bytes), a
    private value (UN or OB, 5 bytes), encoded in `syntax`."""
    elements = [(0x7FE1, 0x0010, "LO", b"ODD"), (0x7FE1, 0x1001, "OB", b"abcde")]
    out = b""
    for group, element, vr, value in elements:
        if syntax == ImplicitVRLittleEndian:
            out += struct.pack("<HHI", group, element, len(value)) + value
        else:
            order = ">" if syntax == ExplicitVRBigEndian else "<"
            head = struct.pack(f"{order}HH", group, element) + vr.encode()
            if vr in ("OB", "UN"):
                head += b"\0\0" + struct.pack(f"{order}I", len(value))
            else:
                head += struct.pack(f"{order}H", len(value))
            out += head + value
    return out


def write(path: Path, ds: Dataset, syntax: str) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.ImplementationClassUID = f"{ROOT}.0"
    stored = ExplicitVRLittleEndian if syntax == DeflatedExplicitVRLittleEndian else syntax
    meta.TransferSyntaxUID = stored
    ds.file_meta = meta
    if syntax == ExplicitVRBigEndian:
        ds.PixelData = swap(ds.PixelData, 2) if ds.BitsAllocated == 16 else ds.PixelData
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    data = buffer.getvalue()
    if syntax == DeflatedExplicitVRLittleEndian:
        # The data set after the meta group, deflated (PS3.5 §A.5: raw deflate), behind a meta group that
        # names the deflated syntax.
        meta_end = 132 + 12 + struct.unpack("<I", data[140:144])[0]
        body = data[meta_end:] + odd_block(ExplicitVRLittleEndian)
        engine = zlib.compressobj(9, zlib.DEFLATED, -15)
        deflated = engine.compress(body) + engine.flush()
        meta.TransferSyntaxUID = syntax
        head = DicomBytesIO()
        head.is_little_endian, head.is_implicit_VR = True, False
        write_file_meta_info(head, meta, enforce_standard=True)
        data = b"\0" * 128 + b"DICM" + head.getvalue() + deflated
    else:
        data += odd_block(syntax)
    path.write_bytes(data)


def make_files(folder: Path) -> list[Path]:
    """The oracle files, one series per transfer syntax and bit depth, all in one study."""
    paths = []
    n = 0
    for syntax in (ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian):
        for bits in (8, 16):
            n += 1
            path = folder / f"{n:02d}-{bits}bit-{syntax}.dcm"
            write(path, data_set(n, bits, syntax), syntax)
            paths.append(path)
    return paths


def frame_bytes(path: Path) -> list[bytes]:
    """The native frames of a file, little endian (PS3.18 §8.7.3.3.2)."""
    ds = pydicom.dcmread(path)
    element = ds["PixelData"]
    pixels = little_endian(element.value, element.VR, ds.file_meta.TransferSyntaxUID)
    size = ds.Rows * ds.Columns * ds.get("SamplesPerPixel", 1) * ds.BitsAllocated // 8
    return [pixels[i * size : (i + 1) * size] for i in range(int(ds.get("NumberOfFrames", 1)))]


class Fragments(bytes):
    """The fragments of encapsulated Pixel Data, concatenated without their item headers."""


def fragments(value: bytes) -> Fragments:
    """The fragments of an encapsulated Pixel Data value (PS3.5 §A.4), the Basic Offset Table left out."""
    out, at, first = b"", 0, True
    while at + 8 <= len(value):
        group, element, length = struct.unpack("<HHI", value[at : at + 8])
        if (group, element) != (0xFFFE, 0xE000):
            break
        if not first:
            out += value[at + 8 : at + 8 + length]
        first, at = False, at + 8 + length
    return Fragments(out)
