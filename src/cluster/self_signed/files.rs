//! Writing the serving pair where the server's file watcher (`admission::tls::watch`) reads it.
//!
//! Each file is written to a temporary file in the same directory and renamed over the old one,
//! so the watcher never reads half a file; the key file is created with mode 0600 before any byte
//! of the key is in it. The key is written before the certificate: a poll between the two renames
//! sees a pair that does not match, which the watcher refuses (keeping the old pair) and loads
//! at its next poll.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::admission::tls::CertFiles;

/// Write `cert`/`key` unless the files already hold them; true when something was written.
pub fn write_pair(
    files: &CertFiles,
    cert: &str,
    key: &str,
) -> Result<bool, (String, std::io::Error)> {
    let same = |path: &Path, text: &str| std::fs::read(path).is_ok_and(|b| b == text.as_bytes());
    if same(&files.cert, cert) && same(&files.key, key) {
        return Ok(false);
    }
    write_atomic(&files.key, key.as_bytes(), 0o600)?;
    write_atomic(&files.cert, cert.as_bytes(), 0o644)?;
    Ok(true)
}

fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), (String, std::io::Error)> {
    let err = |e| (path.display().to_string(), e);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_once_with_a_private_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = CertFiles {
            cert: dir.path().join("sub/tls.crt"),
            key: dir.path().join("sub/tls.key"),
        };
        assert!(write_pair(&files, "CERT", "KEY").unwrap());
        assert!(!write_pair(&files, "CERT", "KEY").unwrap(), "unchanged");
        assert_eq!(std::fs::read_to_string(&files.cert).unwrap(), "CERT");
        let mode = std::fs::metadata(&files.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(write_pair(&files, "CERT2", "KEY").unwrap());
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
