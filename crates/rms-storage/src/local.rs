//! Local writes: a product created or edited, stock adjusted, a sale. Each is one transaction that
//! changes the state, appends a `SyncEvent` and appends an audit entry.
//!
//! **On crash:** the caller runs [`record`] inside [`crate::Store::write`]; before the commit
//! nothing of the write exists, after it all of it does. The sequence and clock in `node_state`
//! move in the same transaction, so an event id is never issued twice.

use rms_domain::hq::CatalogChange;
use rms_domain::resolver::{ConflictResolver, Decision};
use rms_domain::rules;
use rms_domain::{
    AuditEntry, DeviceId, EventId, EventPayload, EventStatus, Fingerprint, LogEntry, NewProduct,
    NewSale, NewSaleLine, Operation, Outcome, Product, ProductPatch, RejectReason, Role, Sale,
    SaleLine, StockAdjustment, SyncEvent, TrustState, rfc3339_from_ms,
};
use rusqlite::Transaction;
use serde_json::json;

use crate::error::StorageError;
use crate::journal::chain;
use crate::products::Table;
use crate::{audit, closing, devices, events, node_state, products, trust};

/// The user recorded when a write names none (catalogue edits from a back-office script).
pub const DEFAULT_USER: &str = "system";

/// A local write, already validated by the caller or not: [`record`] validates again.
#[derive(Debug, Clone)]
pub enum Command {
    /// Create a product; refused (`already_exists`) when its SKU is taken.
    CreateProduct(NewProduct),
    /// Change a product's name or price, based on the version `patch` names (or the current
    /// one); refused (`unknown_product`) for a SKU this device does not know.
    UpdateProduct {
        /// The product to change.
        sku: String,
        /// What changes, and the version the change is based on.
        patch: ProductPatch,
    },
    /// Add to or take from a product's stock (a delivery, a count, breakage).
    AdjustStock {
        /// The product whose stock moves.
        sku: String,
        /// By how much (units, signed), why, and who.
        adjustment: StockAdjustment,
    },
    /// Sell: one sale of its lines at the prices tills see now, its id the event's id;
    /// refused (`unknown_product`) for a SKU this device does not know.
    Sell(NewSale),
    /// Head office's change of a product's name and price (issue #15), on the master only:
    /// logged as event `(head office, version)`, so it is logged once whatever retries.
    HeadOffice(CatalogChange),
    /// Trust or revoke a device certificate (the store's trust list, `crate::trust`).
    Trust {
        /// The SHA-256 fingerprint of the certificate trusted or revoked.
        fingerprint: Fingerprint,
        /// The device id the certificate is bound to.
        device_id: DeviceId,
        /// The device's name, as the owner sees it in the list (at most
        /// `rms_domain::NAME_CHARS_MAX` characters).
        name: String,
        /// Trusted or revoked.
        state: TrustState,
        /// `store_key`, `approved`, `self`, or `revoked` (at most 32 characters).
        how: String,
    },
    /// Close a UTC day (`YYYY-MM-DD`) of this device's sales (issue #17, `crate::closing`).
    CloseDay {
        /// The UTC day closed, `YYYY-MM-DD`; refused (`already_exists`) when closed already.
        day: String,
    },
}

/// The user recorded for a daily closing (the node makes it, not a cashier).
pub const CLOSING_USER: &str = "closing";

/// What a committed local write produced.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The event the write made, as stored: `pending` on a client, decided on the master.
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
    if let Command::HeadOffice(change) = command {
        return record_head_office(tx, now_ms, change);
    }
    let mut state = node_state::load(tx)?;
    let epoch = match role {
        Role::Master => Some(own_epoch(&state)?),
        Role::Client => None,
    };
    let event_id = EventId {
        device_id: state.device_id,
        seq: state.last_seq + 1,
    };
    let at = rfc3339_from_ms(now_ms);
    let (payload, user_id) = payload_for(tx, event_id, command)?;
    let mut event = own_event(tx, &state, now_ms, payload, user_id)?;
    let skus: Vec<String> = event
        .payload
        .skus()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let skus: Vec<&str> = skus.iter().map(String::as_str).collect();
    let (entry, changed) = match epoch {
        Some(epoch) => {
            let entry = decide(tx, epoch, state.log_head, event, &skus)?;
            event = entry.event.clone();
            let changed = entry.products.clone();
            (Some(entry), changed)
        }
        None => (None, apply_on_client(tx, &mut event, &skus, &at)?),
    };
    let verdict = entry
        .as_ref()
        .map(|e| (&e.epoch, e.products.as_slice(), e.forced));
    events::insert(tx, &event, verdict)?;
    chain::append_event(tx, &event)?;
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

