//! What rms-storage's integration tests share: device ids, the commands of a till, and a store
//! that formed a store of its own, a device key.

#![allow(dead_code, clippy::unwrap_used)]

use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use rms_domain::{DeviceId, Epoch, Fingerprint, NewProduct, NewSale, NewSaleLine, Term};
use rms_storage::journal_heads::HeadSigner;
use rms_storage::local::Command;
use rms_storage::{StorageError, Store, node_state};

pub fn device(id: u16) -> DeviceId {
    DeviceId::new(id).unwrap()
}

/// A product `sku` at 250 cents with `stock`.
pub fn create(sku: &str, stock: i64) -> Command {
    Command::CreateProduct(NewProduct {
        sku: sku.into(),
        name: format!("Product {sku}"),
        price_cents: 250,
        stock,
        user_id: None,
    })
}

/// A sale of `qty` × `sku` by ann.
pub fn sell(sku: &str, qty: i64) -> Command {
    Command::Sell(NewSale {
        user_id: "ann".into(),
        lines: vec![NewSaleLine {
            sku: sku.into(),
            qty,
        }],
    })
}

/// A store whose device has formed a store of its own (term 1, itself master), as the sync core
/// would have persisted it.
pub fn master(store: Store) -> Store {
    store
        .write(|tx| {
            let mut state = node_state::load(tx)?;
            state.epoch = Some(Epoch {
                term: Term(1),
                master_id: state.device_id,
                master_priority: 0,
            });
            node_state::save(tx, &state)
        })
        .unwrap();
    store
}

/// A device key, with a stand-in certificate: bytes that hold the public key, as a DER
/// certificate does (the check looks for the key in it and trusts its SHA-256).
pub struct Key {
    pair: EcdsaKeyPair,
    certificate: Vec<u8>,
}

impl Key {
    pub fn new() -> Key {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let mut certificate = b"certificate of ".to_vec();
        certificate.extend_from_slice(pair.public_key().as_ref());
        Key { pair, certificate }
    }

    pub fn fingerprint(&self) -> Fingerprint {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.certificate);
        Fingerprint::from_sha256(digest.as_ref().try_into().unwrap())
    }
}

impl HeadSigner for Key {
    fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }
    fn certificate(&self) -> &[u8] {
        &self.certificate
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, StorageError> {
        let rng = ring::rand::SystemRandom::new();
        Ok(self.pair.sign(&rng, message).unwrap().as_ref().to_vec())
    }
}
