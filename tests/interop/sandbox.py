"""Interop cases for the built-in sandbox EHR (docs/ehr.md, The built-in sandbox EHR; README, Walk the real SMART flow).

Run by run.py against the same server (the repository's configuration, its sandbox on port 0):

- ``readme_walk``: the README's "Walk the real SMART flow" steps, one for one, with ``requests``;
- authlib, a third-party OAuth client the sandbox's authors did not write, used the way its documentation
  shows: ``OAuth2Session`` with ``code_challenge_method="S256"`` for the authorization-code flow (the sandbox's
  per-patient issuer and its patient picker), and ``client_credentials`` with authlib's ``PrivateKeyJWT``
  (ES384, the sandbox-only key of ``data/sandbox/``) followed by RFC 7662 introspection;
- the tokens the sandbox issued, on the imaging server's ``smart`` tenant: ``run`` returns the studies found
  with them, for run.py to retrieve with dicomweb-client (retrieve, metadata, frames, QIDO).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import ECKey

import bundles

REPO = Path(__file__).resolve().parents[2]
SANDBOX_KEY = REPO / "data" / "sandbox" / "smart-tenant.private.jwk.json"
BACKEND_CLIENT = "smart-imaging"
# The backend app that the `smart` tenant lets read images with system scopes (authorization.backendServices).
SYSTEM_KEY = REPO / "data" / "sandbox" / "backend-demo.private.jwk.json"
SYSTEM_CLIENT = "backend-demo"
BACKEND_SERVICES = "http://fhir.org/argonaut/smart-imaging/capabilities/backend-services"
CALLBACK = "http://localhost:9999/callback"
SCOPES = "launch/patient patient/ImagingStudy.rs"
DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def check(condition: bool, detail: str) -> None:
    if not condition:
        raise AssertionError(detail)


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def readme_walk(imaging: str) -> dict[str, Any]:
    """The README's walk-through, step for step; returns the token answer."""
    # 1. Discover.
    smart = requests.get(f"{imaging}/smart/fhir/.well-known/smart-configuration", timeout=20)
    check(smart.status_code == 200, f"discovery: {smart.status_code}")
    authorize, token_url = smart.json()["authorization_endpoint"], smart.json()["token_endpoint"]
    # 2. PKCE.
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    # 3. Authorize, as choosing Anna on the picker page does.
    params = {
        "response_type": "code", "client_id": "my-app", "redirect_uri": CALLBACK, "scope": SCOPES,
        "state": "xyz", "aud": f"{imaging}/smart/fhir", "code_challenge": challenge,
        "code_challenge_method": "S256", "patient": "p1",
    }
    approved = requests.get(authorize, params=params, allow_redirects=False, timeout=20)
    check(approved.status_code == 302, f"authorize: {approved.status_code} {approved.text[:200]}")
    location = approved.headers["Location"]
    check(location.startswith(CALLBACK + "?"), f"redirected to {location}")
    check(query(location).get("state") == "xyz", f"state echoed: {location}")
    code = query(location)["code"]
    # 4. Token.
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "client_id": "my-app",
            "code_verifier": verifier}
    token = requests.post(token_url, data=form, timeout=20)
    check(token.status_code == 200, f"token: {token.status_code} {token.text[:200]}")
    answer = token.json()
    check(answer.get("patient") == "p1" and answer.get("scope") == SCOPES, f"token answer {answer}")
    return answer


def search(imaging: str, access: str, patient: str) -> list[tuple[str, str]]:
    reply = requests.get(f"{imaging}/smart/fhir/ImagingStudy", params={"patient": patient},
                         headers={"Authorization": f"Bearer {access}"}, timeout=20)
    check(reply.status_code == 200, f"search: {reply.status_code} {reply.text[:200]}")
    bundle = reply.json()
    bundles.validate(bundle)
    return [(study["id"], endpoint["address"]) for study, endpoint in bundles.studies(bundle)]


def retrieve_first(found: list[tuple[str, str]], access: str) -> None:
    uid, address = found[0]
    reply = requests.get(f"{address}/studies/{uid}", headers={"Authorization": f"Bearer {access}", "Accept": DICOM},
                         timeout=60)
    check(reply.status_code == 200, f"retrieve: {reply.status_code}")
    check(reply.headers["Content-Type"].startswith("multipart/related"), reply.headers["Content-Type"])
    check(b"DICM" in reply.content, "DICOM Part 10 files in the body")


def authlib_session(client_id: str) -> OAuth2Session:
    # As authlib's documentation shows for a public client with PKCE.
    return OAuth2Session(client_id, scope=SCOPES, redirect_uri=CALLBACK, code_challenge_method="S256",
                         token_endpoint_auth_method="none")


