//! The rules that decide whether an event may apply to the products as they are, and what it
//! changes. The master runs them to settle conflicts (first come, first served); every device runs
//! them for its own local writes.

use std::collections::BTreeMap;

use crate::event::{EventPayload, SaleLine};
use crate::product::Product;
use crate::verdict::RejectReason;

/// The products an event touches, by SKU, as they are before it.
pub type Products = BTreeMap<String, Product>;

/// What applying an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The SKUs whose rows changed (each present in the map after the call).
    pub changed: Vec<String>,
    /// The event must reach the master at once: it moved stock and left a product at 0 or
    /// below, or it revokes a device certificate (which must take effect everywhere now).
    pub critical: bool,
}

/// Applies `payload` to `products` if the rules allow it; on refusal `products` is untouched.
///
/// `products` must hold every SKU of `payload.skus()` that exists. `at` is the RFC 3339 time
/// written into `updated_at`.
pub fn apply(
    payload: &EventPayload,
    products: &mut Products,
    at: &str,
) -> Result<Applied, RejectReason> {
    match payload {
        EventPayload::ProductCreated {
            sku,
            name,
            price_cents,
            stock,
        } => {
            if products.contains_key(sku) {
                return Err(RejectReason::AlreadyExists);
            }
            let product = Product {
                sku: sku.clone(),
                name: name.clone(),
                price_cents: *price_cents,
                stock: *stock,
                version: 1,
                updated_at: at.to_owned(),
            };
            products.insert(sku.clone(), product);
            Ok(Applied {
                changed: vec![sku.clone()],
                critical: false,
            })
        }
        EventPayload::ProductUpdated {
            sku,
            name,
            price_cents,
            base_version,
        } => {
            let product = products.get_mut(sku).ok_or(RejectReason::UnknownProduct)?;
            if product.version != *base_version {
                return Err(RejectReason::StaleVersion);
            }
            edit(product, name.as_deref(), *price_cents, at);
            Ok(Applied {
                changed: vec![sku.clone()],
                critical: false,
            })
        }
        EventPayload::StockAdjusted { sku, delta, .. } => adjust_stock(products, sku, *delta, at),
        EventPayload::SaleRecorded { lines, .. } => sell(products, lines, at),
        EventPayload::CatalogSet {
            sku,
            name,
            price_cents,
        } => Ok(set_by_head_office(products, sku, name, *price_cents, at)),
        // No product changes; the trust rules are the resolver's (`crate::trust`). A revocation
        // must take effect everywhere now; a new device can wait for the next sync (and many
        // devices added at once go out in one broadcast, not one each). A closing records; it
        // changes no product either.
        EventPayload::DeviceTrust { .. } | EventPayload::DayClosed { .. } => Ok(Applied {
            changed: Vec::new(),
            critical: payload.revokes_trust(),
        }),
    }
}

/// A stock movement that is not a sale: refused if the product is unknown or the stock would go
/// below zero. Critical when it leaves the stock at 0 or below.
fn adjust_stock(
    products: &mut Products,
    sku: &str,
    delta: i64,
    at: &str,
) -> Result<Applied, RejectReason> {
    let product = products.get_mut(sku).ok_or(RejectReason::UnknownProduct)?;
    let stock = product
        .stock
        .checked_add(delta)
        .ok_or(RejectReason::OutOfStock)?;
    if stock < 0 {
        return Err(RejectReason::OutOfStock);
    }
    product.stock = stock;
    product.updated_at = at.to_owned();
    Ok(Applied {
        changed: vec![sku.to_owned()],
        critical: stock <= 0,
    })
}

