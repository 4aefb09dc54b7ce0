//! `egress-webhook certs`: a CA and a serving certificate for local use, written to `--dir`.
//! The certificates themselves come from [`crate::certs`].

use std::path::PathBuf;

use crate::certs::{CertsError, default_hosts, generate, write};

#[derive(clap::Args, Debug)]
pub struct CertsArgs {
    /// Directory to write ca.crt, ca.key, tls.crt and tls.key into.
    #[arg(long, default_value = "certs")]
    pub dir: PathBuf,
    /// Names and IPs for the serving certificate (added to the defaults).
    #[arg(long = "hosts", value_delimiter = ',')]
    pub hosts: Vec<String>,
    /// Namespace of the in-cluster Service (for its DNS names).
    #[arg(long, default_value = "egress-webhook")]
    pub namespace: String,
    /// Validity in days.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
}

pub fn run(args: &CertsArgs) -> Result<(), CertsError> {
    let mut hosts = default_hosts(&args.namespace);
    for h in &args.hosts {
        if !hosts.contains(h) {
            hosts.push(h.clone());
        }
    }
    let bundle = generate(&hosts, args.days)?;
    write(&args.dir, &bundle)?;
    println!(
        "wrote {}/{{ca.crt,ca.key,tls.crt,tls.key}} for {}",
        args.dir.display(),
        hosts.join(", ")
    );
    Ok(())
}
