//! Signed journal heads (issue #17, `docs/JOURNAL.md`): the head of each chain that moved,
//! signed by this device's key, so that a chain rebuilt from a changed row on (the hash is
//! public) no longer matches what the device signed. The signing is the caller's (the key lives
//! with the device's identity, `rms_transport::identity`); this module stores and checks.
//!
//! **Dependencies:** it reads the chains (`crate::journal::chain`) and checks certificates
//! against the trust list (`crate::trust`); the journal's check and export, the master's check
//! of a push (`crate::chain_check`) and the log chain (`crate::log_chain`) call it from above.

use rms_domain::{DeviceId, Fingerprint};
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::StorageError;
use crate::journal::chain::{Chain, Hash, head, hex, unhex};

/// What signs: the device's certificate key (ECDSA P-256, SHA-256, fixed-length `r ‖ s`).
pub trait HeadSigner {
    /// The raw public key: the uncompressed point, 65 bytes.
    fn public_key(&self) -> &[u8];
    /// The device certificate (DER) that holds the key.
    fn certificate(&self) -> &[u8];
    /// The signature of `message` with the key: 64 bytes, `r ‖ s`. An error means the key could
    /// not sign; nothing is stored for it, and the caller's write fails with it.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, StorageError>;
}

/// The signed statement of a head (what is signed, byte for byte).
#[derive(serde::Serialize, serde::Deserialize)]
struct Statement {
    journal_head: HeadStatement,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct HeadStatement {
    device_id: DeviceId,
    chain: String,
    seq: u64,
    hash: String,
    at_ms: u64,
}

/// Signs the head of every chain that moved since its last signed head (in the transaction
/// `conn` is in). Returns how many heads it signed.
pub fn sign(
    conn: &Connection,
    device_id: DeviceId,
    signer: &dyn HeadSigner,
    at_ms: u64,
) -> Result<usize, StorageError> {
    let mut heads = 0;
    for chain in Chain::ALL {
        let (seq, hash) = head(conn, chain)?;
        let last: Option<i64> = conn
            .prepare_cached("SELECT max(seq) FROM journal_heads WHERE chain = ?1")?
            .query_row([chain.as_str()], |r| r.get(0))
            .optional()?
            .flatten();
        if seq == 0 || last.and_then(|l| u64::try_from(l).ok()) >= Some(seq) {
            continue;
        }
        let signed = sign_text(signer, statement(device_id, chain, seq, &hash, at_ms)?)?;
        conn.prepare_cached(
            "INSERT INTO journal_heads (chain, seq, statement, key, certificate, signature)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            chain.as_str(),
            i64::try_from(seq).unwrap_or(i64::MAX),
            signed.statement,
            signed.key,
            signed.certificate,
            signed.signature,
        ])?;
        heads += 1;
    }
    Ok(heads)
}

/// Why a signed head does not verify: `(chain, seq, why)`.
pub type HeadBreak = (Chain, u64, String);

/// Checks every signed head: its statement names this device, a chain and position whose hash
/// it repeats (`hash_at`), its signature verifies with its key, and its certificate is one the
/// store's trust list binds to this device. Returns the heads checked, or the first that fails.
pub fn verify(
    conn: &Connection,
    device_id: DeviceId,
    hash_at: &mut dyn FnMut(Chain, u64) -> Result<Option<Hash>, StorageError>,
) -> Result<Result<usize, HeadBreak>, StorageError> {
    let trust = crate::trust::load(conn)?;
    let mut stmt = conn.prepare_cached(
        "SELECT chain, seq, statement, key, certificate, signature FROM journal_heads
         ORDER BY chain, seq",
    )?;
    let rows: Vec<(String, i64, String, String, String, String)> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let mut checked = 0;
    for (chain, seq, statement, key, certificate, signature) in rows {
        let chain = if chain == "audit" {
            Chain::Audit
        } else {
            Chain::Events
        };
        let seq = u64::try_from(seq).unwrap_or(0);
        let fail = |why: &str| Ok(Err((chain, seq, why.to_owned())));
        let Some((said_device, said_chain, said_seq, said_hash)) = parse_statement(&statement)
        else {
            return fail("its signed statement is not a journal head");
        };
        if said_device != device_id || said_chain != chain.as_str() || said_seq != seq {
            return fail("its signed statement names another device, chain or position");
        }
        if hash_at(chain, seq)?.map(|h| h.to_hex()) != Some(said_hash) {
            return fail(
                "the chain no longer has the hash the device signed there: it was rewritten",
            );
        }
        // A head the device signed while its key was trusted stays its own after the key is
        // revoked (issue #27): the list keeps a revoked certificate with the id it was bound to.
        if let Err(why) = verify_signature(&statement, &key, &certificate, &signature)
            .and_then(|fingerprint| check_was_bound(&fingerprint, device_id, &trust))
        {
            return fail(why);
        }
        checked += 1;
    }
    Ok(Ok(checked))
}

