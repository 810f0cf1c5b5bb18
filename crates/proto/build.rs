//! Generates Rust for every .proto under <workspace>/proto.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let protos = [
        root.join("streaming/media/v1/media.proto"),
        root.join("streaming/control/v1/control.proto"),
        root.join("streaming/marker/v1/marker.proto"),
    ];
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("streaming_descriptor.bin"))
        .compile_protos(&protos, std::slice::from_ref(&root))?;
    // tonic-prost-build prints no rerun-if-changed; watch the whole tree.
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
