#!/usr/bin/env python3
"""Interop suite for smart-imaging's DICOMweb (README, HTTP API, DICOMweb details).

Starts the real binary on the repository's configuration and sample data, finds the studies through the
FHIR ImagingStudy search of the `open` and `demo` tenants, and then talks to each study's WADO-RS Endpoint
with dicomweb-client, a client the server's authors did not write. Every retrieved instance is parsed with
pydicom and compared with the file on disk; every metadata object with pydicom's own DICOM JSON of that file;
every frame with the slice of the file's Pixel Data; the study-scoped searches with the index.

Each check is a named case. A failing case prints one `FAIL name: detail` line; the last line is exactly
`N passed, N failed`, and the exit status is non-zero when any case failed.

Environment: SMART_IMAGING_BIN names the binary (default target/debug/smart-imaging, which run.sh builds).
With `-v`, passing cases are listed too, one `ok name` line each.
"""

from __future__ import annotations

import base64
import os
import queue
import subprocess
import sys
import threading
import tomllib
import traceback
from pathlib import Path
from typing import Any, Callable

import dicomweb_client
import pydicom
import requests

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data"
CONFIG = REPO / "smart-imaging.toml"
LOG = REPO / "target" / "interop-server.log"
STARTUP_SECONDS = 20
# The demo tenant mocks its EHR: any bearer token speaks for patient p1. A client sends one anyway.
DEMO_TOKEN = "demo-token"
# The threshold the server documents (src/dicomjson.rs) and pydicom's own default.
BULK_DATA_THRESHOLD = 1024
# Value representations whose JSON is InlineBinary or a BulkDataURI, never a Value (PS3.18 §F.2.3).
BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}


# ---------------------------------------------------------------------------------------------------
# Cases.


class Suite:
    """Runs named cases and counts them; a case fails on any exception, with the exception as detail."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.passed = 0
        self.failed = 0

    def case(self, name: str, check: Callable[[], None]) -> None:
        try:
            check()
        except AssertionError as e:
            self.fail(name, str(e) or "assertion failed")
        except Exception as e:  # noqa: BLE001 - any error of a case is that case's failure
            detail = "".join(traceback.format_exception_only(type(e), e)).strip()
            self.fail(name, detail)
        else:
            self.passed += 1
            if self.verbose:
                print(f"ok {name}", flush=True)

    def fail(self, name: str, detail: str) -> None:
        self.failed += 1
        print(f"FAIL {name}: {detail}", flush=True)


def check(condition: bool, detail: str) -> None:
    if not condition:
        raise AssertionError(detail)


def problems_are_none(problems: list[str]) -> None:
    """Fails with the first few problems, so that one line says what went wrong."""
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise AssertionError("; ".join(problems[:5]) + more)


# ---------------------------------------------------------------------------------------------------
# The server.


class Server:
    """The real binary on port 0; `listening on http://ADDR` on stdout tells where, without a sleep."""

    def __init__(self) -> None:
        binary = os.environ.get("SMART_IMAGING_BIN", str(REPO / "target" / "debug" / "smart-imaging"))
        LOG.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(LOG, "wb")
        env = dict(os.environ, RUST_LOG="info")
        env.pop("SMART_IMAGING_KEY", None)
        command = [binary, "--config", str(CONFIG), "--listen", "127.0.0.1:0"]
        self.process = subprocess.Popen(
            command, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def read_stdout() -> None:
            assert self.process.stdout is not None
            for raw in self.process.stdout:
                lines.put(raw.decode("utf-8", "replace"))
            lines.put(None)

        threading.Thread(target=read_stdout, daemon=True).start()
        try:
            while True:
                line = lines.get(timeout=STARTUP_SECONDS)
                if line is None:
                    raise RuntimeError(f"{' '.join(command)} exited before listening; see {LOG}")
                if line.startswith("listening on "):
                    self.base = line.removeprefix("listening on ").strip()
                    break
        except queue.Empty:
            self.stop()
            raise RuntimeError(f"no `listening on` line within {STARTUP_SECONDS} s; see {LOG}") from None

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        self.log.close()


# ---------------------------------------------------------------------------------------------------
# The sample, as the index and the files on disk describe it.


def load_index() -> list[dict[str, Any]]:
    with open(DATA / "index.toml", "rb") as f:
        return tomllib.load(f)["study"]


def instances_of(study: dict[str, Any]) -> list[dict[str, Any]]:
    return [inst for series in study["series"] for inst in series["instance"]]


def read_file(inst: dict[str, Any]) -> pydicom.FileDataset:
    return pydicom.dcmread(DATA / inst["path"])


def frame_size(ds: pydicom.Dataset) -> int:
    """Bytes of one native frame (PS3.5 §8.1.1): the sample's frames are byte-aligned."""
    return ds.Rows * ds.Columns * ds.get("SamplesPerPixel", 1) * ds.BitsAllocated // 8


