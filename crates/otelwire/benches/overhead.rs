//! Placeholder: the overhead benches are written next.
fn main() {}
