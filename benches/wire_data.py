#!/usr/bin/env python3
"""Generate the dataset of benches/wire.sh: the retrieve and search shapes measured beside nginx.

Written to ``OUT/dicom/<patient>/<study>/<series>/<nnn>.dcm`` with ``OUT/manifest.json``:

* ``WIRE-SMALL`` (FHIR id ``pat-small``): one CT study of 2 series x 20 slices of 256x256 16-bit pixels,
  about 132 KB a file (40 files, 5.3 MB): the shape of most MR, CR, DX and many CT series;
* ``WIRE-LARGE`` (FHIR id ``pat-large``): one CT study of 3 series x 100 slices of 512x512, about 525 KB a
  file (300 files, 157 MB);
* ``WIRE-SEARCH`` (FHIR id ``pat-search``): 2 studies of 2 series x 10 slices of 64x64, for the search rows.

The files are made with benches/gen_dataset.py's ``make_instance`` (deterministic UIDs, dates and
pixels), at the sizes above. A dataset already complete with the same parameters is reused.

Usage::

    python3 benches/wire_data.py --out /tmp/smart-imaging-bench-wire/data
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_dataset  # noqa: E402  (the sibling generator: make_instance, base_pattern, slice_bytes)

import pydicom  # noqa: E402

VERSION = 1
UID_ROOT = "2.25.3141592653589793238462643383279"

SHAPES = [
    # (folder, patient id, FHIR id, studies, series, instances per series, rows/columns)
    ("wire-small", "WIRE-SMALL", "pat-small", 1, 2, 20, 256),
    ("wire-large", "WIRE-LARGE", "pat-large", 1, 3, 100, 512),
    ("wire-search", "WIRE-SEARCH", "pat-search", 2, 2, 10, 64),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    out = os.path.abspath(parser.parse_args().out)
    manifest_path = os.path.join(out, "manifest.json")
    params = {"version": VERSION, "shapes": SHAPES, "pydicom": pydicom.__version__}
    if os.path.exists(manifest_path):
        with open(manifest_path, encoding="utf-8") as f:
            if json.load(f).get("params") == json.loads(json.dumps(params)):
                print(f"dataset up to date in {out}")
                return 0
        os.remove(manifest_path)
    dicom_dir = os.path.join(out, "dicom")
    shutil.rmtree(dicom_dir, ignore_errors=True)
    pattern = gen_dataset.base_pattern()
    manifest = {"params": params, "patients": {}}
    k = 0
    for p_index, (folder, patient_id, fhir_id, studies, series_count, instances, size) in enumerate(SHAPES, 1):
        gen_dataset.ROWS = gen_dataset.COLUMNS = size
        patient = {"patient_id": patient_id, "name": f"{folder.title()}^Bench", "birth_date": "19700101", "sex": "O"}
        entry = {"patient_id": patient_id, "fhir_id": fhir_id, "studies": []}
        for s_index in range(1, studies + 1):
            study = {
                "uid": f"{UID_ROOT}.1.{p_index}.{s_index}",
                "date": f"2024{s_index:02d}{p_index + 10:02d}",
                "time": "101500",
                "accession": f"WIRE-{p_index}-{s_index}",
                "study_id": str(s_index),
                "description": f"CT WIRE {folder} {s_index}",
            }
            files = []
            for n in range(1, series_count + 1):
                series = {"uid": f"{UID_ROOT}.2.{p_index}.{s_index}.{n}", "number": n, "description": f"AXIAL {n}"}
                where = os.path.join(dicom_dir, folder, f"study-{s_index}", f"series-{n}")
                os.makedirs(where, exist_ok=True)
                for number in range(1, instances + 1):
                    k += 1
                    # The 512x512 pattern, cut to this size: every slice still differs.
                    pixels = gen_dataset.slice_bytes(pattern, k)[: size * size * 2]
                    ds = gen_dataset.make_instance(patient, study, series, number, pixels)
                    path = os.path.join(where, f"{number:03d}.dcm")
                    pydicom.dcmwrite(path, ds, enforce_file_format=True)
                    files.append({"path": os.path.relpath(path, out), "series": series["uid"],
                                  "sop": ds.SOPInstanceUID, "bytes": os.path.getsize(path)})
            entry["studies"].append({"uid": study["uid"], "files": files,
                                     "bytes": sum(f["bytes"] for f in files)})
        manifest["patients"][folder] = entry
    with open(manifest_path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
    os.replace(manifest_path + ".tmp", manifest_path)
    print(f"wrote {k} files in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