# ---------------------------------------------------------------------------------------------------
# Datasets: a retrieved instance against the file on disk.


def element_problems(got: pydicom.Dataset, want: pydicom.Dataset, at: str) -> list[str]:
    problems = []
    for tag in sorted(set(got.keys()) | set(want.keys())):
        name = f"{at} {tag}"
        if tag not in got:
            problems.append(f"{name}: missing from the retrieved instance")
        elif tag not in want:
            problems.append(f"{name}: not in the file on disk")
        elif got[tag].VR != want[tag].VR:
            problems.append(f"{name}: VR {got[tag].VR}, the file says {want[tag].VR}")
        elif got[tag].value != want[tag].value:
            problems.append(f"{name}: {got[tag].value!r:.60} != {want[tag].value!r:.60}")
    return problems


def compare_dataset(got: pydicom.Dataset, inst: dict[str, Any]) -> None:
    want = read_file(inst)
    at = inst["path"]
    problems = element_problems(got.file_meta, want.file_meta, f"{at} meta")
    problems += element_problems(got, want, at)
    if "PixelData" in want:
        check("PixelData" in got, f"{at}: the retrieved instance has no Pixel Data")
        if got.PixelData != want.PixelData:
            problems.append(f"{at}: Pixel Data differs ({len(got.PixelData)} bytes, {len(want.PixelData)} on disk)")
    problems_are_none(problems)


def compare_datasets(got: list[pydicom.Dataset], expected: list[dict[str, Any]]) -> None:
    by_uid = {str(ds.SOPInstanceUID): ds for ds in got}
    want = sorted(inst["uid"] for inst in expected)
    check(sorted(by_uid) == want and len(got) == len(want), f"got instances {sorted(by_uid)}, expected {want}")
    for inst in expected:
        compare_dataset(by_uid[inst["uid"]], inst)


# ---------------------------------------------------------------------------------------------------
# Metadata: the server's DICOM JSON against pydicom's own, after the normalisations documented here.


