// FHIR and DICOMweb requests with the bearer token, a multipart/related reader for frames, and errors worded
// for a person.

export class HttpError extends Error {
  constructor(status, url, retryAfter) {
    super(HttpError.explain(status));
    this.status = status;
    this.url = url;
    this.retryAfter = retryAfter;
  }

  static explain(status) {
    if (status === 401) return "Your sign-in is no longer accepted: sign in again.";
    if (status === 403) return "This study is not for this patient (403).";
    if (status === 404) return "Not found: the study, series or instance is not on this server (404).";
    if (status === 406) return "The server cannot send this in a form the viewer asked for (406).";
    if (status === 503) return "The EHR is not answering; retrying…";
    return `The server answered ${status}.`;
  }
}

function headers(token, accept) {
  const h = { Accept: accept };
  if (token) h.Authorization = `Bearer ${token}`;
  return h;
}

/** GETs `url`; retries a 503 a few times after its Retry-After; throws an HttpError for any other failure. */
export async function get(url, token, accept, onRetry) {
  for (let attempt = 0; ; attempt++) {
    let response;
    try {
      response = await fetch(url, { headers: headers(token, accept) });
    } catch (e) {
      throw new Error(`The server could not be reached (${e.message}). Is it running?`);
    }
    if (response.ok) return response;
    const retryAfter = Number(response.headers.get("Retry-After") || "5");
    if (response.status === 503 && attempt < 3) {
      if (onRetry) onRetry(HttpError.explain(503));
      await new Promise((done) => setTimeout(done, Math.min(retryAfter, 10) * 1000));
      continue;
    }
    throw new HttpError(response.status, url, retryAfter);
  }
}

export async function getJson(url, token, accept, onRetry) {
  return (await get(url, token, accept, onRetry)).json();
}

/** The parts of a multipart/related body: each with its headers (lower-cased names) and its bytes. */
export function parseMultipart(contentType, bytes) {
  const boundary = /boundary="?([^";]+)"?/i.exec(contentType);
  if (!boundary) throw new Error("a multipart answer without a boundary");
  const delimiter = new TextEncoder().encode(`--${boundary[1]}`);
  const find = (from) => {
    outer: for (let i = from; i <= bytes.length - delimiter.length; i++) {
      for (let j = 0; j < delimiter.length; j++) if (bytes[i + j] !== delimiter[j]) continue outer;
      return i;
    }
    return -1;
  };
  const parts = [];
  let at = find(0);
  while (at >= 0) {
    let start = at + delimiter.length;
    if (bytes[start] === 45 && bytes[start + 1] === 45) break; // "--": the closing delimiter
    start += 2; // CRLF after the delimiter
    let headEnd = start;
    while (headEnd + 3 < bytes.length && !(bytes[headEnd] === 13 && bytes[headEnd + 1] === 10 &&
      bytes[headEnd + 2] === 13 && bytes[headEnd + 3] === 10)) headEnd++;
    const head = new TextDecoder().decode(bytes.subarray(start, headEnd));
    const next = find(headEnd + 4);
    if (next < 0) throw new Error("a multipart answer cut short");
    const partHeaders = {};
    for (const line of head.split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon > 0) partHeaders[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    parts.push({ headers: partHeaders, bytes: bytes.subarray(headEnd + 4, next - 2) }); // CRLF before the delimiter
    at = next;
  }
  return parts;
}

/** One frame as bytes, with the media type and transfer syntax its part names. */
export async function getFrame(url, token, accept, onRetry) {
  const response = await get(url, token, accept, onRetry);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const [part] = parseMultipart(response.headers.get("Content-Type") || "", bytes);
  if (!part) throw new Error("a frames answer without a part");
  const type = part.headers["content-type"] || "";
  const syntax = /transfer-syntax=([0-9.]+)/.exec(type);
  return { bytes: part.bytes, mediaType: type.split(";")[0].trim(), transferSyntax: syntax ? syntax[1] : null };
}
