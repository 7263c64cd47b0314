//! The links between devices, and who may hold one.
//!
//! From the bottom up (each module imports only those above it in this list, and the leaves
//! `input` and `clock`; nothing here imports `api`, `tasks`, `driver` or `node`):
//! - [`wire`]: what a link is made of (the peer at its other end, the WebSocket settings);
//! - [`trust`]: the store's trust list as the TLS verifiers and the links check it;
//! - [`dial`]: TLS to another device's store port, pinned by the trust list, then HTTP;
//! - [`link`]: the open links (WebSocket, either direction) and the session on each;
//! - [`rest_link`]: the same session over `POST /api/v1/sync/exchange`;
//! - [`trust_watch`]: a changed trust list closes the links of certificates no longer trusted;
//! - [`connector`]: keeps one link to each known device, dialling again with backoff;
//! - [`join`]: a new device joins its store with a pairing code.

pub mod connector;
pub mod dial;
pub mod join;
pub mod link;
pub mod rest_link;
pub mod trust;
pub mod trust_watch;
pub mod wire;
