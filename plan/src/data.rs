//! Data files: rows of test data that templates draw from
//! (`{{data.users.id}}`).
//!
//! A data set is a CSV file with a header row, or JSON Lines (one object per
//! line, the first line's keys are the columns). It is parsed once into one
//! byte buffer of cells plus an end offset per cell, so a row's column is
//! two array reads at render time and the whole set costs about its file
//! size plus 4 bytes per cell in memory.
//!
//! Which row arrival `seq` uses is a pure function of the arrival:
//! - `sequential` (the default): row `seq mod rows`, so across any number of
//!   workers every row is used exactly once per cycle of `rows` arrivals;
//! - `random`: a row drawn from (seed, seq), independently per data set.
//!
//! With `on_end = "stop"` the run ends after the last row has been used once
//! (see [`crate::Plan::arrival_limit`]); `wrap` (the default) starts over.

use crate::template::draw;
use std::fmt;
use std::sync::Arc;

/// Most bytes of data files one plan may carry, all sets together. Each
/// worker holds every set in memory (about file size + 4 bytes per cell).
pub const MAX_DATA_BYTES: u64 = 256 * 1024 * 1024;
/// Most data sets in one plan.
pub const MAX_DATA_SETS: usize = 32;
/// Most columns of one data set.
pub const MAX_COLUMNS: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated, with a header row (RFC 4180 quoting).
    Csv,
    /// One JSON object per line.
    JsonLines,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::JsonLines => "jsonl",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" => Some(Format::JsonLines),
            _ => None,
        }
    }

    /// The format a file name implies: `.jsonl`/`.ndjson` are JSON Lines,
    /// anything else CSV.
    pub fn of_file(name: &str) -> Format {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
            Format::JsonLines
        } else {
            Format::Csv
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Sequential,
    Random,
}

impl Order {
    pub fn as_str(self) -> &'static str {
        match self {
            Order::Sequential => "sequential",
            Order::Random => "random",
        }
    }

    pub fn parse(s: &str) -> Option<Order> {
        match s {
            "sequential" => Some(Order::Sequential),
            "random" => Some(Order::Random),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnEnd {
    /// Start over from the first row.
    Wrap,
    /// End the run once every row has been used.
    Stop,
}

impl OnEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            OnEnd::Wrap => "wrap",
            OnEnd::Stop => "stop",
        }
    }

    pub fn parse(s: &str) -> Option<OnEnd> {
        match s {
            "wrap" => Some(OnEnd::Wrap),
            "stop" => Some(OnEnd::Stop),
            _ => None,
        }
    }
}

/// Why a data file cannot be used; `line` is 1-based where one applies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct DataError {
    pub line: Option<u64>,
    pub message: String,
}

impl DataError {
    fn new(line: Option<u64>, message: impl Into<String>) -> Self {
        DataError {
            line,
            message: message.into(),
        }
    }
}

/// The parsed cells of a data file.
#[derive(PartialEq, Eq)]
pub struct Table {
    columns: Vec<String>,
    cells: Vec<u8>,
    /// End offset in `cells` of each cell, row-major.
    ends: Vec<u32>,
    rows: u64,
}

/// One `[[data]]` set of a plan.
#[derive(Clone)]
pub struct DataSet {
    pub name: String,
    /// The file it was read from, as the scenario names it (the key its
    /// bytes travel under).
    pub file: String,
    pub format: Format,
    pub order: Order,
    pub on_end: OnEnd,
    table: Arc<Table>,
    salt: u64,
}

impl PartialEq for DataSet {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name
            && self.file == o.file
            && self.format == o.format
            && self.order == o.order
            && self.on_end == o.on_end
            && (Arc::ptr_eq(&self.table, &o.table) || self.table == o.table)
    }
}

impl fmt::Debug for DataSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DataSet({:?}, {} rows × {:?}, {}, {})",
            self.name,
            self.table.rows,
            self.table.columns,
            self.order.as_str(),
            self.on_end.as_str()
        )
    }
}

