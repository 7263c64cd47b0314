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
//! **A bystander learns only "no"** (issue #29): every refusal of a join, whatever its reason,
//! reaches the joiner as the same `403` [`REFUSED_CODE`] with the same [`REFUSED_MESSAGE`].
//! The reason ([`PairingRefused`], by [`PairingRefused::code`]) stays on the sponsor, in its log
//! and audit. Attempts are limited per source address, not per window: each wrong proof from a
//! source makes that source wait ([`BACKOFF_FIRST_MS`], doubling up to [`BACKOFF_MAX_MS`]), and a
//! source that is waiting is refused without its proof being checked or counted; so a flood
//! from one address slows that address and nobody else. There is no global cap on wrong proofs
//! (it would let anyone lock the window again): what bounds guessing is the code's 59 bits
//! against the window's life, see `docs/SECURITY.md` ("Guessing a code").
//!
//! **Invariants:** a window admits one device; it closes at its first use or at its TTL,
//! whichever comes first; at most one window is open per device (opening another replaces it,
//! and forgets every source's wait). A window remembers at most [`SOURCES_MAX`] sources. The
//! window lives in memory: a restart closes it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use ring::rand::{SecureRandom, SystemRandom};

/// Letters and digits of a code, without the ones people confuse (0/O, 1/I/L).
const ALPHABET: &[u8; 31] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// Characters of a code (31^12, about 2^59.5), shown in groups of four (`ABCD-EFGH-JKMN`).
pub const CODE_CHARS: usize = 12;
const GROUP: usize = 4;
/// How long a window stays open unless told otherwise.
pub const TTL_DEFAULT_MS: u64 = 10 * 60 * 1000;
/// The longest window an owner may open.
pub const TTL_MAX_MS: u64 = 24 * 60 * 60 * 1000;
/// How long a source waits after its first wrong proof; each further wrong proof doubles it.
pub const BACKOFF_FIRST_MS: u64 = 250;
/// The longest a source waits between two proofs that are checked (reached at the 9th wrong
/// one): a person who mistyped a code a few times waits a second or two; a script from one
/// address gets 17 checked guesses in a 10-minute window.
pub const BACKOFF_MAX_MS: u64 = 60_000;
/// Source addresses a window remembers the wrong proofs of. When a new source's wrong proof
/// finds it full, the source whose wait ends first is forgotten: the one that holds the least.
pub const SOURCES_MAX: usize = 1024;

/// The error code every refused join reads, whatever the reason (part of the protocol: the
/// store port's `403` body `error`). Before issue #29 each reason had its own
/// (`pairing_closed`, `pairing_expired`, `pairing_used`, `pairing_locked`,
/// `pairing_wrong_code`); they told a bystander the window's state, and are no longer sent.
pub const REFUSED_CODE: &str = "pairing_refused";
/// The message every refused join reads, whatever the reason.
pub const REFUSED_MESSAGE: &str = "pairing refused: check the code, that the sponsor's pairing \
                                   window is open (`rms-node pair`) and has not expired, and \
                                   wait a few seconds after a wrong code";

/// Why a pairing attempt was refused: the sponsor's own record. The joiner reads only
/// [`REFUSED_CODE`].
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
    /// The attempt's source address is waiting after its own wrong proofs; its proof was not
    /// checked and does not count.
    #[error("the source is waiting after wrong pairing codes")]
    Backoff,
    /// The joiner's proof does not verify with the window's code; its source waits before its
    /// next proof is checked.
    #[error("wrong pairing code")]
    WrongCode,
    /// The joiner's certificate is on the trust list as revoked: a revoked certificate never
    /// comes back, with or without a code (nothing is checked).
    #[error("a revoked certificate tried to pair")]
    Revoked,
}

impl PairingRefused {
    /// The reason's name in the sponsor's log and audit (`why`): `pairing_closed`,
    /// `pairing_expired`, `pairing_used`, `pairing_backoff`, `pairing_wrong_code`,
    /// `pairing_revoked`. Stable, for people who search the audit; never sent to the joiner,
    /// which reads [`REFUSED_CODE`].
    pub const fn code(self) -> &'static str {
        match self {
            PairingRefused::NoWindow => "pairing_closed",
            PairingRefused::Expired => "pairing_expired",
            PairingRefused::Used => "pairing_used",
            PairingRefused::Backoff => "pairing_backoff",
            PairingRefused::WrongCode => "pairing_wrong_code",
            PairingRefused::Revoked => "pairing_revoked",
        }
    }
}