def authlib_code_flow(issuer: str, imaging: str, choose: str | None) -> dict[str, Any]:
    """authlib's authorization-code flow with PKCE at an issuer; `choose` is what a person picks on the
    picker page (the page's form is followed as a browser would)."""
    conf = requests.get(f"{issuer}/.well-known/smart-configuration", timeout=20).json()
    check("S256" in conf["code_challenge_methods_supported"], f"S256 offered: {conf}")
    client = authlib_session("authlib-app")
    verifier = generate_token(48)
    url, state = client.create_authorization_url(conf["authorization_endpoint"], code_verifier=verifier,
                                                 aud=f"{imaging}/smart/fhir")
    reply = requests.get(url, allow_redirects=False, timeout=20)
    if choose is not None:
        check(reply.status_code == 200 and "text/html" in reply.headers["Content-Type"], f"the picker: {reply.status_code}")
        check("for teaching and tests only" in reply.text, "the picker says it is a sandbox")
        check(f'name=patient value="{choose}"' in reply.text, f"the picker offers {choose}")
        # The page's form: the same authorization request, with the patient chosen.
        reply = requests.get(url + f"&patient={choose}", allow_redirects=False, timeout=20)
    check(reply.status_code == 302, f"authorize: {reply.status_code} {reply.text[:200]}")
    location = reply.headers["Location"]
    check(query(location).get("state") == state, "authlib's state came back")
    token = client.fetch_token(conf["token_endpoint"], authorization_response=location, code_verifier=verifier)
    check(token.get("token_type", "").lower() == "bearer", f"{token}")
    return token


def backend_session(token_url: str, exp: int | None, client: str = BACKEND_CLIENT, key_file: Path = SANDBOX_KEY) -> OAuth2Session:
    key = ECKey.import_key(json.loads(key_file.read_text()))
    # SMART Backend Services allows an assertion five minutes of life; authlib's default is an hour, so the
    # documented `claims` set `exp` (a fresh PrivateKeyJWT per session, since authlib adds its jti to them).
    claims = None if exp is None else {"exp": exp}
    session = OAuth2Session(client, key, token_endpoint_auth_method=PrivateKeyJWT(token_url, alg="ES384", claims=claims))
    return session


