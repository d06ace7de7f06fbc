//! `[[data]]` tables: files of test data that templates draw rows from
//! (`{{data.users.id}}`).
//!
//! ```toml
//! [[data]]
//! name = "users"           # required: templates write data.users.COLUMN
//! file = "users.csv"       # required, relative to the scenario file
//! format = "csv"           # "csv" | "jsonl"; default from the extension
//! order = "sequential"     # or "random"
//! on_end = "wrap"          # or "stop": end the run after the last row
//! ```
//!
//! The file is parsed here ([`DataSet::parse`]), so a ragged row, an empty
//! file or one over [`MAX_DATA_BYTES`] stops the run before any traffic,
//! with the data file's line and the scenario's line of the `file` key.
//!
//! [`MAX_DATA_BYTES`]: volley_plan::data::MAX_DATA_BYTES

use volley_plan::data::{DataSet, Format, OnEnd, Order, MAX_DATA_SETS};

use super::error::Fail;
use super::files::Files;
use super::raw::{array_table, Section, UniqueNames};
use super::units::quote;

const DATA_KEYS: &[&str] = &["name", "file", "format", "order", "on_end"];
const MAX_NAME: usize = 64;

/// The `[[data]]` sets, in file order.
pub(super) fn data(root: &Section<'_, '_>, files: &mut Files<'_>) -> Result<Vec<DataSet>, Fail> {
    let Some(items) = root.array("data", "an array of tables written as [[data]]")? else {
        return Ok(Vec::new());
    };
    if items.len() > MAX_DATA_SETS {
        return Err(root.fail(
            "data",
            format!(
                "expected at most {MAX_DATA_SETS} [[data]] tables, got {}",
                items.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    let mut names = UniqueNames::default();
    for (i, item) in items.iter().enumerate() {
        let sec = array_table("data", i, item, DATA_KEYS)?;
        let set = data_set(&sec, files)?;
        names.check(&sec, "data", "data set", i, &set.name)?;
        out.push(set);
    }
    Ok(out)
}

/// A data set name: it sits between dots in `data.NAME.COLUMN`.
fn valid_name(n: &str) -> bool {
    let mut b = n.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
        && n.len() <= MAX_NAME
}

fn data_set(sec: &Section<'_, '_>, files: &mut Files<'_>) -> Result<DataSet, Fail> {
    let name = sec.str("name")?.ok_or_else(|| {
        sec.missing(
            "name",
            "a name such as \"users\" (templates write {{data.users.COLUMN}})",
        )
    })?;
    if !valid_name(name) {
        return Err(sec.fail(
            "name",
            format!(
                "expected a name of a letter or _, then letters, digits, _ or - (at most \
                 {MAX_NAME}), such as \"users\", got {}",
                quote(name)
            ),
        ));
    }
    if !sec.has("file") {
        return Err(sec.missing("file", "a CSV or JSON Lines file such as \"users.csv\""));
    }
    let format = match sec.str("format")? {
        None => None,
        Some(f) => Some(Format::parse(f).ok_or_else(|| {
            sec.fail(
                "format",
                format!("expected \"csv\" or \"jsonl\", got {}", quote(f)),
            )
        })?),
    };
    let order = match sec.str("order")? {
        None => Order::Sequential,
        Some(o) => Order::parse(o).ok_or_else(|| {
            sec.fail(
                "order",
                format!("expected \"sequential\" or \"random\", got {}", quote(o)),
            )
        })?,
    };
    let on_end = match sec.str("on_end")? {
        None => OnEnd::Wrap,
        Some(o) => OnEnd::parse(o).ok_or_else(|| {
            sec.fail(
                "on_end",
                format!("expected \"wrap\" or \"stop\", got {}", quote(o)),
            )
        })?,
    };
    if on_end == OnEnd::Stop && order == Order::Random {
        return Err(sec.fail(
            "on_end",
            "\"stop\" ends the run once every row has been used, which needs order = \
             \"sequential\"; random rows have no last row (use on_end = \"wrap\")",
        ));
    }
    let (file, bytes) = files
        .read_data(sec, "file")?
        .expect("checked to be present");
    let format = format.unwrap_or_else(|| Format::of_file(&file));
    let parsed = DataSet::parse(name, format, order, on_end, &bytes).map_err(|e| {
        let at = match e.line {
            Some(l) => format!("{} line {l}", quote(&file)),
            None => quote(&file),
        };
        sec.fail(
            "file",
            format!(
                "cannot use {at} as {} data: expected {}",
                format.as_str(),
                e.message
            ),
        )
    })?;
    // Its bytes travel to the workers under the name the scenario gives.
    Ok(parsed.with_file(file))
}
