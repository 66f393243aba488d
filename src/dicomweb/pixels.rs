//! Rendered images (PS3.18 §8.3.5, §9.5) made from one native frame: stored values through the modality
//! transform (Rescale Slope and Intercept, PS3.3 §C.11.1) and a VOI window (PS3.3 §C.11.2.1.2) to 8-bit
//! gray, MONOCHROME1 inverted; 8-bit RGB as it is; then scaled down to fit a viewport and encoded as PNG.
//!
//! Invariants: pure functions of a frame's bytes (little endian, as WADO-RS frames are sent) and the image
//! attributes, knowing nothing of files, data sets or HTTP; one frame at a time, the output at most one byte
//! per sample of it; bytes shorter than the attributes promise are an error, never a panic.

/// The Photometric Interpretations rendered (PS3.3 §C.7.6.3.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Photometric {
    /// Grayscale, the minimum value white.
    Monochrome1,
    /// Grayscale, the minimum value black.
    Monochrome2,
    /// Three samples per pixel, red, green and blue.
    Rgb,
}

/// The attributes a frame is rendered by (PS3.3 §C.7.6.3 Image Pixel, §C.11.1 Modality LUT).
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub rows: usize,
    pub columns: usize,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    /// Pixel Representation 1: two's complement stored values.
    pub signed: bool,
    pub photometric: Photometric,
    /// Planar Configuration 1: all the red values, then the green, then the blue.
    pub planar: bool,
    pub slope: f64,
    pub intercept: f64,
}

/// The VOI LUT Functions (PS3.3 §C.11.2.1.3).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VoiFunction {
    Linear,
    LinearExact,
    Sigmoid,
}

/// A VOI window over modality values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub center: f64,
    pub width: f64,
    pub function: VoiFunction,
}

impl Window {
    /// A window, when its width is one LINEAR allows (at least 1, PS3.3 §C.11.2.1.2.1) or the other
    /// functions do (more than 0).
    pub fn new(center: f64, width: f64, function: VoiFunction) -> Option<Window> {
        let least = if function == VoiFunction::Linear { width >= 1.0 } else { width > 0.0 };
        (center.is_finite() && width.is_finite() && least).then_some(Window { center, width, function })
    }

