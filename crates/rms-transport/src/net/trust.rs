//! The trust list as the links use it: who may connect, and what a dial may accept.
//!
//! The list itself is the fold of the master log's `device_trust` events
//! (`rms_storage::trust::load`); the driver replaces it here after every input that changed it,
//! and closes the links of every certificate it no longer trusts. Handshakes read it: a
//! revocation counts for the next handshake at once, and for the links already open as soon as
//! the driver closed them (within the input that brought it).
//!
//! **Invariants:**
//! - A device link (store port) is admitted only for a trusted certificate, bound to the device
//!   id the list gives it, or for one that proved the store key while the upgrade window is open
//!   and whose device id no other trusted certificate holds.
//! - A dial accepts only trusted certificates; a device that knows no other device of its store
//!   yet also accepts an unknown one, and then uses the link only if that device is trusted by
//!   then (approved on this device) or proves the store key.

use std::sync::{Arc, RwLock};

use rms_domain::{DeviceId, Fingerprint, TrustEntry, TrustList};

use rms_security::tls::Trusted;

/// Shared by the store port, the connector and the driver. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TrustBook {
    inner: Arc<RwLock<Book>>,
    /// Bumped at every [`TrustBook::replace`]: what [`TrustBook::lost`] waits on.
    replaced: Arc<tokio::sync::watch::Sender<u64>>,
}

#[derive(Debug)]
struct Book {
    list: TrustList,
    me: Fingerprint,
    device: DeviceId,
    store_key: Option<String>,
    /// When the store-key window closes (ms since the epoch).
    window_closes_at_ms: u64,
}

/// What a dial accepts on the other side.
#[derive(Debug, Clone)]
pub struct DialTrust {
    /// The certificates the TLS handshake accepts (never this device's own).
    pub trusted: Trusted,
    /// An unknown server is accepted by the handshake (this device knows no other device of
    /// its store yet); the link is used only if it is trusted by then or proves the store key.
    pub enrolling: bool,
}

impl TrustBook {
    /// The book of device `device`, whose certificate is `me`, starting from `list`. `store_key`
    /// is the store's shared secret, if it has one; new devices may prove it until
    /// `window_closes_at_ms` (ms since the epoch).
    pub fn new(
        list: TrustList,
        me: Fingerprint,
        device: DeviceId,
        store_key: Option<String>,
        window_closes_at_ms: u64,
    ) -> TrustBook {
        let book = Book {
            list,
            me,
            device,
            store_key,
            window_closes_at_ms,
        };
        TrustBook {
            inner: Arc::new(RwLock::new(book)),
            replaced: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }

    // A writer that panicked replaced the list whole or not at all: read through the poison.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Book> {
        crate::locks::read(&self.inner)
    }

    /// Replaces the list; returns the fingerprints trusted before and not now.
    pub fn replace(&self, list: TrustList) -> Vec<Fingerprint> {
        let mut book = crate::locks::write(&self.inner);
        let dropped = book
            .list
            .trusted()
            .filter(|f| !list.is_trusted(f))
            .copied()
            .collect();
        book.list = list;
        drop(book);
        self.replaced.send_modify(|n| *n = n.wrapping_add(1));
        dropped
    }

    /// Completes when `fingerprint`, trusted now or later, stops being trusted (revoked, or
    /// dropped by a truncation); never for a certificate that is never trusted. The store port
    /// closes a connection when it does (issue #29: revocation closes every door).
    pub(crate) async fn lost(&self, fingerprint: Fingerprint) {
        // Subscribed before the first look: a replace between the two is not missed.
        let mut replaced = self.replaced.subscribe();
        let mut trusted = self.is_trusted(&fingerprint);
        while replaced.changed().await.is_ok() {
            let now = self.is_trusted(&fingerprint);
            if trusted && !now {
                return;
            }
            trusted = now;
        }
        // The book is gone (the node stopped): the connection is closed by the shutdown.
        std::future::pending::<()>().await;
    }

    /// The trust list as of now (a copy).
    pub fn list(&self) -> TrustList {
        self.read().list.clone()
    }

    /// This device's own certificate's fingerprint.
    pub fn me(&self) -> Fingerprint {
        self.read().me
    }

    /// This device's id.
    pub fn device(&self) -> DeviceId {
        self.read().device
    }

    /// The list's entry for this certificate (trusted, pending or revoked), if it has one.
    pub fn entry(&self, fingerprint: &Fingerprint) -> Option<TrustEntry> {
        self.read().list.get(fingerprint).cloned()
    }

    /// Whether the list trusts this certificate now.
    pub fn is_trusted(&self, fingerprint: &Fingerprint) -> bool {
        self.read().list.is_trusted(fingerprint)
    }