class Bulk:
    """What pydicom sends as bulk data: its handler registers each value and answers a placeholder URI."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}

    def handler(self, element: pydicom.DataElement) -> str:
        key = f"pydicom-bulk:{len(self.values)}"
        self.values[key] = element.value
        return key


def pydicom_json(inst: dict[str, Any]) -> tuple[dict[str, Any], Bulk]:
    bulk = Bulk()
    ds = read_file(inst)
    return ds.to_json_dict(bulk_data_threshold=BULK_DATA_THRESHOLD, bulk_data_element_handler=bulk.handler), bulk


def empty(attribute: dict[str, Any]) -> bool:
    """An attribute without a value: no Value, or only empty or null ones."""
    values = attribute.get("Value")
    return values is None or all(v in ("", None) for v in values)


def normalise_values(values: list[Any]) -> list[Any]:
    # Normalisation: PS3.18 §F.2.5 writes an empty value among several as null; pydicom writes "".
    return [None if v == "" else v for v in values]


def metadata_problems(
    got: dict[str, Any], want: dict[str, Any], bulk: Bulk, fetches: list[tuple[str, bytes, str]], at: str
) -> list[str]:
    """Differences between the server's data set and pydicom's. BulkDataURIs are collected in `fetches` as
    (server URI, expected bytes, where), to be fetched and compared afterwards."""
    problems = []
    keys = list(got)
    if keys != sorted(keys):
        problems.append(f"{at}: keys not in ascending order")
    # Normalisation: the server leaves out Group Length attributes (gggg,0000), as the issue requires
    # (PS3.18 §F.2 has no use for them); pydicom would write any the file holds.
    want = {k: v for k, v in want.items() if not k.endswith("0000")}
    for key in sorted(set(got) | set(want)):
        name = f"{at} {key}"
        if key not in got:
            problems.append(f"{name}: missing (pydicom has {want[key]!r:.80})")
            continue
        if key not in want:
            problems.append(f"{name}: not in pydicom's JSON ({got[key]!r:.80})")
            continue
        g, w = got[key], want[key]
        if g.get("vr") != w.get("vr"):
            problems.append(f"{name}: vr {g.get('vr')}, pydicom {w.get('vr')}")
            continue
        vr = w["vr"]
        if "BulkDataURI" in g:
            # Normalisation: a BulkDataURI names the server's own resource and cannot equal pydicom's
            # placeholder; and the server sends every binary value as a BulkDataURI (its documented choice,
            # which PS3.18 §F.2.7 allows), where pydicom inlines those of 1024 bytes or fewer. Either way the
            # bytes behind the URI must be the value: they are fetched and compared below.
            if vr not in BINARY_VRS:
                # The sample holds no text or number value over the threshold, so none may be bulk data.
                problems.append(f"{name}: a BulkDataURI for a {vr} value")
            elif "InlineBinary" in w:
                fetches.append((g["BulkDataURI"], base64.b64decode(w["InlineBinary"]), name))
            elif "BulkDataURI" in w:
                fetches.append((g["BulkDataURI"], bulk.values[w["BulkDataURI"]], name))
            else:
                problems.append(f"{name}: a BulkDataURI for a value pydicom finds empty")
            continue
        if "InlineBinary" in g or "InlineBinary" in w or "BulkDataURI" in w:
            problems.append(f"{name}: server {sorted(g)}, pydicom {sorted(w)}")
            continue
        # Normalisation: an empty value is no Value at all (PS3.18 §F.2.5); pydicom may write [""] for it.
        if empty(g) and empty(w):
            continue
        if vr == "SQ":
            items_got, items_want = g.get("Value", []), w.get("Value", [])
            if len(items_got) != len(items_want):
                problems.append(f"{name}: {len(items_got)} items, pydicom {len(items_want)}")
                continue
            for n, (item_got, item_want) in enumerate(zip(items_got, items_want)):
                problems += metadata_problems(item_got, item_want, bulk, fetches, f"{name}[{n}]")
            continue
        values_got, values_want = g.get("Value"), normalise_values(w.get("Value", []))
        if values_got != values_want:
            problems.append(f"{name}: {values_got!r:.80}, pydicom {values_want!r:.80}")
        elif vr in {"IS", "DS", "US", "UL", "SS", "SL", "FL", "FD", "SV", "UV"}:
            # == holds between 5 and "5" nowhere, but also between 5 and 5.0: say what the JSON type must be.
            bad = [v for v in values_got if v is not None and not isinstance(v, (int, float))]
            if bad:
                problems.append(f"{name}: {vr} values {bad!r:.60} are not JSON numbers")
    return problems


def compare_metadata(
    client: dicomweb_client.DICOMwebClient, objects: list[dict[str, Any]], expected: list[dict[str, Any]], address: str
) -> None:
    by_uid = {o.get("00080018", {}).get("Value", [None])[0]: o for o in objects}
    want = sorted(inst["uid"] for inst in expected)
    check(sorted(by_uid) == want and len(objects) == len(want), f"objects for {sorted(by_uid)}, expected {want}")
    problems: list[str] = []
    fetches: list[tuple[str, bytes, str]] = []
    for inst in expected:
        reference, bulk = pydicom_json(inst)
        problems += metadata_problems(by_uid[inst["uid"]], reference, bulk, fetches, inst["path"])
    for uri, value, name in fetches:
        if not uri.startswith(address + "/"):
            problems.append(f"{name}: BulkDataURI {uri} is not under the study's WADO-RS base")
            continue
        parts = client.retrieve_bulkdata(uri)
        fetched = b"".join(parts)
        if len(parts) != 1 or fetched != value:
            problems.append(f"{name}: {uri} gave {len(parts)} parts of {len(fetched)} bytes, not the {len(value)}")
    problems_are_none(problems)


# ---------------------------------------------------------------------------------------------------
# Frames and searches.


def compare_frames(
    client: dicomweb_client.DICOMwebClient, study: str, series: str, inst: dict[str, Any], numbers: list[int]
) -> None:
    ds = read_file(inst)
    size = frame_size(ds)
    frames = client.retrieve_instance_frames(study, series, inst["uid"], frame_numbers=numbers)
    check(len(frames) == len(numbers), f"{len(frames)} frames for {numbers}")
    for n, frame in zip(numbers, frames):
        want = ds.PixelData[(n - 1) * size : n * size]
        check(frame == want, f"frame {n} of {inst['path']}: {len(frame)} bytes, not the file's {len(want)}")


def first(obj: dict[str, Any], tag: str) -> Any:
    return (obj.get(tag, {}).get("Value") or [None])[0]


def compare_series_search(found: list[dict[str, Any]], study: dict[str, Any], address: str) -> None:
    check(len(found) == len(study["series"]), f"{len(found)} series, the index has {len(study['series'])}")
    for obj, series in zip(found, study["series"]):
        uid = series["uid"]
        expected = {
            "0020000E": uid,
            "0020000D": study["uid"],
            "00080060": series["modality"],
            "0008103E": series["description"],
            "00200011": series["number"],
            "00201209": len(series["instance"]),
            "00081190": f"{address}/studies/{study['uid']}/series/{uid}",
        }
        for tag, value in expected.items():
            check(first(obj, tag) == value, f"series {uid} {tag}: {first(obj, tag)!r}, expected {value!r}")
        check(isinstance(first(obj, "00201209"), int), f"series {uid}: NumberOfSeriesRelatedInstances not a number")


def compare_instance_search(found: list[dict[str, Any]], study: dict[str, Any], series: dict[str, Any]) -> None:
    check(len(found) == len(series["instance"]), f"{len(found)} instances, the index has {len(series['instance'])}")
    for obj, inst in zip(found, series["instance"]):
        ds = read_file(inst)
        expected = {
            "00080018": inst["uid"],
            "00080016": inst["sop_class"],
            "0020000D": study["uid"],
            "0020000E": series["uid"],
            "00200013": inst["number"],
            "00280010": ds.Rows,
            "00280011": ds.Columns,
            "00280100": ds.BitsAllocated,
        }
        if "NumberOfFrames" in ds:
            expected["00280008"] = int(ds.NumberOfFrames)
        for tag, value in expected.items():
            check(first(obj, tag) == value, f"instance {inst['uid']} {tag}: {first(obj, tag)!r}, expected {value!r}")


# ---------------------------------------------------------------------------------------------------
# The run.


def studies_found(suite: Suite, server: Server, tenant: str, query: str, headers: dict[str, str], want: list[str]):
    """Searches ImagingStudy on a tenant; returns (uid, Endpoint address) pairs, empty when the case failed."""
    found: list[tuple[str, str]] = []

    def search() -> None:
        reply = requests.get(f"{server.base}/{tenant}/fhir/ImagingStudy{query}", headers=headers, timeout=20)
        check(reply.status_code == 200, f"status {reply.status_code}: {reply.text[:200]}")
        bundle = reply.json()
        for entry in bundle.get("entry", []):
            study = entry["resource"]
            endpoint = next(r for r in study.get("contained", []) if r.get("resourceType") == "Endpoint")
            found.append((study["id"], endpoint["address"]))
        check(sorted(uid for uid, _ in found) == sorted(want), f"studies {sorted(u for u, _ in found)}, want {want}")
        prefix = f"{server.base}/{tenant}/wado/"
        check(all(a.startswith(prefix) for _, a in found), f"addresses not under {prefix}")

    suite.case(f"{tenant}: search ImagingStudy{query}", search)
    return found


def exercise_study(suite: Suite, tenant: str, study: dict[str, Any], address: str, headers: dict[str, str]) -> None:
    uid = study["uid"]
    client = dicomweb_client.DICOMwebClient(url=address, headers=headers)
    name = f"{tenant} {uid}"
    suite.case(f"{name}: retrieve_study", lambda: compare_datasets(client.retrieve_study(uid), instances_of(study)))
    suite.case(
        f"{name}: retrieve_study_metadata",
        lambda: compare_metadata(client, client.retrieve_study_metadata(uid), instances_of(study), address),
    )
    suite.case(f"{name}: search_for_series", lambda: compare_series_search(client.search_for_series(uid), study, address))

    def narrowed_series_search() -> None:
        last = study["series"][-1]
        found = client.search_for_series(uid, search_filters={"SeriesInstanceUID": last["uid"]})
        check([first(o, "0020000E") for o in found] == [last["uid"]], f"by SeriesInstanceUID: {found}")
        found = client.search_for_series(uid, search_filters={"Modality": last["modality"]}, limit=1, offset=1)
        same = [s["uid"] for s in study["series"] if s["modality"] == last["modality"]][1:2]
        check([first(o, "0020000E") for o in found] == same, f"by Modality, limit 1, offset 1: {found}")

    suite.case(f"{name}: search_for_series with filters and paging", narrowed_series_search)

    for series in study["series"]:
        se = series["uid"]
        at = f"{name} series {se}"
        one = series["instance"][0]
        suite.case(f"{at}: retrieve_series", lambda: compare_datasets(client.retrieve_series(uid, se), series["instance"]))
        suite.case(
            f"{at}: retrieve_series_metadata",
            lambda: compare_metadata(client, client.retrieve_series_metadata(uid, se), series["instance"], address),
        )
        suite.case(
            f"{at}: search_for_instances",
            lambda: compare_instance_search(client.search_for_instances(uid, se), study, series),
        )
        suite.case(
            f"{at}: retrieve_instance {one['uid']}",
            lambda: compare_dataset(client.retrieve_instance(uid, se, one["uid"]), one),
        )
        for inst in series["instance"]:
            sop = inst["uid"]
            suite.case(
                f"{at}: retrieve_instance_metadata {sop}",
                lambda: compare_metadata(client, [client.retrieve_instance_metadata(uid, se, sop)], [inst], address),
            )
            suite.case(f"{at}: retrieve_instance_frames {sop} [1]", lambda: compare_frames(client, uid, se, inst, [1]))
            count = inst.get("frames", 1)
            if count > 1:
                every = list(range(1, count + 1))
                backwards = every[::-1]
                suite.case(
                    f"{at}: retrieve_instance_frames {sop} {every}", lambda: compare_frames(client, uid, se, inst, every)
                )
                suite.case(
                    f"{at}: retrieve_instance_frames {sop} {backwards}",
                    lambda: compare_frames(client, uid, se, inst, backwards),
                )


def main() -> int:
    suite = Suite(verbose="-v" in sys.argv[1:])
    index = {study["uid"]: study for study in load_index()}
    try:
        server = Server()
    except (RuntimeError, OSError) as e:
        suite.fail("start the server", str(e))
        print(f"{suite.passed} passed, {suite.failed} failed")
        return 1
    try:
        demo_headers = {"Authorization": f"Bearer {DEMO_TOKEN}"}
        p1 = [uid for uid, study in index.items() if study["patient_id"] == "MRN-1001"]
        for tenant, query, headers, want in [
            ("open", "", {}, list(index)),
            ("demo", "?patient=p1", demo_headers, p1),
        ]:
            for uid, address in studies_found(suite, server, tenant, query, headers, want):
                exercise_study(suite, tenant, index[uid], address, headers)
    finally:
        server.stop()
    if suite.failed:
        print(f"server log: {LOG}")
    print(f"{suite.passed} passed, {suite.failed} failed")
    return 1 if suite.failed else 0


if __name__ == "__main__":
    sys.exit(main())
