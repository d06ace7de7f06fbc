//! Files a scenario references, read through the caller's [`ReadFile`]:
//! - `body_file` and `tls_ca`, carried inline in the plan: each at most
//!   1 MiB, all together small enough for the plan to travel to every worker
//!   in one message ([`Files::read`]);
//! - `[[data]]` files, which may be far larger (up to
//!   [`MAX_DATA_BYTES`] together) and are counted apart
//!   ([`Files::read_data`]).

use volley_plan::data::MAX_DATA_BYTES;
use volley_plan::model::MAX_INLINE_BODY;

use super::error::Fail;
use super::raw::Section;
use super::units::quote;
use super::ReadFile;

/// Most bytes of referenced files one plan carries, counting a file once per
/// use (the plan reaches every worker in one gRPC message of at most 4 MiB).
pub const MAX_FILES_TOTAL: usize = 3 * 1024 * 1024;
/// Longest file name accepted.
const MAX_NAME: usize = 4096;

/// The resolver and what has been read through it so far.
pub(super) struct Files<'r> {
    read: ReadFile<'r>,
    carried: usize,
    /// Bytes of `[[data]]` files read so far.
    data: u64,
}

impl<'r> Files<'r> {
    pub fn new(read: ReadFile<'r>) -> Self {
        Files {
            read,
            carried: 0,
            data: 0,
        }
    }

    /// The name written under `key` and the file's bytes, `None` when the
    /// key is absent. Errors name the field.
    fn fetch<'s>(
        &self,
        sec: &Section<'s, '_>,
        key: &str,
        example: &str,
    ) -> Result<Option<(&'s str, Vec<u8>)>, Fail> {
        let Some(name) = sec.str(key)? else {
            return Ok(None);
        };
        if name.trim().is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
            return Err(sec.fail(
                key,
                format!(
                    "expected a file path relative to the scenario file, such as {example:?}, got {}",
                    quote(name)
                ),
            ));
        }
        let data = (self.read)(name)
            .map_err(|e| sec.fail(key, format!("cannot read {}: {e}", quote(name))))?;
        Ok(Some((name, data)))
    }

    /// The bytes of a `[[data]]` file named by `key`, `None` when the key
    /// is absent. Not counted against the inline limits: data files may be
    /// up to [`MAX_DATA_BYTES`], all of them together.
    pub fn read_data(
        &mut self,
        sec: &Section<'_, '_>,
        key: &str,
    ) -> Result<Option<(String, Vec<u8>)>, Fail> {
        let Some((name, data)) = self.fetch(sec, key, "users.csv")? else {
            return Ok(None);
        };
        let mib = |n: u64| n as f64 / 1048576.0;
        let limit = MAX_DATA_BYTES >> 20;
        let len = data.len() as u64;
        if len > MAX_DATA_BYTES {
            return Err(sec.fail(
                key,
                format!(
                    "expected a data file of at most {limit} MiB; {} is {:.1} MiB or more",
                    quote(name),
                    mib(len)
                ),
            ));
        }
        self.data += len;
        if self.data > MAX_DATA_BYTES {
            return Err(sec.fail(
                key,
                format!(
                    "the data files of this scenario add up to {:.1} MiB with {}; expected at \
                     most {limit} MiB in all (every worker holds every data set in memory)",
                    mib(self.data),
                    quote(name)
                ),
            ));
        }
        Ok(Some((name.to_owned(), data)))
    }

    /// The bytes of the file named by `key` (a path relative to the scenario
    /// file), `None` when the key is absent. Errors name the field.
    pub fn read(&mut self, sec: &Section<'_, '_>, key: &str) -> Result<Option<Vec<u8>>, Fail> {
        let Some((name, data)) = self.fetch(sec, key, "payload.bin")? else {
            return Ok(None);
        };
        if data.len() > MAX_INLINE_BODY {
            return Err(sec.fail(
                key,
                format!(
                    "expected a file of at most {MAX_INLINE_BODY} bytes (1 MiB); {} is larger",
                    quote(name)
                ),
            ));
        }
        self.carried += data.len();
        if self.carried > MAX_FILES_TOTAL {
            return Err(sec.fail(
                key,
                format!(
                    "the files this scenario references add up to more than {MAX_FILES_TOTAL} \
                     bytes (3 MiB, counting a file once per use); the plan travels to every \
                     worker in one message, so use smaller files or `body_size`"
                ),
            ));
        }
        Ok(Some(data))
    }
}