/// This device's next event, `pending` until decided: the next number, the clock ticked to
/// `now_ms`, the newest term known, and its place in this device's journal (which it carries
/// through sync, and into the log).
fn own_event(
    tx: &Transaction<'_>,
    state: &node_state::NodeState,
    now_ms: u64,
    payload: EventPayload,
    user_id: String,
) -> Result<SyncEvent, StorageError> {
    let seq = state.last_seq + 1;
    Ok(SyncEvent {
        event_id: EventId {
            device_id: state.device_id,
            seq,
        },
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
        chain: Some(chain::next_event_link(tx, seq)?),
    })
}

/// The epoch this device is master of, for a write only the master makes: its newest epoch, if
/// that names it master ([`StorageError::NotMaster`] if not).
fn own_epoch(state: &node_state::NodeState) -> Result<rms_domain::Epoch, StorageError> {
    state
        .epoch
        .filter(|e| e.master_id == state.device_id)
        .ok_or(StorageError::NotMaster)
}

/// A client decides on what its tills see (the master's verdict comes later): the rules applied
/// to the visible products of `skus` (and, for a trust change, to the trust list as this device
/// knows it), marking `event` critical if they say so. The products it changed, as stored.
fn apply_on_client(
    tx: &Transaction<'_>,
    event: &mut SyncEvent,
    skus: &[&str],
    at: &str,
) -> Result<Vec<Product>, StorageError> {
    let origin = event.event_id.device_id;
    if let Some(change) = event.payload.trust_change(origin, event.created_at_ms) {
        trust::load(tx)?
            .check(&change)
            .map_err(|reason| refusal(reason, &event.payload))?;
    }
    let mut visible = products::load_many(tx, Table::Visible, skus)?;
    let applied = rules::apply(&event.payload, &mut visible, at)
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
    Ok(changed)
}

/// The user recorded for head office's catalogue changes.
pub const HEAD_OFFICE_USER: &str = "head-office";

/// Logs head office's catalogue change as the master's decision, like the master's own write but
/// from the reserved origin: `seq` is the catalogue version, so a change logged once is refused
/// (`already_exists`) if it comes again. The product's name and price before it are audited
/// (`overwritten`) when they differ: head office won over the store's value.
fn record_head_office(
    tx: &Transaction<'_>,
    now_ms: u64,
    change: CatalogChange,
) -> Result<Recorded, StorageError> {
    let mut state = node_state::load(tx)?;
    let epoch = own_epoch(&state)?;
    let event_id = EventId {
        device_id: DeviceId::HEAD_OFFICE,
        seq: change.version,
    };
    if events::get(tx, &event_id)?.is_some() {
        let message = format!("catalogue version {} is already logged", change.version);
        return Err(StorageError::refused(RejectReason::AlreadyExists, message));
    }
    let before = products::get_in(tx, Table::Base, &change.sku)?;
    let event = SyncEvent {
        event_id,
        hlc: state.hlc.tick(now_ms),
        user_id: HEAD_OFFICE_USER.to_owned(),
        term: state.term(),
        critical: false,
        payload: EventPayload::CatalogSet {
            sku: change.sku.clone(),
            name: change.name.clone(),
            price_cents: change.price_cents,
        },
        status: EventStatus::Pending,
        reason: None,
        master_seq: None,
        created_at_ms: now_ms,
        accepted_before: false,
        chain: None,
    };
    let entry = decide(tx, epoch, state.log_head, event, &[change.sku.as_str()])?;
    let event = entry.event.clone();
    events::insert(
        tx,
        &event,
        Some((&entry.epoch, &entry.products, entry.forced)),
    )?;
    let at = rfc3339_from_ms(now_ms);
    let mut audit = audit_entry(&event, &at);
    audit.details["catalog_version"] = json!(change.version);
    if let Some(before) =
        before.filter(|b| b.name != change.name || b.price_cents != change.price_cents)
    {
        audit.details["overwritten"] = json!({
            "name": before.name,
            "price_cents": before.price_cents,
            "version": before.version,
        });
    }
    audit::append(tx, &audit)?;
    state.hlc = event.hlc;
    state.log_head = event.master_seq.unwrap_or(state.log_head);
    node_state::save(tx, &state)?;
    Ok(Recorded {
        event,
        products: entry.products.clone(),
        entry: Some(entry),
        sale: None,
    })
}