#[derive(Debug)]
struct Window {
    /// Without the dashes.
    code: String,
    closes_at_ms: u64,
    used: bool,
    sources: Sources,
}

/// The wrong proofs of each source address in one window, and until when each waits.
#[derive(Debug, Default)]
struct Sources {
    waits: HashMap<IpAddr, Wait>,
}

#[derive(Debug, Clone, Copy)]
struct Wait {
    /// Wrong proofs checked from this source.
    failures: u32,
    /// The source's next proof is checked at or after this time.
    until_ms: u64,
}

impl Sources {
    /// Whether `source` is still waiting at `now_ms`.
    fn waiting(&self, source: IpAddr, now_ms: u64) -> bool {
        self.waits.get(&source).is_some_and(|w| now_ms < w.until_ms)
    }

    /// Records a wrong proof from `source` at `now_ms`: it waits twice as long as last time.
    fn failed(&mut self, source: IpAddr, now_ms: u64) {
        if self.waits.len() >= SOURCES_MAX && !self.waits.contains_key(&source) {
            let first_free = self.waits.iter().min_by_key(|(_, w)| w.until_ms);
            if let Some(forgotten) = first_free.map(|(address, _)| *address) {
                self.waits.remove(&forgotten);
            }
        }
        let wait = self.waits.entry(source).or_insert(Wait {
            failures: 0,
            until_ms: 0,
        });
        wait.failures = wait.failures.saturating_add(1);
        wait.until_ms = now_ms.saturating_add(backoff_ms(wait.failures));
    }
}

