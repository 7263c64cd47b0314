//! A device's identity (issue #14): the SHA-256 of its certificate, written as Syncthing writes a
//! device ID, so that people can read it aloud and compare it.
//!
//! The long form is the 32 bytes in base32 (RFC 4648, no padding: 52 characters), a check
//! character after every 13 (Luhn mod 32 over the base32 alphabet), in 8 groups of 7 joined by
//! `-`: `O25RPMT-67Q3WIW-44FPUHA-ZQRDG6T-B6VIIHS-ASKT67A-V7UBR2Z-KH4BIAS`. The short form is the
//! first group. Parsing accepts either case, with or without dashes and spaces, and checks every
//! check character, so a mistyped ID is refused rather than trusted.
//!
//! This type only writes and reads the form; the hash is taken where the certificate is
//! (`rms_transport::identity`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// Base32 characters of the 32 bytes.
const BASE32_LEN: usize = 52;
/// Characters per check character.
const CHUNK: usize = 13;
/// Characters per group of the long form.
const GROUP: usize = 7;

/// The SHA-256 of a device's certificate: who the device is.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint([u8; 32]);

/// Why a text is not a fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseFingerprintError {
    /// The text has another number of letters and digits than 56 (dashes and spaces not
    /// counted); the count it has.
    #[error("a device ID has 56 letters and digits (8 groups of 7), not {0}")]
    Length(usize),
    /// A character that is not in the base32 alphabet (nor a dash or space); the character.
    #[error("{0:?} is not a letter A-Z or a digit 2-7")]
    Character(char),
    /// The check character of one 13-character chunk does not match; which one, from 1 to 4.
    #[error("check character {0} of 4 does not match: a character is mistyped")]
    Check(usize),
    /// The padding bits of the last data character are not zero: the same bytes have only
    /// one spelling, so this one is mistyped.
    #[error("the last character of the ID's data is not one an ID can end with: it is mistyped")]
    NotCanonical,
}

impl Fingerprint {
    /// The fingerprint whose digest is `sha256`.
    pub const fn from_sha256(sha256: [u8; 32]) -> Fingerprint {
        Fingerprint(sha256)
    }

    /// The 32 bytes of the SHA-256 digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first group of the long form, for lists and logs.
    pub fn short(&self) -> String {
        self.to_string()[..GROUP].to_owned()
    }
}

fn base32(bytes: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(BASE32_LEN);
    let (mut buffer, mut bits) = (0_u32, 0_u32);
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize]);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize]);
    }
    out
}

fn value_of(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|a| *a == c).map(|p| p as u32)
}

