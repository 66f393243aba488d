#!/usr/bin/env python3
"""Time `smart-imaging index` and pydicom's `dcmread(stop_before_pixels=True)` over the same folder, and
print files/s and MB/s for each and their ratio.

Usage: compare.py BINARY DIR [ROUNDS]

DIR/dicom holds the files (see make_files.py). Each side runs ROUNDS times (default 5) on a warm page
cache and the best round counts. Both sides walk the folder themselves; smart-imaging's time also covers
its process start and writing DIR/index.toml, pydicom's covers only the reads in one running interpreter.
MB/s counts the whole size of every file, as both read only the header and skip the pixel data.
"""

import os
import pathlib
import subprocess
import sys
import time

import pydicom


def files_under(folder):
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def best(rounds, run):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    binary, folder = sys.argv[1], pathlib.Path(sys.argv[2])
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    dicom = folder / "dicom"
    files = files_under(dicom)
    megabytes = sum(p.stat().st_size for p in files) / 1e6
    for p in files:  # warm the page cache for both sides
        p.read_bytes()

    def index():
        subprocess.run([binary, "index", str(dicom), "--out", str(folder / "index.toml"), "--quiet"], check=True)

    def pydicom_loop():
        for p in files_under(dicom):
            pydicom.dcmread(p, stop_before_pixels=True)

    ours = best(rounds, index)
    theirs = best(rounds, pydicom_loop)
    print(f"{len(files)} files, {megabytes:.1f} MB in {dicom}; best of {rounds} rounds, warm cache, "
          f"{os.cpu_count()} CPUs")
    print(f"{'reader':<48} {'seconds':>8} {'files/s':>9} {'MB/s':>8}")
    for name, seconds in [("smart-imaging index (release)", ours),
                          (f"pydicom {pydicom.__version__} dcmread(stop_before_pixels=True)", theirs)]:
        print(f"{name:<48} {seconds:>8.3f} {len(files) / seconds:>9.0f} {megabytes / seconds:>8.1f}")
    print(f"ratio smart-imaging / pydicom: {theirs / ours:.1f}x the files/s")


if __name__ == "__main__":
    main()
