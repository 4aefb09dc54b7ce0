//! The commands: their flags, and what they print and exit with. Each returns the process exit
//! code (or an error main.rs prints); main.rs only parses flags and calls them.
//!
//! The top of the module graph: only main.rs imports `cli`. What other modules need too lives
//! outside it (`load` for reading input files, `crds` for the CRD text, `certs` for the
//! webhook's certificates).

pub mod access;
pub mod access_text;
pub mod certs;
pub mod check;
pub mod check_guardrails;
pub mod cluster_input;
pub mod dev;
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