/// Checks a signed statement: `signature` (hex) verifies over `statement` with `key` (hex, the
/// raw P-256 point), the key is in `certificate`'s bytes (hex, DER), and the certificate is one
/// `trust` binds to `device_id`. The first failure, in words.
pub(crate) fn check_signature(
    statement: &str,
    key: &str,
    certificate: &str,
    signature: &str,
    device_id: DeviceId,
    trust: &rms_domain::TrustList,
) -> Result<(), &'static str> {
    let fingerprint = verify_signature(statement, key, certificate, signature)?;
    check_bound(&fingerprint, device_id, trust)
}

/// The part of [`check_signature`] that needs no trust list: the signature verifies with the
/// key, and the key is the certificate's. The certificate's fingerprint.
pub(crate) fn verify_signature(
    statement: &str,
    key: &str,
    certificate: &str,
    signature: &str,
) -> Result<Fingerprint, &'static str> {
    let (Some(key), Some(signature), Some(certificate)) =
        (unhex(key), unhex(signature), unhex(certificate))
    else {
        return Err("its key, signature or certificate is not hex");
    };
    let public =
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &key);
    if public.verify(statement.as_bytes(), &signature).is_err() {
        return Err("its signature does not verify");
    }
    // The key is the certificate's (its public key is in the certificate's bytes).
    if key.len() != 65 || !certificate.windows(key.len()).any(|w| w == key.as_slice()) {
        return Err("its key is not the key of the certificate it names");
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &certificate);
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(digest.as_ref());
    Ok(Fingerprint::from_sha256(sha256))
}

/// The certificate of `fingerprint` is one `trust` binds to `device_id`.
pub(crate) fn check_bound(
    fingerprint: &Fingerprint,
    device_id: DeviceId,
    trust: &rms_domain::TrustList,
) -> Result<(), &'static str> {
    let bound = trust.get(fingerprint).is_some_and(|entry| {
        entry.device_id == device_id && entry.state == rms_domain::TrustState::Trusted
    });
    if !bound {
        return Err("it is signed by a key the trust list does not trust for this device");
    }
    Ok(())
}

/// The certificate of `fingerprint` is, or was until it was revoked, the one `trust` binds to
/// `device_id`: what a device's own journal heads are checked against (a push, which must come
/// from a trusted key, is checked with [`check_bound`]).
fn check_was_bound(
    fingerprint: &Fingerprint,
    device_id: DeviceId,
    trust: &rms_domain::TrustList,
) -> Result<(), &'static str> {
    if trust
        .get(fingerprint)
        .is_some_and(|entry| entry.device_id == device_id)
    {
        return Ok(());
    }
    Err("it is signed by a key the trust list never bound to this device")
}

/// The text a device signs for the head of `chain` at `seq` (what [`sign`] stores, and what a
/// push carries for its last event, `rms_domain::PushHead`).
pub fn statement(
    device_id: DeviceId,
    chain: Chain,
    seq: u64,
    hash: &Hash,
    at_ms: u64,
) -> Result<String, StorageError> {
    let statement = Statement {
        journal_head: HeadStatement {
            device_id,
            chain: chain.as_str().into(),
            seq,
            hash: hash.to_hex(),
            at_ms,
        },
    };
    serde_json::to_string(&statement).map_err(|e| StorageError::corrupt("journal_heads", e))
}

/// What a signed statement says: `(device_id, chain, seq, hash)`; `None` if it is not a journal
/// head.
pub(crate) fn parse_statement(text: &str) -> Option<(DeviceId, String, u64, String)> {
    let said = serde_json::from_str::<Statement>(text).ok()?.journal_head;
    Some((said.device_id, said.chain, said.seq, said.hash))
}

