//! Unpredictable identifiers from the operating system's generator: multipart boundaries, JWT `jti`s and
//! anything else that must not be guessed or repeat.
//!
//! Invariant: a failure of the generator is an error, never a weaker identifier.

use ring::rand::{SecureRandom, SystemRandom};

/// `bytes` random bytes as lower-case hex (two characters a byte).
pub fn hex_id(bytes: usize) -> Result<String, String> {
    let mut raw = vec![0u8; bytes];
    SystemRandom::new().fill(&mut raw).map_err(|_| "the system's random generator failed".to_string())?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hex_of_the_length_asked_and_fresh() {
        let (a, b) = (hex_id(16).unwrap(), hex_id(16).unwrap());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{a}");
        assert_ne!(a, b);
    }
}
