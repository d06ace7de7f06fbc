//! Exit codes, as DESIGN.md promises them to CI scripts.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// All thresholds and the regression check passed.
    Ok = 0,
    /// A threshold or the regression check failed.
    Failed = 1,
    /// Bad input: scenario, flags.
    BadInput = 2,
    /// The run could not complete: no workers, target unreachable,
    /// coordinator lost.
    Incomplete = 3,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// An error for the user, with the exit code it warrants.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
}

impl CliError {
    pub fn bad_input(message: impl Into<String>) -> Self {
        CliError {
            exit: Exit::BadInput,
            message: message.into(),
        }
    }

    pub fn incomplete(message: impl Into<String>) -> Self {
        CliError {
            exit: Exit::Incomplete,
            message: message.into(),
        }
    }

    /// `what` is embedded only with the `local` cargo feature (on by
    /// default), and this binary was built without it: bad input, exit 2.
    pub fn needs_local(what: &str) -> Self {
        CliError::bad_input(format!(
            "{what} needs the `local` cargo feature, and this volley was built without it \
             (build it with default features)"
        ))
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}
