#!/usr/bin/env python3
"""Interop suite for smart-imaging's DICOMweb (docs/api.md, DICOMweb details).

Starts the real binary on the repository's configuration and sample data (its sandbox EHR on port 0), finds
the studies through the FHIR ImagingStudy search of the `open` and `demo` tenants, and of the `smart` tenant
with tokens from the sandbox's authorization-code flow (sandbox.py: the README's SMART walk with requests, and
authlib), and then talks to each study's WADO-RS Endpoint
with dicomweb-client, a client the server's authors did not write, with its default arguments. Every retrieved
instance is parsed with pydicom and compared, element by element, with the file on disk when it came as stored
and with what pydicom writes of the file in Explicit VR Little Endian when it was transcoded (oracle.py); every
metadata object with pydicom's own DICOM JSON of that file; every frame with the file's Pixel Data, little
endian; the study-scoped searches with the index. Then the same against a second archive made here: the oracle
files of every native transfer syntax (nested sequences, private tags, odd lengths, multi-frame, 8 and 16 bits)
and pydicom's own test and character-set files, whose text must decode as pydicom decodes it. Last, `GET /metrics` is read with
prometheus_client's parser of the text exposition format.

Each check is a named case. A failing case prints one `FAIL name: detail` line; the last line is exactly
`N passed, N failed`, and the exit status is non-zero when any case failed.

Environment: SMART_IMAGING_BIN names the binary (default target/debug/smart-imaging, which run.sh builds).
With `-v`, passing cases are listed too, one `ok name` line each.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import tomllib
import traceback
from pathlib import Path
from typing import Any, Callable

import dicomweb_client
import prometheus_client.parser
import pydicom
import pydicom.data
import requests

import bundles
import dictionary
import oracle
import sandbox

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

    def __init__(self, config: Path = CONFIG, log: Path = LOG) -> None:
        binary = os.environ.get("SMART_IMAGING_BIN", str(REPO / "target" / "debug" / "smart-imaging"))
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(log, "wb")
        env = dict(os.environ, RUST_LOG="info")
        env.pop("SMART_IMAGING_KEY", None)
        command = [binary, "--config", str(config), "--listen", "127.0.0.1:0"]
        if config == CONFIG:
            # The repository's configuration has a sandbox on 127.0.0.1:8001; a test never takes a fixed port.
            command += ["--sandbox-listen", "127.0.0.1:0"]
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
                    raise RuntimeError(f"{' '.join(command)} exited before listening; see {log}")
                if line.startswith("sandbox listening on "):
                    self.sandbox = line.split("(public URL ", 1)[1].split(";", 1)[0]
                if line.startswith("listening on "):
                    self.base = line.removeprefix("listening on ").strip()
                    break
        except queue.Empty:
            self.stop()
            raise RuntimeError(f"no `listening on` line within {STARTUP_SECONDS} s; see {log}") from None

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


def path_of(inst: dict[str, Any]) -> Path:
    """Where an indexed file is: under the sample's folder, or the folder of another index (`root`)."""
    return inst.get("root", DATA) / inst["path"]


def read_file(inst: dict[str, Any]) -> pydicom.FileDataset:
    # `force`: the extra archive holds files without a meta group, which the indexer accepts.
    return pydicom.dcmread(path_of(inst), force=True)


def is_part10(inst: dict[str, Any]) -> bool:
    """Whether a file has the preamble and DICM prefix, which pydicom needs to parse a retrieved one."""
    with open(path_of(inst), "rb") as f:
        return f.read(132)[128:] == b"DICM"


# ---------------------------------------------------------------------------------------------------
# Datasets: a retrieved instance against the file on disk.


def compare_dataset(got: pydicom.Dataset, inst: dict[str, Any], explicit: bool = True) -> None:
    """A retrieved instance against the oracle: the file itself when it came as stored, else what pydicom
    writes of it in Explicit VR Little Endian, element by element (values and VRs, at every depth).
    `explicit`: it was asked for as application/dicom (dicomweb-client's default for studies and series),
    so that a native syntax comes as Explicit VR Little Endian; else as stored (`transfer-syntax=*`, the
    default of retrieve_instance)."""
    stored = inst["transfer_syntax"]
    sent = str(got.file_meta.TransferSyntaxUID)
    at = inst["path"]
    expected = oracle.ExplicitVRLittleEndian if explicit and stored in oracle.NATIVE else stored
    check(sent == expected, f"{at}: sent in {sent}, stored in {stored}, expected {expected}")
    want = oracle.explicit_le(path_of(inst)) if sent != stored else read_file(inst)
    problems = oracle.dataset_problems(got.file_meta, want.file_meta, f"{at} meta")
    problems += oracle.dataset_problems(got, want, at)
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

    def __init__(self, syntax: str) -> None:
        self.values: dict[str, bytes] = {}
        # Bulk data is sent little endian (PS3.18 §8.7.3.3.2); pydicom gives a big endian file's bytes.
        self.syntax = syntax

    def handler(self, element: pydicom.DataElement) -> str:
        key = f"pydicom-bulk:{len(self.values)}"
        self.values[key] = oracle.little_endian(element.value, element.VR, self.syntax)
        return key