    /// Whether the list holds this certificate as revoked.
    pub fn is_revoked(&self, fingerprint: &Fingerprint) -> bool {
        self.read().list.is_revoked(fingerprint)
    }

    /// Whether the list binds another certificate than this device's own to this device's id
    /// (trusted, or revoked since): a database restored without its identity files, whose new
    /// certificate the store does not know.
    pub fn another_certificate_holds_my_id(&self) -> bool {
        let book = self.read();
        book.list
            .entries()
            .any(|e| e.device_id == book.device && e.fingerprint != book.me)
            && !book.list.is_trusted(&book.me)
    }

    /// The trusted certificate of `device`, if the list has one.
    pub fn trusted_for(&self, device: DeviceId) -> Option<Fingerprint> {
        self.read().list.trusted_for(device).map(|e| e.fingerprint)
    }

    /// The store key, if the store has one (without one, its devices link on loopback only).
    pub fn store_key(&self) -> Option<String> {
        self.read().store_key.clone()
    }

    /// When the store key's upgrade window closes (ms since the epoch): until then an unknown
    /// device that proves the key is admitted.
    pub fn window_closes_at_ms(&self) -> u64 {
        self.read().window_closes_at_ms
    }

    /// The secret a device proves to be trusted on first use: the store key while the upgrade
    /// window is open; for a store without a key (its devices listen on loopback only, so all
    /// are on this machine) the empty key, always.
    pub fn window_key(&self, now_ms: u64) -> Option<String> {
        let book = self.read();
        match &book.store_key {
            None => Some(String::new()),
            Some(key) => Some(key.clone()).filter(|_| now_ms < book.window_closes_at_ms),
        }
    }

    /// Closes the store key's upgrade window at `now_ms` (ms since the epoch), if it closes
    /// later; a window already closed stays closed.
    pub fn close_window(&self, now_ms: u64) {
        let mut book = crate::locks::write(&self.inner);
        book.window_closes_at_ms = book.window_closes_at_ms.min(now_ms);
    }

    /// What a dial to `device` (when the address is that device's) accepts: that device's
    /// certificate alone when the list has it, else every trusted one; and any one (to be
    /// proven after) for a device that knows no other device of the store yet: it must reach
    /// its store to be listed as waiting there, and sends nothing but its ID (and, while the
    /// window is open, a proof of the key bound to this session).
    pub fn dial(&self, device: Option<DeviceId>) -> DialTrust {
        let book = self.read();
        if let Some(fingerprint) = device.and_then(|d| book.list.trusted_for(d)) {
            return DialTrust {
                trusted: Trusted::new([fingerprint.fingerprint]),
                enrolling: false,
            };
        }
        let knows_store = book.list.trusted().any(|f| *f != book.me);
        if !knows_store {
            return DialTrust {
                trusted: Trusted::anyone(),
                enrolling: true,
            };
        }
        DialTrust {
            trusted: Trusted::new(book.list.trusted().copied()),
            enrolling: false,
        }
    }
}

/// Audits a certificate the store port refused, and lists an unknown one as pending, in one
/// transaction.
pub(crate) fn record_refusal(
    store: &rms_storage::Store,
    refusal: &crate::input::DeviceRefusal,
    now_ms: u64,
) -> Result<(), rms_storage::StorageError> {
    use rms_domain::{AuditEntry, Operation, Outcome, rfc3339_from_ms};
    let entry = AuditEntry {
        id: 0,
        at: rfc3339_from_ms(now_ms),
        operation: if refusal.why.is_alarm() {
            Operation::Alarm
        } else {
            Operation::Rejection
        },
        // Who it claimed to be is in the details: an unauthenticated claim is not a device.
        device_id: None,
        user_id: None,
        event_id: None,
        outcome: Outcome::Rejected,
        details: serde_json::json!({
            "why": refusal.why.as_str(),
            "fingerprint": refusal.fingerprint.to_string(),
            "claimed": refusal.claimed,
            "address": refusal.address,
        }),
    };
    store.write(|tx| {
        if let (Some(name), Some(device)) = (&refusal.pending_name, refusal.claimed) {
            let pending = rms_storage::trust::Pending {
                fingerprint: refusal.fingerprint,
                device_id: device,
                name: name.clone(),
                address: refusal.address.clone(),
                first_seen_ms: now_ms,
                last_seen_ms: now_ms,
                attempts: 1,
            };
            rms_storage::trust::note_pending(tx, &pending)?;
        }
        rms_storage::local::record_audit(tx, &entry).map(drop)
    })
}
