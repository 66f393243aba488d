#!/usr/bin/env python3
"""Fill fuzz/corpus/header with seeds for the `header` fuzz target: every sample file under data/dicom,
and variants made from them with the standard library only (no pydicom): deflated (raw and, as some
writers do, zlib-wrapped), a meta group without preamble, a bare implicit VR data set, a truncated copy.
The corpus is not committed (.gitignore); run this before `cargo +nightly fuzz run header`."""

import pathlib
import struct
import zlib

HERE = pathlib.Path(__file__).resolve().parent
SAMPLES = HERE.parent / "data" / "dicom"
CORPUS = HERE / "corpus" / "header"
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
DEFLATED = b"1.2.840.10008.1.2.1.99"


def split_part10(data):
    """The meta group's (element, VR, value) triples and the data set bytes of a Part 10 file."""
    assert data[128:132] == b"DICM"
    pos, meta = 132, []
    while data[pos : pos + 2] == b"\x02\x00":
        (element,) = struct.unpack_from("<H", data, pos + 2)
        vr = data[pos + 4 : pos + 6]
        if vr in LONG_VRS:
            (length,) = struct.unpack_from("<I", data, pos + 8)
            header = 12
        else:
            (length,) = struct.unpack_from("<H", data, pos + 6)
            header = 8
        meta.append((element, vr, data[pos + header : pos + header + length]))
        pos += header + length
    return meta, data[pos:]


def part10(meta, transfer_syntax, data_set):
    """A Part 10 file: preamble, DICM, the meta group with this transfer syntax and a recomputed
    (0002,0000) group length, then the data set bytes as given."""
    body = b""
    for element, vr, value in meta:
        if element == 0x0000:
            continue
        if element == 0x0010:
            value = transfer_syntax + (b"\0" if len(transfer_syntax) % 2 else b"")
        if vr in LONG_VRS:
            body += struct.pack("<HH2sHI", 2, element, vr, 0, len(value)) + value
        else:
            body += struct.pack("<HH2sH", 2, element, vr, len(value)) + value
    group_length = struct.pack("<HH2sHI", 2, 0, b"UL", 4, len(body))
    return b"\0" * 128 + b"DICM" + group_length + body + data_set


def main():
    CORPUS.mkdir(parents=True, exist_ok=True)
    files = sorted(SAMPLES.rglob("*.dcm"))
    for path in files:
        (CORPUS / ("sample-" + "-".join(path.relative_to(SAMPLES).parts))).write_bytes(path.read_bytes())
    by_syntax = {}
    for path in files:
        meta, data_set = split_part10(path.read_bytes())
        syntax = dict((e, v) for e, _, v in meta)[0x0010].rstrip(b"\0")
        by_syntax.setdefault(syntax, (meta, data_set))
    meta, data_set = by_syntax[b"1.2.840.10008.1.2.1"]
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    (CORPUS / "deflated-raw.dcm").write_bytes(part10(meta, DEFLATED, raw.compress(data_set) + raw.flush()))
    (CORPUS / "deflated-zlib.dcm").write_bytes(part10(meta, DEFLATED, zlib.compress(data_set)))
    full = part10(meta, b"1.2.840.10008.1.2.1", data_set)
    (CORPUS / "meta-without-preamble.dcm").write_bytes(full[132:])
    (CORPUS / "truncated.dcm").write_bytes(full[: len(full) // 3])
    implicit_meta, implicit_data_set = by_syntax[b"1.2.840.10008.1.2"]
    (CORPUS / "bare-implicit.dcm").write_bytes(implicit_data_set)
    print(f"{len(list(CORPUS.iterdir()))} seeds in {CORPUS}")


if __name__ == "__main__":
    main()