/// How long a source waits after its `failures`-th wrong proof: [`BACKOFF_FIRST_MS`] doubled
/// for each before it, at most [`BACKOFF_MAX_MS`].
fn backoff_ms(failures: u32) -> u64 {
    // 32 doublings are far past the cap, and cannot overflow: 250 × 2^32 < 2^64.
    let doublings = failures.saturating_sub(1).min(32);
    BACKOFF_FIRST_MS
        .saturating_mul(1_u64 << doublings)
        .min(BACKOFF_MAX_MS)
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
            used: false,
            sources: Sources::default(),
        });
        Some(grouped(&code))
    }

    /// An attempt to pair from `source`: `proves(code)` checks the joiner's proof for a code,
    /// unless the source is waiting after its own wrong proofs. On success the window is used
    /// up and the code returned (for the sponsor's own proof).
    pub fn attempt(
        &self,
        now_ms: u64,
        source: IpAddr,
        proves: impl Fn(&str) -> bool,
    ) -> Result<String, PairingRefused> {
        // An IPv4 peer reached over an IPv6 socket is the same source as over IPv4.
        let source = source.to_canonical();
        let mut guard = self.lock();
        let window = guard.as_mut().ok_or(PairingRefused::NoWindow)?;
        if window.used {
            return Err(PairingRefused::Used);
        }
        if now_ms >= window.closes_at_ms {
            return Err(PairingRefused::Expired);
        }
        if window.sources.waiting(source, now_ms) {
            return Err(PairingRefused::Backoff);
        }
        if !proves(&window.code) {
            window.sources.failed(source, now_ms);
            return Err(PairingRefused::WrongCode);
        }
        window.used = true;
        Ok(window.code.clone())
    }

    /// Until when the open window admits a device, if one does.
    pub fn open_until_ms(&self, now_ms: u64) -> Option<u64> {
        self.lock()
            .as_ref()
            .filter(|w| !w.used && now_ms < w.closes_at_ms)
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
    use std::cell::Cell;
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn source(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    /// A window opened at 0 for a minute; its code.
    fn opened(pairing: &Pairing) -> String {
        normalize(&pairing.open(0, 60_000).expect("a code")).expect("a code")
    }

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
    fn a_window_admits_one_device_then_closes_and_expires() {
        let pairing = Pairing::default();
        assert_eq!(
            pairing.attempt(0, source(1), |_| true),
            Err(PairingRefused::NoWindow)
        );
        let code = normalize(&pairing.open(0, 1000).expect("a code")).expect("a code");
        assert_eq!(pairing.open_until_ms(10), Some(1000));
        assert_eq!(
            pairing.attempt(10, source(1), |c| c == code),
            Ok(code.clone())
        );
        assert_eq!(
            pairing.attempt(20, source(2), |c| c == code),
            Err(PairingRefused::Used)
        );
        assert_eq!(pairing.open_until_ms(20), None);
        let code = normalize(&pairing.open(0, 1000).expect("a code")).expect("a code");
        assert_eq!(
            pairing.attempt(1000, source(1), |c| c == code),
            Err(PairingRefused::Expired)
        );
    }

    #[test]
    fn the_wait_doubles_from_a_quarter_second_to_a_minute() {
        let waits: Vec<u64> = (1..=10).map(backoff_ms).collect();
        assert_eq!(
            waits,
            [
                250, 500, 1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000
            ]
        );
        assert_eq!(backoff_ms(u32::MAX), BACKOFF_MAX_MS);
    }

    #[test]
    fn wrong_codes_make_their_source_wait_unchecked_while_another_source_gets_in() {
        let pairing = Pairing::default();
        let code = opened(&pairing);
        let (flooder, joiner) = (source(2), source(3));
        let checked = Cell::new(0);
        let wrong = |_: &str| {
            checked.set(checked.get() + 1);
            false
        };
        assert_eq!(
            pairing.attempt(0, flooder, wrong),
            Err(PairingRefused::WrongCode)
        );
        // A flood while it waits: refused, its proofs neither checked nor counted.
        for now_ms in 1..BACKOFF_FIRST_MS {
            let refused = pairing.attempt(now_ms, flooder, wrong);
            assert_eq!(refused, Err(PairingRefused::Backoff));
        }
        assert_eq!(checked.get(), 1, "only the first proof was checked");
        // Its second wrong proof, once the wait is over, doubles the wait.
        let second_at = BACKOFF_FIRST_MS;
        assert_eq!(
            pairing.attempt(second_at, flooder, wrong),
            Err(PairingRefused::WrongCode)
        );
        let until = second_at + 2 * BACKOFF_FIRST_MS;
        assert_eq!(
            pairing.attempt(until - 1, flooder, |_| true),
            Err(PairingRefused::Backoff)
        );
        // Another source was never slowed: the right code gets in during the flood.
        assert_eq!(
            pairing.attempt(until - 1, joiner, |c| c == code),
            Ok(code.clone())
        );
        assert_eq!(checked.get(), 2);
    }

    #[test]
    fn a_source_is_one_whether_it_came_over_ipv4_or_ipv6() {
        let pairing = Pairing::default();
        opened(&pairing);
        let v4 = Ipv4Addr::new(192, 168, 1, 20);
        assert_eq!(
            pairing.attempt(0, IpAddr::V4(v4), |_| false),
            Err(PairingRefused::WrongCode)
        );
        let mapped = IpAddr::V6(v4.to_ipv6_mapped());
        assert_eq!(
            pairing.attempt(1, mapped, |_| true),
            Err(PairingRefused::Backoff)
        );
        let other = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert!(pairing.attempt(1, other, |_| true).is_ok());
    }

    #[test]
    fn a_new_window_forgets_every_wait() {
        let pairing = Pairing::default();
        opened(&pairing);
        assert_eq!(
            pairing.attempt(0, source(1), |_| false),
            Err(PairingRefused::WrongCode)
        );
        let code = opened(&pairing);
        assert_eq!(
            pairing.attempt(1, source(1), |c| c == code),
            Ok(code.clone())
        );
    }

    #[test]
    fn a_full_table_forgets_the_source_whose_wait_ends_first() {
        let mut sources = Sources::default();
        let address = |i: usize| IpAddr::V6(Ipv6Addr::from(u128::try_from(i).expect("small")));
        // Source 0 fails first, so its wait ends first; source 1 fails twice, and waits longest.
        for i in 0..SOURCES_MAX {
            let now_ms = u64::try_from(i).expect("small");
            sources.failed(address(i), now_ms);
        }
        sources.failed(address(1), 10_000);
        assert_eq!(sources.waits.len(), SOURCES_MAX);
        let newcomer = address(SOURCES_MAX);
        sources.failed(newcomer, 10_001);
        assert_eq!(sources.waits.len(), SOURCES_MAX, "bounded");
        assert!(
            !sources.waits.contains_key(&address(0)),
            "the first to end is forgotten"
        );
        assert!(sources.waiting(newcomer, 10_001));
        assert!(
            sources.waiting(address(1), 10_001),
            "the longest wait is kept"
        );
        // A source it still holds is not a newcomer: nothing is forgotten for it.
        sources.failed(address(2), 10_002);
        assert_eq!(sources.waits.len(), SOURCES_MAX);
        assert!(sources.waits.contains_key(&address(3)));
    }
}