/// The last head-office catalogue version in this device's copy of the master log (0: none).
pub fn catalog_version(conn: &rusqlite::Connection) -> Result<u64, StorageError> {
    events::last_seq_logged(conn, DeviceId::HEAD_OFFICE)
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
        Command::HeadOffice(change) => {
            let entry = rms_domain::hq::CatalogEntry {
                name: change.name.clone(),
                price_cents: change.price_cents,
            };
            entry.validate(&change.sku)?;
            if change.version == 0 || i64::try_from(change.version).is_err() {
                return Err(rms_domain::ValidationError::new("version", "is out of range").into());
            }
        }
        Command::Trust { name, how, .. } => {
            rms_domain::validate_text("name", name, rms_domain::NAME_CHARS_MAX)?;
            rms_domain::validate_text("how", how, 32)?;
        }
        Command::CloseDay { day } => {
            if rms_domain::day_start_ms(day).is_none() {
                let why = "must be a date, YYYY-MM-DD";
                return Err(rms_domain::ValidationError::new("day", why).into());
            }
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
        Command::CloseDay { day } => (
            closing_payload(tx, event_id.device_id, day)?,
            CLOSING_USER.to_owned(),
        ),
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
        Command::Sell(NewSale { user_id, lines }) => (sale_payload(tx, event_id, lines)?, user_id),
        Command::HeadOffice(_) => unreachable_head_office()?,
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

/// The closing of `day` by `device`: its count and total of sales, refused (`already_exists`)
/// when the day is closed already.
fn closing_payload(
    tx: &Transaction<'_>,
    device: DeviceId,
    day: String,
) -> Result<EventPayload, StorageError> {
    if closing::closed(tx, device, &day)? {
        let message = format!("day {day} is closed already");
        return Err(StorageError::refused(RejectReason::AlreadyExists, message));
    }
    let (sales, total_cents) = closing::totals(tx, device, &day)?;
    Ok(EventPayload::DayClosed {
        day,
        sales,
        total_cents,
    })
}

/// The sale of `new_lines` as event `event_id` records it: each line at the price tills see now,
/// refused (`unknown_product`) for a SKU this device does not know.
fn sale_payload(
    tx: &Transaction<'_>,
    event_id: EventId,
    new_lines: Vec<NewSaleLine>,
) -> Result<EventPayload, StorageError> {
    let mut lines = Vec::with_capacity(new_lines.len());
    for line in new_lines {
        let product = products::get(tx, &line.sku)?.ok_or_else(|| unknown_product(&line.sku))?;
        lines.push(SaleLine {
            sku: line.sku,
            qty: line.qty,
            price_cents: product.price_cents,
        });
    }
    Ok(EventPayload::SaleRecorded {
        sale_id: event_id.to_string(),
        lines,
    })
}

/// [`record`] takes head office's changes to [`record_head_office`] before it makes a payload.
fn unreachable_head_office() -> Result<(EventPayload, String), StorageError> {
    Err(StorageError::Corrupt {
        table: "sync_events",
        message: "a head-office change takes its own path".to_owned(),
    })
}

fn audit_entry(event: &SyncEvent, at: &str) -> AuditEntry {
    let operation = match event.payload {
        EventPayload::ProductCreated { .. } => Operation::ProductCreate,
        EventPayload::ProductUpdated { .. } | EventPayload::CatalogSet { .. } => {
            Operation::ProductUpdate
        }
        EventPayload::StockAdjusted { .. } => Operation::StockAdjust,
        EventPayload::SaleRecorded { .. } => Operation::Sale,
        EventPayload::DeviceTrust { .. } => Operation::Trust,
        EventPayload::DayClosed { .. } => Operation::Closing,
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
    devices::put(tx, me)?;
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
