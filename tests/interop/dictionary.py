#!/usr/bin/env python3
"""The data dictionary that `src/dicom/dictionary.rs` reads the VRs of implicit VR data sets from: every
attribute of DICOM PS3.6 §6 and its VR, as pydicom (pinned in requirements.txt) ships the registry.

`python3 tests/interop/dictionary.py` writes `src/dicom/dictionary.txt` (one fixed-width record per public
attribute, `ggggeeee VR`, sorted by tag) and prints the repeating-group table that `dictionary.rs` holds;
`--check` exits 1 when the committed file or table differ from it (run.py runs that check). Ambiguous VRs
are written as two lower-case letters: `xs` is "US or SS", `ox` "OB or OW", `uo` "US or OW" (and the one
"US or SS or OW"); item tags, whose VR is "NONE", are left out.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from pydicom._dicom_dict import DicomDictionary, RepeatersDictionary

REPO = Path(__file__).resolve().parents[2]
TEXT = REPO / "src" / "dicom" / "dictionary.txt"
RUST = REPO / "src" / "dicom" / "dictionary.rs"
CODES = {"US or SS": "xs", "OB or OW": "ox", "US or OW": "uo", "US or SS or OW": "uo"}


def code(vr: str) -> str | None:
    if vr == "NONE":
        return None
    return CODES.get(vr, vr)


def records() -> str:
    lines = []
    for tag in sorted(DicomDictionary):
        vr = code(DicomDictionary[tag][0])
        if vr is not None:
            lines.append(f"{tag:08X} {vr}\n")
    return "".join(lines)


def repeaters() -> list[str]:
    lines = []
    for mask_text, entry in sorted(RepeatersDictionary.items()):
        vr = code(entry[0])
        if vr is None:
            continue
        mask = int("".join("0" if c in "xX" else "F" for c in mask_text), 16)
        value = int(re.sub("[xX]", "0", mask_text), 16)
        lines.append(f'    (0x{mask >> 16:04X}_{mask & 0xFFFF:04X}, 0x{value >> 16:04X}_{value & 0xFFFF:04X}, *b"{vr}"), // {entry[4]}')
    return lines


def matches() -> bool:
    """Whether the committed dictionary is pydicom's."""
    rust = RUST.read_text()
    return TEXT.read_text() == records() and all(line in rust for line in repeaters())


def main() -> int:
    if "--check" in sys.argv[1:]:
        ok = matches()
        print("the dictionary matches pydicom's" if ok else "src/dicom/dictionary.* differ: run tests/interop/dictionary.py")
        return 0 if ok else 1
    TEXT.write_text(records())
    print("\n".join(repeaters()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
