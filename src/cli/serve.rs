//! `egress-webhook serve`: the admission server. The catalog comes from files (`--objects`) or
//! from a cluster: `--kubeconfig FILE`, or with neither flag the in-cluster configuration (the
//! pod's service account), falling back to `$KUBECONFIG` / `~/.kube/config`.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use crate::admission::{
    ServeConfig,
    client_auth::{ClientAuth, ClientCa},
    tls::CertFiles,
};
use crate::catalog::Catalog;
use crate::cluster;
use crate::core::{Snapshot, defaults::default_object};
use crate::load;

use super::CoreFlags;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub core: CoreFlags,
    #[arg(long)]
    pub tls_cert: PathBuf,
    #[arg(long)]
    pub tls_key: PathBuf,
    #[arg(long, default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Plain-HTTP listener for /metrics, /healthz and /readyz, without client certificates (for
    /// kubelet probes and Prometheus; on the admission port they need what a review needs).
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// Require a client certificate signed by a CA of this PEM file on every connection to the
    /// admission port: the one the apiserver presents (its `--admission-control-config-file`
    /// kubeConfigFile). Reloaded when the file changes.
    #[arg(long, requires = "metrics_listen")]
    pub client_ca: Option<PathBuf>,
    /// With --client-ca: accept only certificates with one of these subject common names or
    /// SANs (comma-separated; repeatable). Without it, any certificate the CA signed.
    #[arg(long, value_delimiter = ',', requires = "client_ca")]
    pub client_allowed_names: Vec<String>,
    /// No client certificates, but a NetworkPolicy admits only the apiserver to the admission
    /// port (reported as client-auth mode `network`).
    #[arg(long, conflicts_with = "client_ca")]
    pub ingress_restricted: bool,
    /// Objects the cross-object rules see (files or directories, as for `check`), instead of
    /// the cluster's.
    #[arg(long, conflicts_with = "kubeconfig")]
    pub objects: Vec<String>,
    /// Watch the cluster of this kubeconfig (its current context). Without it and without
    /// --objects: the in-cluster configuration when the service-account token is mounted, else
    /// $KUBECONFIG / ~/.kube/config.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// With a cluster: the identities allowed to change the generated Istio objects (the guard);
    /// must include the one this process writes under (repeat the flag for more).
    #[arg(long = "writer-identity", default_value = crate::companions::IN_CLUSTER_IDENTITY)]
    pub writer_identities: Vec<String>,
    /// With a cluster: budget for the companion writes of one review (under timeoutSeconds).
    #[arg(long, value_parser = parse_duration, default_value = "6s")]
    pub write_timeout: Duration,
    /// With a cluster: how often the controller compares every parent with its companions (in
    /// memory; it also reacts to every change as it happens).
    #[arg(long, value_parser = parse_duration, default_value = "5m")]
    pub resync: Duration,
    /// With a cluster: elect one reconciling replica with a Lease (every replica admits). With
    /// `--leader-elect=false` this process reconciles alone: run a single replica then.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Namespace of the controller's Lease (`egress-webhook-controller`).
    #[arg(long, env = "POD_NAMESPACE", default_value = crate::cluster::webhook::DEFAULT_NAMESPACE)]
    pub lease_namespace: String,
    /// Parents reconciled at once.
    #[arg(long, default_value_t = 8)]
    pub controller_concurrency: usize,
    /// How often the EgressGuardrail audit passes over the existing objects (incremental: only
    /// what changed since the last pass is evaluated again).
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub audit_interval: Duration,
    /// Besides OpenReports Reports, write wgpolicyk8s.io/v1alpha2 PolicyReports (older tooling),
    /// when that CRD is installed. `--policy-reports` alone means true; `=true`/`=false` also
    /// work (what `dev` passes to a webhook process, and what a Helm value renders to).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, action = clap::ArgAction::Set, default_value_t = false)]
    pub policy_reports: bool,
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Bodies above this many bytes get 413.
    #[arg(long, default_value_t = 7 << 20)]
    pub max_body_bytes: usize,
    /// Connections past this many are closed at once. Each may hold up to 768 KiB of buffers
    /// (README "Bounded memory"): this times 768 KiB is part of the worst-case memory.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// Memory of the reviews in flight across all connections (bodies, parsed and decided, as
    /// estimated by upper bounds); a review past it is answered 429 with Retry-After (the
    /// apiserver retries). Default: two of the largest reviews (166 MB with the default
    /// --max-body-bytes).
    #[arg(long)]
    pub max_inflight_bytes: Option<usize>,
    /// Upper bound for one review, reading the body included (also capped below `?timeout=`).
    #[arg(long, value_parser = parse_duration, default_value = "8s")]
    pub review_timeout: Duration,
    /// Time a client has to finish the TLS handshake, and then to send its first request's
    /// headers.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub header_timeout: Duration,
    /// How long a kept-alive HTTP/1.1 connection may wait for its next request (idle time and
    /// that request's headers together). Keep it above the apiserver's own idle timeout (90 s),
    /// so that the apiserver closes idle connections first: a connection the webhook closes
    /// just as the apiserver sends a review on it fails that review with EOF.
    #[arg(long, value_parser = parse_duration, default_value = "120s")]
    pub idle_timeout: Duration,
    /// After SIGTERM: keep accepting this long (readyz already false), then stop accepting.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub shutdown_delay: Duration,
    /// Then wait at most this long for in-flight reviews.
    #[arg(long, value_parser = parse_duration, default_value = "20s")]
    pub shutdown_grace: Duration,
    /// How often the certificate files are checked for a new pair (and, with
    /// --self-signed-secret, the Secret).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub cert_poll_interval: Duration,
    #[command(flatten)]
    pub self_signed: SelfSignedFlags,
}

