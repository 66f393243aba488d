"""Computed phantoms for the sample data: a head for the MR study, a chest and an abdomen for the CT studies.

Every image is drawn from ellipses, in pure Python (no numpy), on a grid twice as fine as the image and
averaged down, so that edges are smooth; then a little noise from a seeded generator is added, so that the
images look acquired rather than drawn.  The same arguments always give the same values.

* ``head(z, contrast)`` is the modified Shepp-Logan head phantom (Shepp and Logan 1974, with the higher
  contrast intensities of Toft 1996) taken as ellipsoids, as the 3D version of Kak and Slaney does, so that
  an axial slice at height ``z`` (phantom units, -1 to 1) cuts each ellipsoid in an ellipse.  ``contrast``
  re-weights the same ellipsoids: ``"T1"`` is the classic phantom, ``"FLAIR"`` darkens the ventricles and
  brightens the small ellipses as lesions, ``"DWI"`` darkens the skull and adds one bright spot, the way an
  acute infarct shows on diffusion.  Values are 0 to about 1.
* ``chest(z)`` and ``abdomen(z)`` are axial CT slices in Hounsfield units, ``z`` in millimetres below the
  first slice: body outline, subcutaneous fat, muscle, the lungs with their vessels, mediastinum, heart,
  aorta, trachea or bronchi, vertebra with its canal, ribs and sternum (chest); liver, stomach with an air
  pocket, spleen, pancreas, kidneys, bowel and colon with gas, aorta, vena cava, vertebra, psoas and
  paraspinal muscles (abdomen); and the curved couch under the patient.  Organs come and go with ``z``.
  They are drawn with the patient supine, seen from the feet: the patient's right on the image's left.
"""

from __future__ import annotations

import math
import random

SIZE = 256  # image rows and columns
FINE = 2  # the drawing grid is FINE times finer in each direction


class Canvas:
    """A FINE-times-finer grid of floats, in millimetres centred on the image (x to the right, y down)."""

    def __init__(self, spacing_mm: float, background: float):
        self.n = SIZE * FINE
        self.step = spacing_mm / FINE
        self.rows = [[background] * self.n for _ in range(self.n)]

    def _columns(self, row: int, cx, cy, a, b, angle_deg):
        """The columns [first, last) of fine row `row` inside the ellipse, or None."""
        if a <= 0 or b <= 0:
            return None
        y = (row + 0.5 - self.n / 2) * self.step - cy
        t = math.radians(angle_deg)
        c, s = math.cos(t), math.sin(t)
        qa = c * c / (a * a) + s * s / (b * b)
        qb = 2 * y * s * c * (1 / (a * a) - 1 / (b * b))
        qc = y * y * (s * s / (a * a) + c * c / (b * b)) - 1
        disc = qb * qb - 4 * qa * qc
        if disc < 0:
            return None
        root = math.sqrt(disc)
        x0 = (-qb - root) / (2 * qa) + cx
        x1 = (-qb + root) / (2 * qa) + cx
        first = max(0, math.ceil(x0 / self.step + self.n / 2 - 0.5))
        last = min(self.n, math.floor(x1 / self.step + self.n / 2 - 0.5) + 1)
        return (first, last) if first < last else None

    def _rows(self, cy, a, b):
        reach = max(a, b)
        first = max(0, math.floor((cy - reach) / self.step + self.n / 2) - 1)
        last = min(self.n, math.ceil((cy + reach) / self.step + self.n / 2) + 1)
        return range(first, last)

    def fill(self, value: float, cx, cy, a, b, angle_deg=0.0):
        """Paints the ellipse with `value` (centre, semi-axes along x and y, turned clockwise by the angle)."""
        for r in self._rows(cy, a, b):
            span = self._columns(r, cx, cy, a, b, angle_deg)
            if span:
                self.rows[r][span[0]:span[1]] = [value] * (span[1] - span[0])

    def add(self, value: float, cx, cy, a, b, angle_deg=0.0):
        """Adds `value` inside the ellipse (the Shepp-Logan phantom is a sum of ellipses)."""
        for r in self._rows(cy, a, b):
            span = self._columns(r, cx, cy, a, b, angle_deg)
            if span:
                row = self.rows[r]
                row[span[0]:span[1]] = [v + value for v in row[span[0]:span[1]]]

    def circle(self, value: float, cx, cy, radius):
        self.fill(value, cx, cy, radius, radius)

    def image(self, noise: float, seed: int) -> list[float]:
        """The SIZE x SIZE image, row by row: the mean of each FINE x FINE block, plus Gaussian noise."""
        rng = random.Random(seed)
        out = []
        k = FINE * FINE
        for r in range(SIZE):
            block = self.rows[r * FINE:(r + 1) * FINE]
            sums = [0.0] * SIZE
            for fine_row in block:
                for c in range(SIZE):
                    sums[c] += sum(fine_row[c * FINE:(c + 1) * FINE])
            out.extend(v / k + rng.gauss(0.0, noise) for v in sums)
        return out