impl DataSet {
    /// Parses a data file. Errors name the line (ragged rows, bad JSON)
    /// or say what is missing (an empty file, no header).
    pub fn parse(
        name: &str,
        format: Format,
        order: Order,
        on_end: OnEnd,
        bytes: &[u8],
    ) -> Result<DataSet, DataError> {
        if bytes.len() as u64 > MAX_DATA_BYTES {
            return Err(DataError::new(
                None,
                format!(
                    "a data file of at most {} MiB, got {:.1} MiB",
                    MAX_DATA_BYTES >> 20,
                    bytes.len() as f64 / 1048576.0
                ),
            ));
        }
        let table = match format {
            Format::Csv => parse_csv(bytes)?,
            Format::JsonLines => parse_jsonl(bytes)?,
        };
        if table.rows == 0 {
            return Err(DataError::new(
                None,
                "at least one data row (the file is empty or has only a header)",
            ));
        }
        Ok(DataSet {
            name: name.to_owned(),
            file: String::new(),
            format,
            order,
            on_end,
            salt: name
                .bytes()
                .fold(0x0DA7_A5E7_u64, |h, b| draw(h, u64::from(b), 0xDA7A)),
            table: Arc::new(table),
        })
    }

    /// Names the file the set was read from.
    pub fn with_file(mut self, file: impl Into<String>) -> DataSet {
        self.file = file.into();
        self
    }

    pub fn rows(&self) -> u64 {
        self.table.rows
    }

    pub fn columns(&self) -> &[String] {
        &self.table.columns
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.table.columns.iter().position(|c| c == name)
    }

    /// Bytes held in memory for this set.
    pub fn memory_bytes(&self) -> usize {
        self.table.cells.capacity() + self.table.ends.capacity() * 4
    }

    /// The row arrival `seq` uses.
    #[inline]
    pub fn row_of(&self, seq: u64, seed: u64) -> u64 {
        match self.order {
            Order::Sequential => seq % self.table.rows,
            Order::Random => {
                let h = draw(seed, seq, self.salt);
                ((u128::from(h) * u128::from(self.table.rows)) >> 64) as u64
            }
        }
    }

    /// The bytes of one cell.
    #[inline]
    pub fn cell(&self, row: u64, col: usize) -> &[u8] {
        let t = &*self.table;
        let i = row as usize * t.columns.len() + col;
        let start = if i == 0 { 0 } else { t.ends[i - 1] as usize };
        &t.cells[start..t.ends[i] as usize]
    }
}

fn push_cell(t: &mut Table, cell: &[u8]) {
    t.cells.extend_from_slice(cell);
    t.ends.push(t.cells.len() as u32);
}

fn parse_csv(bytes: &[u8]) -> Result<Table, DataError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(bytes);
    let header = rdr.byte_headers().map_err(|e| csv_error(&e, 0))?.clone();
    if header.is_empty() || bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(DataError::new(
            None,
            "a header row naming the columns, then at least one data row (the file is empty)",
        ));
    }
    let columns = columns(
        header
            .iter()
            .map(|c| String::from_utf8_lossy(c).trim().to_owned()),
        Some(1),
    )?;
    let mut t = Table {
        columns,
        cells: Vec::with_capacity(bytes.len()),
        ends: Vec::new(),
        rows: 0,
    };
    let mut rec = csv::ByteRecord::new();
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => {
                for c in rec.iter() {
                    push_cell(&mut t, c);
                }
                t.rows += 1;
            }
            Ok(false) => break,
            Err(e) => return Err(csv_error(&e, t.columns.len())),
        }
    }
    Ok(t)
}

fn csv_error(e: &csv::Error, columns: usize) -> DataError {
    match e.kind() {
        csv::ErrorKind::UnequalLengths { pos, len, .. } => {
            let line = pos.as_ref().map(|p| p.line());
            DataError::new(
                line,
                format!("{columns} fields as in the header row, got {len} (ragged row)"),
            )
        }
        _ => DataError::new(e.position().map(|p| p.line()), format!("valid CSV: {e}")),
    }
}