def pydicom_json(inst: dict[str, Any]) -> tuple[dict[str, Any], Bulk]:
    ds = read_file(inst)
    bulk = Bulk(inst["transfer_syntax"])
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
        if g.get("vr") == "UN" and int(key[:4], 16) % 2 == 1 and w.get("vr") != "UN":
            # Normalisation: pydicom also knows the private tags of some vendors (its private dictionary,
            # not the standard's); in implicit VR the server sends those as UN (PS3.5 §6.2.2).
            continue
        if g.get("vr") != w.get("vr"):
            problems.append(f"{name}: vr {g.get('vr')}, pydicom {w.get('vr')}")
            continue
        vr = w["vr"]
        if "BulkDataURI" in g and vr not in BINARY_VRS and len(str(w.get("Value"))) > BULK_DATA_THRESHOLD:
            # Normalisation: the server sends text over the threshold as bulk data too (PS3.18 §F.2.2 allows
            # it for these VRs); pydicom inlines all text.
            continue
        if "BulkDataURI" in g and key == "7FE00010" and bulk.syntax not in oracle.NATIVE:
            # Normalisation: encapsulated Pixel Data comes one part per frame, the fragments without their
            # item headers; pydicom's value holds the items.
            stored = bulk.values[w["BulkDataURI"]] if "BulkDataURI" in w else base64.b64decode(w["InlineBinary"])
            fetches.append((g["BulkDataURI"], oracle.fragments(stored), name))
            continue
        if "BulkDataURI" in g:
            # Normalisation: a BulkDataURI names the server's own resource and cannot equal pydicom's
            # placeholder; and the server sends every binary value as a BulkDataURI (its documented choice,
            # which PS3.18 §F.2.7 allows), where pydicom inlines those of 1024 bytes or fewer. Either way the
            # bytes behind the URI must be the value: they are fetched and compared below.
            if vr not in BINARY_VRS:
                # The sample holds no text or number value over the threshold, so none may be bulk data.
                problems.append(f"{name}: a BulkDataURI for a {vr} value")
            elif "InlineBinary" in w:
                value = oracle.little_endian(base64.b64decode(w["InlineBinary"]), vr, bulk.syntax)
                fetches.append((g["BulkDataURI"], value, name))
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
        if vr in {"AE", "CS", "DA", "DT", "TM", "UI"}:
            # Normalisation: trailing spaces of each value of these VRs are padding (PS3.5 Table 6.2-1), which
            # the server removes from every value and pydicom only from the last.
            values_want = [v.rstrip(" ") if isinstance(v, str) else v for v in values_want]
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
        if isinstance(value, oracle.Fragments):
            if fetched != value:
                problems.append(f"{name}: {uri} gave {len(parts)} parts of {len(fetched)} bytes, not the fragments")
        elif len(parts) != 1 or fetched != value:
            problems.append(f"{name}: {uri} gave {len(parts)} parts of {len(fetched)} bytes, not the {len(value)}")
    problems_are_none(problems)


# ---------------------------------------------------------------------------------------------------
# Frames and searches.


def compare_frames(
    client: dicomweb_client.DICOMwebClient, study: str, series: str, inst: dict[str, Any], numbers: list[int]
) -> None:
    stored = oracle.frame_bytes(path_of(inst))
    frames = client.retrieve_instance_frames(study, series, inst["uid"], frame_numbers=numbers)
    check(len(frames) == len(numbers), f"{len(frames)} frames for {numbers}")
    for n, frame in zip(numbers, frames):
        want = stored[n - 1]
        check(frame == want, f"frame {n} of {inst['path']}: {len(frame)} bytes, not the file's {len(want)} (LE)")


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