# ---------------------------------------------------------------------------
# The head: the modified Shepp-Logan phantom as ellipsoids
# ---------------------------------------------------------------------------

# a, b, c (semi-axes along x, y, z), x0, y0, z0, angle about z (degrees), in phantom units, with y up as
# the phantom is published; the T1 weights are the modified phantom's.
HEAD = [
    (0.6900, 0.920, 0.810, 0.00, 0.0000, 0.00, 0),  # skull
    (0.6624, 0.874, 0.780, 0.00, -0.0184, 0.00, 0),  # brain
    (0.1100, 0.310, 0.220, 0.22, 0.0000, 0.00, -18),  # right ventricle
    (0.1600, 0.410, 0.280, -0.22, 0.0000, 0.00, 18),  # left ventricle
    (0.2100, 0.250, 0.410, 0.00, 0.3500, -0.15, 0),
    (0.0460, 0.046, 0.050, 0.00, 0.1000, 0.25, 0),
    (0.0460, 0.046, 0.050, 0.00, -0.1000, 0.25, 0),
    (0.0460, 0.023, 0.050, -0.08, -0.6050, 0.00, 0),
    (0.0230, 0.023, 0.020, 0.00, -0.6060, 0.00, 0),
    (0.0230, 0.046, 0.020, 0.06, -0.6050, 0.00, 0),
]
HEAD_WEIGHTS = {
    "T1": [1.0, -0.8, -0.2, -0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1],
    "FLAIR": [0.7, -0.32, -0.33, -0.33, 0.08, 0.45, 0.45, 0.35, 0.35, 0.35],
    "DWI": [0.12, 0.26, -0.3, -0.3, 0.04, 0.05, 0.05, 0.05, 0.05, 0.05],
}
# The bright spot of the diffusion contrast: an acute infarct in the patient's left hemisphere.
INFARCT = (0.12, 0.16, 0.2, 0.36, -0.3, 0.15, 25)


def head(z: float, contrast: str, spacing_mm: float, seed: int) -> list[float]:
    """An axial slice of the head at height z (phantom units): values 0 to about 1, row by row."""
    unit = SIZE * spacing_mm / 2  # one phantom unit in millimetres: the phantom fills the field of view
    canvas = Canvas(spacing_mm, 0.0)
    shapes = list(zip(HEAD, HEAD_WEIGHTS[contrast]))
    if contrast == "DWI":
        shapes.append((INFARCT, 0.55))
    for (a, b, c, x0, y0, z0, angle), weight in shapes:
        d = (z - z0) / c
        if abs(d) >= 1:
            continue
        s = math.sqrt(1 - d * d)
        # Phantom y points up, image rows go down; so does the sense of the angle.
        canvas.add(weight, x0 * unit, -y0 * unit, a * s * unit, b * s * unit, -angle)
    noise = {"T1": 0.008, "FLAIR": 0.01, "DWI": 0.02}[contrast]
    # Magnitude images: noise in the background is never negative.
    return [abs(v) for v in canvas.image(noise, seed)]


# ---------------------------------------------------------------------------
# The body: CT slices in Hounsfield units
# ---------------------------------------------------------------------------

AIR, LUNG, FAT, WATER, SOFT, MUSCLE, BLOOD, LIVER = -1000, -850, -100, 0, 40, 50, 45, 60
CANCELLOUS, CORTEX = 250, 900


def _couch(canvas: Canvas):
    """The curved table top under the patient: a shell of carbon fibre and foam."""
    canvas.fill(150, 0, 305, 235, 180)
    canvas.fill(-300, 0, 305, 231, 176)
    canvas.fill(AIR, 0, 305, 226, 171)


