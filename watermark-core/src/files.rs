//! Reading files that someone else may have chosen: a path can name a FIFO, a device or a
//! file that grows while it is read, and `metadata().len()` is 0 for all of those. So files are
//! read through a reader that stops one byte past the limit, and only regular files are read.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Reads the regular file at `path`, refusing anything else and anything over `limit` bytes.
/// `what` names the file in errors ("key file", "profile").
pub fn read_limited(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    // Checked before opening: opening a FIFO to read waits for a writer, forever.
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::Unreadable {
            path: path.to_path_buf(),
            reason: format!("the {what} is not a regular file"),
        });
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
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

/// Writes `bytes` to a new file at `path`. Never follows a symbolic link there, and refuses an
/// existing file unless `overwrite`, in which case the file is replaced whole (written beside
/// it, then renamed over it, which replaces a link itself rather than what it points to).
pub fn write_output(path: &Path, bytes: &[u8], overwrite: bool) -> Result<()> {
    use std::io::Write;
    let refused = |reason: &str| Error::Unreadable {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(refused("is a symbolic link; refusing to write through it"))
        }
        Ok(meta) if !meta.is_file() => return Err(refused("exists and is not a regular file")),
        Ok(_) if !overwrite => return Err(refused("exists; pass --force to replace it")),
        Ok(_) | Err(_) => {}
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(Error::io(&temp, e));
    }
    // Without `overwrite`, a file that appeared meanwhile must not be replaced: link the
    // finished file in place (fails if the name exists), else rename over the old file.
    let placed = if overwrite {
        std::fs::rename(&temp, path)
    } else {
        std::fs::hard_link(&temp, path)
    };
    let _ = std::fs::remove_file(&temp);
    placed.map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => refused("exists; pass --force to replace it"),
        _ => Error::io(path, e),
    })
}

/// A fresh directory under the system's temporary one, private whatever the umask: keys are
/// refused in directories others can write, so every test that writes a key uses this.
#[cfg(test)]
pub(crate) fn private_test_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tm-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&dir).expect("create a test directory");
    dir
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

    #[cfg(unix)]
    #[test]
    fn outputs_never_replace_a_file_silently_nor_follow_a_link() {
        let dir = std::env::temp_dir().join(format!("tm-out-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("curve.csv");
        write_output(&out, b"one", false).unwrap();
        let err = write_output(&out, b"two", false).unwrap_err().to_string();
        assert!(err.contains("--force"), "{err}");
        assert_eq!(std::fs::read(&out).unwrap(), b"one");
        write_output(&out, b"two", true).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"two");
        let victim = dir.join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let link = dir.join("link.png");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        for overwrite in [false, true] {
            let err = write_output(&link, b"x", overwrite)
                .unwrap_err()
                .to_string();
            assert!(err.contains("symbolic link"), "{err}");
        }
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(names.len(), 3, "no temporary file left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