    /// The `window` query parameter (PS3.18 §8.3.5.1.3): `center,width,function`, the function `linear`,
    /// `linear-exact` or `sigmoid` (`linear` when left out).
    pub fn parse(value: &str) -> Result<Window, String> {
        let bad = || format!("window={value:?} is not center,width,function (linear, linear-exact or sigmoid)");
        let parts: Vec<&str> = value.split(',').map(str::trim).collect();
        let (center, width, function) = match parts.as_slice() {
            [c, w] => (c, w, VoiFunction::Linear),
            [c, w, f] => (c, w, function_named(f).ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        let number = |s: &str| s.parse::<f64>().ok().filter(|n| n.is_finite()).ok_or_else(bad);
        Window::new(number(center)?, number(width)?, function).ok_or_else(bad)
    }

    /// A modality value through the window, to 0…255.
    pub fn apply(&self, x: f64) -> u8 {
        let (c, w) = (self.center, self.width);
        let y = match self.function {
            // PS3.3 §C.11.2.1.2.1.
            VoiFunction::Linear => {
                if x <= c - 0.5 - (w - 1.0) / 2.0 {
                    0.0
                } else if x > c - 0.5 + (w - 1.0) / 2.0 {
                    1.0
                } else {
                    (x - (c - 0.5)) / (w - 1.0) + 0.5
                }
            }
            // PS3.3 §C.11.2.1.3.2.
            VoiFunction::LinearExact => {
                if x <= c - w / 2.0 {
                    0.0
                } else if x > c + w / 2.0 {
                    1.0
                } else {
                    (x - c) / w + 0.5
                }
            }
            // PS3.3 §C.11.2.1.3.1.
            VoiFunction::Sigmoid => 1.0 / (1.0 + (-4.0 * (x - c) / w).exp()),
        };
        (y.clamp(0.0, 1.0) * 255.0).round() as u8
    }
}

/// A VOI LUT Function's defined term, or the `window` parameter's name for it, in any case.
pub fn function_named(name: &str) -> Option<VoiFunction> {
    match name.to_ascii_uppercase().replace('-', "_").as_str() {
        "LINEAR" => Some(VoiFunction::Linear),
        "LINEAR_EXACT" => Some(VoiFunction::LinearExact),
        "SIGMOID" => Some(VoiFunction::Sigmoid),
        _ => None,
    }
}

/// 8-bit pixels, one sample (gray) or three (RGB, interleaved) each, row by row.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub samples: Vec<u8>,
}

/// Renders one frame: grayscale through the modality transform and `window` (else the frame's own range),
/// RGB as stored.
pub fn render(image: &Image, frame: &[u8], window: Option<Window>) -> Result<Rendered, String> {
    let count = image.rows.checked_mul(image.columns).filter(|&n| n > 0).ok_or("the frame has no pixels")?;
    match image.photometric {
        Photometric::Rgb => rgb(image, frame, count),
        Photometric::Monochrome1 | Photometric::Monochrome2 => gray(image, frame, count, window),
    }
}

fn rgb(image: &Image, frame: &[u8], count: usize) -> Result<Rendered, String> {
    if image.bits_allocated != 8 {
        return Err(format!("RGB of {} bits allocated is not rendered, only of 8", image.bits_allocated));
    }
    let frame = frame.get(..count * 3).ok_or("the frame is shorter than Rows × Columns × 3")?;
    let samples = if image.planar {
        let (red, rest) = frame.split_at(count);
        let (green, blue) = rest.split_at(count);
        red.iter().zip(green).zip(blue).flat_map(|((&r, &g), &b)| [r, g, b]).collect()
    } else {
        frame.to_vec()
    };
    Ok(Rendered { width: image.columns, height: image.rows, channels: 3, samples })
}

fn gray(image: &Image, frame: &[u8], count: usize, window: Option<Window>) -> Result<Rendered, String> {
    let stored = stored_values(image, frame, count)?;
    let modality = |v: i32| f64::from(v) * image.slope + image.intercept;
    let window = match window {
        Some(window) => window,
        None => {
            let (lo, hi) = stored.clone().fold((i32::MAX, i32::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
            // A negative slope turns the range around.
            let (a, b) = (modality(lo), modality(hi));
            let (lo, hi) = (a.min(b), a.max(b));
            Window { center: (lo + hi) / 2.0, width: (hi - lo).max(1.0), function: VoiFunction::Linear }
        }
    };
    let invert = image.photometric == Photometric::Monochrome1;
    let samples = stored
        .map(|v| {
            let g = window.apply(modality(v));
            if invert { 255 - g } else { g }
        })
        .collect();
    Ok(Rendered { width: image.columns, height: image.rows, channels: 1, samples })
}

/// The stored values of a grayscale frame: Bits Stored of them kept, sign-extended when signed (PS3.5 §8.1.1
/// with High Bit at Bits Stored − 1).
fn stored_values<'f>(
    image: &Image,
    frame: &'f [u8],
    count: usize,
) -> Result<impl Iterator<Item = i32> + Clone + 'f, String> {
    let size = match image.bits_allocated {
        8 => 1,
        16 => 2,
        other => return Err(format!("grayscale of {other} bits allocated is not rendered, only of 8 or 16")),
    };
    let bits = u32::from(image.bits_stored);
    if bits == 0 || bits > u32::from(image.bits_allocated) {
        return Err(format!("Bits Stored {bits} does not fit Bits Allocated {}", image.bits_allocated));
    }
    let frame = frame.get(..count * size).ok_or("the frame is shorter than Rows × Columns × Bits Allocated")?;
    let (shift, mask, signed) = (32 - bits, (1u32 << bits) - 1, image.signed);
    Ok(frame.chunks_exact(size).map(move |b| {
        let raw = if size == 1 { u32::from(b[0]) } else { u32::from(u16::from_le_bytes([b[0], b[1]])) };
        if signed { ((raw << shift) as i32) >> shift } else { (raw & mask) as i32 }
    }))
}

/// The largest size with the image's proportions that fits in `width` × `height`; never larger than the
/// image.
pub fn fitted(image: (usize, usize), viewport: (usize, usize)) -> (usize, usize) {
    let (w, h) = image;
    let (vw, vh) = viewport;
    if w <= vw && h <= vh {
        return (w, h);
    }
    let scale = f64::min(vw as f64 / w as f64, vh as f64 / h as f64);
    let side = |n: usize| ((n as f64 * scale).round() as usize).max(1);
    (side(w).min(vw.max(1)), side(h).min(vh.max(1)))
}

/// The image scaled down to fit the viewport, each pixel the mean of the pixels it covers (a box filter,
/// which keeps a thumbnail's thin lines instead of dropping them).
pub fn fit(image: Rendered, viewport: (usize, usize)) -> Rendered {
    let (width, height) = fitted((image.width, image.height), viewport);
    if (width, height) == (image.width, image.height) {
        return image;
    }
    let ch = image.channels;
    let span = |i: usize, out: usize, src: usize| (i * src / out, ((i + 1) * src / out).max(i * src / out + 1));
    let mut samples = Vec::with_capacity(width * height * ch);
    for oy in 0..height {
        let (y0, y1) = span(oy, height, image.height);
        for ox in 0..width {
            let (x0, x1) = span(ox, width, image.width);
            let n = ((y1 - y0) * (x1 - x0)) as u32;
            for c in 0..ch {
                let mut sum = 0u32;
                for y in y0..y1 {
                    let row = &image.samples[(y * image.width + x0) * ch..(y * image.width + x1) * ch];
                    sum += row.iter().skip(c).step_by(ch).map(|&s| u32::from(s)).sum::<u32>();
                }
                samples.push(((sum + n / 2) / n) as u8);
            }
        }
    }
    Rendered { width, height, channels: ch, samples }
}

/// The image as PNG (8-bit gray or RGB). `Fast` compression: fdeflate's, made for PNG, a few times faster
/// than zlib's default level for output a little larger, which suits images made per request.
pub fn png(image: &Rendered) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::with_capacity(image.samples.len() / 2 + 1024);
    let mut encoder = png::Encoder::new(&mut out, image.width as u32, image.height as u32);
    encoder.set_color(if image.channels == 3 { png::ColorType::Rgb } else { png::ColorType::Grayscale });
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&image.samples)?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray_image(columns: usize, bits_allocated: u16, bits_stored: u16, signed: bool) -> Image {
        Image {
            rows: 1,
            columns,
            bits_allocated,
            bits_stored,
            signed,
            photometric: Photometric::Monochrome2,
            planar: false,
            slope: 1.0,
            intercept: 0.0,
        }
    }

    fn linear(center: f64, width: f64) -> Window {
        Window::new(center, width, VoiFunction::Linear).unwrap()
    }

    #[test]
    fn the_linear_function_and_its_edges() {
        // Center 40, width 400: -160 and below is black, 239.5 and above white.
        let w = linear(40.0, 400.0);
        let check = |x: f64, expected: u8| assert_eq!(w.apply(x), expected, "{x}");
        check(-160.0, 0);
        check(-159.0, 1);
        check(40.0, 128);
        check(239.0, 255);
        check(240.0, 255);
        // Width 1 is a threshold.
        let threshold = linear(0.5, 1.0);
        assert_eq!((threshold.apply(0.0), threshold.apply(1.0)), (0, 255));
        assert_eq!(Window::new(0.0, 0.5, VoiFunction::Linear), None);
    }

    #[test]
    fn the_exact_and_sigmoid_functions() {
        let exact = Window::new(100.0, 200.0, VoiFunction::LinearExact).unwrap();
        assert_eq!((exact.apply(0.0), exact.apply(100.0), exact.apply(200.0), exact.apply(201.0)), (0, 128, 255, 255));
        let sigmoid = Window::new(100.0, 200.0, VoiFunction::Sigmoid).unwrap();
        assert_eq!(sigmoid.apply(100.0), 128);
        // 1 / (1 + e²) and 1 / (1 + e⁻²).
        assert_eq!((sigmoid.apply(0.0), sigmoid.apply(200.0)), (30, 225));
    }

    #[test]
    fn window_parameters() {
        assert_eq!(Window::parse("40,400"), Ok(linear(40.0, 400.0)));
        assert_eq!(Window::parse(" -600.5 , 1500 , LINEAR "), Ok(linear(-600.5, 1500.0)));
        assert_eq!(Window::parse("1,2,linear-exact").map(|w| w.function), Ok(VoiFunction::LinearExact));
        assert_eq!(Window::parse("1,2,sigmoid").map(|w| w.function), Ok(VoiFunction::Sigmoid));
        for bad in ["", "40", "40,0", "40,0.5,linear", "a,400", "40,400,cubic", "40,400,linear,1", "inf,1", "1,NaN"] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn eight_bit_monochrome1_is_inverted() {
        let image = Image { photometric: Photometric::Monochrome1, ..gray_image(3, 8, 8, false) };
        let out = render(&image, &[0, 128, 255], None).unwrap();
        // The frame's own range: center 127.5, width 255.
        assert_eq!(out.samples, [255, 126, 0]);
        assert_eq!((out.width, out.height, out.channels), (3, 1, 1));
    }

    #[test]
    fn signed_16_bit_values_are_sign_extended_from_bits_stored_and_rescaled() {
        // 0x0FFF is -1 in 12 bits, 0x0800 is -2048, 0x07FF is 2047; through slope 2 and intercept -10 they
        // are -12, -4106 and 4084.
        let image = Image { slope: 2.0, intercept: -10.0, ..gray_image(3, 16, 12, true) };
        let frame = [0xff, 0x0f, 0x00, 0x08, 0xff, 0x07];
        // Read unsigned, the first would be 8180 and white.
        let window = linear(0.0, 100.0);
        assert_eq!(render(&image, &frame, Some(window)).unwrap().samples, [98, 0, 255]);
        // Without a window, the range -4106…4084: -12 lies just below the middle.
        assert_eq!(render(&image, &frame, None).unwrap().samples, [127, 0, 255]);
    }

    #[test]
    fn unsigned_values_are_masked_to_bits_stored() {
        // The bits above Bits Stored (here 0xF000, an overlay or garbage) are not the value: 0xF800 is 2048,
        // the middle of the window, not 63488.
        let image = gray_image(2, 16, 12, false);
        let frame = [0x00, 0xf8, 0x00, 0x00];
        let window = linear(2048.0, 4096.0);
        assert_eq!(render(&image, &frame, Some(window)).unwrap().samples, [128, 0]);
    }

    #[test]
    fn a_uniform_frame_is_not_divided_by_zero() {
        let out = render(&gray_image(4, 8, 8, false), &[7; 4], None).unwrap();
        assert!(out.samples.iter().all(|&s| s == out.samples[0]));
    }

    #[test]
    fn rgb_in_both_planar_configurations() {
        let interleaved = Image { photometric: Photometric::Rgb, ..gray_image(2, 8, 8, false) };
        let planar = Image { planar: true, ..interleaved.clone() };
        let a = render(&interleaved, &[1, 2, 3, 4, 5, 6], None).unwrap();
        let b = render(&planar, &[1, 4, 2, 5, 3, 6], None).unwrap();
        assert_eq!(a.samples, [1, 2, 3, 4, 5, 6]);
        assert_eq!(b, a);
        assert_eq!(a.channels, 3);
        let sixteen = Image { bits_allocated: 16, ..interleaved };
        assert!(render(&sixteen, &[0; 12], None).is_err());
    }

    #[test]
    fn short_frames_and_odd_attributes_are_errors() {
        assert!(render(&gray_image(3, 16, 16, false), &[0; 5], None).is_err());
        assert!(render(&gray_image(3, 32, 32, false), &[0; 12], None).is_err());
        assert!(render(&gray_image(3, 8, 9, false), &[0; 3], None).is_err());
        assert!(render(&gray_image(0, 8, 8, false), &[], None).is_err());
    }

    #[test]
    fn fitting_keeps_proportions_and_never_enlarges() {
        assert_eq!(fitted((512, 512), (128, 128)), (128, 128));
        assert_eq!(fitted((512, 256), (128, 128)), (128, 64));
        assert_eq!(fitted((256, 512), (128, 128)), (64, 128));
        assert_eq!(fitted((100, 50), (128, 128)), (100, 50));
        assert_eq!(fitted((1000, 1), (10, 10)), (10, 1));
        assert_eq!(fitted((3, 2), (1, 1)), (1, 1));
    }

    #[test]
    fn scaling_down_averages_the_pixels_covered() {
        // A 4×2 gray image to 2×1: each output pixel the mean of a 2×2 block.
        let image = Rendered { width: 4, height: 2, channels: 1, samples: vec![0, 10, 100, 200, 20, 30, 50, 50] };
        let out = fit(image, (2, 2));
        assert_eq!((out.width, out.height, out.samples), (2, 1, vec![15, 100]));
        // RGB channels are averaged apart.
        let rgb = Rendered { width: 2, height: 1, channels: 3, samples: vec![0, 100, 255, 10, 200, 255] };
        let out = fit(rgb, (1, 1));
        assert_eq!(out.samples, [5, 150, 255]);
    }

    #[test]
    fn png_signature_and_size() {
        let image = Rendered { width: 3, height: 2, channels: 1, samples: vec![0, 1, 2, 3, 4, 5] };
        let bytes = png(&image).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&bytes[12..16], b"IHDR");
        assert_eq!((&bytes[16..20], &bytes[20..24]), (&3u32.to_be_bytes()[..], &2u32.to_be_bytes()[..]));
    }
}