def _vertebra(canvas: Canvas, y: float, ribs_attached: bool):
    """A vertebra whose body is centred at height y: cortex, cancellous bone, the canal and the arch."""
    canvas.fill(CORTEX - 100, 0, y + 42, 6, 15)  # spinous process
    canvas.fill(CORTEX - 200, -14, y + 28, 6, 12, 30)  # laminae
    canvas.fill(CORTEX - 200, 14, y + 28, 6, 12, -30)
    reach = 30 if ribs_attached else 26
    canvas.fill(CORTEX - 200, -reach, y + 20, 12, 5, -15)  # transverse processes
    canvas.fill(CORTEX - 200, reach, y + 20, 12, 5, 15)
    canvas.circle(CORTEX, 0, y, 19)
    canvas.circle(CANCELLOUS, 0, y, 16)
    canvas.circle(WATER + 10, 0, y + 27, 9)  # the canal, with the cord and its fluid


def _lung_vessels(canvas: Canvas, cx, cy, a, b, z: float):
    """Vessels inside the lung (an ellipse): points that drift slowly from slice to slice."""
    rng = random.Random(int(cx) * 7919 + 17)
    for _ in range(70):
        u, v = rng.uniform(-1, 1), rng.uniform(-1, 1)
        du, dv = rng.uniform(-0.004, 0.004), rng.uniform(-0.004, 0.004)
        u, v = u + du * z, v + dv * z
        r = u * u + v * v
        if r > 0.8:
            continue
        radius = 3.2 - 2.2 * math.sqrt(r)  # thicker towards the hilum
        canvas.circle(BLOOD - 10, cx + u * a, cy + v * b, radius)


def _ribs(canvas: Canvas, a, b, z: float, first_deg, last_deg, count):
    """Rib cross-sections along an ellipse; they slant, so their angles shift from slice to slice."""
    for k in range(count):
        deg = first_deg + (last_deg - first_deg) * k / (count - 1) + 0.35 * z
        t = math.radians(deg)
        x, y = a * math.cos(t), b * math.sin(t)
        for side in (-1, 1):
            canvas.fill(CORTEX - 150, side * x, y, 8, 5, side * (deg + 90))
            canvas.fill(CANCELLOUS - 50, side * x, y, 5, 2.5, side * (deg + 90))


def chest(z_mm: float, spacing_mm: float, seed: int) -> list[float]:
    """An axial CT slice of the chest, z_mm millimetres below the top of the series (0 to about 45)."""
    t = min(1.0, max(0.0, z_mm / 45))
    canvas = Canvas(spacing_mm, AIR)
    _couch(canvas)
    canvas.fill(FAT, 0, 0, 168 + 4 * t, 118)  # skin and subcutaneous fat
    canvas.fill(MUSCLE, 0, 0, 156 + 4 * t, 106)  # chest wall muscles
    canvas.fill(MUSCLE - 5, -30, 98, 24, 16)  # paraspinal muscles
    canvas.fill(MUSCLE - 5, 30, 98, 24, 16)
    canvas.fill(FAT + 20, 0, -4, 142 + 4 * t, 93)  # fat inside the rib cage
    _ribs(canvas, 142 + 4 * t, 93, z_mm, 20, 160, 6)
    # The lungs, a little larger lower down, on either side of the mediastinum.
    lungs = [(-66, 2, 60 + 4 * t, 80, -8), (68, 2, 56 + 4 * t, 78, 8)]
    for cx, cy, a, b, angle in lungs:
        canvas.fill(LUNG, cx, cy, a, b, angle)
        _lung_vessels(canvas, cx, cy, a, b, z_mm)
    canvas.fill(FAT + 20, 2, -20, 30, 62)  # mediastinal fat
    # The heart grows and moves to the patient's left lower in the chest; pericardial fat around it.
    heart = (22 + 12 * t, -22 + 6 * t, 38 + 22 * t, 34 + 16 * t, 30)
    canvas.fill(FAT, heart[0], heart[1], heart[2] + 5, heart[3] + 5, heart[4])
    canvas.fill(SOFT, *heart)
    if t < 0.55:  # the ascending aorta and the pulmonary trunk above the heart
        canvas.circle(BLOOD, -10, -30, 15)
        canvas.circle(BLOOD, 18, -48, 14 - 8 * t)
    canvas.circle(BLOOD, 22, 44, 12)  # the descending aorta
    canvas.circle(SOFT - 5, 8, 40, 6)  # the oesophagus, with a little air
    canvas.circle(AIR, 8, 40, 2)
    if t < 0.35:  # the trachea, then the two main bronchi
        canvas.circle(WATER + 20, 0, 20, 11)
        canvas.circle(AIR, 0, 20, 9)
    else:
        for x in (-20, 18):
            canvas.circle(WATER + 20, x, 24, 7)
            canvas.circle(AIR, x, 24, 5)
    canvas.fill(CORTEX - 250, 0, -99, 16, 6)  # the sternum
    canvas.fill(CANCELLOUS + 50, 0, -99, 12, 3)
    _vertebra(canvas, 62, True)
    return canvas.image(10.0, seed)


