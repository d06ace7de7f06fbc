//! The JSON Schema of `report.json`, generated from the report model (the
//! types in [`super`] derive `schemars::JsonSchema`), so the schema and the
//! types cannot drift apart: `volley schema report` prints it, and
//! `docs/report.schema.json` is that output checked in (a unit test below
//! compares them byte for byte).
//!
//! It describes what Volley *writes* (serde's serialize side): a field
//! always written is required, a field written only when set
//! (`skip_serializing_if`) is optional, and every object rejects a field
//! it does not name (`additionalProperties: false`), so a field added to
//! the report without the schema fails validation.

use super::Report;
use schemars::generate::SchemaSettings;
use schemars::transform::RecursiveTransform;
use schemars::Schema;

/// Where the schema is checked in, from the workspace root.
pub const CHECKED_IN: &str = "docs/report.schema.json";

/// The schema, as pretty JSON with a final newline: exactly the text of
/// [`CHECKED_IN`].
pub fn report_schema() -> String {
    let generator = SchemaSettings::draft2020_12()
        .for_serialize()
        .with_transform(RecursiveTransform(deny_unknown_fields))
        .into_generator();
    let mut schema = generator.into_root_schema_for::<Report>();
    schema.insert(
        "title".into(),
        format!("Volley report ({})", super::SCHEMA).into(),
    );
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema always serializes");
    text.push('\n');
    text
}

/// Every object with named properties admits no others. Maps (a
/// `BTreeMap`, `errors_by_kind`) name none and keep their value schema.
fn deny_unknown_fields(schema: &mut Schema) {
    if let Some(obj) = schema.as_object_mut() {
        if obj.contains_key("properties") && !obj.contains_key("additionalProperties") {
            obj.insert("additionalProperties".into(), false.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn schema() -> Value {
        serde_json::from_str(&report_schema()).unwrap()
    }

    #[test]
    fn the_checked_in_schema_is_the_generated_one() {
        let checked_in = include_str!("../../../docs/report.schema.json");
        assert!(
            checked_in == report_schema(),
            "{CHECKED_IN} is not what the report types generate: the report model \
             changed without its schema. Regenerate it from the workspace root with\n    \
             cargo run -q -p volley-coordinator -- schema report > {CHECKED_IN}\n\
             and review the diff (within volley.report.v1 fields are only added)."
        );
    }

    /// Every object of the schema, the root and its `$defs`.
    fn objects(v: &Value, out: &mut Vec<Value>) {
        match v {
            Value::Object(m) => {
                if m.contains_key("properties") {
                    out.push(v.clone());
                }
                m.values().for_each(|x| objects(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| objects(x, out)),
            _ => {}
        }
    }

    #[test]
    fn every_object_is_closed() {
        let mut all = Vec::new();
        objects(&schema(), &mut all);
        assert!(all.len() >= 15, "{} objects", all.len());
        for o in all {
            assert_eq!(o["additionalProperties"], false, "{o}");
        }
    }

    #[test]
    fn required_is_what_is_always_written() {
        let s = schema();
        let required = |def: &str| -> Vec<String> {
            let node = if def.is_empty() { &s } else { &s["$defs"][def] };
            serde_json::from_value(node["required"].clone()).unwrap()
        };
        let root = required("");
        for f in ["schema", "run_id", "requests", "thresholds", "events"] {
            assert!(root.contains(&f.to_string()), "{f} not required");
        }
        // Written only when set.
        for f in ["target", "incomplete_reason", "per_request", "load"] {
            assert!(!root.contains(&f.to_string()), "{f} required");
        }
        assert_eq!(s["properties"]["schema"]["const"], super::super::SCHEMA);
        assert!(required("Regression").iter().all(|f| f != "note"));
        assert!(required("WorkerReport").contains(&"lost_at_s".to_string()));
    }

    #[test]
    fn the_thresholds_status_is_one_of_three() {
        let s = schema();
        let status = &s["$defs"]["ThresholdStatus"];
        assert_eq!(status["enum"], serde_json::json!(["pass", "warn", "fail"]));
    }
}
