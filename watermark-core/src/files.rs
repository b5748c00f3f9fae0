//! Reading files that someone else may have chosen: a path can name a FIFO, a device or a
//! file that grows while it is read, and `metadata().len()` is 0 for all of those. So files are
//! read through a reader that stops one byte past the limit, and only regular files are read.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Reads the regular file at `path`, refusing anything else and anything over `limit` bytes.
/// `what` names the file in errors ("key file", "profile").
pub fn read_limited(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::Unreadable {
            path: path.to_path_buf(),
            reason: format!("the {what} is not a regular file"),
        });
    }
    let mut bytes = Vec::with_capacity(meta.len().min(limit) as usize);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(Error::Unreadable {
            path: path.to_path_buf(),
            reason: format!("the {what} is larger than {limit} bytes"),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_devices_directories_and_oversized_files() {
        for path in ["/dev/zero", "/dev/null", "/tmp"] {
            if Path::new(path).exists() {
                let err = read_limited(Path::new(path), 10, "key file").unwrap_err();
                assert!(
                    err.to_string().contains("not a regular file")
                        || matches!(err, Error::Io { .. }),
                    "{path}: {err}"
                );
            }
        }
        let dir = std::env::temp_dir().join(format!("tm-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        std::fs::write(&path, [7u8; 11]).unwrap();
        assert!(read_limited(&path, 10, "x")
            .unwrap_err()
            .to_string()
            .contains("larger than 10"));
        assert_eq!(read_limited(&path, 11, "x").unwrap(), vec![7u8; 11]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