def study_search(study: dict[str, Any], address: str, headers: dict[str, str]) -> None:
    """The study search at the Endpoint address finds exactly its study, the bearer token in a requests session."""
    session = requests.Session()
    session.headers.update(headers)
    client = dicomweb_client.DICOMwebClient(url=address, session=session)
    uid = study["uid"]
    for filters in [{"StudyInstanceUID": uid}, {"PatientID": study["patient_id"]}, {}]:
        found = client.search_for_studies(search_filters=filters, fields=["StudyDescription"])
        check([first(o, "0020000D") for o in found] == [uid], f"{filters}: {[first(o, '0020000D') for o in found]}")
        expected = {
            "00100020": study["patient_id"],
            "00081030": study["description"],
            "00201206": len(study["series"]),
            "00201208": len(instances_of(study)),
            "00081190": f"{address}/studies/{uid}",
        }
        for tag, value in expected.items():
            check(first(found[0], tag) == value, f"{filters} {tag}: {first(found[0], tag)!r}, expected {value!r}")
    for filters in [{"PatientID": "nobody"}, {"StudyInstanceUID": "2.25.1"}]:
        found = client.search_for_studies(search_filters=filters)
        check(found == [], f"{filters}: {found}, expected none")


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
        bundles.validate(bundle)
        for study, endpoint in bundles.studies(bundle):
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
    suite.case(f"{name}: search_for_studies at the Endpoint address", lambda: study_search(study, address, headers))
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
            lambda: compare_dataset(client.retrieve_instance(uid, se, one["uid"]), one, explicit=False),
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


EXTRA = REPO / "target" / "interop-extra"


def make_extra() -> Path:
    """Another archive, indexed beside the sample: the oracle files (every native syntax) and pydicom's own
    test and character-set files, those the indexer accepts. Returns its configuration."""
    shutil.rmtree(EXTRA, ignore_errors=True)
    (EXTRA / "dicom" / "oracle").mkdir(parents=True)
    oracle.make_files(EXTRA / "dicom" / "oracle")
    data = Path(pydicom.data.__file__).parent
    seen: set[str] = set()
    for folder in ("test_files", "charset_files"):
        target = EXTRA / "dicom" / folder
        target.mkdir()
        for path in sorted((data / folder).glob("*.dcm")):
            # Files pydicom itself cannot write as DICOM JSON (badVR.dcm: an IS of "1A") have no oracle.
            try:
                ds = pydicom.dcmread(path, force=True)
                ds.to_json_dict()
            except Exception:  # noqa: BLE001 - any failure of pydicom's leaves the file without an oracle
                continue
            uid = str(ds.get("SOPInstanceUID", ""))
            if uid and uid in seen and "TransferSyntaxUID" in ds.file_meta:
                # Many of pydicom's files are one data set in several transfer syntaxes, under one SOP
                # Instance UID, of which the indexer would keep the first. Each copy gets a UID of its own
                # (pydicom writes the other elements as they were read, in the same syntax).
                new = "2.25." + str(int.from_bytes(hashlib.sha256(path.name.encode()).digest()[:15], "big"))
                ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = new
                try:
                    ds.save_as(target / path.name)
                except Exception:  # noqa: BLE001 - a copy pydicom cannot write is left out
                    continue
            else:
                shutil.copy(path, target / path.name)
            seen.add(uid)
    binary = os.environ.get("SMART_IMAGING_BIN", str(REPO / "target" / "debug" / "smart-imaging"))
    subprocess.run(
        [binary, "index", str(EXTRA / "dicom"), "--out", str(EXTRA / "index.toml"), "--quiet"],
        check=True,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, SOURCE_DATE_EPOCH="1764288000"),
    )
    config = EXTRA / "smart-imaging.toml"
    config.write_text(
        '[images]\nindex = "index.toml"\n\n[tenants.open]\n'
        'authorization = { type = "mock", ignorePatient = true }\nimages = { lookup = "all-studies" }\n'
    )
    return config


