//! How a request ended: the error kinds live in [`volley_plan::outcome`],
//! the vocabulary workers and coordinator share.

pub use volley_plan::outcome::ErrorKind;