/// The self-signed certificate mode (`cluster::self_signed`).
#[derive(clap::Args, Debug)]
pub struct SelfSignedFlags {
    /// Keep the CA and serving certificate in this Secret of the webhook's namespace
    /// (--lease-namespace): create it when missing, renew before expiry, write the pair to
    /// --tls-cert/--tls-key and set the caBundle of the webhook configurations.
    #[arg(long, conflicts_with = "objects")]
    pub self_signed_secret: Option<String>,
    /// The Service in front of the webhook: the certificate names `<svc>.<ns>.svc` and
    /// `<svc>.<ns>.svc.cluster.local`.
    #[arg(long, default_value = crate::cluster::webhook::NAME)]
    pub service_name: String,
    /// More DNS names or IP addresses for the serving certificate (repeat the flag).
    #[arg(long = "self-signed-host")]
    pub self_signed_hosts: Vec<String>,
    /// Lifetime of each serving certificate.
    #[arg(long, value_parser = parse_duration, default_value = "365d")]
    pub self_signed_validity: Duration,
    /// Lifetime of a new CA.
    #[arg(long, value_parser = parse_duration, default_value = "3650d")]
    pub self_signed_ca_validity: Duration,
    /// Renew a certificate (leaf or CA) when less than this remains; default: a third of its
    /// lifetime.
    #[arg(long, value_parser = parse_duration)]
    pub cert_renew_before: Option<Duration>,
    /// Name of the Mutating- and ValidatingWebhookConfiguration whose caBundle is set.
    #[arg(long, default_value = crate::cluster::webhook::NAME)]
    pub webhook_configuration: String,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum LogFormat {
    Text,
    Json,
}

/// `500ms`, `5s`, `2m`, `12h`, `365d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 500ms, 5s or 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h, d)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} is not a duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: escape codes in a log file or a collector are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
        }
        _ => {
            tracing::warn!("cannot install signal handlers; stop with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let opts = args.core.options();
    let files = CertFiles {
        cert: args.tls_cert.clone(),
        key: args.tls_key.clone(),
    };
    // Local configuration first: a missing certificate is reported before any cluster is
    // contacted. In the self-signed mode the pair is written from the Secret below (and the
    // client CA is checked when the server loads the pair).
    if args.self_signed.self_signed_secret.is_none() {
        crate::admission::tls::load_with(
            &files,
            &crate::admission::tls::ClientVerification {
                ca: args.client_ca.clone().map(|ca_file| ClientCa {
                    ca_file,
                    allowed_names: Vec::new(),
                }),
                on_reject: None,
            },
        )?;
    }
    let mut self_signed_task = None;
    // Kept alive while serving: dropping it stops the watches.
    let mut _source = None;
    let mut companions = None;
    let catalog = if !args.objects.is_empty() {
        // Object by object into the snapshot: the file's parsed documents are never all held
        // at once (issue 12: loading peaked at 325 MB for 41,000 objects).
        let mut snap = Snapshot::new(Vec::new(), &opts);
        let mut n = 0usize;
        load::load_each(&args.objects, &mut |l| {
            snap.insert(default_object(l.object, &opts));
            n += 1;
        })?;
        tracing::info!(objects = n, "catalog loaded from files");
        let catalog = Arc::new(Catalog::from_snapshot(snap, &opts));
        crate::memory::release_after_burst();
        catalog
    } else {
        let (client, source) = match &args.kubeconfig {
            Some(path) => (
                cluster::client_from_kubeconfig(path).await?,
                cluster::config::ConfigSource::flag(path),
            ),
            None => cluster::default_client().await?,
        };
        // Whose rights the catalog and the writes run with: the first thing to check when
        // /readyz stays false or a write is forbidden.
        tracing::info!(configuration = %source, "Kubernetes client");
        if let Some(settings) = self_signed_settings(&args, &files) {
            cluster::self_signed::bootstrap(&client, &settings).await?;
            tracing::info!(secret = %settings.secret, namespace = %settings.namespace, "self-signed certificate ready; checked every {:?}", settings.poll);
            self_signed_task = Some(tokio::spawn(cluster::self_signed::keep_current(
                client.clone(),
                settings,
            )));
        }
        let (catalog, source) = cluster::catalog::cluster_catalog(client.clone(), &opts);
        _source = Some(source);
        let settings = crate::controller::Settings {
            resync: args.resync,
            concurrency: args.controller_concurrency,
            election: args
                .leader_elect
                .then(|| crate::controller::leader::Election {
                    namespace: args.lease_namespace.clone(),
                    identity: crate::controller::leader::default_identity(),
                }),
        };
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let running = crate::controller::Controller::start(
            client.clone(),
            catalog.clone(),
            opts.clone(),
            metrics.clone(),
            settings,
        );
        let leader = running.controller.clone();
        // Kept running for the life of the process, like the watches.
        let _audit = cluster::guardrail_audit::spawn(
            client.clone(),
            catalog.clone(),
            metrics.clone(),
            Arc::new(move || leader.is_leader()),
            args.audit_interval,
            crate::cluster::guardrail_reports::ReportKind::for_flags(args.policy_reports),
        );
        let writes = Arc::new(crate::admission::handlers::CompanionWrites {
            controller: running.controller.clone(),
            guard_identities: args.writer_identities.clone(),
            deadline: args.write_timeout,
        });
        companions = Some((writes, metrics, running));
        tracing::info!(
            "watching the cluster; /readyz turns true when the catalog and the companion watches have listed"
        );
        catalog
    };
    let mut cfg = ServeConfig::new(
        args.listen,
        CertFiles {
            cert: args.tls_cert,
            key: args.tls_key,
        },
    );
    cfg.metrics_listen = args.metrics_listen;
    cfg.client_auth = match (args.client_ca, args.ingress_restricted) {
        (Some(ca_file), _) => ClientAuth::Mtls(ClientCa {
            ca_file,
            allowed_names: args.client_allowed_names,
        }),
        (None, true) => ClientAuth::Network,
        (None, false) => ClientAuth::None,
    };
    cfg.max_body_bytes = args.max_body_bytes;
    cfg.max_connections = args.max_connections;
    cfg.max_inflight_bytes = args.max_inflight_bytes;
    cfg.review_timeout = args.review_timeout;
    cfg.header_read_timeout = args.header_timeout;
    cfg.idle_timeout = args.idle_timeout;
    cfg.handshake_timeout = args.header_timeout;
    cfg.shutdown_delay = args.shutdown_delay;
    cfg.shutdown_grace = args.shutdown_grace;
    cfg.cert_poll_interval = args.cert_poll_interval;
    let mut controller = None;
    if let Some((writes, metrics, running)) = companions {
        cfg.companions = Some(writes);
        cfg.metrics = Some(metrics);
        controller = Some(running);
    }
    let mut running = crate::admission::start(cfg, catalog, opts).await?;
    tracing::info!(addr = %running.addr, metrics = ?running.metrics_addr, "serving /mutate and /validate");
    shutdown_signal().await;
    if let Some(task) = self_signed_task {
        task.abort();
    }
    running.shutdown();
    (&mut running.done).await?;
    // Give the Lease up, so that another replica takes over at once.
    if let Some(c) = controller {
        c.stop().await;
    }
    Ok(())
}

/// The self-signed mode's settings, when `--self-signed-secret` is given.
fn self_signed_settings(
    args: &ServeArgs,
    files: &CertFiles,
) -> Option<cluster::self_signed::Settings> {
    let f = &args.self_signed;
    let secret = f.self_signed_secret.clone()?;
    let namespace = args.lease_namespace.clone();
    let mut hosts = cluster::self_signed::service_hosts(&f.service_name, &namespace);
    hosts.extend(f.self_signed_hosts.iter().cloned());
    Some(cluster::self_signed::Settings {
        secret,
        configurations: f.webhook_configuration.clone(),
        files: files.clone(),
        policy: cluster::self_signed::plan::Policy {
            hosts,
            leaf_validity: f.self_signed_validity,
            ca_validity: f.self_signed_ca_validity,
            renew_before: f.cert_renew_before,
            grace: args.cert_poll_interval * 3,
        },
        poll: args.cert_poll_interval,
        namespace,
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::admission::server::{DEFAULT_IDLE_TIMEOUT, IDLE_TIMEOUT_OF_THE_APISERVER};

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        serve: ServeArgs,
    }

    /// The idle timeout by default (flag and library alike) outlasts the apiserver's, so that the
    /// apiserver closes idle connections first; a new connection's first request keeps the short
    /// header timeout.
    #[test]
    fn idle_connections_outlast_the_apiservers_by_default() {
        let args = Cmd::try_parse_from(["serve", "--tls-cert", "c.pem", "--tls-key", "k.pem"])
            .unwrap()
            .serve;
        assert_eq!(args.idle_timeout, DEFAULT_IDLE_TIMEOUT);
        assert!(DEFAULT_IDLE_TIMEOUT > IDLE_TIMEOUT_OF_THE_APISERVER);
        let files = CertFiles {
            cert: "c.pem".into(),
            key: "k.pem".into(),
        };
        let cfg = ServeConfig::new("127.0.0.1:0".parse().unwrap(), files);
        assert_eq!(cfg.idle_timeout, DEFAULT_IDLE_TIMEOUT);
        assert_eq!(args.header_timeout, cfg.header_read_timeout);
        assert_eq!(args.header_timeout, Duration::from_secs(5));
    }
}