def abdomen(z_mm: float, spacing_mm: float, seed: int) -> list[float]:
    """An axial CT slice of the abdomen, z_mm millimetres below the dome of the liver (0 to about 170)."""

    def present(top, bottom):
        """How much of an organ spanning z = top..bottom shows at this slice: 0 outside, 1 at its middle."""
        if not top <= z_mm <= bottom:
            return 0.0
        d = (2 * z_mm - top - bottom) / (bottom - top)
        return math.sqrt(max(0.0, 1 - d * d))

    canvas = Canvas(spacing_mm, AIR)
    _couch(canvas)
    canvas.fill(FAT, 0, 0, 162, 120)
    canvas.fill(MUSCLE, 0, 0, 150, 108)  # the abdominal wall
    canvas.fill(FAT + 10, 0, -4, 142, 98)  # fat around the organs
    canvas.fill(MUSCLE, -34, 100, 26, 17)  # paraspinal muscles
    canvas.fill(MUSCLE, 34, 100, 26, 17)
    if z_mm < 60:
        _ribs(canvas, 146, 100, z_mm, 5, 60, 3)
    liver = present(-60, 130)
    canvas.fill(LIVER, -56, -6, 82 * liver, 74 * liver, -20)
    canvas.fill(BLOOD - 15, -40, 10, 6 * liver, 6 * liver)  # hepatic vessels, darker without contrast
    canvas.fill(BLOOD - 15, -70, -20, 5 * liver, 5 * liver)
    gall = present(30, 80)
    canvas.fill(WATER + 10, -28, -50, 14 * gall, 20 * gall, 20)  # the gallbladder
    stomach = present(-20, 80)
    canvas.fill(SOFT - 10, 58, -36, 52 * stomach, 38 * stomach, -20)
    canvas.fill(AIR, 52, -56, 34 * stomach, 13 * stomach, -20)  # gas at the top of the stomach
    spleen = present(-20, 90)
    canvas.fill(SOFT + 10, 100, 30, 24 * spleen, 44 * spleen, 35)
    pancreas = present(40, 90)
    canvas.fill(SOFT, 18, 14, 48 * pancreas, 11 * pancreas, -12)
    for side in (-1, 1):
        kidney = present(50, 150)
        kx, ky = side * 68, 58
        canvas.fill(FAT, kx, ky, 30 * kidney, 38 * kidney, side * 20)  # perirenal fat
        canvas.fill(SOFT - 5, kx, ky, 24 * kidney, 32 * kidney, side * 20)
        canvas.fill(FAT + 20, kx - side * 8, ky - 4, 7 * kidney, 11 * kidney, side * 20)  # renal sinus
        psoas = present(70, 260)
        canvas.fill(MUSCLE, side * 32, 62, 16 * psoas, 20 * psoas)
    bowel = present(60, 300)
    if bowel:
        rng = random.Random(4242)
        for _ in range(18):
            x, y = rng.uniform(-80, 80), rng.uniform(-80, 10)
            drift = rng.uniform(-0.3, 0.3)
            radius = rng.uniform(9, 15) * bowel
            gas = rng.random() < 0.4
            x += drift * (z_mm - 60)
            if (x / 115) ** 2 + (y / 80) ** 2 > 1:
                continue  # drifted out of the abdomen
            canvas.circle(SOFT - 10, x, y, radius)
            if gas:
                canvas.circle(AIR, x, y - radius / 3, radius / 3)
    colon = present(40, 220)
    for cx, cy, r in ((-98, 20, 18), (100, 40, 15)):  # ascending and descending colon, with gas and stool
        canvas.circle(SOFT - 20, cx, cy, r * colon)
        canvas.circle(-700, cx, cy - 3, r * 0.7 * colon)
    canvas.circle(BLOOD, 12, 36, 11)  # the aorta
    canvas.fill(BLOOD - 5, -22, 33, 13, 10)  # the inferior vena cava
    _vertebra(canvas, 68, z_mm < 60)
    return canvas.image(12.0, seed)


def stored_words(values: list[float], offset: float, scale: float) -> list[int]:
    """Values as 12-bit stored words: `value * scale + offset`, rounded and clamped to 0..4095."""
    return [min(4095, max(0, int(round(v * scale + offset)))) for v in values]
