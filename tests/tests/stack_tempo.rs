//! Tempo (`stack/tempo/config.yaml`): a Tempo 3 configuration, without the
//! blocks Tempo 3 removed.
//!
//! Runs no program: Tempo is not built here (docs/stack.md says why).

use otelwire_tests::stack_files::{at, yaml};

#[test]
fn tempo_configuration_has_no_tempo_2_blocks() {
    let tempo = yaml("stack/tempo/config.yaml");
    for legacy in [
        "ingester",
        "compactor",
        "ingester_client",
        "metrics_generator_client",
    ] {
        assert!(
            at(&tempo, &[legacy]).is_none(),
            "stack/tempo/config.yaml: Tempo 3 has no {legacy} block"
        );
    }
}
