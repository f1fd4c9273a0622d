//! Compiles the .proto files with protox (pure Rust), so building needs no protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/dungeongate/games/v2/games.proto",
        "proto/dungeongate/auth/v1/auth.proto",
        "proto/dungeongate/cluster/v1/cluster.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(protos, ["proto"])?;
    // `bytes` fields are `Bytes`, so a frame is shared with the encoder, not copied.
    tonic_prost_build::configure()
        .bytes(".dungeongate")
        .compile_fds(descriptors)?;
    Ok(())
}