/// A sale: every line's product must exist and hold the quantity of all the sale's lines for
/// it together; then each product's stock goes down by that quantity. All or nothing.
fn sell(products: &mut Products, lines: &[SaleLine], at: &str) -> Result<Applied, RejectReason> {
    let mut wanted: BTreeMap<&str, i64> = BTreeMap::new();
    for line in lines {
        *wanted.entry(line.sku.as_str()).or_default() += line.qty;
    }
    for (sku, qty) in &wanted {
        let product = products.get(*sku).ok_or(RejectReason::UnknownProduct)?;
        if product.stock < *qty {
            return Err(RejectReason::OutOfStock);
        }
    }
    let mut critical = false;
    for (sku, qty) in &wanted {
        if let Some(product) = products.get_mut(*sku) {
            product.stock -= qty;
            product.updated_at = at.to_owned();
            critical |= product.stock <= 0;
        }
    }
    Ok(Applied {
        changed: wanted.keys().map(|s| (*s).to_owned()).collect(),
        critical,
    })
}

/// Applies `payload` without the refusals of [`apply`]: stock may go below zero, and what cannot
/// apply at all (an edit of a product that is not there, a second create) is skipped.
///
/// Used to replay a device's own pending events on top of its copy of the master's state, and by
/// a master to keep a sale that another master accepted during a split brain.
pub fn apply_forced(payload: &EventPayload, products: &mut Products, at: &str) -> Applied {
    if let Ok(applied) = apply(payload, products, at) {
        return applied;
    }
    let mut changed = Vec::new();
    let mut critical = false;
    let mut move_stock = |sku: &str, delta: i64| {
        if let Some(product) = products.get_mut(sku) {
            product.stock = product.stock.saturating_add(delta);
            product.updated_at = at.to_owned();
            critical |= product.stock <= 0;
            changed.push(sku.to_owned());
        }
    };
    match payload {
        EventPayload::StockAdjusted { sku, delta, .. } => move_stock(sku, *delta),
        EventPayload::SaleRecorded { lines, .. } => {
            for line in lines {
                move_stock(&line.sku, -line.qty);
            }
        }
        EventPayload::ProductUpdated {
            sku,
            name,
            price_cents,
            ..
        } => {
            if let Some(product) = products.get_mut(sku) {
                edit(product, name.as_deref(), *price_cents, at);
                changed.push(sku.clone());
            }
        }
        // `apply` refused it, so the product exists already: the first create stands.
        // `apply` never refuses head office's change.
        EventPayload::ProductCreated { .. }
        | EventPayload::CatalogSet { .. }
        | EventPayload::DeviceTrust { .. }
        | EventPayload::DayClosed { .. } => {}
    }
    changed.sort_unstable();
    changed.dedup();
    Applied { changed, critical }
}

/// Head office wins: no base version to match. A product the store does not have is created
/// with no stock; the store's stock is never touched.
fn set_by_head_office(
    products: &mut Products,
    sku: &str,
    name: &str,
    price_cents: i64,
    at: &str,
) -> Applied {
    match products.get_mut(sku) {
        Some(product) => edit(product, Some(name), Some(price_cents), at),
        None => {
            let product = Product {
                sku: sku.to_owned(),
                name: name.to_owned(),
                price_cents,
                stock: 0,
                version: 1,
                updated_at: at.to_owned(),
            };
            products.insert(sku.to_owned(), product);
        }
    }
    // Critical: a till must not go on selling at the old price for a sync interval.
    Applied {
        changed: vec![sku.to_owned()],
        critical: true,
    }
}

