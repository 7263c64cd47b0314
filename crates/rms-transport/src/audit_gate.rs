//! The gate every refusal and alarm passes before it becomes an audit row (issue #29, item 3).
//!
//! The audit log is append-only: a row written is kept for ever. A trusted device that repeats a
//! refused message, or a bystander that repeats a refused handshake, must not be able to fill it.
//! So each refusal and alarm names who caused it (a certificate, a device, a source address),
//! and the gate writes at most [`PER_SUBJECT_PER_MINUTE`] rows a minute for the same reason and
//! subject, and at most [`PER_MINUTE_MAX`] a minute in all. What it does not write is logged at
//! debug and counted ([`AuditGate::suppressed`], `rms_audit_suppressed_total` in `/metrics`).
//!
//! **Invariants:** a refusal is answered the same whether or not it is audited (the gate decides
//! the row, never the answer); memory is bounded ([`SUBJECTS_REMEMBERED_MAX`]); the gate keeps
//! no clock of its own beyond the monotonic instant it is asked at. A leaf: it imports nothing of
//! this crate.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rms_domain::{DeviceId, Fingerprint};

/// Rows a minute for the same reason and the same subject (a burst, then nothing until the
/// minute has passed).
pub const PER_SUBJECT_PER_MINUTE: u32 = 3;
/// Rows a minute for every refusal and alarm together: a flood of new certificates or sources,
/// each a new subject, still writes no more than this.
pub const PER_MINUTE_MAX: u32 = 60;
/// Subjects remembered; beyond it the memory starts over (the global limit still holds).
pub const SUBJECTS_REMEMBERED_MAX: usize = 4096;
/// The window both limits count in.
const WINDOW: Duration = Duration::from_secs(60);

/// Who caused a refusal or an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A certificate (a TLS handshake showed it).
    Certificate(Fingerprint),
    /// A device of the store (its certificate proved it).
    Device(DeviceId),
    /// A network source, before or without a certificate.
    Source(IpAddr),
    /// Nothing outside this node: an alarm of its own (the journal, head office).
    Node,
}

#[derive(Debug)]
struct Counted {
    since: Instant,
    rows: u32,
}

impl Counted {
    /// Counts one more row at `now`; whether it is within `max` for the current window.
    fn admit(&mut self, now: Instant, max: u32) -> bool {
        if now.duration_since(self.since) >= WINDOW {
            (self.since, self.rows) = (now, 0);
        }
        if self.rows >= max {
            return false;
        }
        self.rows += 1;
        true
    }
}

#[derive(Debug)]
struct Windows {
    subjects: HashMap<(&'static str, Subject), Counted>,
    all: Counted,
}

/// Rate limits for audit rows caused from outside (see the module docs). Shared by every task
/// of a node through its [`crate::input::Driver`].
#[derive(Debug)]
pub struct AuditGate {
    windows: Mutex<Windows>,
    suppressed: AtomicU64,
}

impl Default for AuditGate {
    fn default() -> Self {
        let now = Instant::now();
        AuditGate {
            windows: Mutex::new(Windows {
                subjects: HashMap::new(),
                all: Counted {
                    since: now,
                    rows: 0,
                },
            }),
            suppressed: AtomicU64::new(0),
        }
    }
}

impl AuditGate {
    /// Whether a row for `why` caused by every one of `subjects` may be written now. A refusal
    /// with two subjects (a certificate and its source address) is written only if both are
    /// within their limits; a refusal not written is counted.
    pub fn admit(&self, why: &'static str, subjects: &[Subject]) -> bool {
        self.admit_at(why, subjects, Instant::now())
    }

    fn admit_at(&self, why: &'static str, subjects: &[Subject], now: Instant) -> bool {
        let mut windows = crate::locks::lock(&self.windows);
        if windows.subjects.len() >= SUBJECTS_REMEMBERED_MAX {
            windows.subjects.clear();
        }
        let mut admitted = true;
        for subject in subjects {
            let counted = windows.subjects.entry((why, *subject)).or_insert(Counted {
                since: now,
                rows: 0,
            });
            admitted &= counted.admit(now, PER_SUBJECT_PER_MINUTE);
        }
        admitted = admitted && windows.all.admit(now, PER_MINUTE_MAX);
        if !admitted {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            log::debug!("not audited (rate limit): {why} by {subjects:?}");
        }
        admitted
    }

    /// Refusals and alarms not written since the node started.
    pub fn suppressed(&self) -> u64 {
        self.suppressed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_gets_a_burst_a_minute_and_everyone_together_a_ceiling() {
        let gate = AuditGate::default();
        let start = Instant::now();
        let one = [Subject::Device(DeviceId::new(6).unwrap())];
        let admitted = (0..1000)
            .filter(|_| gate.admit_at("bad_message", &one, start))
            .count();
        assert_eq!(admitted, PER_SUBJECT_PER_MINUTE as usize);
        assert_eq!(gate.suppressed(), 1000 - u64::from(PER_SUBJECT_PER_MINUTE));
        // Another reason of the same device is its own budget; a minute later, a new burst.
        assert!(gate.admit_at("device_id_mismatch", &one, start));
        assert!(gate.admit_at("bad_message", &one, start + WINDOW));

        // A flood of new sources: each is new, the ceiling holds.
        let gate = AuditGate::default();
        let admitted = (0..1000u32)
            .filter(|i| {
                let source = Subject::Source(IpAddr::from(i.to_be_bytes()));
                gate.admit_at("unknown_device", &[source], start)
            })
            .count();
        assert_eq!(admitted, PER_MINUTE_MAX as usize);
    }

    #[test]
    fn a_refusal_of_two_subjects_needs_both() {
        let gate = AuditGate::default();
        let now = Instant::now();
        let source = Subject::Source(IpAddr::from([10, 0, 0, 9]));
        // One source shows a new certificate each time: the source's budget stops it.
        let admitted = (0..50u8)
            .filter(|i| {
                let certificate = Subject::Certificate(Fingerprint::from_sha256([*i; 32]));
                gate.admit_at("unknown_device", &[certificate, source], now)
            })
            .count();
        assert_eq!(admitted, PER_SUBJECT_PER_MINUTE as usize);
    }
}
