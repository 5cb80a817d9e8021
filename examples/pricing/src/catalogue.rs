//! The items the service prices, and what a sku may look like.

/// The longest sku [`valid_sku`] accepts.
pub const MAX_SKU_LEN: usize = 64;

/// The currency of every price.
pub const CURRENCY: &str = "EUR";

/// Whether `sku` is a stock-keeping unit: 1 to [`MAX_SKU_LEN`] ASCII
/// letters, digits, `-`, `_` or `.`, starting with a letter or a digit
/// (the rule of the inventory example).
pub fn valid_sku(sku: &str) -> bool {
    let bytes = sku.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_SKU_LEN
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The unit prices every instance starts with, in cents: the items of the
/// inventory example.
pub fn catalogue() -> Vec<(&'static str, i64)> {
    vec![
        ("widget", 250),
        ("gadget", 1999),
        ("gizmo", 725),
        ("anvil", 8900),
        ("lever", 480),
    ]
}

/// The unit price of an item of base price `base` in round `round` of a
/// watch: a deterministic drift of at most 5 % either way.
pub fn drifted(base: i64, round: u32, item: usize) -> i64 {
    let step = (i64::from(round) * 7 + item as i64 * 3) % 11 - 5;
    base + base * step / 100
}