def run(case: Callable[[str, Callable[[], None]], None], imaging: str, sandbox: str, mrn_of: dict[str, str],
        studies_of: Callable[[str], list[str]]) -> list[tuple[str, str, dict[str, str]]]:
    """Runs the sandbox cases; returns (study uid, Endpoint address, headers) of the studies found with the
    sandbox's tokens, for run.py to retrieve with dicomweb-client."""
    found: list[tuple[str, str, dict[str, str]]] = []
    tokens: dict[str, str] = {}

    def walk() -> None:
        answer = readme_walk(imaging)
        access = answer["access_token"]
        studies = search(imaging, access, answer["patient"])
        check(sorted(u for u, _ in studies) == sorted(studies_of(mrn_of["p1"])), f"p1's studies: {studies}")
        retrieve_first(studies, access)
        tokens["p1"] = access
        found.extend((uid, address, {"Authorization": f"Bearer {access}"}) for uid, address in studies)

    case("sandbox: readme_walk (the README's Walk the real SMART flow, with requests)", walk)

    def authlib_per_patient() -> None:
        token = authlib_code_flow(f"{sandbox}/p2/fhir", imaging, None)
        check(token.get("patient") == "p2", f"p2's issuer: {token}")
        studies = search(imaging, token["access_token"], "p2")
        check(sorted(u for u, _ in studies) == sorted(studies_of(mrn_of["p2"])), f"p2's studies: {studies}")
        found.extend((uid, address, {"Authorization": f"Bearer {token['access_token']}"}) for uid, address in studies)

    case("sandbox: authlib OAuth2Session, PKCE S256, at the per-patient issuer p2", authlib_per_patient)

    def authlib_picker() -> None:
        token = authlib_code_flow(f"{sandbox}/fhir", imaging, "p1")
        check(token.get("patient") == "p1", f"the patient picked: {token}")
        check(search(imaging, token["access_token"], "p1"), "p1 has studies")

    case("sandbox: authlib OAuth2Session at the patient picker", authlib_picker)

    def authlib_refusals() -> None:
        conf = requests.get(f"{sandbox}/p1/fhir/.well-known/smart-configuration", timeout=20).json()
        client = OAuth2Session("authlib-app", scope=SCOPES, redirect_uri=CALLBACK)
        url, _ = client.create_authorization_url(conf["authorization_endpoint"], aud=f"{imaging}/smart/fhir")
        reply = requests.get(url, allow_redirects=False, timeout=20)
        check(reply.status_code == 302 and query(reply.headers["Location"]).get("error") == "invalid_request",
              f"without PKCE: {reply.status_code} {reply.headers.get('Location')}")

    case("sandbox: authlib without PKCE is refused", authlib_refusals)

    def authlib_backend() -> None:
        conf = requests.get(f"{sandbox}/fhir/.well-known/smart-configuration", timeout=20).json()
        check("private_key_jwt" in conf["token_endpoint_auth_methods_supported"], f"{conf}")
        session = backend_session(conf["token_endpoint"], int(time.time()) + 300)
        token = session.fetch_token(conf["token_endpoint"], grant_type="client_credentials", scope="system/Patient.rs")
        check(token.get("scope") == "system/Patient.rs", f"{token}")
        backend = {"Authorization": f"Bearer {token['access_token']}"}
        answer = requests.post(conf["introspection_endpoint"], data={"token": tokens.get("p1", "")}, headers=backend,
                               timeout=20).json()
        check(answer.get("active") is True and answer.get("patient") == "p1", f"introspection: {answer}")
        for key in ("scope", "client_id", "exp"):
            check(key in answer, f"introspection answers {key}: {answer}")
        patient = requests.get(f"{sandbox}/fhir/Patient/p1", headers=backend, timeout=20).json()
        check(any(i.get("value") == mrn_of["p1"] for i in patient.get("identifier", [])), f"{patient}")
        unknown = requests.post(conf["introspection_endpoint"], data={"token": "nope"}, headers=backend, timeout=20)
        check(unknown.json() == {"active": False}, f"an unknown token: {unknown.text}")

    case("sandbox: authlib client_credentials with PrivateKeyJWT (ES384), then introspection", authlib_backend)

    def authlib_backend_default_exp() -> None:
        token_url = f"{sandbox}/auth/token"
        session = backend_session(token_url, None)
        try:
            session.fetch_token(token_url, grant_type="client_credentials", scope="system/Patient.rs")
        except Exception as e:  # noqa: BLE001 - authlib raises its OAuthError
            check("invalid_client" in str(e), f"refused as invalid_client: {e}")
        else:
            raise AssertionError("an assertion an hour long was accepted")

    case("sandbox: authlib's default one-hour assertion is refused (SMART allows five minutes)",
         authlib_backend_default_exp)

    def system_access() -> None:
        # A backend app discovers Backend Services at the imaging base, gets a system token with authlib's
        # PrivateKeyJWT, and searches any patient by id; run.py retrieves what it finds with dicomweb-client.
        conf = requests.get(f"{imaging}/smart/fhir/.well-known/smart-configuration", timeout=20).json()
        check(BACKEND_SERVICES in conf["capabilities"] and "client_credentials" in conf["grant_types_supported"], f"{conf}")
        check("private_key_jwt" in conf["token_endpoint_auth_methods_supported"], f"{conf}")
        check("ES384" in conf["token_endpoint_auth_signing_alg_values_supported"], f"{conf}")
        session = backend_session(conf["token_endpoint"], int(time.time()) + 300, SYSTEM_CLIENT, SYSTEM_KEY)
        token = session.fetch_token(conf["token_endpoint"], grant_type="client_credentials", scope="system/ImagingStudy.rs")
        access = token["access_token"]
        for patient in ("p1", "p2"):
            studies = search(imaging, access, patient)
            check(sorted(u for u, _ in studies) == sorted(studies_of(mrn_of[patient])), f"{patient}'s studies: {studies}")
            found.extend((uid, address, {"Authorization": f"Bearer {access}"}) for uid, address in studies)
        bare = requests.get(f"{imaging}/smart/fhir/ImagingStudy", headers={"Authorization": f"Bearer {access}"}, timeout=20)
        check(bare.status_code == 400, f"a system search without patient: {bare.status_code} {bare.text[:200]}")

    case("sandbox: Backend Services with authlib's PrivateKeyJWT: system/ImagingStudy.rs searches any patient", system_access)

    def system_scopes_of_an_unlisted_client() -> None:
        token_url = f"{sandbox}/auth/token"
        session = backend_session(token_url, int(time.time()) + 300)
        token = session.fetch_token(token_url, grant_type="client_credentials", scope="system/ImagingStudy.rs")
        reply = requests.get(f"{imaging}/smart/fhir/ImagingStudy", params={"patient": "p1"},
                             headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=20)
        challenge = reply.headers.get("WWW-Authenticate", "")
        check(reply.status_code == 403 and 'error="insufficient_scope"' in challenge, f"{reply.status_code} {challenge}")

    case("sandbox: system scopes of a client not listed in backendServices are 403 insufficient_scope",
         system_scopes_of_an_unlisted_client)

    def cors() -> None:
        reply = requests.options(f"{sandbox}/auth/token", headers={
            "Origin": "http://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"}, timeout=20)
        check(reply.status_code == 204 and reply.headers.get("Access-Control-Allow-Origin") == "*", f"{reply.headers}")

    case("sandbox: CORS preflight on the token endpoint", cors)
    return found
