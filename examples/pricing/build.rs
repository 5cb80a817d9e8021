//! Compiles `proto/pricing/v1/pricing.proto` with protox (pure Rust, so no
//! `protoc` needs to be installed) and generates the tonic code from it.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/pricing/v1/pricing.proto";
    println!("cargo:rerun-if-changed={proto}");
    let files = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure().compile_fds(files)?;
    Ok(())
}
