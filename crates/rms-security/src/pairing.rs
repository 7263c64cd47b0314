//! Pairing a new device with a one-time code (issue #14, item 4; Matter's and Square's setup
//! codes, SymmetricDS's registration window).
//!
//! The owner opens a window on a trusted device, the sponsor (`rms-node pair`): it holds one
//! code of [`CODE_CHARS`] letters and digits, printed in groups (`ABCD-EFGH-JKMN`). On the new
//! device, `rms-node join CODE --peer URL` dials the sponsor's store port (accepting whatever
//! certificate answers) and proves it knows the code with the session-bound proof of
//! `crate::proof` (the code as the key); the sponsor checks it, trusts the new certificate (an
//! event of the master log), and answers with its own proof, which the new device checks before
//! it trusts the sponsor. So the code never crosses the wire, a proof relayed by a man in the
//! middle does not verify (two sessions, two exporters), and a code opened on one sponsor is
//! worth nothing on another.
//!
//! **Invariants:** a window admits one device; it closes at its first use, at its TTL, or after
//! [`FAILURES_MAX`] wrong proofs, whichever comes first; at most one window is open per device
//! (opening another replaces it). The window lives in memory: a restart closes it.

use std::sync::{Arc, Mutex};

use ring::rand::{SecureRandom, SystemRandom};

/// Letters and digits of a code, without the ones people confuse (0/O, 1/I/L).
const ALPHABET: &[u8; 31] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// Characters of a code (about 59 bits), shown in groups of four (`ABCD-EFGH-JKMN`).
pub const CODE_CHARS: usize = 12;
const GROUP: usize = 4;
/// Wrong proofs after which a window closes.
pub const FAILURES_MAX: u32 = 10;
/// How long a window stays open unless told otherwise.
pub const TTL_DEFAULT_MS: u64 = 10 * 60 * 1000;
/// The longest window an owner may open.
pub const TTL_MAX_MS: u64 = 24 * 60 * 60 * 1000;

/// Why a pairing attempt was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum PairingRefused {
    /// No window was ever opened on this device since it started (a restart closes it).
    #[error("no pairing window is open on this device")]
    NoWindow,
    /// The window's time ran out: the attempt came at or after its closing time.
    #[error("the pairing window expired")]
    Expired,
    /// The window admitted a device already: a window admits one.
    #[error("the pairing window was used already")]
    Used,
    /// The window saw [`FAILURES_MAX`] wrong proofs and admits no one, even with the right code.
    #[error("the pairing window closed after {FAILURES_MAX} wrong codes")]
    TooManyFailures,
    /// The joiner's proof does not verify with the window's code; the attempt counts towards
    /// [`FAILURES_MAX`].
    #[error("wrong pairing code")]
    WrongCode,
}

impl PairingRefused {
    /// The refusal's machine-readable name, as the REST API's error `code` and the wire carry
    /// it (`pairing_closed`, `pairing_expired`, `pairing_used`, `pairing_locked`,
    /// `pairing_wrong_code`). These strings are part of the protocol: never change them.
    pub const fn code(self) -> &'static str {
        match self {
            PairingRefused::NoWindow => "pairing_closed",
            PairingRefused::Expired => "pairing_expired",
            PairingRefused::Used => "pairing_used",
            PairingRefused::TooManyFailures => "pairing_locked",
            PairingRefused::WrongCode => "pairing_wrong_code",
        }
    }
}

#[derive(Debug)]
struct Window {
    /// Without the dashes.
    code: String,
    closes_at_ms: u64,
    failures: u32,
    used: bool,
}

/// This device's pairing window. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Pairing {
    window: Arc<Mutex<Option<Window>>>,
}

impl Pairing {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Window>> {
        self.window.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a window for `ttl_ms` from `now_ms` with a new code; returns the code as people
    /// read it. `None` if the system's random source failed.
    pub fn open(&self, now_ms: u64, ttl_ms: u64) -> Option<String> {
        let code = new_code()?;
        *self.lock() = Some(Window {
            code: code.clone(),
            closes_at_ms: now_ms.saturating_add(ttl_ms.min(TTL_MAX_MS)),
            failures: 0,
            used: false,
        });
        Some(grouped(&code))
    }