def exercise_extra(suite: Suite) -> None:
    """Every instance of the extra archive: retrieved with dicomweb-client's defaults and compared with
    pydicom's Explicit VR Little Endian; its metadata with pydicom's DICOM JSON (character sets decoded as
    pydicom decodes them); the oracle files' frames; and each study retrieved whole."""
    try:
        config = make_extra()
        server = Server(config)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        suite.fail("extra archive: start", str(e))
        return
    try:
        with open(EXTRA / "index.toml", "rb") as f:
            studies = {s["uid"]: s for s in tomllib.load(f)["study"]}
        for study in studies.values():
            for series in study["series"]:
                for inst in series["instance"]:
                    inst["root"] = EXTRA
        for uid, address in studies_found(suite, server, "open", "", {}, list(studies)):
            study = studies[uid]
            client = dicomweb_client.DICOMwebClient(url=address)
            name = f"extra {uid}"
            # A file stored without a meta group is sent so, and pydicom (inside dicomweb-client) cannot
            # parse it: such a file's retrieve is left out, its metadata is not.
            whole = all(is_part10(inst) for inst in instances_of(study))
            if whole:
                suite.case(f"{name}: retrieve_study", lambda: compare_datasets(client.retrieve_study(uid), instances_of(study)))
            for series in study["series"]:
                se = series["uid"]
                for inst in series["instance"]:
                    sop, at = inst["uid"], f"extra {inst['path']}"
                    if is_part10(inst):
                        suite.case(
                            f"{at}: retrieve_instance",
                            lambda: compare_dataset(client.retrieve_instance(uid, se, sop), inst, explicit=False),
                        )
                    if is_part10(inst) and inst["transfer_syntax"] in oracle.NATIVE:
                        media = (("application/dicom", oracle.ExplicitVRLittleEndian),)
                        suite.case(
                            f"{at}: retrieve_instance as Explicit VR Little Endian",
                            lambda: compare_dataset(client.retrieve_instance(uid, se, sop, media_types=media), inst),
                        )
                    suite.case(
                        f"{at}: retrieve_instance_metadata",
                        lambda: compare_metadata(client, [client.retrieve_instance_metadata(uid, se, sop)], [inst], address),
                    )
                    if inst["path"].startswith("dicom/oracle/"):
                        every = list(range(1, inst.get("frames", 1) + 1))
                        suite.case(f"{at}: retrieve_instance_frames {every}", lambda: compare_frames(client, uid, se, inst, every))
    finally:
        server.stop()


METRIC_FAMILIES = {
    "smart_imaging_requests": "counter",
    "smart_imaging_response_bytes": "counter",
    "smart_imaging_request_duration_seconds": "histogram",
    "smart_imaging_open_connections": "gauge",
    "smart_imaging_busy_workers": "gauge",
    "smart_imaging_queued_requests": "gauge",
    "smart_imaging_writer_threads": "gauge",
    "smart_imaging_ehr_calls": "counter",
    "smart_imaging_cache_lookups": "counter",
    "smart_imaging_audit_lines_written": "counter",
    "smart_imaging_audit_lines_dropped": "counter",
    "smart_imaging_index_instances": "gauge",
    "smart_imaging_index_loaded_seconds": "gauge",
    "smart_imaging_index_reloads": "counter",
}


def exercise_endpoint_forms(suite: Suite, server: Server, p1: list[str]) -> None:
    """Both places of an ImagingStudy's Endpoint, each validated with fhir.resources: the default response-local
    Bundle entries (with and without `_include`, one study per page), a tenant configured to contain them
    (`images.endpoints = "contained"`, its own server), and a read, which contains its Endpoint either way."""
    headers = {"Authorization": f"Bearer {DEMO_TOKEN}"}

    def search(base: str, query: str) -> dict[str, Any]:
        reply = requests.get(f"{base}/demo/fhir/ImagingStudy?{query}", headers=headers, timeout=20)
        check(reply.status_code == 200, f"status {reply.status_code}: {reply.text[:200]}")
        bundle = reply.json()
        bundles.validate(bundle)
        return bundle

    def entries() -> None:
        for query in ["patient=p1", "patient=p1&_include=ImagingStudy:endpoint", "patient=p1&_count=1"]:
            bundle = search(server.base, query)
            check(bundles.form(bundle) == "bundle", f"{query}: form {bundles.form(bundle)}")
            included = [e for e in bundle["entry"] if e["search"]["mode"] == "include"]
            check(len(included) == len(bundles.studies(bundle)), f"{query}: {len(included)} Endpoint entries")

    def read() -> None:
        for uid in p1:
            reply = requests.get(f"{server.base}/demo/fhir/ImagingStudy/{uid}", headers=headers, timeout=20)
            check(reply.status_code == 200, f"read {uid}: {reply.status_code}")
            bundles.validate_study(reply.json())

    suite.case("Endpoints as response-local Bundle entries validate as R4 (fhir.resources)", entries)
    suite.case("a read's contained Endpoint validates as R4 (fhir.resources)", read)

    config = REPO / "target" / "interop-contained.toml"
    text = CONFIG.read_text()
    text = text.replace('index = "data/index.toml"', f"index = {json.dumps(str(DATA / 'index.toml'))}")
    demo = '[tenants.demo]\n'
    check(demo in text and text.count('images.lookup = "studies-by-context"') >= 2, "the configuration's demo tenant moved")
    head, tail = text.split(demo, 1)
    tail = tail.replace('images.lookup = "studies-by-context"', 'images.lookup = "studies-by-context"\nimages.endpoints = "contained"', 1)
    config.write_text(head.split("[sandbox]")[0] + demo + tail)
    try:
        contained = Server(config, REPO / "target" / "interop-contained.log")
    except (RuntimeError, OSError) as e:
        suite.fail("contained Endpoints: start", str(e))
        return
    try:
        def contained_form() -> None:
            bundle = search(contained.base, "patient=p1&_include=ImagingStudy:endpoint")
            check(bundles.form(bundle) == "contained", f"form {bundles.form(bundle)}")
            check(len(bundle["entry"]) == len(p1), f"{len(bundle['entry'])} entries for {len(p1)} studies")
            for study, endpoint in bundles.studies(bundle):
                client = dicomweb_client.DICOMwebClient(url=endpoint["address"], headers=headers)
                check(len(client.retrieve_study_metadata(study["id"])) > 0, f"metadata of {study['id']}")

        suite.case("images.endpoints = contained: contained Endpoints validate and serve dicomweb-client", contained_form)
    finally:
        contained.stop()


