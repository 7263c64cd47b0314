//! Local writes: a product created or edited, stock adjusted, a sale. Each is one transaction that
//! changes the state, appends a `SyncEvent` and appends an audit entry.
//!
//! **On crash:** the caller runs [`record`] inside [`crate::Store::write`]; before the commit
//! nothing of the write exists, after it all of it does. The sequence and clock in `node_state`
//! move in the same transaction, so an event id is never issued twice.

use rms_domain::resolver::{ConflictResolver, Decision};
use rms_domain::rules;
use rms_domain::{
    AuditEntry, DeviceId, EventId, EventPayload, EventStatus, Fingerprint, LogEntry, NewProduct,
    NewSale, Operation, Outcome, Product, ProductPatch, RejectReason, Role, Sale, SaleLine,
    StockAdjustment, SyncEvent, TrustState, rfc3339_from_ms,
};
use rusqlite::Transaction;
use serde_json::json;

use crate::products::Table;
use crate::{StorageError, audit, events, node_state, products, trust};

/// The user recorded when a write names none (catalogue edits from a back-office script).
pub const DEFAULT_USER: &str = "system";

/// A local write, already validated by the caller or not: [`record`] validates again.
#[derive(Debug, Clone)]
pub enum Command {
    CreateProduct(NewProduct),
    UpdateProduct {
        sku: String,
        patch: ProductPatch,
    },
    AdjustStock {
        sku: String,
        adjustment: StockAdjustment,
    },
    Sell(NewSale),
    /// Trust or revoke a device certificate (the store's trust list, `crate::trust`).
    Trust {
        fingerprint: Fingerprint,
        device_id: DeviceId,
        name: String,
        state: TrustState,
        /// `store_key`, `approved`, `self`, or `revoked`.
        how: String,
    },
}

/// What a committed local write produced.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub event: SyncEvent,
    /// On the master: the event's master-log entry (decided in the same transaction).
    pub entry: Option<LogEntry>,
    /// The products the write changed, as they are now.
    pub products: Vec<rms_domain::Product>,
    /// The sale, for [`Command::Sell`].
    pub sale: Option<Sale>,
}

/// Records a local write. On the master the event is decided at once by the ConflictResolver
/// (`synced` with the next `master_seq`, or refused); on a client it is `pending` until the
/// master's verdict.
///
/// Refusals (`Refused`, `Invalid`) come back as errors, so [`crate::Store::write`] rolls back and
/// nothing is written.
pub fn record(
    tx: &Transaction<'_>,
    role: Role,
    now_ms: u64,
    command: Command,
) -> Result<Recorded, StorageError> {
    validate(&command)?;
    let mut state = node_state::load(tx)?;
    let epoch = match role {
        Role::Master => Some(
            state
                .epoch
                .filter(|e| e.master_id == state.device_id)
                .ok_or(StorageError::NotMaster)?,
        ),
        Role::Client => None,
    };
    let event_id = EventId {
        device_id: state.device_id,
        seq: state.last_seq + 1,
    };
    let at = rfc3339_from_ms(now_ms);
    let (payload, user_id) = payload_for(tx, event_id, command)?;

    let mut event = SyncEvent {
        event_id,
        hlc: state.hlc.tick(now_ms),
        user_id,
        term: state.term(),
        critical: false,
        payload,
        status: EventStatus::Pending,
        reason: None,
        master_seq: None,
        created_at_ms: now_ms,
        accepted_before: false,
    };
    let skus: Vec<String> = event
        .payload
        .skus()
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let skus: Vec<&str> = skus.iter().map(String::as_str).collect();
    let (entry, changed) = match epoch {
        Some(epoch) => {
            let entry = decide(tx, epoch, state.log_head, event, &skus)?;
            event = entry.event.clone();
            let changed = entry.products.clone();
            (Some(entry), changed)
        }
        // A client decides on what its tills see; the master's verdict comes later.
        None => {
            if let Some(change) = event.payload.trust_change(event_id.device_id, now_ms) {
                trust::load(tx)?
                    .check(&change)
                    .map_err(|reason| refusal(reason, &event.payload))?;
            }
            let mut visible = products::load_many(tx, Table::Visible, &skus)?;
            let applied = rules::apply(&event.payload, &mut visible, &at)
                .map_err(|reason| refusal(reason, &event.payload))?;
            event.critical = applied.critical;
            let changed: Vec<Product> = applied
                .changed
                .iter()
                .filter_map(|sku| visible.get(sku).cloned())
                .collect();
            for product in &changed {
                products::put(tx, Table::Visible, product)?;
            }
            (None, changed)
        }
    };
    let verdict = entry
        .as_ref()
        .map(|e| (&e.epoch, e.products.as_slice(), e.forced));
    events::insert(tx, &event, verdict)?;
    let sale = Sale::of_event(&event);
    audit::append(tx, &audit_entry(&event, &at))?;

    state.last_seq = event_id.seq;
    state.hlc = event.hlc;
    state.log_head = event.master_seq.unwrap_or(state.log_head);
    node_state::save(tx, &state)?;

    Ok(Recorded {
        event,
        entry,
        products: changed,
        sale,
    })
}

/// The master decides its own write on its copy of the master state, through the same resolver
/// as the events that devices push: a refusal writes nothing.
fn decide(
    tx: &Transaction<'_>,
    epoch: rms_domain::Epoch,
    log_head: u64,
    event: SyncEvent,
    skus: &[&str],
) -> Result<LogEntry, StorageError> {
    let base = products::load_many(tx, Table::Base, skus)?;
    let mut resolver = ConflictResolver::new(epoch, log_head, base);
    if matches!(event.payload, EventPayload::DeviceTrust { .. }) {
        resolver = resolver.with_trust(trust::load(tx)?);
    }
    let (entry, decision) = resolver.resolve(event);
    if let Decision::Rejected(reason) = decision {
        return Err(refusal(reason, &entry.event.payload));
    }
    for product in &entry.products {
        products::put(tx, Table::Visible, product)?;
        products::put(tx, Table::Base, product)?;
    }
    Ok(entry)
}

