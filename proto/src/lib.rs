//! Volley's wire format and the helpers at its edge.
//!
//! - [`pb`]: the generated gRPC types and services (`volley/v1/volley.proto`,
//!   compiled by protox in `build.rs`; nothing generated lives under `src/`).
//! - [`histogram`]: the one histogram shape Volley records into, and its
//!   HdrHistogram V2 encoding (deflated unless small) with bounded decoding.
//! - [`clock`]: wall-clock nanoseconds since the Unix epoch, the only time
//!   representation that crosses the wire.
//! - [`convert`]: wire messages to the domain types of `volley-plan` and
//!   back, validated in one place.
//! - [`auth`]: the shared-token check both services use.
//! - [`channel`]: how clients (workers, the CLI) dial the coordinator, with
//!   TLS for `https://` addresses.
//! - [`signals`]: SIGINT and SIGTERM as every Volley process takes them
//!   (counted once each, a burst from `timeout` counted as one).

pub mod auth;
pub mod channel;
pub mod clock;
pub mod convert;
pub mod histogram;
pub mod signals;

/// Generated protobuf and gRPC code for `volley.v1`.
#[allow(clippy::all, missing_docs, unused_qualifications)]
pub mod pb {
    tonic::include_proto!("volley.v1");
}

/// Protocol version carried in `Hello`; a coordinator refuses any other.
///
/// 6: small histograms travel as uncompressed V2 (a coordinator of version
/// 5 cannot read them).
pub const PROTOCOL_VERSION: u32 = 6;

/// Largest gRPC message either side accepts (an interval report carries
/// three histograms, a few KiB each; a scenario is a small TOML file).
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Size of one piece of a file sent in chunks (`FileChunk`, `DataChunk`),
/// well under [`MAX_MESSAGE_BYTES`].
pub const CHUNK_BYTES: usize = 1024 * 1024;

/// Largest message the coordinator sends to the `volley` CLI: the finished
/// event and `GetReport` carry the whole report, which grows with the
/// workers (a 10,000-worker report is ~10 MB of JSON). Only the CLI, which
/// holds the token, receives these.
pub const MAX_REPORT_BYTES: usize = 256 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::pb;
    use prost::Message;

    /// `RunFinished` and `GetReportResponse` as they were, with `string
    /// report_json`: a `volley` of that version still reads a coordinator of
    /// this one, and the other way round.
    #[derive(Clone, PartialEq, prost::Message)]
    struct RunFinishedWithString {
        #[prost(string, tag = "1")]
        run_id: String,
        #[prost(string, tag = "2")]
        outcome: String,
        #[prost(string, tag = "3")]
        error: String,
        #[prost(string, tag = "4")]
        report_json: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct GetReportResponseWithString {
        #[prost(string, tag = "1")]
        report_json: String,
    }

    #[test]
    fn the_report_as_bytes_is_the_report_as_a_string_on_the_wire() {
        let json = r#"{"scenario":"é ✓","requests":{"ok":3}}"#;
        let old = RunFinishedWithString {
            run_id: "r1".into(),
            outcome: "completed".into(),
            error: String::new(),
            report_json: json.into(),
        };
        let new = pb::RunFinished {
            run_id: "r1".into(),
            outcome: "completed".into(),
            error: String::new(),
            report_json: prost::bytes::Bytes::from(json),
        };
        assert_eq!(old.encode_to_vec(), new.encode_to_vec());
        let read = pb::RunFinished::decode(old.encode_to_vec().as_slice()).unwrap();
        assert_eq!(read.report_json, json.as_bytes());
        let read = RunFinishedWithString::decode(new.encode_to_vec().as_slice()).unwrap();
        assert_eq!(read.report_json, json);

        let old = GetReportResponseWithString {
            report_json: json.into(),
        };
        let new = pb::GetReportResponse {
            report_json: prost::bytes::Bytes::from(json),
        };
        assert_eq!(old.encode_to_vec(), new.encode_to_vec());
        assert_eq!(
            pb::GetReportResponse::decode(old.encode_to_vec().as_slice())
                .unwrap()
                .report_json,
            json.as_bytes()
        );
    }
}
