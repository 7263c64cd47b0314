//! What rms-storage's integration tests share: device ids, the commands of a till, and a store
//! that formed a store of its own.

#![allow(dead_code, clippy::unwrap_used)]

use rms_domain::{DeviceId, Epoch, NewProduct, NewSale, NewSaleLine, Term};
use rms_storage::local::Command;
use rms_storage::{Store, node_state};

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