fn validate(command: &Command) -> Result<(), StorageError> {
    match command {
        Command::CreateProduct(new) => new.validate()?,
        Command::UpdateProduct { sku, patch } => {
            rms_domain::validate_sku(sku)?;
            patch.validate()?;
        }
        Command::AdjustStock { sku, adjustment } => {
            rms_domain::validate_sku(sku)?;
            adjustment.validate()?;
        }
        Command::Sell(sale) => sale.validate()?,
        Command::Trust { name, how, .. } => {
            rms_domain::validate_text("name", name, rms_domain::NAME_CHARS_MAX)?;
            rms_domain::validate_text("how", how, 32)?;
        }
    }
    Ok(())
}

/// Turns a command into the event payload it records, reading what it must from the database
/// (the product version an edit is based on; the prices a sale is made at).
fn payload_for(
    tx: &Transaction<'_>,
    event_id: EventId,
    command: Command,
) -> Result<(EventPayload, String), StorageError> {
    let user = |u: Option<String>| u.unwrap_or_else(|| DEFAULT_USER.to_owned());
    Ok(match command {
        Command::CreateProduct(new) => (
            EventPayload::ProductCreated {
                sku: new.sku,
                name: new.name,
                price_cents: new.price_cents,
                stock: new.stock,
            },
            user(new.user_id),
        ),
        Command::UpdateProduct { sku, patch } => {
            let current = products::get(tx, &sku)?.ok_or_else(|| unknown_product(&sku))?;
            let payload = EventPayload::ProductUpdated {
                sku,
                name: patch.name,
                price_cents: patch.price_cents,
                base_version: patch.version.unwrap_or(current.version),
            };
            (payload, user(patch.user_id))
        }
        Command::AdjustStock { sku, adjustment } => (
            EventPayload::StockAdjusted {
                sku,
                delta: adjustment.delta,
                reason: adjustment.reason,
            },
            user(adjustment.user_id),
        ),
        Command::Sell(new) => {
            let mut lines = Vec::with_capacity(new.lines.len());
            for line in new.lines {
                let product =
                    products::get(tx, &line.sku)?.ok_or_else(|| unknown_product(&line.sku))?;
                lines.push(SaleLine {
                    sku: line.sku,
                    qty: line.qty,
                    price_cents: product.price_cents,
                });
            }
            (
                EventPayload::SaleRecorded {
                    sale_id: event_id.to_string(),
                    lines,
                },
                new.user_id,
            )
        }
        Command::Trust {
            fingerprint,
            device_id,
            name,
            state,
            how,
        } => (
            EventPayload::DeviceTrust {
                fingerprint,
                device_id,
                name,
                trust: state,
                how,
            },
            user(None),
        ),
    })
}

fn audit_entry(event: &SyncEvent, at: &str) -> AuditEntry {
    let operation = match event.payload {
        EventPayload::ProductCreated { .. } => Operation::ProductCreate,
        EventPayload::ProductUpdated { .. } => Operation::ProductUpdate,
        EventPayload::StockAdjusted { .. } => Operation::StockAdjust,
        EventPayload::SaleRecorded { .. } => Operation::Sale,
        EventPayload::DeviceTrust { .. } => Operation::Trust,
    };
    AuditEntry {
        id: 0,
        at: at.to_owned(),
        operation,
        device_id: Some(event.origin()),
        user_id: Some(event.user_id.clone()),
        event_id: Some(event.event_id),
        outcome: Outcome::Ok,
        details: json!({
            "kind": event.payload.kind(),
            "entity": event.payload.entity_key(),
            "status": event.status.as_str(),
            "master_seq": event.master_seq,
            "critical": event.critical,
        }),
    }
}

fn unknown_product(sku: &str) -> StorageError {
    StorageError::refused(
        RejectReason::UnknownProduct,
        format!("no product with sku {sku:?}"),
    )
}

fn refusal(reason: RejectReason, payload: &EventPayload) -> StorageError {
    let message = match payload {
        EventPayload::DeviceTrust { fingerprint, .. } => {
            format!("{} (device {fingerprint})", reason.describe())
        }
        _ => format!("{} (sku {})", reason.describe(), payload.skus().join(", ")),
    };
    StorageError::refused(reason, message)
}

/// Records that this node started: its roster row and the audit entry. Its role and epoch are
/// the sync core's to decide.
pub fn record_startup(
    tx: &Transaction<'_>,
    me: &rms_domain::Device,
    now_ms: u64,
) -> Result<node_state::NodeState, StorageError> {
    let state = node_state::load(tx)?;
    crate::devices::put(tx, me)?;
    audit::append(
        tx,
        &AuditEntry {
            id: 0,
            at: rfc3339_from_ms(now_ms),
            operation: Operation::Startup,
            device_id: Some(me.device_id),
            user_id: None,
            event_id: None,
            outcome: Outcome::Ok,
            details: json!({
                "term": state.term().0,
                "log_head": state.log_head,
                "name": me.name,
                "advertise": me.advertise,
                "version": env!("CARGO_PKG_VERSION"),
            }),
        },
    )?;
    Ok(state)
}

/// Appends a plain audit entry (shutdown, errors the driver saw) in its own write.
pub fn record_audit(tx: &Transaction<'_>, entry: &AuditEntry) -> Result<i64, StorageError> {
    audit::append(tx, entry)
}
