//! The data rules of SPEC §3 as named limits and checks: every refusal is a [`ValidationError`]
//! that names the field, and nothing is written.

use serde::{Deserialize, Deserializer};

/// Longest SKU, in characters (`[A-Za-z0-9._-]`, at least one).
pub const SKU_CHARS_MAX: usize = 64;
/// Longest product name, in characters (at least one, not all white space).
pub const NAME_CHARS_MAX: usize = 200;
/// Longest user id (the cashier), in characters.
pub const USER_ID_CHARS_MAX: usize = 64;
/// Longest stock adjustment reason, in characters.
pub const REASON_CHARS_MAX: usize = 200;
/// Most lines in one sale.
pub const SALE_LINES_MAX: usize = 100;
/// Largest quantity of one sale line, and largest absolute stock delta.
pub const QTY_MAX: i64 = 1_000_000;
/// Largest price, in minor units (one hundred million of the major unit).
pub const PRICE_CENTS_MAX: i64 = 10_000_000_000;
/// Largest stock a product may be created with.
pub const STOCK_MAX: i64 = 1_000_000_000;

/// Input that breaks a data rule. Always names the field, as the API promises.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The offending field as the input names it, with its path (`lines[1].qty`,
    /// `payload.sku`).
    pub field: String,
    /// What is wrong with it, for people (`must be between 1 and 1000000`).
    pub message: String,
}

impl ValidationError {
    /// `field` breaks a rule; `message` says which.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> ValidationError {
        ValidationError {
            field: field.into(),
            message: message.into(),
        }
    }
}

pub(crate) fn sku(field: &str, value: &str) -> Result<(), ValidationError> {
    let len = value.chars().count();
    if len == 0 || len > SKU_CHARS_MAX {
        return Err(ValidationError::new(
            field,
            format!("must be 1 to {SKU_CHARS_MAX} characters"),
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if !value.chars().all(allowed) {
        return Err(ValidationError::new(
            field,
            "may only contain A-Z, a-z, 0-9, '.', '_' and '-'",
        ));
    }
    Ok(())
}

/// Checks a free-text field: 1 to `chars_max` characters, not only white space, no control
/// characters. The error names `field`.
pub fn text(field: &str, value: &str, chars_max: usize) -> Result<(), ValidationError> {
    let len = value.chars().count();
    if len == 0 || len > chars_max || value.trim().is_empty() {
        return Err(ValidationError::new(
            field,
            format!("must be 1 to {chars_max} characters and not only white space"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

pub(crate) fn range(field: &str, value: i64, min: i64, max: i64) -> Result<(), ValidationError> {
    if value < min || value > max {
        return Err(ValidationError::new(
            field,
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(())
}

pub(crate) fn price(field: &str, value: i64) -> Result<(), ValidationError> {
    range(field, value, 0, PRICE_CENTS_MAX)
}

pub(crate) fn user_id(field: &str, value: &str) -> Result<(), ValidationError> {
    text(field, value, USER_ID_CHARS_MAX)
}

/// A user id may arrive as a JSON string or a JSON integer (`"alice"`, `7`); it is kept as text.
pub(crate) fn de_user_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(i64),
    }
    Ok(
        match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("user_id must be a string or an integer"))?
        {
            Raw::Text(s) => s,
            Raw::Number(n) => n.to_string(),
        },
    )
}

/// An optional user id: absent or `null` is `None`.
pub(crate) fn de_opt_user_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct Wrapper(String);
    impl<'de> Deserialize<'de> for Wrapper {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            de_user_id(d).map(Wrapper)
        }
    }
    Ok(Option::<Wrapper>::deserialize(d)?.map(|w| w.0))
}
