//! Reading the optional JSON files of a model directory (`tokenizer_config.json`,
//! `1_Pooling/config.json`, `modules.json`, ...).

use smelt_engine::formats::json::{self, Json};
use smelt_engine::{Error, Result};
use std::path::Path;

/// The parsed JSON at `path`, or `None` when the file does not exist. Errors name the file
/// when it cannot be read or is malformed.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Json>> {
    let file = || path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Io {
                file: file(),
                detail: format!("cannot read: {e}"),
            })
        }
    };
    json::parse(&text).map(Some).map_err(|e| Error::Format {
        file: file(),
        detail: format!("malformed JSON: {e}"),
    })
}
