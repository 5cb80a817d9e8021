//! What the end-to-end tests in `tests/` share beyond `tests/common`: the
//! stack's real programs, built by `stack/local/install` and run on
//! loopback, and `rotel`, a third-party OTLP receiver.

pub mod programs;
pub mod rotel;
pub mod stack_files;
