//! Signing the journal's heads (issue #17, `docs/JOURNAL.md`) with this device's key: the key of
//! its certificate (ECDSA P-256). Every [`SIGN_INTERVAL`] the heads that moved are signed, by the
//! driver thread like every write (`Input::SignJournal`).

use std::sync::Arc;
use std::time::Duration;

use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use rms_storage::StorageError;
use rms_storage::journal_heads::HeadSigner;

use crate::identity::Identity;
use crate::input::Input;
use crate::node::Node;

/// How often the heads that moved are signed: what a crash can leave unsigned (still
/// hash-chained, and signed at the next start).
pub const SIGN_INTERVAL: Duration = Duration::from_secs(5);

/// This device's key, as the journal signs with it.
pub struct Signer {
    key: EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
    certificate: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").finish_non_exhaustive()
    }
}

/// The device key cannot sign (it is not an ECDSA P-256 key in PKCS#8).
#[derive(Debug, thiserror::Error)]
#[error("this device's key cannot sign the journal: {0}")]
pub struct SignerError(String);

impl Signer {
    pub fn new(identity: &Identity) -> Result<Signer, SignerError> {
        let pair =
            rcgen::KeyPair::from_pem(identity.key_pem()).map_err(|e| SignerError(e.to_string()))?;
        let rng = ring::rand::SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &pair.serialize_der(),
            &rng,
        )
        .map_err(|e| SignerError(e.to_string()))?;
        Ok(Signer {
            key,
            rng,
            certificate: identity.cert_der().to_vec(),
        })
    }
}

impl HeadSigner for Signer {
    fn public_key(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }

    fn certificate(&self) -> &[u8] {
        &self.certificate
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, StorageError> {
        let signature = self
            .key
            .sign(&self.rng, message)
            .map_err(|_| StorageError::NotFound {
                what: "a signature from this device's key (the signing failed)".into(),
            })?;
        Ok(signature.as_ref().to_vec())
    }
}

/// Asks the driver to sign the journal's heads every [`SIGN_INTERVAL`] until the node stops.
pub(crate) async fn run(node: Node) {
    let signer = match Signer::new(node.identity()) {
        Ok(signer) => Arc::new(signer),
        Err(err) => {
            log::error!("{err}: the journal's heads and pushes stay unsigned");
            node.send_input(Input::JournalBroken);
            node.alarm(
                "journal_unsigned",
                serde_json::json!({ "error": err.to_string() }),
            )
            .await;
            return crate::log_watch::run(node, None).await;
        }
    };
    node.set_journal_signer(Arc::clone(&signer));
    tokio::spawn(crate::log_watch::run(
        node.clone(),
        Some(Arc::clone(&signer)),
    ));
    let mut tick = tokio::time::interval(SIGN_INTERVAL);
    // The day whose past days were last closed: checked at start and when the day changes.
    let mut closed_before = None;
    while !node.is_stopping() {
        tick.tick().await;
        // A revoked key signs nothing more once the device knows (issue #27): its heads up to
        // then stay its own (`journal verify`).
        if node.is_revoked() {
            continue;
        }
        node.send_input(Input::SignJournal(Arc::clone(&signer)));
        let today = node.config().clock.now_ms() / rms_domain::DAY_MS;
        if closed_before != Some(today) && close_days(&node).await {
            closed_before = Some(today);
        }
    }
}

/// Closes the past days this device sold on and has not closed (issue #17,
/// `rms_storage::closing`), each one local write. False when it is to be tried again.
async fn close_days(node: &Node) -> bool {
    let device = node.config().device_id;
    let now_ms = node.config().clock.now_ms();
    let due = node
        .db()
        .read(move |c| rms_storage::closing::due(c, device, now_ms))
        .await;
    let due = match due {
        Ok(due) => due,
        Err(err) => {
            log::error!("cannot find the days to close: {err}");
            return false;
        }
    };
    let more = due.len() == rms_storage::closing::DAYS_PER_CHECK_MAX;
    for day in due {
        let command = rms_storage::local::Command::CloseDay { day: day.clone() };
        match node.local_write(command).await {
            Ok(_) => log::info!("closed day {day}"),
            Err(err) => {
                log::error!("cannot close day {day}: {err}");
                return false;
            }
        }
    }
    !more
}
