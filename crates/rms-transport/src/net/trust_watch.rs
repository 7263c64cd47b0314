//! Revocation reaching the links: the driver reloads the trust list when it changed and closes
//! every link of a certificate no longer trusted. Above both the trust list and the links.

use crate::net::link::Links;
use crate::net::trust::TrustBook;

/// Keeps a [`TrustBook`] in step with the database: the driver asks after every input that may
/// have changed the list (the log moved, or a local trust change).
#[derive(Debug, Default)]
pub(crate) struct TrustWatch {
    stamp: rms_storage::trust::Stamp,
}

impl TrustWatch {
    /// Reloads the list if it changed; closes the links of every certificate no longer trusted.
    pub(crate) fn refresh(
        &mut self,
        store: &rms_storage::Store,
        book: &TrustBook,
        links: &Links,
    ) -> Result<(), rms_storage::StorageError> {
        let stamp = store.read(rms_storage::trust::stamp)?;
        if stamp == self.stamp {
            return Ok(());
        }
        let list = store.read(rms_storage::trust::load)?;
        self.stamp = stamp;
        let revoked = list
            .entries()
            .filter(|e| e.state == rms_domain::TrustState::Revoked)
            .map(|e| e.fingerprint)
            .collect();
        let dropped = book.replace(list);
        // Revoked certificates' links (also those admitted by a proof, never in the list as
        // trusted), then those of certificates no longer trusted for another reason (a
        // truncation undid their trust).
        let closed = links.revoke(revoked) + links.close_certificates(&dropped);
        if closed > 0 {
            log::warn!("closed {closed} link(s) of certificates no longer trusted");
        }
        Ok(())
    }
}