fn columns(
    names: impl Iterator<Item = String>,
    line: Option<u64>,
) -> Result<Vec<String>, DataError> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        if n.is_empty() {
            return Err(DataError::new(
                line,
                "a name for every column of the header",
            ));
        }
        if out.contains(&n) {
            return Err(DataError::new(
                line,
                format!("distinct column names; {n:?} appears twice"),
            ));
        }
        out.push(n);
    }
    if out.len() > MAX_COLUMNS {
        return Err(DataError::new(
            line,
            format!("at most {MAX_COLUMNS} columns"),
        ));
    }
    Ok(out)
}

fn parse_jsonl(bytes: &[u8]) -> Result<Table, DataError> {
    let mut t: Option<Table> = None;
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let n = i as u64 + 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(line)
            .map_err(|e| DataError::new(Some(n), format!("a JSON object: {e}")))?;
        let serde_json::Value::Object(obj) = v else {
            return Err(DataError::new(Some(n), "a JSON object such as {\"id\": 1}"));
        };
        let t = t.get_or_insert_with(|| Table {
            columns: Vec::new(),
            cells: Vec::with_capacity(bytes.len()),
            ends: Vec::new(),
            rows: 0,
        });
        if t.rows == 0 && t.columns.is_empty() {
            t.columns = columns(obj.keys().cloned(), Some(n))?;
        }
        if obj.len() != t.columns.len() {
            return Err(DataError::new(
                Some(n),
                format!(
                    "the same {} keys as the first line ({}), got {} (ragged row)",
                    t.columns.len(),
                    t.columns.join(", "),
                    obj.len()
                ),
            ));
        }
        for c in 0..t.columns.len() {
            let Some(v) = obj.get(&t.columns[c]) else {
                return Err(DataError::new(
                    Some(n),
                    format!("key {:?} as on the first line (ragged row)", t.columns[c]),
                ));
            };
            match v {
                serde_json::Value::String(s) => push_cell(t, s.as_bytes()),
                other => {
                    let s = other.to_string();
                    push_cell(t, s.as_bytes());
                }
            }
        }
        t.rows += 1;
    }
    Ok(t.unwrap_or(Table {
        columns: Vec::new(),
        cells: Vec::new(),
        ends: Vec::new(),
        rows: 0,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(s: &str) -> Result<DataSet, DataError> {
        DataSet::parse(
            "u",
            Format::Csv,
            Order::Sequential,
            OnEnd::Wrap,
            s.as_bytes(),
        )
    }

    #[test]
    fn csv_cells_with_quotes_and_commas() {
        let d = csv("id,name\n1,\"a, b\"\n2,\"say \"\"hi\"\"\"\n").unwrap();
        assert_eq!(d.rows(), 2);
        assert_eq!(d.columns(), ["id", "name"]);
        assert_eq!(d.cell(0, 1), b"a, b");
        assert_eq!(d.cell(1, 1), b"say \"hi\"");
        assert_eq!(d.cell(1, 0), b"2");
        assert_eq!(d.column("name"), Some(1));
        assert_eq!(d.column("x"), None);
    }

    #[test]
    fn ragged_rows_name_their_line() {
        let e = csv("id,name\n1,a\n2\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.to_string().contains("line 3: 2 fields"), "{e}");
    }

    #[test]
    fn empty_and_header_only_files_are_refused() {
        assert!(csv("").unwrap_err().to_string().contains("empty"));
        assert!(csv("id,name\n")
            .unwrap_err()
            .to_string()
            .contains("at least one data row"));
        assert!(csv("id,id\n1,2\n")
            .unwrap_err()
            .to_string()
            .contains("twice"));
    }

    #[test]
    fn json_lines() {
        let d = DataSet::parse(
            "j",
            Format::JsonLines,
            Order::Sequential,
            OnEnd::Wrap,
            b"{\"id\": 1, \"name\": \"ann\", \"tags\": [1]}\n\n{\"id\": 2, \"name\": \"bob\", \"tags\": null}\n",
        )
        .unwrap();
        assert_eq!(d.rows(), 2);
        let name = d.column("name").unwrap();
        assert_eq!(d.cell(1, name), b"bob");
        assert_eq!(d.cell(0, d.column("tags").unwrap()), b"[1]");
        assert_eq!(d.cell(0, d.column("id").unwrap()), b"1");
        let e = DataSet::parse(
            "j",
            Format::JsonLines,
            Order::Sequential,
            OnEnd::Wrap,
            b"{\"a\":1}\n{\"b\":2}\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(2));
        let e = DataSet::parse(
            "j",
            Format::JsonLines,
            Order::Sequential,
            OnEnd::Wrap,
            b"{\"a\":1}\nnope\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(DataSet::parse(
            "j",
            Format::JsonLines,
            Order::Sequential,
            OnEnd::Wrap,
            b"\n"
        )
        .is_err());
    }

    #[test]
    fn sequential_rows_are_used_once_per_cycle_across_workers() {
        let mut text = String::from("id\n");
        for i in 0..1000 {
            text.push_str(&format!("{i}\n"));
        }
        let d = csv(&text).unwrap();
        // Three workers with an interleaved share each: the union of what
        // they send is every seq once, so every row 6 times in 6000.
        let mut used = vec![0u32; 1000];
        for seq in 0..6000u64 {
            used[d.row_of(seq, 9) as usize] += 1;
        }
        assert!(used.iter().all(|&n| n == 6));
    }

    #[test]
    fn random_rows_are_seeded_and_spread() {
        let mut text = String::from("id\n");
        for i in 0..10 {
            text.push_str(&format!("{i}\n"));
        }
        let d = DataSet::parse(
            "r",
            Format::Csv,
            Order::Random,
            OnEnd::Wrap,
            text.as_bytes(),
        )
        .unwrap();
        let a: Vec<u64> = (0..1000).map(|k| d.row_of(k, 1)).collect();
        let b: Vec<u64> = (0..1000).map(|k| d.row_of(k, 1)).collect();
        let c: Vec<u64> = (0..1000).map(|k| d.row_of(k, 2)).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut n = [0u32; 10];
        for r in a {
            n[r as usize] += 1;
        }
        assert!(n.iter().all(|&x| x > 50), "{n:?}");
    }

    #[test]
    fn too_large_is_refused() {
        let big = vec![b'a'; MAX_DATA_BYTES as usize + 1];
        let e = DataSet::parse("b", Format::Csv, Order::Sequential, OnEnd::Wrap, &big).unwrap_err();
        assert!(e.to_string().contains("at most 256 MiB"), "{e}");
    }

    #[test]
    fn names_round_trip() {
        for f in [Format::Csv, Format::JsonLines] {
            assert_eq!(Format::parse(f.as_str()), Some(f));
        }
        assert_eq!(
            (Format::Csv.as_str(), Format::JsonLines.as_str()),
            ("csv", "jsonl")
        );
        assert_eq!(Format::parse("ndjson"), Some(Format::JsonLines));
        assert_eq!(Format::parse("tsv"), None);
        for o in [Order::Sequential, Order::Random] {
            assert_eq!(Order::parse(o.as_str()), Some(o));
        }
        assert_eq!(
            (Order::Sequential.as_str(), Order::Random.as_str()),
            ("sequential", "random")
        );
        assert_eq!(Order::parse("shuffled"), None);
        for e in [OnEnd::Wrap, OnEnd::Stop] {
            assert_eq!(OnEnd::parse(e.as_str()), Some(e));
        }
        assert_eq!(
            (OnEnd::Wrap.as_str(), OnEnd::Stop.as_str()),
            ("wrap", "stop")
        );
        assert_eq!(OnEnd::parse("loop"), None);
    }

    #[test]
    fn sets_are_equal_by_name_file_options_and_cells() {
        let text = "id,name\n1,a\n2,b\n";
        let parse = |name: &str, order, on_end, text: &str| {
            DataSet::parse(name, Format::Csv, order, on_end, text.as_bytes()).unwrap()
        };
        let a = parse("u", Order::Sequential, OnEnd::Wrap, text);
        // Parsed twice: no shared table, equal cells.
        assert_eq!(a, parse("u", Order::Sequential, OnEnd::Wrap, text));
        assert_eq!(a, a.clone());
        assert_ne!(a, parse("v", Order::Sequential, OnEnd::Wrap, text));
        assert_ne!(a, a.clone().with_file("users.csv"));
        assert_eq!(a.clone().with_file("users.csv").file, "users.csv");
        assert_ne!(a, parse("u", Order::Random, OnEnd::Wrap, text));
        assert_ne!(a, parse("u", Order::Sequential, OnEnd::Stop, text));
        assert_ne!(
            a,
            parse("u", Order::Sequential, OnEnd::Wrap, "id,name\n1,a\n2,c\n")
        );
        let j = DataSet::parse(
            "u",
            Format::JsonLines,
            Order::Sequential,
            OnEnd::Wrap,
            b"{\"id\":1,\"name\":\"a\"}\n{\"id\":2,\"name\":\"b\"}\n",
        )
        .unwrap();
        assert_ne!(a, j, "the same cells from another format");
        assert_eq!(
            format!("{a:?}"),
            "DataSet(\"u\", 2 rows × [\"id\", \"name\"], sequential, wrap)"
        );
    }

    #[test]
    fn memory_is_the_file_plus_four_bytes_a_cell() {
        let mut text = String::from("id\n");
        for i in 0..1000 {
            text.push_str(&format!("{i}\n"));
        }
        let d = csv(&text).unwrap();
        let m = d.memory_bytes();
        assert!(m >= text.len() + 4 * 1000, "{m}");
        assert!(m <= text.len() + 8 * 1000 + 16, "{m}");
    }

    #[test]
    fn exactly_the_size_limit_is_allowed() {
        // All blank: refused as empty, not as too large.
        let e = DataSet::parse(
            "b",
            Format::Csv,
            Order::Sequential,
            OnEnd::Wrap,
            &vec![b'\n'; MAX_DATA_BYTES as usize],
        )
        .unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let big = vec![b'a'; MAX_DATA_BYTES as usize + 1024 * 1024];
        let e = DataSet::parse("b", Format::Csv, Order::Sequential, OnEnd::Wrap, &big).unwrap_err();
        assert!(e.to_string().contains("got 257.0 MiB"), "{e}");
    }

    #[test]
    fn a_blank_or_nameless_header_is_refused() {
        let e = csv("   \n").unwrap_err();
        assert!(e.to_string().contains("the file is empty"), "{e}");
        let e = csv("id,,name\n1,2,3\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1: a name for every column of the header"
        );
    }

    #[test]
    fn at_most_max_columns() {
        let header = |n: usize| {
            (0..n)
                .map(|i| format!("c{i}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let row = |n: usize| vec!["1"; n].join(",");
        let ok = format!("{}\n{}\n", header(MAX_COLUMNS), row(MAX_COLUMNS));
        assert_eq!(csv(&ok).unwrap().columns().len(), MAX_COLUMNS);
        let over = format!("{}\n{}\n", header(MAX_COLUMNS + 1), row(MAX_COLUMNS + 1));
        assert!(csv(&over)
            .unwrap_err()
            .to_string()
            .contains("at most 1024 columns"));
    }

    #[test]
    fn a_json_lines_file_may_not_start_with_an_empty_object() {
        let e = DataSet::parse(
            "j",
            Format::JsonLines,
            Order::Sequential,
            OnEnd::Wrap,
            b"{}\n{\"a\":1}\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.to_string().contains("ragged row"), "{e}");
    }

    #[test]
    fn format_from_file_name() {
        assert_eq!(Format::of_file("a.ndjson"), Format::JsonLines);
        assert_eq!(Format::of_file("a.JSONL"), Format::JsonLines);
        assert_eq!(Format::of_file("a.csv"), Format::Csv);
        assert_eq!(Format::of_file("a.txt"), Format::Csv);
    }
}
