pub mod pb { tonic::include_proto!("volley.v1"); }