/// A catalogue edit: the given fields, and the next version.
fn edit(product: &mut Product, name: Option<&str>, price_cents: Option<i64>, at: &str) {
    if let Some(name) = name {
        name.clone_into(&mut product.name);
    }
    if let Some(price) = price_cents {
        product.price_cents = price;
    }
    product.version += 1;
    product.updated_at = at.to_owned();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue(stock: i64) -> Products {
        let mut products = Products::new();
        let create = EventPayload::ProductCreated {
            sku: "milk".into(),
            name: "Milk".into(),
            price_cents: 99,
            stock,
        };
        apply(&create, &mut products, "t0").unwrap();
        products
    }

    fn sale(lines: &[(&str, i64)]) -> EventPayload {
        EventPayload::SaleRecorded {
            sale_id: "1-1".into(),
            lines: lines
                .iter()
                .map(|(sku, qty)| SaleLine {
                    sku: (*sku).into(),
                    qty: *qty,
                    price_cents: 99,
                })
                .collect(),
        }
    }

    #[test]
    fn the_last_unit_sells_once() {
        let mut products = catalogue(1);
        let applied = apply(&sale(&[("milk", 1)]), &mut products, "t1").unwrap();
        assert!(applied.critical, "emptying a product is critical");
        assert_eq!(products["milk"].stock, 0);
        let before = products.clone();
        assert_eq!(
            apply(&sale(&[("milk", 1)]), &mut products, "t2"),
            Err(RejectReason::OutOfStock)
        );
        assert_eq!(products, before, "a refusal changes nothing");
    }

    #[test]
    fn repeated_lines_count_together() {
        let mut products = catalogue(3);
        assert_eq!(
            apply(&sale(&[("milk", 2), ("milk", 2)]), &mut products, "t1"),
            Err(RejectReason::OutOfStock)
        );
        assert_eq!(
            apply(&sale(&[("milk", 1), ("bread", 1)]), &mut products, "t1"),
            Err(RejectReason::UnknownProduct)
        );
        assert_eq!(products["milk"].stock, 3);
    }

    #[test]
    fn head_office_wins_over_the_version_and_keeps_the_stock() {
        let mut products = catalogue(3);
        let local = EventPayload::ProductUpdated {
            sku: "milk".into(),
            name: Some("Local milk".into()),
            price_cents: None,
            base_version: 1,
        };
        apply(&local, &mut products, "t1").unwrap();
        let hq = |sku: &str| EventPayload::CatalogSet {
            sku: sku.into(),
            name: "Milk 1L".into(),
            price_cents: 129,
        };
        apply(&hq("milk"), &mut products, "t2").unwrap();
        let milk = &products["milk"];
        assert_eq!((milk.name.as_str(), milk.price_cents), ("Milk 1L", 129));
        assert_eq!(
            (milk.stock, milk.version),
            (3, 3),
            "stock kept, version moved"
        );
        let stale = EventPayload::ProductUpdated {
            sku: "milk".into(),
            name: Some("Late local edit".into()),
            price_cents: None,
            base_version: 2,
        };
        assert_eq!(
            apply(&stale, &mut products, "t3"),
            Err(RejectReason::StaleVersion),
            "an edit made before head office's change loses"
        );
        apply(&hq("bread"), &mut products, "t4").unwrap();
        assert_eq!(products["bread"].stock, 0, "a new product has no stock yet");
    }

    #[test]
    fn edits_on_an_old_version_are_stale() {
        let mut products = catalogue(3);
        let edit = |base_version| EventPayload::ProductUpdated {
            sku: "milk".into(),
            name: None,
            price_cents: Some(120),
            base_version,
        };
        apply(&edit(1), &mut products, "t1").unwrap();
        assert_eq!(products["milk"].version, 2);
        assert_eq!(
            apply(&edit(1), &mut products, "t2"),
            Err(RejectReason::StaleVersion)
        );
        let adjust = EventPayload::StockAdjusted {
            sku: "milk".into(),
            delta: -3,
            reason: "count".into(),
        };
        assert!(apply(&adjust, &mut products, "t3").unwrap().critical);
        assert_eq!(
            products["milk"].version, 2,
            "stock moves do not bump the version"
        );
    }

    #[test]
    fn forced_application_keeps_the_arithmetic_and_skips_the_impossible() {
        let mut products = catalogue(1);
        let applied = apply_forced(&sale(&[("milk", 3), ("bread", 1)]), &mut products, "t1");
        assert_eq!(
            products["milk"].stock, -2,
            "a kept split-brain sale may overdraw"
        );
        assert!(applied.critical);
        assert_eq!(applied.changed, ["milk"]);
        let edit = EventPayload::ProductUpdated {
            sku: "milk".into(),
            name: Some("Oat".into()),
            price_cents: None,
            base_version: 9,
        };
        apply_forced(&edit, &mut products, "t2");
        assert_eq!(
            (products["milk"].name.as_str(), products["milk"].version),
            ("Oat", 2)
        );
    }
}
