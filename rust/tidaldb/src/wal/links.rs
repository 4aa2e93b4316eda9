//! Refusing symbolic links where the log keeps its files.
//!
//! A link inside a data directory makes the database write somewhere nobody chose: a
//! linked lock file has its target truncated, a linked log directory or segment puts the
//! log (and its truncation of a torn tail) on another file. So links are refused, before
//! anything is written, with an error naming the link. The data directory itself may be
//! a link: that is how a directory is commonly placed on another disk.

use std::io::ErrorKind as IoKind;
use std::path::Path;

use super::storage::{RealFs, Storage};
use crate::error::{Result, TidalError};

/// The error for a symbolic link at `path`.
fn link_refused(path: &Path) -> TidalError {
    TidalError::InvalidArgument {
        name: "data_dir",
        reason: format!(
            "{} is a symbolic link; tidaldb does not follow links inside its data directory. \
             Replace it with the file or directory itself",
            path.display()
        ),
    }
}

/// Refuses `path` if it is a symbolic link; a missing path is fine.
pub fn refuse_link(path: &Path) -> Result<()> {
    refuse_link_on(&RealFs, path)
}

fn refuse_link_on(fs: &dyn Storage, path: &Path) -> Result<()> {
    match fs.is_symlink(path) {
        Ok(true) => Err(link_refused(path)),
        Ok(false) => Ok(()),
        Err(e) => Err(TidalError::Io {
            context: format!("inspecting {}", path.display()),
            source: e,
        }),
    }
}

/// Refuses a log directory that is a link or holds one. A missing directory is fine.
pub fn refuse_links_in_log_dir(dir: &Path) -> Result<()> {
    refuse_links_in_log_dir_on(&RealFs, dir)
}

/// [`refuse_links_in_log_dir`] on `fs`.
pub(super) fn refuse_links_in_log_dir_on(fs: &dyn Storage, dir: &Path) -> Result<()> {
    refuse_link_on(fs, dir)?;
    let entries = match fs.list_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == IoKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(TidalError::Io {
                context: format!("listing {}", dir.display()),
                source: e,
            });
        }
    };
    match entries.into_iter().find(|e| e.is_symlink) {
        Some(link) => Err(link_refused(&link.path)),
        None => Ok(()),
    }
}
