//! Compiles `volley/v1/*.proto` with protox (pure Rust, no system `protoc`)
//! into `OUT_DIR`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["volley/v1/volley.proto"];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["."])?;
    tonic_prost_build::configure()
        // report.json: shared, not copied, between the coordinator's ended
        // runs and every client a run's `finished` event goes to.
        .bytes(".volley.v1.RunFinished.report_json")
        .bytes(".volley.v1.GetReportResponse.report_json")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
