//! The offline commands (`check`, `render`, `crds`) and the input loader they share.
//! Each returns the process exit code; main.rs only parses flags and calls them.

pub mod certs;
pub mod check;
pub mod crds;
pub mod dev;
pub mod load;
pub mod render;
pub mod rules;
pub mod serve;
pub mod webhook_config;

use crate::core::Options;

/// Exit codes of `check` and `render` (DESIGN §3).
pub const EXIT_OK: i32 = 0;
pub const EXIT_FINDINGS: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

/// Flags shared by `check`, `render` and `serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct CoreFlags {
    /// The cluster this runs for: references to other clusters are warnings.
    #[arg(long, default_value = "cluster1", env = "CLUSTER_NAME")]
    pub cluster_name: String,
    /// Trust domain of AuthorizationPolicy principals.
    #[arg(long, default_value = "cluster.local")]
    pub trust_domain: String,
    /// Turn E23 and V21 into errors.
    #[arg(long)]
    pub strict: bool,
}

impl CoreFlags {
    pub fn options(&self) -> Options {
        Options {
            cluster_name: self.cluster_name.clone(),
            trust_domain: self.trust_domain.clone(),
            strict: self.strict,
        }
    }
}
