//! Compiles the stand-in LND's gRPC service (see proto/lnd_invoices.proto).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/lnd_invoices.proto");
    tonic_prost_build::configure()
        .build_client(false)
        .compile_protos(&["proto/lnd_invoices.proto"], &["proto"])?;
    Ok(())
}
