//! Time per unary RPC on loopback, client and server in one thread, for
//! each variant of `grpc_bench::Variant`, in one run:
//!
//! ```text
//! cargo bench -p grpc-bench --bench unary -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Each variant's stack is started for its bench and shut down after it,
//! so no variant's subscriber is alive while another is measured.
//! Instruction counts, which drift less: `cargo run --release -p
//! grpc-bench -- callgrind`.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use grpc_bench::{Stack, Variant};

fn unary(c: &mut Criterion) {
    let mut group = c.benchmark_group("unary");
    for variant in Variant::ALL {
        let stack = Stack::start(variant);
        stack.calls(200);
        {
            let _default = tracing::dispatcher::set_default(&stack.dispatch);
            group.bench_function(variant.name(), |b| {
                b.to_async(&stack.rt).iter(|| {
                    let mut client = stack.client.clone();
                    async move { client.say().await }
                })
            });
        }
        eprintln!("{}: {}", variant.name(), stack.shutdown());
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = unary
}
criterion_main!(benches);
