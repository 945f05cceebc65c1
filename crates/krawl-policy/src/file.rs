//! `file://` references and file paths named by jobs: resolved before they are matched or read.

use std::path::{Component, Path, PathBuf};

/// Why a file path is refused. The messages name the path (paths are not secrets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("{path}: the path must be absolute")]
    NotAbsolute { path: String },
    #[error("{path}: `.` and `..` segments are not allowed (they could leave an allowed directory); give the plain absolute path")]
    DotSegment { path: String },
    #[error("{path}: cannot be resolved: {reason}")]
    Unresolvable { path: String, reason: String },
    #[error("{path} resolves to {resolved}, under {root}, which holds no secrets files (and /proc/self/environ holds the agent's own credentials)")]
    Pseudo {
        path: String,
        resolved: String,
        root: &'static str,
    },
    #[error("{path} resolves to {resolved}, which is not a regular file")]
    NotRegular { path: String, resolved: String },
}

/// Kernel pseudo file systems: never a place for a secret or a certificate file.
const PSEUDO_ROOTS: &[&str] = &["/proc", "/sys", "/dev"];

/// The real path of `path` (every symlink resolved), refused when `path` is relative, has a `.`
/// or `..` segment, does not exist, resolves under `/proc`, `/sys` or `/dev`, or is not a regular
/// file. Allowlists match the returned path, and the caller reads the returned path, so a
/// symlink cannot lead a reference out of the directory a pattern allows.
pub fn canonical_file(path: &Path) -> Result<PathBuf, FileError> {
    let shown = || path.display().to_string();
    if !path.is_absolute() {
        return Err(FileError::NotAbsolute { path: shown() });
    }
    // `Path::components` drops `.` in the middle of a path; look at the raw segments.
    let raw = path.to_string_lossy();
    if raw.split('/').any(|seg| seg == "." || seg == "..")
        || path.components().any(|c| matches!(c, Component::ParentDir))
    {
        return Err(FileError::DotSegment { path: shown() });
    }
    let resolved = std::fs::canonicalize(path).map_err(|e| FileError::Unresolvable {
        path: shown(),
        reason: e.to_string(),
    })?;
    if let Some(root) = PSEUDO_ROOTS.iter().find(|r| resolved.starts_with(r)) {
        return Err(FileError::Pseudo {
            path: shown(),
            resolved: resolved.display().to_string(),
            root,
        });
    }
    let meta = std::fs::metadata(&resolved).map_err(|e| FileError::Unresolvable {
        path: shown(),
        reason: e.to_string(),
    })?;
    if !meta.is_file() {
        return Err(FileError::NotRegular {
            path: shown(),
            resolved: resolved.display().to_string(),
        });
    }
    Ok(resolved)
}

/// A path pattern (`/run/secrets/*`) with its literal directory prefix resolved, when that
/// directory exists: the pattern is compared with resolved paths, so a pattern written through
/// a symlinked directory (`/var/run` → `/run`) must be resolved the same way.
pub fn canonical_pattern_path(pattern: &str) -> String {
    let glob_at = pattern.find(['*', '?', '[', '{']).unwrap_or(pattern.len());
    let literal = &pattern[..glob_at];
    let Some(dir_end) = literal.rfind('/') else {
        return pattern.to_string();
    };
    let dir = &pattern[..dir_end];
    if dir.is_empty() || dir.split('/').any(|s| s == "." || s == "..") {
        return pattern.to_string();
    }
    match std::fs::canonicalize(dir) {
        Ok(real) => format!("{}{}", real.display(), &pattern[dir_end..]),
        Err(_) => pattern.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_symlinks_and_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let allowed = base.join("allowed");
        let elsewhere = base.join("elsewhere");
        std::fs::create_dir_all(&allowed).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::write(allowed.join("pw"), "ok").unwrap();
        std::fs::write(elsewhere.join("x"), "secret").unwrap();
        std::os::unix::fs::symlink(elsewhere.join("x"), allowed.join("link")).unwrap();

        assert_eq!(
            canonical_file(&allowed.join("pw")).unwrap(),
            allowed.join("pw")
        );
        // A symlink inside the allowed directory resolves to where it points.
        assert_eq!(
            canonical_file(&allowed.join("link")).unwrap(),
            elsewhere.join("x")
        );
        for p in [
            format!("{}/../elsewhere/x", allowed.display()),
            format!("{}/./pw", allowed.display()),
        ] {
            assert!(
                matches!(
                    canonical_file(Path::new(&p)),
                    Err(FileError::DotSegment { .. })
                ),
                "{p}"
            );
        }
        assert!(matches!(
            canonical_file(Path::new("relative/pw")),
            Err(FileError::NotAbsolute { .. })
        ));
        assert!(matches!(
            canonical_file(&allowed.join("missing")),
            Err(FileError::Unresolvable { .. })
        ));
        assert!(matches!(
            canonical_file(&allowed),
            Err(FileError::NotRegular { .. })
        ));
        for p in [
            "/proc/self/environ",
            "/dev/zero",
            "/sys/kernel/mm/transparent_hugepage/enabled",
        ] {
            let e = canonical_file(Path::new(p));
            assert!(
                matches!(
                    e,
                    Err(FileError::Pseudo { .. }) | Err(FileError::Unresolvable { .. })
                ),
                "{p}: {e:?}"
            );
        }
        // A symlink to /proc from an allowed place is refused by where it resolves.
        std::os::unix::fs::symlink("/proc/self/environ", allowed.join("env")).unwrap();
        assert!(matches!(
            canonical_file(&allowed.join("env")),
            Err(FileError::Pseudo { .. })
        ));
    }

    #[test]
    fn pattern_prefixes_are_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(base.join("real")).unwrap();
        std::os::unix::fs::symlink(base.join("real"), base.join("alias")).unwrap();
        assert_eq!(
            canonical_pattern_path(&format!("{}/alias/*", base.display())),
            format!("{}/real/*", base.display())
        );
        assert_eq!(canonical_pattern_path("/no/such/dir/*"), "/no/such/dir/*");
        assert_eq!(canonical_pattern_path("*"), "*");
    }
}
