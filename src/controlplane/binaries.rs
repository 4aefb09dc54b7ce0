//! Where the control-plane binaries live.
//!
//! `hack/controlplane/build.sh` installs them under the user's cache directory, outside the work
//! tree, so that `cargo clean` and fresh clones keep a 9-minute build. The versions here must
//! match `hack/controlplane/versions.sh` (a unit test checks it).

use std::env;
use std::path::{Path, PathBuf};

use super::Error;

/// Kubernetes release of kube-apiserver, kube-controller-manager and kubectl.
pub const K8S_VERSION: &str = "v1.34.4";
/// etcd release paired with [`K8S_VERSION`] (Kubernetes 1.34 pins the etcd 3.6 client).
pub const ETCD_VERSION: &str = "v3.6.16";

/// Environment variable naming one directory that holds all four binaries; it wins over the
/// cache directories.
pub const BIN_DIR_ENV: &str = "EGRESS_CP_BIN_DIR";

/// Paths of the four executables a [`super::ControlPlane`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
    pub kube_controller_manager: PathBuf,
    pub kubectl: PathBuf,
}

impl Binaries {
    /// Finds the binaries: `dir` if given, else `$EGRESS_CP_BIN_DIR`, else the directories that
    /// `hack/controlplane/build.sh` writes. Every missing file is named in the error.
    pub fn locate(dir: Option<&Path>) -> Result<Self, Error> {
        let env_dir = env::var_os(BIN_DIR_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let bins = match dir.map(Path::to_path_buf).or(env_dir) {
            Some(d) => Self::in_dir(&d),
            None => {
                let root = cache_root().ok_or_else(|| Error::BinariesMissing {
                    missing: "neither XDG_CACHE_HOME nor HOME is set, so the build cache \
                              directory is unknown"
                        .to_string(),
                })?;
                Self::in_cache(&root)
            }
        };
        let missing: Vec<String> = bins
            .all()
            .iter()
            .filter(|p| !p.is_file())
            .map(|p| p.display().to_string())
            .collect();
        if missing.is_empty() {
            Ok(bins)
        } else {
            Err(Error::BinariesMissing {
                missing: missing.join(", "),
            })
        }
    }

    /// All four binaries in one directory (the `EGRESS_CP_BIN_DIR` layout).
    pub fn in_dir(dir: &Path) -> Self {
        Binaries {
            etcd: dir.join("etcd"),
            kube_apiserver: dir.join("kube-apiserver"),
            kube_controller_manager: dir.join("kube-controller-manager"),
            kubectl: dir.join("kubectl"),
        }
    }

    /// The layout of build.sh: one directory per pinned release, so that a version bump never
    /// runs stale binaries.
    pub fn in_cache(cache_root: &Path) -> Self {
        let k8s = cache_root.join(format!("k8s-{K8S_VERSION}")).join("bin");
        let etcd = cache_root.join(format!("etcd-{ETCD_VERSION}")).join("bin");
        Binaries {
            etcd: etcd.join("etcd"),
            kube_apiserver: k8s.join("kube-apiserver"),
            kube_controller_manager: k8s.join("kube-controller-manager"),
            kubectl: k8s.join("kubectl"),
        }
    }

    fn all(&self) -> [&Path; 4] {
        [
            &self.etcd,
            &self.kube_apiserver,
            &self.kube_controller_manager,
            &self.kubectl,
        ]
    }
}

/// `${XDG_CACHE_HOME:-$HOME/.cache}/egress-webhook`, as in build.sh. Like the shell expansion,
/// an empty XDG_CACHE_HOME counts as unset.
pub fn cache_root() -> Option<PathBuf> {
    let base = match env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(env::var_os("HOME").filter(|v| !v.is_empty())?).join(".cache"),
    };
    Some(base.join("egress-webhook"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// build.sh and this module must agree on the pinned versions, or tests would look for
    /// binaries that build.sh never writes.
    #[test]
    fn versions_match_versions_sh() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/controlplane/versions.sh");
        let text = std::fs::read_to_string(&path).expect("read versions.sh");
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(str::trim)
                .map(str::to_string)
        };
        assert_eq!(value("K8S_VERSION").as_deref(), Some(K8S_VERSION));
        assert_eq!(value("ETCD_VERSION").as_deref(), Some(ETCD_VERSION));
    }

    #[test]
    fn cache_layout_has_one_directory_per_release() {
        let b = Binaries::in_cache(Path::new("/c"));
        assert_eq!(
            b.kube_apiserver,
            Path::new("/c/k8s-v1.34.4/bin/kube-apiserver")
        );
        assert_eq!(b.kubectl, Path::new("/c/k8s-v1.34.4/bin/kubectl"));
        assert_eq!(b.etcd, Path::new("/c/etcd-v3.6.16/bin/etcd"));
    }

    #[test]
    fn missing_binaries_are_all_named_and_point_at_build_sh() {
        let dir = std::env::temp_dir().join(format!("egress-cp-nobin-{}", std::process::id()));
        let err = Binaries::locate(Some(&dir)).expect_err("empty dir has no binaries");
        let msg = err.to_string();
        for b in [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kubectl",
        ] {
            assert!(msg.contains(&dir.join(b).display().to_string()), "{msg}");
        }
        assert!(msg.contains("hack/controlplane/build.sh"), "{msg}");
    }
}
