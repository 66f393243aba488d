#!/usr/bin/env python3
"""The incremental-index benchmark's files (benches/index/update.sh runs it).

``gen --studies N --out DIR``: writes DIR/index.toml, a synthetic index of N studies x 2 series x 50
instances in the layout `smart-imaging index` writes (the studies of ``scale.py``), and one empty file for
each instance it names, under DIR/studies/, with the size (0) and modification time the index records. An
update keeps the entry of such a file without reading it, so its bytes do not matter; each file is an inode of
its own, as in a real archive. A DIR already written for the same N by the same script is kept as it is.

``new --sample FILE --count K --out DIR``: writes K DICOM files under DIR, copies of the sample FILE each
with a SOP Instance UID of its own (same length, so the file stays valid), as a modality sending one series.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import re
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import scale  # noqa: E402  (the synthetic studies of the scale benchmark)

MTIME = 1_764_288_000


def cmd_gen(args) -> int:
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    recipe = f"{args.studies} studies\n{hashlib.sha256(pathlib.Path(__file__).read_bytes()).hexdigest()}\n"
    stamp = out / "made-by"
    if stamp.exists() and stamp.read_text() == recipe:
        print(f"{out}: already holds {args.studies * scale.SERIES * scale.INSTANCES} files", file=sys.stderr)
        return 0
    tmp = out / "index.toml.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("# Written by benches/index/update.py.\n")
        f.write('written = "2025-11-28T00:00:00Z"\n')
        for s in range(1, args.studies + 1):
            text = scale.study_text(s)
            f.write(re.sub(r"size = \d+\nmtime = \d+", f"size = 0\nmtime = {MTIME}", text))
            for se in range(1, scale.SERIES + 1):
                folder = out / "studies" / str(s) / str(se)
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(1, scale.INSTANCES + 1):
                    path = folder / f"{i}.dcm"
                    os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644))
                    os.utime(path, (MTIME, MTIME))
    tmp.rename(out / "index.toml")
    stamp.write_text(recipe)
    files = args.studies * scale.SERIES * scale.INSTANCES
    print(f"{out}: wrote {files} files and their index", file=sys.stderr)
    return 0


def cmd_new(args) -> int:
    sample = pathlib.Path(args.sample).read_bytes()
    # The sample's SOP Instance UID, from its meta group (0002,0003): after the tag, VR "UI" and a 2-byte length.
    at = sample.index(b"\x02\x00\x03\x00UI")
    length = int.from_bytes(sample[at + 6 : at + 8], "little")
    uid = sample[at + 8 : at + 8 + length].rstrip(b"\x00")
    root = b"2.25."
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for k in range(args.count):
        # 2.25 followed by a decimal number: as long as the sample's, never with a leading zero.
        digits = len(uid) - len(root)
        number = str(10 ** (digits - 1) + 7919 * (k + 1)).encode()
        (out / f"{k:04d}.dcm").write_bytes(sample.replace(uid, root + number))
    print(f"{out}: wrote {args.count} new instances", file=sys.stderr)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("gen")
    gen.add_argument("--studies", type=int, required=True)
    gen.add_argument("--out", required=True)
    new = sub.add_parser("new")
    new.add_argument("--sample", required=True)
    new.add_argument("--count", type=int, required=True)
    new.add_argument("--out", required=True)
    args = parser.parse_args()
    return {"gen": cmd_gen, "new": cmd_new}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
