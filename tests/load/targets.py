#!/usr/bin/env python3
"""Writes the request mix of the load test as a Lua table for mix.lua, from the running server's own answers:
study retrievals use the Endpoint addresses (with their study tokens) of real searches.

Usage: targets.py BASE_URL OUT.lua OUT_SLOW.json
BASE_URL must be on 127.0.0.1. OUT_SLOW.json names the paths the slow clients use.
"""

import json
import sys
import urllib.request

BASE = sys.argv[1].rstrip("/")
assert BASE.startswith("http://127.0.0.1:"), BASE
MULTIPART = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def search(path, token=None):
    request = urllib.request.Request(BASE + path)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        bundle = json.load(response)
    studies = []
    # Each study's Endpoint: the entry whose fullUrl its reference is, or one it contains.
    endpoints = {e["fullUrl"]: e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "include"}
    for entry in bundle.get("entry", []):
        if entry["search"]["mode"] != "match":
            continue
        study = entry["resource"]
        reference = study["endpoint"][0]["reference"]
        contained = {f"#{r['id']}": r for r in study.get("contained", [])}
        address = (endpoints.get(reference) or contained[reference])["address"]
        series = study["series"][0]
        studies.append({
            "uid": study["id"],
            "wado": address[len(BASE):],
            "series": series["uid"],
            "sop": series["instance"][0]["uid"],
            "instances": study.get("numberOfInstances", 0),
        })
    assert studies, f"no studies from {path}"
    return studies


def tampered(wado):
    """The same address with one character of the study token changed."""
    head, token = wado.rsplit("/", 1)
    middle = len(token) // 2
    swapped = "A" if token[middle] != "A" else "B"
    return f"{head}/{token[:middle]}{swapped}{token[middle + 1:]}"


def main():
    out_lua, out_slow = sys.argv[2], sys.argv[3]
    open_studies = search("/open/fhir/ImagingStudy")
    demo_studies = search("/demo/fhir/ImagingStudy?patient=p1")
    ehr_studies = search("/ehr/fhir/ImagingStudy?patient=p1", token="good-0")

    targets = []  # (kind, weight, path, headers)

    def add(kind, weight, path, headers=None):
        targets.append((kind, weight, path, headers or {}))

    add("search-open", 14, "/open/fhir/ImagingStudy")
    add("search-demo", 10, "/demo/fhir/ImagingStudy?patient=p1")
    for n in range(8):
        add("search-ehr", 2, "/ehr/fhir/ImagingStudy?patient=p1", {"Authorization": f"Bearer good-{n}"})
    for s in open_studies + demo_studies:
        add("study", 3, f"{s['wado']}/studies/{s['uid']}", {"Accept": MULTIPART})
        add("instance", 3, f"{s['wado']}/studies/{s['uid']}/series/{s['series']}/instances/{s['sop']}",
            {"Accept": "application/dicom"})
        add("tampered-study-token", 3, f"{tampered(s['wado'])}/studies/{s['uid']}", {"Accept": MULTIPART})
    for s in ehr_studies:
        add("study-ehr", 3, f"{s['wado']}/studies/{s['uid']}",
            {"Accept": MULTIPART, "Authorization": "Bearer good-0"})
    for value in ["Bearer", "Bearer ", "Basic Zm9vOmJhcg==", "Bearer a b", "Token abc", "bearer", "Bearer \"x\""]:
        add("malformed-authorization", 2, "/ehr/fhir/ImagingStudy?patient=p1", {"Authorization": value})
    for n in range(50):
        add("bad-token", 0.3, "/ehr/fhir/ImagingStudy?patient=p1", {"Authorization": f"Bearer bad-{n}"})

    def lua_string(s):
        return json.dumps(s)  # a JSON string is a valid Lua string literal for these ASCII values

    with open(out_lua, "w") as f:
        f.write("return {\n")
        for kind, weight, path, headers in targets:
            hs = ", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items())
            f.write(f"  {{ kind = {lua_string(kind)}, weight = {weight}, path = {lua_string(path)}, headers = {{ {hs} }} }},\n")
        f.write("}\n")

    biggest = max(open_studies, key=lambda s: s["instances"])
    with open(out_slow, "w") as f:
        json.dump({"download": f"{biggest['wado']}/studies/{biggest['uid']}", "accept": MULTIPART}, f)

    kinds = {}
    for kind, weight, _, _ in targets:
        kinds[kind] = kinds.get(kind, 0) + weight
    total = sum(kinds.values())
    print("request mix: " + ", ".join(f"{k} {100 * w / total:.0f}%" for k, w in kinds.items()))


if __name__ == "__main__":
    main()
