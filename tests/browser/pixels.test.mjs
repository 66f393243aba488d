// The viewer's pixel arithmetic (src/viewer/pixels.js) on frames the sample data does not have: signed and
// 8-bit grayscale, big-endian bytes, MONOCHROME1, RGB in both planar configurations, and the VOI function's
// edges (PS3.3 C.11.2.1.2.1). Run with `node --test`.

import { test } from "node:test";
import assert from "node:assert/strict";
import { defaultWindow, drawable, imageOf, modalityValues, rgba, windowed } from "../../src/viewer/pixels.js";

const meta = (attrs) => Object.fromEntries(Object.entries(attrs).map(([tag, v]) => [tag, { Value: [v] }]));
const gray = (out) => Array.from(out).filter((_, i) => i % 4 === 0);

test("the linear VOI function and its edges", () => {
  // Center 40, width 400: -160 and below is black, 239.5 and above white.
  assert.equal(windowed(-160, 40, 400), 0);
  assert.equal(windowed(-159, 40, 400), 1);
  assert.equal(windowed(40, 40, 400), 128);
  assert.equal(windowed(239, 40, 400), 255);
  assert.equal(windowed(240, 40, 400), 255);
  assert.equal(windowed(0, 0.5, 1), 0, "width 1: a threshold");
  assert.equal(windowed(1, 0.5, 1), 255);
});

test("signed 16-bit values are sign-extended from BitsStored and rescaled", () => {
  const image = imageOf(meta({ "00280010": 1, "00280011": 3, "00280100": 16, "00280101": 12, "00280103": 1,
    "00281053": 2, "00281052": -10 }));
  // 0x0FFF is -1 in 12 bits, 0x0800 is -2048, 0x07FF is 2047.
  const bytes = new Uint8Array([0xff, 0x0f, 0x00, 0x08, 0xff, 0x07]);
  assert.deepEqual(Array.from(modalityValues(image, bytes, "1.2.840.10008.1.2.1")), [-12, -4106, 4084]);
});

test("big-endian frames are read big-endian", () => {
  const image = imageOf(meta({ "00280010": 1, "00280011": 2, "00280100": 16 }));
  const bytes = new Uint8Array([0x01, 0x02, 0x03, 0x04]);
  assert.deepEqual(Array.from(modalityValues(image, bytes, "1.2.840.10008.1.2.2")), [0x0102, 0x0304]);
  assert.deepEqual(Array.from(modalityValues(image, bytes, "1.2.840.10008.1.2")), [0x0201, 0x0403]);
});

test("8-bit MONOCHROME1 is inverted", () => {
  const image = imageOf(meta({ "00280010": 1, "00280011": 3, "00280100": 8, "00280004": "MONOCHROME1" }));
  const bytes = new Uint8Array([0, 128, 255]);
  const window = defaultWindow(image, modalityValues(image, bytes, "1.2.840.10008.1.2.1"));
  assert.deepEqual(window, { center: 127.5, width: 255 });
  assert.deepEqual(gray(rgba(image, bytes, "1.2.840.10008.1.2.1", window)), [255, 126, 0]);
});

test("RGB in both planar configurations", () => {
  const interleaved = imageOf(meta({ "00280010": 1, "00280011": 2, "00280100": 8, "00280002": 3, "00280004": "RGB" }));
  const planar = imageOf(meta({ "00280010": 1, "00280011": 2, "00280100": 8, "00280002": 3, "00280004": "RGB",
    "00280006": 1 }));
  const a = rgba(interleaved, new Uint8Array([1, 2, 3, 4, 5, 6]), "1.2.840.10008.1.2.1", null);
  const b = rgba(planar, new Uint8Array([1, 4, 2, 5, 3, 6]), "1.2.840.10008.1.2.1", null);
  assert.deepEqual(Array.from(a), [1, 2, 3, 255, 4, 5, 6, 255]);
  assert.deepEqual(Array.from(b), Array.from(a));
  const ybr = imageOf(meta({ "00280010": 1, "00280011": 1, "00280100": 8, "00280002": 3, "00280004": "YBR_FULL" }));
  assert.throws(() => rgba(ybr, new Uint8Array(3), "1.2.840.10008.1.2.1", null), /cannot be shown/);
});

test("which frames can be drawn", () => {
  assert.equal(drawable("1.2.840.10008.1.2.1"), "native");
  assert.equal(drawable("1.2.840.10008.1.2.2"), "native");
  assert.equal(drawable("1.2.840.10008.1.2.4.50"), "image/jpeg");
  assert.equal(drawable("1.2.840.10008.1.2.4.90"), null, "JPEG 2000 is not drawn");
});