/// The head a push carries (`rms_domain::PushHead`): this device's signature over the hash its
/// journal holds at `seq` of the `events` chain — the journal's, not one recomputed from the
/// event row, so a row changed behind the node's back no longer matches what is signed. `None`
/// when the journal has no such entry.
pub fn push_head(
    conn: &Connection,
    device_id: DeviceId,
    signer: &dyn HeadSigner,
    seq: u64,
    at_ms: u64,
) -> Result<Option<rms_domain::PushHead>, StorageError> {
    let hash: Option<String> = conn
        .prepare_cached("SELECT hash FROM journal WHERE chain = 'events' AND seq = ?1")?
        .query_row([i64::try_from(seq).unwrap_or(i64::MAX)], |r| r.get(0))
        .optional()?;
    let Some(hash) = hash.as_deref().and_then(Hash::from_hex) else {
        return Ok(None);
    };
    signed_head(device_id, signer, seq, &hash, at_ms).map(Some)
}

/// The head a push carries for the event at `seq` of the `events` chain whose hash is `hash`.
pub fn signed_head(
    device_id: DeviceId,
    signer: &dyn HeadSigner,
    seq: u64,
    hash: &Hash,
    at_ms: u64,
) -> Result<rms_domain::PushHead, StorageError> {
    sign_text(
        signer,
        statement(device_id, Chain::Events, seq, hash, at_ms)?,
    )
}

/// `text` signed by `signer`, with its key and certificate (the shape of a push head).
pub fn sign_text(
    signer: &dyn HeadSigner,
    text: String,
) -> Result<rms_domain::PushHead, StorageError> {
    let signature = signer.sign(text.as_bytes())?;
    Ok(rms_domain::PushHead {
        statement: text,
        key: hex(signer.public_key()),
        certificate: hex(signer.certificate()),
        signature: hex(&signature),
    })
}

/// What a master signs for the head of its log chain (`crate::log_chain`):
/// `{"log_head":{"device_id","seq","epoch","hash","at_ms"}}`, `epoch` being the one that decided
/// the entry at `seq` (so that a device whose copy went another way there, before a truncation,
/// tells that from a changed copy).
/// Read leniently (fields added later are ignored: the signature covers the text as it is).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogHeadStatement {
    /// The master that signs its log's head.
    pub device_id: DeviceId,
    /// The head's position in the master log (its `master_seq`).
    pub seq: u64,
    /// The epoch that decided the entry at `seq`.
    pub epoch: rms_domain::Epoch,
    /// The log chain's hash at `seq`, as 64 lowercase hex digits.
    pub hash: String,
    /// When the master signed it, by its wall clock (ms since the Unix epoch).
    pub at_ms: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct LogStatement {
    log_head: LogHeadStatement,
}

/// The text of `head`, as the master signs it.
pub fn log_statement(head: LogHeadStatement) -> Result<String, StorageError> {
    serde_json::to_string(&LogStatement { log_head: head })
        .map_err(|e| StorageError::corrupt("journal_heads", e))
}

/// What a signed log head says; `None` if `text` is not one.
pub fn parse_log_statement(text: &str) -> Option<LogHeadStatement> {
    serde_json::from_str::<LogStatement>(text)
        .ok()
        .map(|s| s.log_head)
}

/// A signed head as stored (and exported): the chain and position, and the signed statement
/// with its key and certificate (the shape a push head has).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SignedHead {
    /// The chain whose head was signed.
    pub chain: Chain,
    /// The position signed: the chain's last entry when it was signed.
    pub seq: u64,
    /// The statement (device, chain, position, hash, time) with the key, certificate and
    /// signature, all as stored (the key, certificate and signature in hex).
    #[serde(flatten)]
    pub signed: rms_domain::PushHead,
}

/// The signed heads of `chain` at positions `from..=to`, in order.
pub fn between(
    conn: &Connection,
    chain: Chain,
    from: u64,
    to: u64,
) -> Result<Vec<SignedHead>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, statement, key, certificate, signature FROM journal_heads
         WHERE chain = ?1 AND seq BETWEEN ?2 AND ?3 ORDER BY seq",
    )?;
    let bound = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![chain.as_str(), bound(from), bound(to)], |r| {
        Ok(SignedHead {
            chain,
            seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
            signed: rms_domain::PushHead {
                statement: r.get(1)?,
                key: r.get(2)?,
                certificate: r.get(3)?,
                signature: r.get(4)?,
            },
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
