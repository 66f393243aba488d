//! DICOM unique identifiers (PS3.5 §9.1): the one rule for what a UID looks like, applied to request text
//! at the edge, so that lookups only ever take a checked `Uid`. Invariants: a [`Uid`] exists only for text
//! that [`is_valid`] accepts, and it borrows that text rather than copying it. This module imports
//! nothing from its siblings.

/// A DICOM UID taken from request text, checked at the edge (PS3.5 §9.1: up to 64 characters of digits
/// and dots, each component without a leading zero unless it is `0`). Lookups take only this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uid<'a>(&'a str);

impl<'a> Uid<'a> {
    pub fn parse(s: &'a str) -> Option<Uid<'a>> {
        is_valid(s).then_some(Uid(s))
    }

    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

/// Whether `s` is a UID: 1 to 64 characters of digit components separated by dots, no component empty
/// and none with a leading zero unless it is `0`.
pub fn is_valid(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.split('.')
            .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()) && (c == "0" || !c.starts_with('0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids() {
        assert!(Uid::parse("1.2.840.10008.1.2.1").is_some());
        assert!(Uid::parse("0.1").is_some());
        for bad in ["", "1..2", ".1", "1.", "1.02", "1.a", "1/2", &"1".repeat(65)] {
            assert!(Uid::parse(bad).is_none(), "{bad}");
        }
    }
}
