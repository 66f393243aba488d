//! Calendar arithmetic without a date crate: Unix seconds to and from RFC 3339, FHIR search date ranges,
//! and DICOM date/time to FHIR `dateTime`.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `2024-05-01T10:00:00Z`.
pub fn format_rfc3339(secs: u64) -> String {
    let secs = secs as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// RFC 9110 §5.6.7 IMF-fixdate, for the `Date` header: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(secs: u64) -> String {
    let secs = secs as i64;
    let days = secs.div_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let rem = secs.rem_euclid(86_400);
    // 1970-01-01 was a Thursday.
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][(m - 1) as usize];
    format!("{weekday}, {d:02} {month} {y:04} {:02}:{:02}:{:02} GMT", rem / 3600, rem / 60 % 60, rem % 60)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn num(s: &str) -> Option<u32> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

/// The half-open range `[start, end)` of Unix seconds that a FHIR date, dateTime or instant covers at its
/// precision (FHIR R4 §3.1.1.4.2): `2024` is the whole year, `2024-05-01T10:00` that minute. Times without an
/// offset are read as UTC.
pub fn fhir_range(value: &str) -> Option<(i64, i64)> {
    let (date, time) = match value.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (value, None),
    };
    let mut parts = date.split('-');
    let y_text = parts.next()?;
    if y_text.len() != 4 {
        return None;
    }
    let y = i64::from(num(y_text)?);
    let m = parts.next().map(|m| if m.len() == 2 { num(m) } else { None });
    let d = parts.next().map(|d| if d.len() == 2 { num(d) } else { None });
    if parts.next().is_some() {
        return None;
    }
    let day = |y: i64, m: u32, d: u32| -> Option<i64> {
        ((1..=12).contains(&m) && (1..=days_in_month(y, m)).contains(&d)).then(|| days_from_civil(y, m, d) * 86_400)
    };
    match (m, d, time) {
        (None, None, None) => Some((day(y, 1, 1)?, day(y + 1, 1, 1)?)),
        (Some(m), None, None) => {
            let m = m?;
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            Some((day(y, m, 1)?, day(ny, nm, 1)?))
        }
        (Some(m), Some(d), None) => {
            let start = day(y, m?, d?)?;
            Some((start, start + 86_400))
        }
        (Some(m), Some(d), Some(t)) => {
            let start = day(y, m?, d?)?;
            let (clock, offset) = split_offset(t)?;
            let mut hms = clock.split(':');
            let h = num(hms.next()?)?;
            let mi = num(hms.next()?)?;
            let (s, width) = match hms.next() {
                None => (0, 60),
                Some(sec) => (num(sec.split('.').next()?)?, 1),
            };
            if h > 23 || mi > 59 || s > 60 || hms.next().is_some() {
                return None;
            }
            let t = start + i64::from(h * 3600 + mi * 60 + s) - offset;
            Some((t, t + width))
        }
        _ => None,
    }
}

/// Splits `10:00:00+01:00` into the clock and the offset in seconds east of UTC.
fn split_offset(t: &str) -> Option<(&str, i64)> {
    if let Some(clock) = t.strip_suffix('Z') {
        return Some((clock, 0));
    }
    match t.rfind(['+', '-']) {
        Some(pos) => {
            let (clock, off) = t.split_at(pos);
            let sign = if off.starts_with('-') { -1 } else { 1 };
            let (h, m) = off[1..].split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            Some((clock, sign * i64::from(num(h)? * 3600 + num(m)? * 60)))
        }
        None => Some((t, 0)),
    }
}

