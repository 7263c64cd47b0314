//! This device's key as the journal signs with it (issue #17, `docs/JOURNAL.md`): the key of its
//! certificate (ECDSA P-256), behind `rms_storage`'s [`HeadSigner`]. When and what is signed is
//! the node's business (`rms_transport`); this module only signs.

use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use rms_storage::StorageError;
use rms_storage::journal_heads::HeadSigner;

use crate::identity::Identity;

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
pub struct SignerError(#[source] SignerSource);

/// What refused the key: its PEM text, or ring's PKCS#8 reader.
#[derive(Debug, thiserror::Error)]
pub enum SignerSource {
    /// The key's PEM text is not a key rcgen reads.
    #[error("{0}")]
    Pem(#[from] rcgen::Error),
    /// The key is not an ECDSA P-256 key in PKCS#8 (ring's reason; ring's error type is not a
    /// `std::error::Error` without its `std` feature).
    #[error("{0}")]
    Key(ring::error::KeyRejected),
}

impl Signer {
    /// The signer of `identity`'s key. Fails when the key is not an ECDSA P-256 key.
    pub fn new(identity: &Identity) -> Result<Signer, SignerError> {
        let pair =
            rcgen::KeyPair::from_pem(identity.key_pem()).map_err(|e| SignerError(e.into()))?;
        let rng = ring::rand::SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &pair.serialize_der(),
            &rng,
        )
        .map_err(|e| SignerError(SignerSource::Key(e)))?;
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
