//! Files a scenario references (`body_file`, `tls_ca`): read through the
//! caller's [`ReadFile`], each at most 1 MiB, all together small enough for
//! the plan to travel to every worker in one message.

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
}

impl<'r> Files<'r> {
    pub fn new(read: ReadFile<'r>) -> Self {
        Files { read, carried: 0 }
    }

    /// The bytes of the file named by `key` (a path relative to the scenario
    /// file), `None` when the key is absent. Errors name the field.
    pub fn read(&mut self, sec: &Section<'_, '_>, key: &str) -> Result<Option<Vec<u8>>, Fail> {
        let Some(name) = sec.str(key)? else {
            return Ok(None);
        };
        if name.trim().is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
            return Err(sec.fail(
                key,
                format!(
                    "expected a file path relative to the scenario file, such as \"payload.bin\", got {}",
                    quote(name)
                ),
            ));
        }
        let data = (self.read)(name)
            .map_err(|e| sec.fail(key, format!("cannot read {}: {e}", quote(name))))?;
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
