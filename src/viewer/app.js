// The viewer's page: choose a tenant, sign in (or not, for a mock tenant), list the patient's studies and a
// study's series, and draw a series' images with window/level from the data set or the mouse.

import { Refused, completeLaunch, ehrLaunch, launch, patientName } from "./smart.js";
import { HttpError, getFrame, getJson } from "./dicomweb.js";
import { defaultWindow, drawable, imageOf, modalityValues, rgba } from "./pixels.js";

const FHIR = "application/fhir+json";
const DICOM_JSON = "application/dicom+json";
const FRAMES = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';

const $ = (id) => document.getElementById(id);
// `addresses` maps each listed study's UID to its Endpoint address, the one place the page keeps it: the
// series and frames of a study are asked under whatever address it holds when they are asked. `asked` counts
// the frames asked for: an answer to any but the last is dropped, so that what is drawn and its label are
// always the last request's; `answered` counts the answers the page is done with, drawn or dropped.
const state = {
  session: null, tenants: [], addresses: new Map(), items: [], at: 0, window: null, drawn: null, ohif: null,
  asked: 0, answered: 0,
};
// What the page shows now, for a person's devtools and the browser test.
window.viewerState = state;

function say(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function fail(e) {
  say(e instanceof HttpError || e instanceof Refused ? e.message : `Something went wrong: ${e.message}`, true);
}

/** "1 study", "2 studies". */
function count(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

async function start() {
  try {
    const config = await getJson("config.json", null, "application/json");
    state.tenants = config.tenants;
    state.ohif = config.ohif || null;
    $("ohif-head").hidden = !state.ohif;
    for (const t of config.tenants) {
      const option = new Option(`${t.name} (${t.kind})`, t.name);
      $("tenant").add(option);
      if (t.issuer) $("issuers").append(new Option(t.issuer));
    }
    // The built-in sandbox's issuers, when it runs: the patient picker and one per patient.
    const listed = new Set(state.tenants.map((t) => t.issuer).filter(Boolean));
    for (const issuer of config.issuers || []) {
      if (!listed.has(issuer.url)) $("issuers").append(new Option(issuer.label, issuer.url));
    }
    $("tenant").addEventListener("change", showTenant);
    $("launch-form").addEventListener("submit", (event) => { event.preventDefault(); signIn().catch(fail); });
    const fromEhr = ehrLaunch();
    if (fromEhr) {
      // Opened by an EHR: sign in at its issuer, for the tenant that uses it (else the first SMART one).
      const t = state.tenants.find((t) => t.issuer === fromEhr.iss) || state.tenants.find((t) => t.kind === "smart-on-fhir");
      say("Launched from the EHR: signing in…");
      await launch(fromEhr.iss, t ? t.name : "", fromEhr.launch);
      return;
    }
    const back = await completeLaunch();
    if (back) {
      const tenant = state.tenants.find((t) => t.name === back.tenant) || {};
      $("tenant").value = back.tenant;
      showTenant();
      state.session = { token: back.accessToken, patient: back.patient, imagingBase: back.imagingBase || tenant.imagingBase };
      state.session.patientName = back.patient && await patientName(back.issuer, back.accessToken, back.patient);
      await search();
    } else {
      showTenant();
    }
  } catch (e) {
    fail(e);
  }
}

function chosenTenant() {
  return state.tenants.find((t) => t.name === $("tenant").value);
}

function showTenant() {
  const t = chosenTenant();
  if (!t) return;
  const smart = t.kind === "smart-on-fhir";
  $("issuer-label").hidden = !smart;
  if (smart && !$("issuer").value) $("issuer").value = t.issuer;
  $("go").textContent = smart ? "Sign in and search" : "Search (a mock tenant needs no sign-in)";
  $("who").textContent = smart ? "" : (t.patient ? `Patient in context: ${t.patientName || t.patient}.` : "Every study.");
}

async function signIn() {
  const t = chosenTenant();
  if (t.kind === "smart-on-fhir") {
    say("Signing in at the EHR…");
    await launch($("issuer").value.trim(), t.name);
    return;
  }
  state.session = { token: null, patient: t.patient, patientName: t.patientName, imagingBase: t.imagingBase };
  await search();
}

async function search() {
  const s = state.session;
  say("Searching the patient's studies…");
  const query = s.patient ? `?patient=${encodeURIComponent(s.patient)}` : "";
  const bundle = await getJson(`${s.imagingBase}/ImagingStudy${query}`, s.token, FHIR, say);
  const studies = studiesOf(bundle);
  state.addresses = new Map(studies.map((study) => [study.id, endpointOf(study, bundle)?.address]));
  $("who").textContent = s.patient ? `Patient in context: ${s.patientName || s.patient}.` : "Every study.";
  const body = $("studies").tBodies[0];
  body.replaceChildren();
  for (const study of studies) {
    const row = body.insertRow();
    const cells = [
      (study.started || "").slice(0, 10), study.description || "",
      (study.modality || []).map((m) => m.code).join(", "), study.numberOfSeries, study.numberOfInstances,
    ];
    for (const text of cells) row.insertCell().textContent = text;
    if (state.ohif) {
      const link = document.createElement("a");
      link.textContent = "Open in OHIF";
      link.href = ohifLink(state.ohif, state.addresses.get(study.id), study.id, s.token);
      link.className = "ohif";
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      link.addEventListener("click", (event) => event.stopPropagation());
      row.insertCell().append(link);
    }
    row.dataset.study = study.id;
    row.addEventListener("click", () => { choose(body, row); showSeries(study); });
  }
  $("studies-section").hidden = false;
  $("series-section").hidden = true;
  $("image-section").hidden = true;
  say(`${count(studies.length, "study", "studies")}.`);
}

/** The ImagingStudy resources of a searchset Bundle (not the Endpoints it may also hold as entries). */
function studiesOf(bundle) {
  return (bundle.entry || []).map((e) => e.resource).filter((r) => r && r.resourceType === "ImagingStudy");
}

/** The Endpoint a study names in `endpoint[0]`: contained (`#id`), or an entry of the same Bundle whose
 * `fullUrl` is the reference (a response-local `urn:uuid:`); without a reference, its contained Endpoint. */
function endpointOf(study, bundle) {
  const reference = study.endpoint?.[0]?.reference;
  const isEndpoint = (r) => r && r.resourceType === "Endpoint";
  const contained = (study.contained || []).filter(isEndpoint);
  if (!reference) return contained[0];
  if (reference.startsWith("#")) return contained.find((r) => r.id === reference.slice(1));
  return (bundle.entry || []).find((e) => e.fullUrl === reference && isEndpoint(e.resource))?.resource;
}

/** The study's Endpoint address from the search again, for this patient and this Study Instance UID. */
async function freshAddress(uid) {
  const s = state.session;
  const patient = s.patient ? `patient=${encodeURIComponent(s.patient)}&` : "";
  const bundle = await getJson(`${s.imagingBase}/ImagingStudy?${patient}identifier=urn:oid:${uid}`, s.token, FHIR, say);
  const study = studiesOf(bundle).find((r) => r.id === uid);
  return study && endpointOf(study, bundle)?.address;
}

/** `request(address)` under the study's address. SMART Imaging Access answers an expired or revoked address
 * 403 and has the client search again for a fresh Endpoint: on a 401 or 403 the search is asked once, the
 * address it gives replaces the old one, and `request` runs once more; a second failure is thrown as it is. */
async function underAddress(uid, request) {
  try {
    return await request(state.addresses.get(uid));
  } catch (e) {
    if (!(e instanceof HttpError) || (e.status !== 401 && e.status !== 403)) throw e;
    const address = await freshAddress(uid);
    if (!address) throw e; // the study is no longer the patient's
    setAddress(uid, address);
    return request(address);
  }
}

function setAddress(uid, address) {
  state.addresses.set(uid, address);
  const link = document.querySelector(`#studies tr[data-study="${CSS.escape(uid)}"] a.ohif`);
  if (link) link.href = ohifLink(state.ohif, address, uid, state.session.token);
}

// OHIF opens the study from its Endpoint address through its `dicomwebproxy` data source, which reads its
// DICOMweb configuration from `url` (this server's ohif.json, whose roots are the address), and takes the
// bearer token from `token`, which it removes from the address bar once read. The token is still in the
// link, so in the browser's history: see docs/viewer.md.
function ohifLink(ohif, address, study, token) {
  const config = new URL(`ohif.json?${new URLSearchParams({ address })}`, location.href).href;
  // The proxy reads the study from `studyInstanceUIDs` (lower-case s), OHIF's other routes from `StudyInstanceUIDs`.
  const query = new URLSearchParams({ url: config, StudyInstanceUIDs: study, studyInstanceUIDs: study });
  if (token) query.set("token", token);
  return `${ohif}/viewer/dicomwebproxy?${query}`;
}

function choose(list, item) {
  for (const other of list.children) other.classList.remove("chosen");
  item.classList.add("chosen");
}

function showSeries(study) {
  const list = $("series");
  list.replaceChildren();
  for (const series of study.series || []) {
    const item = document.createElement("li");
    item.textContent = `#${series.number ?? "?"} ${series.modality?.code || ""} ${series.description || ""} ` +
      `(${count(series.numberOfInstances, "instance")})`;
    item.dataset.series = series.uid;
    item.addEventListener("click", () => { choose(list, item); openSeries(study.id, series.uid).catch(fail); });
    list.append(item);
  }
  $("series-section").hidden = false;
  $("image-section").hidden = true;
}

async function openSeries(study, series) {
  const s = state.session;
  say("Reading the series' metadata…");
  const path = `/studies/${study}/series/${series}`;
  const instances = await underAddress(study, (address) => getJson(`${address}${path}/metadata`, s.token, DICOM_JSON, say));
  const items = [];
  for (const meta of instances) {
    const image = imageOf(meta);
    const sop = meta["00080018"].Value[0];
    for (let f = 1; f <= image.frames; f++) {
      items.push({ meta, image, study, path: `${path}/instances/${sop}/frames/${f}`, sop, frame: f });
    }
  }
  items.sort((a, b) => a.image.number - b.image.number || a.frame - b.frame);
  state.items = items;
  state.at = 0;
  state.window = null; // the window the person chose by dragging, kept while scrolling
  state.drawn = null;
  $("image-section").hidden = false;
  await draw();
}

/** Draws the frame at `state.at`, unless another is asked for before it has come. */
async function draw() {
  const at = state.at;
  const item = state.items[at];
  if (!item) return;
  const asked = ++state.asked;
  const canvas = $("canvas");
  canvas.dataset.ready = "no";
  let frame;
  let bitmap = null;
  try {
    frame = await underAddress(item.study, (address) => getFrame(`${address}${item.path}`, state.session.token, FRAMES, say));
    const how = drawable(frame.transferSyntax);
    if (how && how !== "native") bitmap = await createImageBitmap(new Blob([frame.bytes], { type: how }));
  } catch (e) {
    if (asked === state.asked) throw e;
    return; // a later request took its place: its failure is no news
  } finally {
    state.answered++;
  }
  if (asked !== state.asked) return; // superseded: a later request draws
  const how = drawable(frame.transferSyntax);
  if (how === "native") {
    state.drawn = { at, item, frame };
    render(state.window || windowFor(item, frame));
  } else if (how) {
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
    canvas.getContext("2d").drawImage(bitmap, 0, 0);
    state.drawn = null;
    info(at, item, null);
  } else {
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
    say(`This image is stored in transfer syntax ${frame.transferSyntax}, which the viewer cannot draw.`, true);
    return;
  }
  canvas.dataset.instance = String(at);
  canvas.dataset.ready = "yes";
  say("");
}

/** The data set's window, else the full range of this frame's values. */
function windowFor(item, frame) {
  const image = item.image;
  if (Number.isFinite(image.center) && image.width >= 1) return { center: image.center, width: image.width };
  if (!frame.range) {
    const values = modalityValues(image, frame.bytes, frame.transferSyntax);
    frame.range = defaultWindow({ ...image, center: NaN, width: NaN }, values);
  }
  return frame.range;
}

/** Draws the current frame with `window` (center, width). */
function render(window) {
  const { at, item, frame } = state.drawn;
  const image = item.image;
  const canvas = $("canvas");
  canvas.width = image.columns;
  canvas.height = image.rows;
  const pixels = rgba(image, frame.bytes, frame.transferSyntax, window);
  canvas.getContext("2d").putImageData(new ImageData(pixels, image.columns, image.rows), 0, 0);
  canvas.dataset.center = String(window.center);
  canvas.dataset.width = String(window.width);
  info(at, item, window);
}

/** The label of the frame drawn: item `at` of the series. */
function info(at, item, window) {
  const where = `Instance ${item.image.number} (${at + 1} of ${state.items.length})` +
    (item.image.frames > 1 ? `, frame ${item.frame} of ${item.image.frames}` : "");
  const wl = window ? ` · window ${Math.round(window.width)}, level ${Math.round(window.center)}` : "";
  $("image-info").textContent = `${where} · ${item.image.columns}×${item.image.rows} ${item.image.photometric}${wl}`;
}

function step(by) {
  const next = Math.min(state.items.length - 1, Math.max(0, state.at + by));
  if (next !== state.at) {
    state.at = next;
    draw().catch(fail);
  }
}

function wire() {
  const canvas = $("canvas");
  let drag = null;
  canvas.addEventListener("mousedown", (e) => {
    if (!state.drawn) return;
    const now = state.window || windowFor(state.drawn.item, state.drawn.frame);
    drag = { x: e.clientX, y: e.clientY, w: { ...now } };
  });
  window.addEventListener("mouseup", () => { drag = null; });
  window.addEventListener("mousemove", (e) => {
    if (!drag || !state.drawn) return;
    const width = Math.max(1, drag.w.width + (e.clientX - drag.x) * 2);
    const center = drag.w.center + (e.clientY - drag.y) * 2;
    state.window = { center, width };
    render(state.window);
  });
  canvas.addEventListener("wheel", (e) => { e.preventDefault(); step(e.deltaY > 0 ? 1 : -1); });
  canvas.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" || e.key === "ArrowRight") { e.preventDefault(); step(1); }
    if (e.key === "ArrowUp" || e.key === "ArrowLeft") { e.preventDefault(); step(-1); }
  });
}

wire();
start();
