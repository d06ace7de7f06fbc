//! Data files of the next assignment, reassembled from the coordinator's
//! `DataChunk` messages (a data file may be 256 MiB; one message carries
//! at most 1 MiB of it, so the 4 MiB message limit stays as it is).
//!
//! Chunks of one run arrive in order on the session stream, before the
//! `Assignment` that names the files. A chunk of another run starts over;
//! a gap, an overlap or a file larger than it said is refused, and the
//! assignment then fails with that reason instead of running on half a file.

use std::collections::BTreeMap;
use volley_plan::data::MAX_DATA_BYTES;
use volley_proto::pb;

#[derive(Debug, Default)]
pub struct Inbox {
    run_id: String,
    files: BTreeMap<String, File>,
    /// The first problem seen for this run, if any.
    broken: Option<String>,
}

#[derive(Debug, Default)]
struct File {
    total: u64,
    bytes: Vec<u8>,
}

impl Inbox {
    /// Takes one chunk.
    pub fn add(&mut self, c: pb::DataChunk) {
        if c.run_id != self.run_id {
            *self = Inbox {
                run_id: c.run_id.clone(),
                ..Inbox::default()
            };
        }
        if self.broken.is_some() {
            return;
        }
        if c.total_size > MAX_DATA_BYTES {
            self.broken = Some(format!(
                "data file {:?} is {} bytes, above the limit of {MAX_DATA_BYTES}",
                c.file, c.total_size
            ));
            return;
        }
        let f = self.files.entry(c.file.clone()).or_default();
        if f.bytes.is_empty() {
            f.total = c.total_size;
            f.bytes.reserve_exact(c.total_size as usize);
        }
        let end = c.offset.saturating_add(c.data.len() as u64);
        if c.offset != f.bytes.len() as u64 || c.total_size != f.total || end > f.total {
            self.broken = Some(format!(
                "data file {:?}: a chunk at offset {} of {} bytes does not follow the {} bytes received",
                c.file,
                c.offset,
                c.data.len(),
                f.bytes.len()
            ));
            return;
        }
        f.bytes.extend_from_slice(&c.data);
    }

    /// The complete files of `run_id`, by name, or why they cannot be used.
    /// Empties the inbox (the bytes are parsed once, then dropped).
    pub fn take(&mut self, run_id: &str) -> Result<BTreeMap<String, Vec<u8>>, String> {
        let me = std::mem::take(self);
        if me.run_id != run_id {
            return Ok(BTreeMap::new());
        }
        if let Some(why) = me.broken {
            return Err(why);
        }
        let mut out = BTreeMap::new();
        for (name, f) in me.files {
            if f.bytes.len() as u64 != f.total {
                return Err(format!(
                    "data file {name:?} arrived incomplete: {} of {} bytes",
                    f.bytes.len(),
                    f.total
                ));
            }
            out.insert(name, f.bytes);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(run: &str, file: &str, offset: u64, total: u64, data: &[u8]) -> pb::DataChunk {
        pb::DataChunk {
            run_id: run.into(),
            file: file.into(),
            offset,
            total_size: total,
            data: data.to_vec(),
        }
    }

    #[test]
    fn chunks_in_order_reassemble_the_file() {
        let mut inbox = Inbox::default();
        inbox.add(chunk("r", "a.csv", 0, 5, b"id\n"));
        inbox.add(chunk("r", "a.csv", 3, 5, b"1\n"));
        inbox.add(chunk("r", "b.csv", 0, 0, b""));
        let files = inbox.take("r").unwrap();
        assert_eq!(files["a.csv"], b"id\n1\n");
        assert_eq!(files["b.csv"], b"");
        assert!(inbox.take("r").unwrap().is_empty(), "taken once");
    }

    #[test]
    fn gaps_short_files_and_oversize_are_refused() {
        let mut inbox = Inbox::default();
        inbox.add(chunk("r", "a", 0, 10, b"abc"));
        inbox.add(chunk("r", "a", 5, 10, b"xyz"));
        assert!(inbox.take("r").unwrap_err().contains("does not follow"));
        inbox.add(chunk("r", "a", 0, 10, b"abc"));
        assert!(inbox.take("r").unwrap_err().contains("incomplete: 3 of 10"));
        inbox.add(chunk("r", "a", 0, 2, b"abc"));
        assert!(inbox.take("r").is_err(), "more bytes than announced");
        inbox.add(chunk("r", "a", 0, MAX_DATA_BYTES + 1, b""));
        assert!(inbox.take("r").unwrap_err().contains("above the limit"));
    }

    #[test]
    fn another_run_starts_over() {
        let mut inbox = Inbox::default();
        inbox.add(chunk("r1", "a", 0, 10, b"abc"));
        inbox.add(chunk("r2", "a", 0, 3, b"abc"));
        assert_eq!(inbox.take("r2").unwrap()["a"], b"abc");
        assert!(inbox.take("r1").unwrap().is_empty());
    }
}
