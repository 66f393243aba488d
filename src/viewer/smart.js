// A SMART App Launch standalone or EHR launch (authorization code with PKCE S256), written for this page:
// discovery at the issuer, the redirect to its authorize endpoint, and the code exchanged for a token on the
// way back. An EHR launch (the EHR opened this page with `iss` and `launch`) asks for the `launch` scope and
// sends the `launch` value back; the patient then comes from the EHR, in the token answer.
// The PKCE verifier and the state live in sessionStorage across the redirect; the token is returned to the
// caller and never stored.

const PENDING = "smart-imaging-viewer.launch";
const CLIENT_ID = "smart-imaging-viewer";
const SCOPE = "launch/patient openid fhirUser patient/ImagingStudy.rs patient/Patient.rs";
const EHR_SCOPE = "launch openid fhirUser patient/ImagingStudy.rs patient/Patient.rs";

function base64url(bytes) {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomText(n) {
  return base64url(crypto.getRandomValues(new Uint8Array(n)));
}

/** The issuer's SMART configuration (SMART App Launch, Discovery). */
export async function discover(issuer) {
  const url = `${issuer.replace(/\/$/, "")}/.well-known/smart-configuration`;
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  return response.json();
}

/** The imaging FHIR base the EHR names in `associated_endpoints`, if it names one. */
export function imagingBaseOf(configuration) {
  for (const endpoint of configuration.associated_endpoints || []) {
    if ((endpoint.capabilities || []).includes("smart-imaging-access")) return endpoint.url;
  }
  return null;
}

/** The EHR launch this page was opened with (`?iss=…&launch=…`), or null. */
export function ehrLaunch() {
  const params = new URLSearchParams(location.search);
  const iss = params.get("iss");
  const value = params.get("launch");
  return iss && value ? { iss, launch: value } : null;
}

/** Starts a launch: remembers what the return needs, then leaves for the authorize endpoint. With
 * `launchValue`, an EHR launch. */
export async function launch(issuer, tenant, launchValue = null) {
  if (!crypto.subtle) throw new Error("this page needs a secure context (https, or http on localhost) for PKCE");
  const configuration = await discover(issuer);
  const verifier = randomText(32);
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  const state = randomText(16);
  const redirect = location.origin + location.pathname;
  sessionStorage.setItem(PENDING, JSON.stringify({
    issuer, tenant, verifier, state, redirect, tokenEndpoint: configuration.token_endpoint,
    imagingBase: imagingBaseOf(configuration),
  }));
  const query = new URLSearchParams({
    response_type: "code", client_id: CLIENT_ID, redirect_uri: redirect, scope: launchValue ? EHR_SCOPE : SCOPE,
    state, aud: issuer, code_challenge: base64url(new Uint8Array(digest)), code_challenge_method: "S256",
  });
  if (launchValue) query.set("launch", launchValue);
  location.assign(`${configuration.authorization_endpoint}?${query}`);
}

/** On the way back from authorize: the token and what came with it, or null when this is no return. */
export async function completeLaunch() {
  const params = new URLSearchParams(location.search);
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  if (!params.has("code") && !params.has("error")) return null;
  sessionStorage.removeItem(PENDING);
  history.replaceState(null, "", location.pathname);
  if (!pending) throw new Error("a sign-in came back that this page did not start; sign in again");
  if (params.get("state") !== pending.state) throw new Error("the sign-in came back with another state; sign in again");
  if (params.has("error")) throw new Refused(params.get("error"), params.get("error_description"));
  const body = new URLSearchParams({
    grant_type: "authorization_code", code: params.get("code"), redirect_uri: pending.redirect,
    client_id: CLIENT_ID, code_verifier: pending.verifier,
  });
  const response = await fetch(pending.tokenEndpoint, {
    method: "POST", body, headers: { Accept: "application/json" },
  });
  if (!response.ok) throw new Error(`the token endpoint answered ${response.status}; sign in again`);
  const token = await response.json();
  return {
    accessToken: token.access_token, patient: token.patient, tenant: pending.tenant,
    issuer: pending.issuer, imagingBase: pending.imagingBase,
  };
}

/** The authorize endpoint's answer `error` (RFC 6749 §4.1.2.1), worded for the person who signed in. */
export class Refused extends Error {
  constructor(error, description) {
    super(error === "access_denied"
      ? "Access was denied at the EHR: no patient was approved for this app. Sign in again to choose one."
      : `The EHR refused the sign-in (${error}${description ? `: ${description}` : ""}). Sign in again.`);
    this.error = error;
  }
}

/** The patient's name from `Patient/{id}` at the FHIR server the token is for, or null when it cannot be read. */
export async function patientName(issuer, token, id) {
  try {
    const url = `${issuer.replace(/\/$/, "")}/Patient/${encodeURIComponent(id)}`;
    const response = await fetch(url, { headers: { Accept: "application/fhir+json", Authorization: `Bearer ${token}` } });
    if (!response.ok) return null;
    const patient = await response.json();
    const name = (patient.name || []).find((n) => n.use === "official") || (patient.name || [])[0];
    if (!name) return null;
    return name.text || [...(name.given || []), name.family].filter(Boolean).join(" ") || null;
  } catch {
    return null; // a network failure or a body that is not JSON: the id says who it is
  }
}