def check_metrics(server: Server, instances: int) -> None:
    """`GET /metrics`, read by the Prometheus client's own parser of the text format."""
    reply = requests.get(f"{server.base}/metrics", timeout=20)
    check(reply.status_code == 200, f"status {reply.status_code}")
    check(reply.headers["content-type"].startswith("text/plain; version=0.0.4"), reply.headers["content-type"])
    families = {f.name: f for f in prometheus_client.parser.text_string_to_metric_families(reply.text)}
    for name, kind in METRIC_FAMILIES.items():
        check(name in families, f"no family {name}: {sorted(families)}")
        check(families[name].type == kind, f"{name} is a {families[name].type}, not a {kind}")
    requests_by = {
        (s.labels["route"], s.labels["status"]): s.value
        for s in families["smart_imaging_requests"].samples
        if s.name == "smart_imaging_requests_total"
    }
    check(requests_by.get(("wado", "200"), 0) > 10, f"WADO requests counted: {requests_by}")
    check(requests_by.get(("fhir-search", "200"), 0) == 2, f"searches counted: {requests_by}")
    histogram = families["smart_imaging_request_duration_seconds"].samples
    buckets = [s.value for s in histogram if s.name.endswith("_bucket")]
    count = next(s.value for s in histogram if s.name.endswith("_count"))
    check(buckets == sorted(buckets) and buckets[-1] == count, f"buckets {buckets}, count {count}")
    # A request finishing between the two reads of the scrape may be in the histogram only.
    check(count >= sum(requests_by.values()) > 0, f"histogram count {count}, requests {requests_by}")
    sent = families["smart_imaging_response_bytes"].samples[0].value
    check(sent > 0, f"bytes sent {sent}")
    gauge = families["smart_imaging_index_instances"].samples[0].value
    check(gauge == instances, f"index instances {gauge}, want {instances}")


def main() -> int:
    suite = Suite(verbose="-v" in sys.argv[1:])
    suite.case("src/dicom/dictionary.txt is PS3.6 as pydicom ships it", lambda: check(dictionary.matches(), "it differs"))
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
        instances = sum(len(instances_of(study)) for study in index.values())
        suite.case("GET /metrics parses as the Prometheus text format", lambda: check_metrics(server, instances))
        exercise_endpoint_forms(suite, server, p1)
        mrn_of = {"p1": "MRN-1001", "p2": "MRN-2002"}
        studies_of = lambda mrn: [uid for uid, study in index.items() if study["patient_id"] == mrn]  # noqa: E731
        for uid, address, headers in sandbox.run(suite.case, server.base, server.sandbox, mrn_of, studies_of):
            exercise_study(suite, "smart", index[uid], address, headers)
    finally:
        server.stop()
    exercise_extra(suite)
    if suite.failed:
        print(f"server log: {LOG}")
    print(f"{suite.passed} passed, {suite.failed} failed")
    return 1 if suite.failed else 0


if __name__ == "__main__":
    sys.exit(main())