/// DICOM DA (`YYYYMMDD`) and TM (`HHMMSS.FFFFFF`, or shorter) to FHIR: `YYYY-MM-DD`, or a dateTime with the
/// given offset (`+hh:mm`) when there is a time. `None` when the date is unusable.
pub fn dicom_to_fhir(date: &str, time: &str, offset: &str) -> Option<String> {
    let date = date.trim();
    if date.len() != 8 || num(date).is_none() {
        return None;
    }
    let (y, m, d) = (&date[0..4], &date[4..6], &date[6..8]);
    fhir_range(&format!("{y}-{m}-{d}"))?;
    let fhir_date = format!("{y}-{m}-{d}");
    let time = time.trim();
    let (clock, frac) = time.split_once('.').unwrap_or((time, ""));
    if clock.is_empty() || num(clock).is_none() || !(clock.len() == 2 || clock.len() == 4 || clock.len() == 6) {
        return Some(fhir_date);
    }
    let field = |i: usize| clock.get(i..i + 2).unwrap_or("00");
    let (h, mi, s) = (field(0), field(2), field(4));
    if h > "23" || mi > "59" || s > "60" {
        return Some(fhir_date);
    }
    let frac: String = frac.chars().take_while(char::is_ascii_digit).collect();
    let frac = if frac.is_empty() { String::new() } else { format!(".{frac}") };
    Some(format!("{fhir_date}T{h}:{mi}:{s}{frac}{offset}"))
}

/// Parses our own RFC 3339 UTC timestamps (as `format_rfc3339` writes) back to seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    fhir_range(s).map(|(start, _)| start)
}

/// `+0100`, `+01:00`, `-05:30`, `Z` → `+01:00` form.
pub fn normalise_offset(tz: &str) -> Option<String> {
    if tz == "Z" {
        return Some("+00:00".into());
    }
    let b = tz.as_bytes();
    let sign = *b.first()?;
    if sign != b'+' && sign != b'-' {
        return None;
    }
    let digits: String = tz[1..].chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (h, m) = digits.split_at(2);
    if h > "14" || m > "59" {
        return None;
    }
    Some(format!("{}{h}:{m}", sign as char))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for days in [-1_000_000, -1, 0, 1, 19_000, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(1_714_557_600), "2024-05-01T10:00:00Z");
        assert_eq!(parse_rfc3339("2024-05-01T10:00:00Z"), Some(1_714_557_600));
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn ranges_by_precision() {
        let t = 1_714_557_600; // 2024-05-01T10:00:00Z
        let within = |v: &str| fhir_range(v).map(|(a, b)| a <= t && t < b);
        assert_eq!(within("2024"), Some(true));
        assert_eq!(within("2024-05"), Some(true));
        assert_eq!(within("2024-05-01"), Some(true));
        assert_eq!(within("2024-05-02"), Some(false));
        assert_eq!(within("2024-05-01T10:00:00Z"), Some(true));
        assert_eq!(within("2024-05-01T11:00:00+01:00"), Some(true));
        assert_eq!(within("2024-05-01T10:00"), Some(true));
        assert_eq!(fhir_range("2024-02-30"), None);
        assert_eq!(fhir_range("2024-13"), None);
        assert_eq!(fhir_range("24-01-01"), None);
        assert_eq!(fhir_range("2024-05-01T25:00:00Z"), None);
        assert_eq!(fhir_range("yesterday"), None);
    }

    #[test]
    fn dicom_dates_to_fhir() {
        assert_eq!(dicom_to_fhir("20240105", "093000", "+01:00").as_deref(), Some("2024-01-05T09:30:00+01:00"));
        assert_eq!(dicom_to_fhir("20240612", "141500.123", "+00:00").as_deref(), Some("2024-06-12T14:15:00.123+00:00"));
        assert_eq!(dicom_to_fhir("20240612", "1415", "+00:00").as_deref(), Some("2024-06-12T14:15:00+00:00"));
        assert_eq!(dicom_to_fhir("20231220", "", "+00:00").as_deref(), Some("2023-12-20"));
        assert_eq!(dicom_to_fhir("20231220", "99", "+00:00").as_deref(), Some("2023-12-20"));
        assert_eq!(dicom_to_fhir("2023", "", "+00:00"), None);
        assert_eq!(dicom_to_fhir("20231340", "", "+00:00"), None);
    }

    #[test]
    fn offsets() {
        assert_eq!(normalise_offset("+0100").as_deref(), Some("+01:00"));
        assert_eq!(normalise_offset("-05:30").as_deref(), Some("-05:30"));
        assert_eq!(normalise_offset("Z").as_deref(), Some("+00:00"));
        assert_eq!(normalise_offset("0100"), None);
        assert_eq!(normalise_offset("+1"), None);
        assert_eq!(normalise_offset("+2500"), None);
    }
}
