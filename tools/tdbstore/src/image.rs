//! The image file: loaded whole into the flash simulator, written back by rename.
//!
//! The file is the device, so the rules are a device's: its size is fixed by the geometry
//! (a length mismatch is refused, not repaired), a missing file is a fresh erased part, and a
//! write is all-or-nothing. The new contents go to a temporary file in the image's own
//! directory (a rename is atomic only within one file system), are synced, and then renamed
//! over the image, so an interrupted run leaves the old image intact.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use flash_sim::Geometry;

use crate::cli::ResolvedGeometry;
use crate::error::CliError;

/// An image's contents and whether they came from an existing file.
pub struct Loaded {
    /// The region's bytes (`geometry.size` of them).
    pub bytes: Vec<u8>,
    /// False when the file did not exist and `bytes` is a fresh erased device.
    pub existed: bool,
}

/// Reads the image at `path`; a missing file becomes a fresh device when `create` is set.
pub fn load(path: &Path, geo: &ResolvedGeometry, create: bool) -> Result<Loaded, CliError> {
    let g: Geometry = geo.geometry;
    let size_error = |actual: u64| CliError::ImageSize {
        path: path.to_owned(),
        actual,
        expected: g.size,
        geometry: geo.name,
    };
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if !create {
                return Err(CliError::MissingImage(path.to_owned()));
            }
            return Ok(Loaded { bytes: vec![g.erase_value; g.size as usize], existed: false });
        }
        Err(e) => return Err(CliError::io(path, e)),
    };
    // Checked before reading, so a wrong `--geometry` never loads a large unrelated file.
    if meta.is_file() && meta.len() != u64::from(g.size) {
        return Err(size_error(meta.len()));
    }
    let bytes = fs::read(path).map_err(|e| CliError::io(path, e))?;
    // The file may have changed since the metadata call.
    if bytes.len() as u64 != u64::from(g.size) {
        return Err(size_error(bytes.len() as u64));
    }
    Ok(Loaded { bytes, existed: true })
}

/// Replaces the image at `path` with `bytes`, atomically.
pub fn save(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    // Follow a symlink so the link keeps pointing at the (updated) image.
    let (target, old_perms) = match fs::canonicalize(path) {
        Ok(t) => {
            let perms = fs::metadata(&t).ok().map(|m| m.permissions());
            (t, perms)
        }
        Err(_) => (path.to_owned(), None),
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tdbstore-").suffix(".tmp");
    // A new image gets the permissions any new file would (0666 less the umask), not the
    // temporary file's owner-only 0600; an existing image keeps its own (set below).
    #[cfg(unix)]
    if old_perms.is_none() {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(&dir).map_err(|e| CliError::io(&dir, e))?;
    let write = |f: &mut fs::File| -> io::Result<()> {
        f.write_all(bytes)?;
        if let Some(p) = old_perms {
            f.set_permissions(p)?;
        }
        f.sync_all()
    };
    write(tmp.as_file_mut()).map_err(|e| CliError::io(tmp.path(), e))?;
    // On failure the temporary file is dropped, which deletes it.
    tmp.persist(&target).map_err(|e| CliError::io(&target, e.error))?;
    sync_dir(&dir);
    Ok(())
}

/// Makes the rename itself durable; best effort, since the data is already safe in the file
/// and not every platform or file system can sync a directory.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> ResolvedGeometry {
        ResolvedGeometry { geometry: Geometry::SMALL, name: "small" }
    }

    #[test]
    fn missing_wrong_size_and_roundtrip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("img.bin");
        assert!(matches!(load(&p, &small(), false), Err(CliError::MissingImage(_))));
        let fresh = load(&p, &small(), true).expect("fresh device");
        assert!(!fresh.existed && fresh.bytes == vec![0xFF; 32768]);
        assert!(!p.exists(), "loading never creates the file");

        fs::write(&p, [1u8; 100]).expect("write");
        assert!(matches!(
            load(&p, &small(), true),
            Err(CliError::ImageSize { actual: 100, expected: 32768, .. })
        ));
        assert_eq!(fs::read(&p).expect("read").len(), 100, "never truncated or padded");

        let data = vec![7u8; 32768];
        save(&p, &data).expect("save");
        let back = load(&p, &small(), false).expect("load");
        assert!(back.existed && back.bytes == data);
        let entries = fs::read_dir(dir.path()).expect("dir").count();
        assert_eq!(entries, 1, "no temporary file left behind");
    }
}