/// The Luhn mod 32 check character of `chunk` (Syncthing's `luhn32`).
fn check_character(chunk: &[u8]) -> u8 {
    let n = ALPHABET.len() as u32;
    let (mut factor, mut sum) = (1, 0);
    for c in chunk {
        let addend = factor * value_of(*c).unwrap_or(0);
        factor = if factor == 2 { 1 } else { 2 };
        sum += addend / n + addend % n;
    }
    ALPHABET[((n - sum % n) % n) as usize]
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let encoded = base32(&self.0);
        let mut checked = Vec::with_capacity(BASE32_LEN + BASE32_LEN / CHUNK);
        for chunk in encoded.chunks(CHUNK) {
            checked.extend_from_slice(chunk);
            checked.push(check_character(chunk));
        }
        for (index, group) in checked.chunks(GROUP).enumerate() {
            if index > 0 {
                f.write_str("-")?;
            }
            // Every byte is from ALPHABET: ASCII.
            f.write_str(&String::from_utf8_lossy(group))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = ParseFingerprintError;

    fn from_str(text: &str) -> Result<Fingerprint, ParseFingerprintError> {
        let mut checked = Vec::with_capacity(56);
        for c in text.chars().filter(|c| !matches!(c, '-' | ' ')) {
            let upper = c.to_ascii_uppercase();
            if !upper.is_ascii() || value_of(upper as u8).is_none() {
                return Err(ParseFingerprintError::Character(c));
            }
            checked.push(upper as u8);
        }
        if checked.len() != BASE32_LEN + BASE32_LEN / CHUNK {
            return Err(ParseFingerprintError::Length(checked.len()));
        }
        let mut encoded = Vec::with_capacity(BASE32_LEN);
        for (index, chunk) in checked.chunks(CHUNK + 1).enumerate() {
            let (data, check) = chunk.split_at(CHUNK);
            if check[0] != check_character(data) {
                return Err(ParseFingerprintError::Check(index + 1));
            }
            encoded.extend_from_slice(data);
        }
        // 256 bits fill 51 characters and one bit of the 52nd: its 4 other bits are 0, so that
        // each ID has one spelling.
        if encoded
            .last()
            .and_then(|c| value_of(*c))
            .is_some_and(|v| v & 0xf != 0)
        {
            return Err(ParseFingerprintError::NotCanonical);
        }
        let mut bytes = [0_u8; 32];
        let (mut buffer, mut bits, mut at) = (0_u64, 0_u32, 0);
        for c in encoded {
            buffer = (buffer << 5) | u64::from(value_of(c).unwrap_or(0));
            bits += 5;
            if bits >= 8 && at < bytes.len() {
                bits -= 8;
                bytes[at] = ((buffer >> bits) & 0xff) as u8;
                at += 1;
            }
        }
        Ok(Fingerprint(bytes))
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Fingerprint, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Fingerprint {
        let mut bytes = [0_u8; 32];
        for (index, byte) in bytes.iter_mut().enumerate() {
            *byte = (index as u8).wrapping_mul(37).wrapping_add(11);
        }
        Fingerprint::from_sha256(bytes)
    }

    #[test]
    fn the_long_form_is_eight_groups_of_seven_and_reads_back() {
        let fingerprint = sample();
        let text = fingerprint.to_string();
        let groups: Vec<&str> = text.split('-').collect();
        assert_eq!(groups.len(), 8, "{text}");
        assert!(groups.iter().all(|g| g.len() == 7), "{text}");
        assert_eq!(fingerprint.short(), groups[0]);
        assert_eq!(text.parse::<Fingerprint>(), Ok(fingerprint));
        let loose = text.to_lowercase().replace('-', " ");
        assert_eq!(loose.parse::<Fingerprint>(), Ok(fingerprint));
    }

    #[test]
    fn the_base32_is_rfc_4648() {
        // RFC 4648 §10: "foobar" is MZXW6YTBOI; 32 zero bytes are 52 A's but the last bits.
        let mut bytes = [0_u8; 32];
        bytes[..6].copy_from_slice(b"foobar");
        let encoded = base32(&bytes);
        assert_eq!(&encoded[..10], b"MZXW6YTBOI");
        assert_eq!(encoded.len(), BASE32_LEN);
    }

    #[test]
    fn a_mistyped_character_is_caught() {
        let text = sample().to_string();
        let mut chars: Vec<char> = text.chars().collect();
        chars[3] = if chars[3] == 'A' { 'B' } else { 'A' };
        let typo: String = chars.into_iter().collect();
        assert_eq!(
            typo.parse::<Fingerprint>(),
            Err(ParseFingerprintError::Check(1))
        );
        assert_eq!(
            "ABC".parse::<Fingerprint>(),
            Err(ParseFingerprintError::Length(3))
        );
        let bad = text.replacen(&text[..1], "1", 1);
        assert_eq!(
            bad.parse::<Fingerprint>(),
            Err(ParseFingerprintError::Character('1'))
        );
    }

    #[test]
    fn an_id_written_by_another_implementation_reads_back() {
        // The example of docs/openapi.yaml, computed by an independent script (Python) from the
        // SHA-256 of "rms example device certificate".
        let text = "O25RPMT-67Q3WIW-44FPUHA-ZQRDG6T-B6VIIHS-ASKT67A-V7UBR2Z-KH4BIAS";
        let fingerprint: Fingerprint = text.parse().expect("its check characters match");
        assert_eq!(fingerprint.to_string(), text);
        assert_eq!(fingerprint.short(), "O25RPMT");
    }

    #[test]
    fn an_id_has_one_spelling() {
        // The example with other padding bits in its last data character (and the check
        // character that goes with them): the same bytes, refused.
        let other = "O25RPMT-67Q3WIW-44FPUHA-ZQRDG6T-B6VIIHS-ASKT67A-V7UBR2Z-KH4BIBR";
        assert_eq!(
            other.parse::<Fingerprint>(),
            Err(ParseFingerprintError::NotCanonical)
        );
    }

    #[test]
    fn the_check_characters_are_syncthings() {
        // Syncthing's own vectors (lib/protocol): a device ID it printed reads back.
        let syncthing = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2";
        let fingerprint: Fingerprint = syncthing.parse().expect("Syncthing's check characters");
        assert_eq!(fingerprint.to_string(), syncthing);
        assert_eq!(check_character(b"AB725E4GHIQPL3ZFGT"), b'G');
    }

    #[test]
    fn it_travels_as_its_long_form() {
        let fingerprint = sample();
        let json = serde_json::to_string(&fingerprint).expect("serializes");
        assert_eq!(json, format!("\"{fingerprint}\""));
        let back: Fingerprint = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, fingerprint);
    }
}
