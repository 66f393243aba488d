"""ImagingStudy search answers as a SMART Imaging client reads them: each study with its WADO-RS Endpoint in
any of the three forms an app must support (contained and named `#id`; a response-local Bundle entry named by
its `urn:uuid:` fullUrl; an Endpoint entry brought by `_include`, named `Endpoint/id` or by its fullUrl), and
each answer checked against the FHIR R4 models of fhir.resources (R4B, whose Bundle, ImagingStudy and Endpoint
are R4's)."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.imagingstudy import ImagingStudy


def check(condition: bool, detail: str) -> None:
    if not condition:
        raise AssertionError(detail)


def endpoint_of(bundle: dict[str, Any], study: dict[str, Any]) -> dict[str, Any]:
    """The Endpoint that a study's first `endpoint` reference names, on the same page."""
    reference = study["endpoint"][0]["reference"]
    if reference.startswith("#"):
        found = [r for r in study.get("contained", []) if r.get("id") == reference[1:]]
    else:
        found = [
            e["resource"]
            for e in bundle.get("entry", [])
            if e["resource"].get("resourceType") == "Endpoint"
            and (e.get("fullUrl") == reference or f"Endpoint/{e['resource'].get('id')}" == reference)
        ]
    check(len(found) == 1, f"study {study['id']}: its Endpoint {reference!r} is not once on the page")
    endpoint = found[0]
    check(endpoint["resourceType"] == "Endpoint", f"{reference} is a {endpoint['resourceType']}")
    check(endpoint["connectionType"]["code"] == "dicom-wado-rs", f"{reference}: {endpoint['connectionType']}")
    return endpoint


def studies(bundle: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The matching studies of a searchset page, each with its Endpoint."""
    matches = [e["resource"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode", "match") == "match"]
    return [(study, endpoint_of(bundle, study)) for study in matches]


def form(bundle: dict[str, Any]) -> str:
    """`bundle` when every study names a response-local entry, `contained` when every study contains its
    Endpoint; anything else fails."""
    references = {s["endpoint"][0]["reference"][:9] for s, _ in studies(bundle)}
    check(len(references) == 1, f"the studies' Endpoints come in mixed forms: {references}")
    prefix = references.pop()
    check(prefix in ("urn:uuid:", "#wado"), f"Endpoint reference form {prefix!r}")
    return "bundle" if prefix == "urn:uuid:" else "contained"


def validate(bundle: dict[str, Any]) -> None:
    """The searchset parses as an R4 Bundle whose resources parse too (fhir.resources raises otherwise), and
    every response-local Endpoint entry is `search.mode = include` under a `urn:uuid:` fullUrl."""
    Bundle.model_validate(bundle)
    for entry in bundle.get("entry", []):
        if entry["resource"]["resourceType"] == "Endpoint":
            check(entry.get("search", {}).get("mode") == "include", f"Endpoint entry {entry.get('fullUrl')} mode")
            check(entry.get("fullUrl", "").startswith("urn:uuid:"), f"Endpoint entry fullUrl {entry.get('fullUrl')}")


def validate_study(study: dict[str, Any]) -> None:
    """One ImagingStudy read (no Bundle) parses as an R4 ImagingStudy with its Endpoint contained."""
    ImagingStudy.model_validate(study)
    check(study["endpoint"][0]["reference"].startswith("#"), f"a read's Endpoint {study['endpoint']}")
    endpoint_of({}, study)
