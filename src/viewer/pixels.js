// Pixels from DICOM: the image attributes of an instance's DICOM JSON metadata, and one frame drawn as RGBA
// with the modality transform (rescale slope and intercept) and the VOI window (PS3.3 C.11.2.1.2, linear),
// MONOCHROME1 inverted. Native grayscale of 8 or 16 bits, signed or not, and 8-bit RGB; JPEG baseline is
// drawn by the browser; other compressed syntaxes are refused with a message.

const NATIVE = {
  "1.2.840.10008.1.2": "little", "1.2.840.10008.1.2.1": "little", "1.2.840.10008.1.2.1.99": "little",
  "1.2.840.10008.1.2.2": "big",
};
const BROWSER = { "1.2.840.10008.1.2.4.50": "image/jpeg" };

function first(meta, tag) {
  const element = meta[tag];
  return element && element.Value ? element.Value[0] : undefined;
}

function number(meta, tag, fallback) {
  const v = Number(first(meta, tag));
  return Number.isFinite(v) ? v : fallback;
}

/** The attributes a frame is drawn by, from an instance's DICOM JSON. */
export function imageOf(meta) {
  return {
    rows: number(meta, "00280010", 0),
    columns: number(meta, "00280011", 0),
    bitsAllocated: number(meta, "00280100", 16),
    bitsStored: number(meta, "00280101", number(meta, "00280100", 16)),
    signed: number(meta, "00280103", 0) === 1,
    samples: number(meta, "00280002", 1),
    photometric: String(first(meta, "00280004") || "MONOCHROME2").trim(),
    planar: number(meta, "00280006", 0),
    slope: number(meta, "00281053", 1),
    intercept: number(meta, "00281052", 0),
    center: number(meta, "00281050", NaN),
    width: number(meta, "00281051", NaN),
    frames: number(meta, "00280008", 1),
    number: number(meta, "00200013", 0),
  };
}

/** How a frame of this transfer syntax can be drawn: "native", a media type for the browser, or null. */
export function drawable(transferSyntax) {
  if (transferSyntax in NATIVE) return "native";
  return BROWSER[transferSyntax] || null;
}

/** The frame's modality values (stored values through the rescale), for grayscale images. */
export function modalityValues(image, bytes, transferSyntax) {
  const little = NATIVE[transferSyntax] !== "big";
  const count = image.rows * image.columns;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float64Array(count);
  const shift = 32 - image.bitsStored;
  for (let i = 0; i < count; i++) {
    let v = image.bitsAllocated === 8 ? view.getUint8(i) : view.getUint16(i * 2, little);
    if (image.signed) v = (v << shift) >> shift; // sign-extend from BitsStored
    else if (image.bitsStored < image.bitsAllocated) v &= (1 << image.bitsStored) - 1;
    out[i] = v * image.slope + image.intercept;
  }
  return out;
}

/** The window of a data set, else the full range of the values. */
export function defaultWindow(image, values) {
  if (Number.isFinite(image.center) && Number.isFinite(image.width) && image.width >= 1) {
    return { center: image.center, width: image.width };
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return { center: (lo + hi) / 2, width: Math.max(1, hi - lo) };
}

/** PS3.3 C.11.2.1.2.1: the linear VOI function to 0…255. */
export function windowed(x, center, width) {
  const low = center - 0.5 - (width - 1) / 2;
  const high = center - 0.5 + (width - 1) / 2;
  if (x <= low) return 0;
  if (x > high) return 255;
  return Math.round(((x - (center - 0.5)) / (width - 1) + 0.5) * 255);
}

/** RGBA pixels of a native frame. */
export function rgba(image, bytes, transferSyntax, window) {
  const count = image.rows * image.columns;
  const out = new Uint8ClampedArray(count * 4);
  if (image.samples === 3) {
    if (image.bitsAllocated !== 8 || image.photometric !== "RGB") {
      throw new Error(`${image.photometric} with ${image.bitsAllocated} bits per sample cannot be shown here`);
    }
    for (let i = 0; i < count; i++) {
      for (let c = 0; c < 3; c++) {
        out[i * 4 + c] = image.planar === 1 ? bytes[c * count + i] : bytes[i * 3 + c];
      }
      out[i * 4 + 3] = 255;
    }
    return out;
  }
  const values = modalityValues(image, bytes, transferSyntax);
  const invert = image.photometric === "MONOCHROME1";
  for (let i = 0; i < count; i++) {
    let g = windowed(values[i], window.center, window.width);
    if (invert) g = 255 - g;
    out[i * 4] = out[i * 4 + 1] = out[i * 4 + 2] = g;
    out[i * 4 + 3] = 255;
  }
  return out;
}
