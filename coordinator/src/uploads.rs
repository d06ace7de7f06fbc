//! Files a client sends before it submits a run (`UploadFiles`): data files
//! of up to 256 MiB arrive in chunks of 1 MiB, so no message exceeds the
//! 4 MiB limit. An upload is kept until a `SubmitRun` names it, for at most
//! [`KEEP`], and only a few at a time: memory stays bounded whatever
//! clients do.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use volley_plan::data::MAX_DATA_BYTES;
use volley_proto::pb;

/// Most bytes of one upload: the data files plus the small files (body
/// files, CA certificates) a scenario may reference.
pub const MAX_UPLOAD_BYTES: u64 = MAX_DATA_BYTES + 8 * 1024 * 1024;
/// Most uploads waiting for their run.
const MAX_WAITING: usize = 4;
/// How long an upload waits for the run that names it.
const KEEP: Duration = Duration::from_secs(600);
/// Most files in one upload.
const MAX_FILES: usize = 256;

/// One upload being received: files by name, each complete once its bytes
/// reach its announced size.
#[derive(Debug, Default)]
pub struct Upload {
    files: BTreeMap<String, (u64, Vec<u8>)>,
    bytes: u64,
}

impl Upload {
    /// Adds one chunk; chunks of a file come in order.
    pub fn add(&mut self, c: pb::FileChunk) -> Result<(), String> {
        if c.name.is_empty() || c.name.len() > 4096 {
            return Err("a chunk without a valid file name".into());
        }
        if !self.files.contains_key(&c.name) && self.files.len() >= MAX_FILES {
            return Err(format!("more than {MAX_FILES} files in one upload"));
        }
        let (total, bytes) = self
            .files
            .entry(c.name.clone())
            .or_insert_with(|| (c.total_size, Vec::new()));
        let end = c.offset.saturating_add(c.data.len() as u64);
        if c.total_size != *total || c.offset != bytes.len() as u64 || end > *total {
            return Err(format!(
                "{:?}: a chunk at offset {} ({} bytes) does not follow the {} bytes received of {}",
                c.name,
                c.offset,
                c.data.len(),
                bytes.len(),
                total
            ));
        }
        self.bytes += c.data.len() as u64;
        if self.bytes > MAX_UPLOAD_BYTES {
            return Err(format!(
                "the upload exceeds {} MiB; data files may add up to {} MiB",
                MAX_UPLOAD_BYTES >> 20,
                MAX_DATA_BYTES >> 20
            ));
        }
        if bytes.is_empty() {
            bytes.reserve_exact(*total as usize);
        }
        bytes.extend_from_slice(&c.data);
        Ok(())
    }

    /// The files, once every one is complete.
    pub fn finish(self) -> Result<BTreeMap<String, Vec<u8>>, String> {
        let mut out = BTreeMap::new();
        for (name, (total, bytes)) in self.files {
            if bytes.len() as u64 != total {
                return Err(format!(
                    "{name:?} arrived incomplete: {} of {total} bytes",
                    bytes.len()
                ));
            }
            out.insert(name, bytes);
        }
        Ok(out)
    }
}

/// Files by the name the scenario gives them.
pub type Files = BTreeMap<String, Vec<u8>>;

/// Finished uploads waiting for their run.
#[derive(Default)]
pub struct Uploads {
    waiting: Mutex<HashMap<String, (Instant, Files)>>,
}

impl Uploads {
    /// Keeps a finished upload and returns its id.
    pub fn keep(&self, files: BTreeMap<String, Vec<u8>>) -> Result<String, String> {
        let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        w.retain(|_, (at, _)| at.elapsed() < KEEP);
        if w.len() >= MAX_WAITING {
            return Err(format!(
                "{MAX_WAITING} uploads are already waiting for their run; submit those first"
            ));
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        w.insert(id.clone(), (Instant::now(), files));
        Ok(id)
    }

    /// Takes the upload `id` (once).
    pub fn take(&self, id: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        w.remove(id).map(|(_, f)| f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(name: &str, offset: u64, total: u64, data: &[u8]) -> pb::FileChunk {
        pb::FileChunk {
            name: name.into(),
            offset,
            total_size: total,
            data: data.to_vec(),
        }
    }

    #[test]
    fn chunks_reassemble_and_uploads_are_taken_once() {
        let mut u = Upload::default();
        u.add(chunk("a.csv", 0, 6, b"id\n")).unwrap();
        u.add(chunk("b.bin", 0, 1, b"x")).unwrap();
        u.add(chunk("a.csv", 3, 6, b"12\n")).unwrap();
        let files = u.finish().unwrap();
        assert_eq!(files["a.csv"], b"id\n12\n");
        let uploads = Uploads::default();
        let id = uploads.keep(files).unwrap();
        assert_eq!(uploads.take(&id).unwrap()["b.bin"], b"x");
        assert!(uploads.take(&id).is_none());
    }

    #[test]
    fn out_of_order_short_and_oversized_uploads_are_refused() {
        let mut u = Upload::default();
        u.add(chunk("a", 0, 10, b"abc")).unwrap();
        assert!(u
            .add(chunk("a", 4, 10, b"x"))
            .unwrap_err()
            .contains("does not follow"));
        assert!(u.finish().unwrap_err().contains("incomplete"));
        let mut u = Upload::default();
        assert!(u.add(chunk("a", 0, 2, b"abc")).is_err());
        let mut u = Upload::default();
        let big = vec![0u8; 1 << 20];
        let total = MAX_UPLOAD_BYTES + (1 << 20);
        let mut offset = 0;
        let err = loop {
            match u.add(chunk("big", offset, total, &big)) {
                Ok(()) => offset += big.len() as u64,
                Err(e) => break e,
            }
        };
        assert!(err.contains("exceeds"), "{err}");
    }

    #[test]
    fn few_uploads_wait_at_once() {
        let uploads = Uploads::default();
        for _ in 0..MAX_WAITING {
            uploads.keep(BTreeMap::new()).unwrap();
        }
        assert!(uploads.keep(BTreeMap::new()).is_err());
    }
}