    /// An attempt to pair: `proves(code)` checks the joiner's proof for a code. On success the
    /// window is used up and the code returned (for the sponsor's own proof).
    pub fn attempt(
        &self,
        now_ms: u64,
        proves: impl Fn(&str) -> bool,
    ) -> Result<String, PairingRefused> {
        let mut guard = self.lock();
        let window = guard.as_mut().ok_or(PairingRefused::NoWindow)?;
        if window.used {
            return Err(PairingRefused::Used);
        }
        if now_ms >= window.closes_at_ms {
            return Err(PairingRefused::Expired);
        }
        if window.failures >= FAILURES_MAX {
            return Err(PairingRefused::TooManyFailures);
        }
        if !proves(&window.code) {
            window.failures += 1;
            return Err(PairingRefused::WrongCode);
        }
        window.used = true;
        Ok(window.code.clone())
    }

    /// Until when the open window admits a device, if one does.
    pub fn open_until_ms(&self, now_ms: u64) -> Option<u64> {
        self.lock()
            .as_ref()
            .filter(|w| !w.used && w.failures < FAILURES_MAX && now_ms < w.closes_at_ms)
            .map(|w| w.closes_at_ms)
    }
}

/// A code as typed: [`CODE_CHARS`] letters and digits of the code alphabet (no 0, O, 1, I or
/// L) in any case, dashes and spaces ignored. `None` if it cannot be a code.
pub fn normalize(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let valid = code.len() == CODE_CHARS && code.bytes().all(|b| ALPHABET.contains(&b));
    valid.then_some(code)
}

fn new_code() -> Option<String> {
    let random = SystemRandom::new();
    let mut code = String::with_capacity(CODE_CHARS);
    while code.len() < CODE_CHARS {
        let mut byte = [0_u8; 1];
        random.fill(&mut byte).ok()?;
        // 248 = 8 × 31: rejecting the rest keeps every character equally likely.
        if byte[0] < 248 {
            code.push(char::from(ALPHABET[usize::from(byte[0] % 31)]));
        }
    }
    Some(code)
}

fn grouped(code: &str) -> String {
    code.as_bytes()
        .chunks(GROUP)
        .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_twelve_unambiguous_characters_in_three_groups() {
        let pairing = Pairing::default();
        let shown = pairing.open(0, TTL_DEFAULT_MS).expect("a code");
        assert_eq!(shown.len(), 14, "{shown}");
        assert!(shown.len() <= 16);
        let code = normalize(&shown.to_lowercase()).expect("it reads back");
        assert!(!code.contains(['0', 'O', '1', 'I', 'L']));
        assert_eq!(normalize("ABCD-EFGH-JKM"), None);
        assert_eq!(normalize("ABCD-EFGH-JKM0"), None);
    }

    #[test]
    fn a_window_admits_one_device_then_closes() {
        let pairing = Pairing::default();
        let code = normalize(&pairing.open(0, 1000).expect("a code")).expect("a code");
        assert_eq!(pairing.attempt(10, |c| c == code), Ok(code.clone()));
        assert_eq!(
            pairing.attempt(20, |c| c == code),
            Err(PairingRefused::Used)
        );
    }

    #[test]
    fn a_window_expires_and_locks_after_ten_wrong_codes() {
        let pairing = Pairing::default();
        let code = normalize(&pairing.open(0, 1000).expect("a code")).expect("a code");
        assert_eq!(
            pairing.attempt(1000, |c| c == code),
            Err(PairingRefused::Expired)
        );
        pairing.open(0, 1000);
        let code = pairing.attempt(0, |_| false);
        assert_eq!(code, Err(PairingRefused::WrongCode));
        for _ in 1..FAILURES_MAX {
            assert_eq!(
                pairing.attempt(1, |_| false),
                Err(PairingRefused::WrongCode)
            );
        }
        assert_eq!(
            pairing.attempt(2, |_| true),
            Err(PairingRefused::TooManyFailures),
            "the 11th attempt is refused even with the right code"
        );
        assert_eq!(pairing.open_until_ms(2), None);
        assert_eq!(
            Pairing::default().attempt(0, |_| true),
            Err(PairingRefused::NoWindow)
        );
    }
}
