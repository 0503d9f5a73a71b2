//! What the CLI writes: lines on stdout that fail with a message (not a panic) when stdout is
//! closed or full, and output files that appear whole or not at all.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `print!` that returns an error instead of panicking when stdout is closed (a broken pipe,
/// `| head -1`) or full (`> /dev/full`); flushed at once.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::stdout(format_args!($($arg)*))
    };
}

/// `println!` that returns an error instead of panicking, as [`out!`].
macro_rules! outln {
    () => {
        $crate::output::stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {out, outln};

/// The error for a failed write to stdout.
pub fn stdout_error(e: std::io::Error) -> String {
    format!("cannot write stdout: {e}")
}

/// Writes `text` to stdout and flushes it; a failure is [`stdout_error`]'s message.
pub fn stdout(text: fmt::Arguments<'_>) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(text)
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

/// An output file written whole or not at all: its contents go to a temporary file beside it
/// (created when this value is, so a missing or read-only directory is found before any
/// work), renamed over the destination by [`PendingFile::commit`]. Dropped uncommitted (a
/// failed write, an error before it), the temporary file is removed and the destination is
/// left as it was.
pub struct PendingFile {
    /// Where the file goes.
    dest: PathBuf,
    /// The temporary file beside it.
    temp: PathBuf,
    /// Whether the temporary file was renamed to `dest`.
    committed: bool,
}

impl PendingFile {
    /// Creates the temporary file for `dest` (`.NAME.smelt-PID.tmp` in its directory); an error
    /// naming `option` and the path when the directory is missing or cannot be written, or
    /// `dest` is a directory.
    pub fn create(option: &str, dest: &str) -> Result<PendingFile, String> {
        let path = Path::new(dest);
        let name = path
            .file_name()
            .ok_or_else(|| format!("{option} {dest}: not a file name"))?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            return Err(format!(
                "{option} {dest}: the directory {} does not exist",
                dir.display()
            ));
        }
        if path.is_dir() {
            return Err(format!("{option} {dest}: is a directory, not a file"));
        }
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".smelt-{}.tmp", std::process::id()));
        let temp = dir.join(temp_name);
        std::fs::File::create(&temp)
            .map_err(|e| format!("{option} {dest}: cannot write in {}: {e}", dir.display()))?;
        Ok(PendingFile {
            dest: path.to_path_buf(),
            temp,
            committed: false,
        })
    }

    /// The temporary file to write the contents to.
    pub fn temp(&self) -> &Path {
        &self.temp
    }

    /// The message of `err`, an error writing the temporary file, naming the destination.
    pub fn error(&self, err: smelt_engine::Error) -> String {
        match err {
            smelt_engine::Error::Io { detail, .. } | smelt_engine::Error::Format { detail, .. } => {
                format!("{}: {detail}", self.dest.display())
            }
            other => other.to_string(),
        }
    }

    /// Renames the written temporary file over the destination (removed when that fails).
    pub fn commit(mut self) -> Result<(), String> {
        std::fs::rename(&self.temp, &self.dest)
            .map_err(|e| format!("cannot write {}: {e}", self.dest.display()))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for PendingFile {
    /// Removes the temporary file of an output that was never committed.
    fn drop(&mut self) {
        if !self.committed {
            std::fs::remove_file(&self.temp).ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_file_appears_whole_on_commit_and_not_at_all_otherwise() {
        let dir = std::env::temp_dir().join(format!("smelt-pending-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("out.bin");
        let dest_text = dest.to_str().unwrap();
        std::fs::write(&dest, b"old").unwrap();
        let pending = PendingFile::create("--output", dest_text).unwrap();
        std::fs::write(pending.temp(), b"new").unwrap();
        // Dropped uncommitted: the old file stays, the temporary one goes.
        drop(pending);
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let pending = PendingFile::create("--output", dest_text).unwrap();
        std::fs::write(pending.temp(), b"new").unwrap();
        pending.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let missing = dir.join("no-such-dir").join("out.bin");
        let err = PendingFile::create("--output", missing.to_str().unwrap())
            .err()
            .unwrap();
        assert!(
            err.starts_with("--output ") && err.contains("does not exist"),
            "{err}"
        );
        let err = PendingFile::create("--output", dir.to_str().unwrap())
            .err()
            .unwrap();
        assert!(err.contains("is a directory"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
