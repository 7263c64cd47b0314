//! What an input leaves behind: the messages to send, the notifications for the application, and
//! the audit rows not yet committed.
//!
//! **Invariant (one input, one commit):** a message sent while the input has audit rows not yet
//! committed may depend on them: it is *staged*, and becomes sendable only when the commit
//! carrying those rows succeeded (the input's next batch, or its end). If that commit fails, the
//! staged messages and rows are dropped: the peer asks again, and nothing was promised. A
//! message sent while nothing is uncommitted depends only on what is already durable, and is
//! sendable at once; so are heartbeats, which say what the device already is.

use std::collections::VecDeque;

use rms_domain::AuditEntry;

use super::{Notification, Transmit};

#[derive(Debug, Default)]
pub struct Outbox {
    /// Sendable: what the driver drains with `poll_transmit`.
    ready: VecDeque<Transmit>,
    /// Waiting for the input's commit.
    staged: Vec<Transmit>,
    /// Audit rows of the input, committed with its next batch (or alone at its end).
    audit: Vec<AuditEntry>,
    notifications: VecDeque<Notification>,
}

impl Outbox {
    /// A message that goes once everything the input wrote so far is committed: at once when
    /// nothing is waiting, else with the next commit.
    pub fn stage(&mut self, transmit: Transmit) {
        if self.audit.is_empty() {
            self.ready.push_back(transmit);
        } else {
            self.staged.push(transmit);
        }
    }

    /// A message that depends on nothing written (a heartbeat): sendable at once.
    pub fn send_now(&mut self, transmit: Transmit) {
        self.ready.push_back(transmit);
    }

    pub fn audit(&mut self, entries: impl IntoIterator<Item = AuditEntry>) {
        self.audit.extend(entries);
    }

    pub fn has_audit(&self) -> bool {
        !self.audit.is_empty()
    }

    /// The staged audit rows, to ride in the commit about to happen.
    pub fn take_audit(&mut self) -> Vec<AuditEntry> {
        std::mem::take(&mut self.audit)
    }

    /// The commit succeeded: everything staged may go.
    pub fn release(&mut self) {
        self.ready.extend(self.staged.drain(..));
    }

    /// The commit failed: what depended on it is dropped.
    pub fn discard(&mut self) {
        self.staged.clear();
        self.audit.clear();
    }

    pub fn notify(&mut self, notification: Notification) {
        self.notifications.push_back(notification);
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.ready.pop_front()
    }

    pub fn poll_notification(&mut self) -> Option<Notification> {
        self.notifications.pop_front()
    }
}
