//! Products and the inputs that change them: [`Product`] (the catalogue row with stock and
//! version), [`NewProduct`], [`ProductPatch`] and [`StockAdjustment`], each validated field by
//! field.

use serde::{Deserialize, Serialize};

use crate::validate::{
    self, NAME_CHARS_MAX, QTY_MAX, REASON_CHARS_MAX, STOCK_MAX, ValidationError,
};

/// A product as a device holds it.
///
/// `version` counts catalogue edits (create = 1, each name/price update + 1); stock movements do
/// not change it, so a price edit is only `stale_version` when another edit got there first.
/// `stock` may be negative only after a split brain, when two masters both sold the last units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// The product's SKU: its key in the store (`[A-Za-z0-9._-]`, 1 to 64 characters).
    pub sku: String,
    /// Its name, as tills show it.
    pub name: String,
    /// Its unit price, in minor units (cents).
    pub price_cents: i64,
    /// Units in stock; below zero only after a split brain (see above).
    pub stock: i64,
    /// Catalogue edits so far: 1 when created, one more per name or price change.
    pub version: u64,
    /// When the event that last changed it (stock or catalogue) was made: UTC RFC 3339 with
    /// milliseconds.
    pub updated_at: String,
}

/// `POST /products`: a new product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    /// The new product's SKU (`[A-Za-z0-9._-]`, 1 to [`crate::SKU_CHARS_MAX`] characters).
    pub sku: String,
    /// Its name (1 to [`crate::NAME_CHARS_MAX`] characters, not only white space).
    pub name: String,
    /// Its unit price, in minor units (cents), 0 to 10^10.
    pub price_cents: i64,
    /// The units in stock it starts with, 0 (the default) to 10^9.
    #[serde(default)]
    pub stock: i64,
    /// Who creates it (a JSON string or integer); the device's default user when absent.
    #[serde(default, deserialize_with = "validate::de_opt_user_id")]
    pub user_id: Option<String>,
}

impl NewProduct {
    /// Checks the data rules of SPEC §3; the error names the first field that breaks one.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate::sku("sku", &self.sku)?;
        validate::text("name", &self.name, NAME_CHARS_MAX)?;
        validate::price("price_cents", self.price_cents)?;
        validate::range("stock", self.stock, 0, STOCK_MAX)?;
        opt_user(self.user_id.as_deref())
    }
}

/// `PATCH /products/{sku}`: change the name and/or the price. With `version`, the edit is refused
/// (`stale_version`) unless the product is still at that version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    /// The new name, if it changes.
    #[serde(default)]
    pub name: Option<String>,
    /// The new unit price in minor units (cents), if it changes.
    #[serde(default)]
    pub price_cents: Option<i64>,
    /// The version the edit is made on (from 1); without it, the edit applies to the version
    /// the device holds when it records it.
    #[serde(default)]
    pub version: Option<u64>,
    /// Who edits it (a JSON string or integer); the device's default user when absent.
    #[serde(default, deserialize_with = "validate::de_opt_user_id")]
    pub user_id: Option<String>,
}

impl ProductPatch {
    /// Checks the data rules of SPEC §3 (and that the patch changes something); the error names
    /// the first field that breaks one.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.name.is_none() && self.price_cents.is_none() {
            return Err(ValidationError::new(
                "name",
                "give name and/or price_cents to change",
            ));
        }
        if let Some(name) = &self.name {
            validate::text("name", name, NAME_CHARS_MAX)?;
        }
        if let Some(price) = self.price_cents {
            validate::price("price_cents", price)?;
        }
        if self.version == Some(0) {
            return Err(ValidationError::new("version", "must be 1 or more"));
        }
        opt_user(self.user_id.as_deref())
    }
}

/// `POST /products/{sku}/stock`: a stock movement that is not a sale (delivery, count, breakage).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockAdjustment {
    /// Units added (positive) or taken away (negative); never 0, at most [`crate::QTY_MAX`]
    /// either way.
    pub delta: i64,
    /// Why, in the operator's words (1 to [`crate::REASON_CHARS_MAX`] characters).
    pub reason: String,
    /// Who adjusts it (a JSON string or integer); the device's default user when absent.
    #[serde(default, deserialize_with = "validate::de_opt_user_id")]
    pub user_id: Option<String>,
}

impl StockAdjustment {
    /// Checks the data rules of SPEC §3; the error names the first field that breaks one.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.delta == 0 {
            return Err(ValidationError::new("delta", "must not be 0"));
        }
        validate::range("delta", self.delta, -QTY_MAX, QTY_MAX)?;
        validate::text("reason", &self.reason, REASON_CHARS_MAX)?;
        opt_user(self.user_id.as_deref())
    }
}

/// Checks a SKU taken from a URL path.
pub fn validate_sku(sku: &str) -> Result<(), ValidationError> {
    validate::sku("sku", sku)
}

fn opt_user(user_id: Option<&str>) -> Result<(), ValidationError> {
    user_id.map_or(Ok(()), |u| validate::user_id("user_id", u))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(sku: &str, name: &str, price_cents: i64, stock: i64) -> NewProduct {
        NewProduct {
            sku: sku.into(),
            name: name.into(),
            price_cents,
            stock,
            user_id: None,
        }
    }

    #[test]
    fn refusals_name_the_field() {
        let long_name = "n".repeat(201);
        let long_sku = "s".repeat(65);
        let cases = [
            (product("", "Milk", 100, 1), "sku"),
            (product(&long_sku, "Milk", 100, 1), "sku"),
            (product("milk 1l", "Milk", 100, 1), "sku"),
            (product("milk", "", 100, 1), "name"),
            (product("milk", "   ", 100, 1), "name"),
            (product("milk", &long_name, 100, 1), "name"),
            (product("milk", "Milk", -1, 1), "price_cents"),
            (product("milk", "Milk", 100, -1), "stock"),
        ];
        for (input, field) in cases {
            let err = input.validate().expect_err("must be refused");
            assert_eq!(err.field, field, "{input:?}");
        }
        product("Milk-1L_v2.0", &"n".repeat(200), 0, 0)
            .validate()
            .unwrap();
    }

    #[test]
    fn unknown_fields_and_numeric_user_ids() {
        let err = serde_json::from_str::<NewProduct>(
            r#"{"sku":"a","name":"b","price_cents":1,"colour":"red"}"#,
        );
        assert!(err.is_err());
        let p: NewProduct =
            serde_json::from_str(r#"{"sku":"a","name":"b","price_cents":1,"user_id":7}"#).unwrap();
        assert_eq!(p.user_id.as_deref(), Some("7"));
        assert_eq!(p.stock, 0);
    }

    #[test]
    fn patch_and_adjustment_rules() {
        assert_eq!(
            ProductPatch::default().validate().unwrap_err().field,
            "name"
        );
        let patch = ProductPatch {
            price_cents: Some(-5),
            ..Default::default()
        };
        assert_eq!(patch.validate().unwrap_err().field, "price_cents");
        let adj = |delta, reason: &str| StockAdjustment {
            delta,
            reason: reason.into(),
            user_id: None,
        };
        assert_eq!(adj(0, "count").validate().unwrap_err().field, "delta");
        assert_eq!(adj(5, "").validate().unwrap_err().field, "reason");
        adj(-3, "broken").validate().unwrap();
    }
}
