//! The local development cluster: a real control plane (etcd, kube-apiserver,
//! kube-controller-manager from `crate::controlplane`) with our CRDs and the real Istio CRDs, the
//! webhook running under its own identity, and the webhook configurations registered at
//! `https://127.0.0.1:<port>`. Used by the end-to-end tests and by `egress-webhook dev`.
//!
//! Start order: control plane; CRDs (until Established); the webhook's identity (the
//! ServiceAccount and RBAC of `manifests/base/rbac.yaml` in the own namespace, and a token from
//! the TokenRequest API: the webhook never uses the admin kubeconfig, see `identity`); serving
//! certificates (`certs`); the webhook
//! (in-process, or as a child process of a given binary) until its catalog is synced; the webhook
//! configurations; and finally a poll of server-side dry-run creates until the mutating webhook
//! has defaulted one and the validating webhook has denied one, which proves the apiserver calls
//! both.
//!
//! Teardown (`Drop`, also on panic): the webhook first (graceful), then the control plane. A
//! webhook child gets SIGKILL from the kernel if this process dies (as the control plane does).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::admission::{
    self, Running, ServeConfig,
    client_auth::{ClientAuth, ClientCa},
    server::ServeError,
    tls::CertFiles,
};
use crate::catalog::Catalog;
use crate::certs::{self, CertsError};
use crate::controlplane::{
    self, ControlPlane,
    process::{self, Managed, Spawner},
};
use crate::core::Options;

use super::catalog::{ClusterSource, cluster_catalog};
use super::identity::{self, WebhookIdentity};
use super::webhook::{self, Endpoint, Registration};
use super::{ClientError, client_from_kubeconfig};

/// The real Istio CRDs (1.24.6), installed next to ours.
pub const ISTIO_CRDS: &str = include_str!("../../manifests/istio/crds-1.24.6.yaml");

/// How the webhook runs.
#[derive(Clone, Debug)]
pub enum WebhookMode {
    /// On a tokio runtime owned by the [`DevCluster`], in this process.
    InProcess,
    /// `<binary> serve --kubeconfig ...` as a child process (its log in the run directory).
    Process(PathBuf),
}

#[derive(Clone, Debug)]
pub struct DevOptions {
    /// The cluster name the webhook runs with (`--cluster-name`).
    pub cluster_name: String,
    pub webhook: WebhookMode,
    pub control_plane: controlplane::Options,
    /// The namespace the webhook "runs in": excluded by the namespaceSelector with kube-system.
    pub own_namespace: String,
    /// Budget for the webhook to be ready and for the apiserver to call it.
    pub webhook_timeout: Duration,
    /// `--audit-interval` of the guardrail audit (short here: a local cluster shows results soon).
    pub audit_interval: Duration,
    /// `--policy-reports`: wgpolicyk8s.io PolicyReports besides OpenReports Reports.
    pub policy_reports: bool,
}

impl Default for DevOptions {
    fn default() -> Self {
        DevOptions {
            cluster_name: "cluster1".to_string(),
            webhook: WebhookMode::InProcess,
            control_plane: controlplane::Options::default(),
            own_namespace: webhook::DEFAULT_NAMESPACE.to_string(),
            webhook_timeout: Duration::from_secs(60),
            audit_interval: Duration::from_secs(2),
            // On here: written only where the CRD is installed (a test installs it).
            policy_reports: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error(transparent)]
    ControlPlane(#[from] controlplane::Error),
    #[error("webhook certificates: {0}")]
    Certs(#[from] CertsError),
    #[error("starting the webhook: {0}")]
    Serve(#[from] ServeError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
    #[error("the webhook process exited ({status}); last lines of {log}:\n{tail}")]
    WebhookExited {
        status: String,
        log: String,
        tail: String,
    },
    #[error("{what} not within {timeout:?}; last attempt: {last}")]
    Timeout {
        what: &'static str,
        timeout: Duration,
        last: String,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> DevError {
    let context = context.into();
    move |source| DevError::Io { context, source }
}

/// How long each start step took.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    pub control_plane: Duration,
    pub crds: Duration,
    /// Identity, certificates, and the webhook up with its catalog synced.
    pub webhook: Duration,
    /// Registration until the apiserver demonstrably calls the webhook.
    pub live: Duration,
    pub total: Duration,
}

enum Webhook {
    InProcess {
        running: Running,
        source: ClusterSource,
        catalog: Arc<Catalog>,
        controller: Box<crate::controller::Running>,
    },
    Process {
        child: Managed,
        metrics_addr: SocketAddr,
    },
    Stopped,
}

/// A running local cluster with the webhook registered. Dropping it stops everything.
pub struct DevCluster {
    webhook: Webhook,
    /// How to start the webhook process again (process mode).
    process: Option<ProcessSpec>,
    /// Spawns the webhook child (process mode); dropped after the child is dead.
    spawner: Option<Spawner>,
    runtime: Option<tokio::runtime::Runtime>,
    cp: Option<ControlPlane>,
    user: WebhookIdentity,
    webhook_addr: SocketAddr,
    ca_pem: String,
    /// The webhook's "own" namespace (excluded by the namespaceSelector; holds the Lease).
    own_namespace: String,
    tls_dir: PathBuf,
    core: Options,
    timings: Timings,
}

impl std::fmt::Debug for DevCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCluster")
            .field("server", &self.cp().server_url())
            .field("webhook", &self.webhook_addr)
            .finish()
    }
}

impl DevCluster {
    pub fn start(opts: DevOptions) -> Result<Self, DevError> {
        let t0 = Instant::now();
        let cp = ControlPlane::start(opts.control_plane.clone())?;
        let control_plane = t0.elapsed();

        let t = Instant::now();
        let crd_dir = cp.run_dir().join("crds");
        std::fs::create_dir_all(&crd_dir).map_err(io(format!("creating {}", crd_dir.display())))?;
        let ours = crate::crds::render()
            .map_err(|e| DevError::Setup(format!("rendering our CRDs: {e}")))?;
        let (ours_path, istio_path) = (crd_dir.join("gloo.yaml"), crd_dir.join("istio.yaml"));
        for (path, text) in [(&ours_path, ours.as_str()), (&istio_path, ISTIO_CRDS)] {
            std::fs::write(path, text).map_err(io(format!("writing {}", path.display())))?;
        }
        cp.install_crds(&[ours_path, istio_path])?;
        let crds = t.elapsed();

        let t = Instant::now();
        let user = identity::create(&cp, &opts.own_namespace)?;
        let tls_dir = cp.run_dir().join("webhook-tls");
        let bundle = certs::generate(&["localhost".to_string(), "127.0.0.1".to_string()], 30)?;
        certs::write(&tls_dir, &bundle)?;
        let cert_files = CertFiles {
            cert: tls_dir.join("tls.crt"),
            key: tls_dir.join("tls.key"),
        };
        let core = Options {
            cluster_name: opts.cluster_name.clone(),
            ..Options::default()
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("egress-dev")
            .enable_all()
            .build()
            .map_err(io("starting the tokio runtime"))?;
        let deadline = Instant::now() + opts.webhook_timeout;
        let mut spawner = None;
        let mut process_spec = None;
        let (webhook, webhook_addr) = match &opts.webhook {
            WebhookMode::InProcess => {
                let (running, source, catalog, controller) = runtime.block_on(async {
                    let client = client_from_kubeconfig(&user.kubeconfig).await?;
                    let (catalog, source) = cluster_catalog(client.clone(), &core);
                    let mut cfg = ServeConfig::new(([127, 0, 0, 1], 0).into(), cert_files);
                    let metrics = Arc::new(crate::metrics::Metrics::new());
                    let controller = crate::controller::Controller::start(
                        client.clone(),
                        catalog.clone(),
                        core.clone(),
                        metrics.clone(),
                        crate::controller::Settings {
                            election: Some(crate::controller::leader::Election {
                                namespace: opts.own_namespace.clone(),
                                identity: crate::controller::leader::default_identity(),
                            }),
                            ..Default::default()
                        },
                    );
                    let leader = controller.controller.clone();
                    // Stops with the runtime the DevCluster owns.
                    let _audit = crate::cluster::guardrail_audit::spawn(
                        client,
                        catalog.clone(),
                        metrics.clone(),
                        Arc::new(move || leader.is_leader()),
                        opts.audit_interval,
                        crate::cluster::guardrail_reports::ReportKind::for_flags(
                            opts.policy_reports,
                        ),
                    );
                    cfg.companions = Some(Arc::new(crate::admission::handlers::CompanionWrites {
                        controller: controller.controller.clone(),
                        guard_identities: vec![user.name.clone()],
                        deadline: Duration::from_secs(6),
                    }));
                    cfg.metrics = Some(metrics);
                    cfg.client_auth = ClientAuth::Mtls(apiserver_client(&cp));
                    // /metrics, /readyz over plain HTTP too (`.dev/ready` names it), as in a pod.
                    cfg.metrics_listen = Some(([127, 0, 0, 1], 0).into());
                    cfg.shutdown_delay = Duration::ZERO;
                    cfg.shutdown_grace = Duration::from_secs(2);
                    let running = admission::start(cfg, catalog.clone(), core.clone()).await?;
                    Ok::<_, DevError>((running, source, catalog, controller))
                })?;
                let addr = running.addr;
                poll(
                    "webhook catalog synced",
                    deadline,
                    opts.webhook_timeout,
                    || {
                        if catalog.is_synced() {
                            Ok(())
                        } else {
                            Err(format!("catalog counts {:?}", catalog.counts()))
                        }
                    },
                )?;
                (
                    Webhook::InProcess {
                        running,
                        source,
                        catalog,
                        controller: Box::new(controller),
                    },
                    addr,
                )
            }
            WebhookMode::Process(program) => {
                let s = Spawner::new().map_err(io("starting the spawner thread"))?;
                let ports = process::free_ports(2).map_err(io("picking free ports"))?;
                let addr: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
                let metrics: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
                let spec = ProcessSpec {
                    program: program.clone(),
                    args: vec![
                        "serve".into(),
                        format!("--kubeconfig={}", user.kubeconfig.display()),
                        format!("--tls-cert={}", cert_files.cert.display()),
                        format!("--tls-key={}", cert_files.key.display()),
                        format!("--cluster-name={}", opts.cluster_name),
                        "--shutdown-delay=0s".into(),
                        format!("--writer-identity={}", user.name),
                        format!("--lease-namespace={}", opts.own_namespace),
                        "--shutdown-grace=2s".into(),
                        format!("--audit-interval={}s", opts.audit_interval.as_secs_f64()),
                        format!("--policy-reports={}", opts.policy_reports),
                        format!("--client-ca={}", cp.webhook_client_ca_path().display()),
                        format!(
                            "--client-allowed-names={}",
                            controlplane::WEBHOOK_CLIENT_NAME
                        ),
                    ],
                    run_dir: cp.run_dir().to_path_buf(),
                    timeout: opts.webhook_timeout,
                };
                let child = spec.spawn(&s, addr, metrics, "egress-webhook.log", &[], deadline)?;
                spawner = Some(s);
                process_spec = Some(spec);
                (
                    Webhook::Process {
                        child,
                        metrics_addr: metrics,
                    },
                    addr,
                )
            }
        };
        let webhook_time = t.elapsed();

        let mut dev = DevCluster {
            webhook,
            process: process_spec,
            spawner,
            runtime: Some(runtime),
            cp: Some(cp),
            user,
            webhook_addr,
            ca_pem: bundle.ca_cert.clone(),
            own_namespace: opts.own_namespace.clone(),
            tls_dir,
            core,
            timings: Timings {
                control_plane,
                crds,
                webhook: webhook_time,
                ..Timings::default()
            },
        };

        let t = Instant::now();
        dev.register(dev.webhook_addr)?;
        dev.wait_live(deadline, opts.webhook_timeout)?;
        dev.timings.live = t.elapsed();
        dev.timings.total = t0.elapsed();
        Ok(dev)
    }

    /// Point the webhook configurations at the webhook listening on `addr` (ours, or a replica).
    pub fn register(&self, addr: SocketAddr) -> Result<(), DevError> {
        self.register_with(addr, Some(&self.ca_pem))
    }

    /// [`Self::register`] with another caBundle, or none (for a webhook that sets its own).
    pub fn register_with(
        &self,
        addr: SocketAddr,
        ca_bundle_pem: Option<&str>,
    ) -> Result<(), DevError> {
        let reg = Registration {
            endpoint: Endpoint::Url(format!("https://{addr}")),
            ca_bundle_pem: ca_bundle_pem.map(str::to_string),
            own_namespace: self.own_namespace.clone(),
            writer_identities: vec![self.user.name.clone()],
        };
        let yaml = webhook::to_yaml(&reg)
            .map_err(|e| DevError::Setup(format!("webhook configurations: {e}")))?;
        self.kubectl_stdin_ok(&["apply", "-f", "-"], &yaml)
            .map(|_| ())
    }

    /// Stop the webhook process and start it again on the same addresses, with `env` added
    /// (process mode only); returns once its `/readyz` is true.
    pub fn restart_webhook(&mut self, env: &[(&str, &str)]) -> Result<(), DevError> {
        let Webhook::Process { metrics_addr, .. } = &self.webhook else {
            return Err(DevError::Setup(
                "restart_webhook needs WebhookMode::Process".into(),
            ));
        };
        let metrics = *metrics_addr;
        self.stop_webhook()?;
        let (Some(spec), Some(spawner)) = (&self.process, &self.spawner) else {
            return Err(DevError::Setup("no webhook process to restart".into()));
        };
        let deadline = Instant::now() + spec.timeout;
        let child = spec.spawn(
            spawner,
            self.webhook_addr,
            metrics,
            "egress-webhook.log",
            env,
            deadline,
        )?;
        self.webhook = Webhook::Process {
            child,
            metrics_addr: metrics,
        };
        Ok(())
    }

    /// A second webhook process against the same cluster (its own ports and log), ready when
    /// this returns; it campaigns for the controller Lease like any replica.
    pub fn start_replica(&self, env: &[(&str, &str)]) -> Result<Replica, DevError> {
        self.start_replica_with(ReplicaOptions {
            env,
            ..ReplicaOptions::default()
        })
    }

    /// [`Self::start_replica`] with more flags, its own certificate files or address.
    pub fn start_replica_with(&self, opts: ReplicaOptions<'_>) -> Result<Replica, DevError> {
        let (Some(spec), Some(spawner)) = (&self.process, &self.spawner) else {
            return Err(DevError::Setup(
                "start_replica needs WebhookMode::Process".into(),
            ));
        };
        let ports = process::free_ports(2).map_err(io("picking free ports"))?;
        let addr = opts
            .addr
            .unwrap_or_else(|| ([127, 0, 0, 1], ports[0]).into());
        let metrics: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
        let log = format!("egress-webhook-replica-{}.log", addr.port());
        let deadline = Instant::now() + spec.timeout;
        let mut spec = ProcessSpec {
            program: spec.program.clone(),
            args: spec.args.clone(),
            run_dir: spec.run_dir.clone(),
            timeout: spec.timeout,
        };
        if let Some(tls) = &opts.tls {
            spec.args
                .retain(|a| !a.starts_with("--tls-cert=") && !a.starts_with("--tls-key="));
            spec.args.push(format!("--tls-cert={}", tls.cert.display()));
            spec.args.push(format!("--tls-key={}", tls.key.display()));
        }
        spec.args.extend(opts.args.iter().cloned());
        let child = spec.spawn(spawner, addr, metrics, &log, opts.env, deadline)?;
        Ok(Replica {
            child,
            addr,
            metrics_addr: metrics,
        })
    }

    /// The webhook's plain-HTTP listener for `/metrics`, `/healthz` and `/readyz`.
    pub fn webhook_metrics_addr(&self) -> Option<SocketAddr> {
        match &self.webhook {
            Webhook::Process { metrics_addr, .. } => Some(*metrics_addr),
            Webhook::InProcess { running, .. } => running.metrics_addr,
            Webhook::Stopped => None,
        }
    }

    /// Polls dry-run creates until the mutating webhook defaults a probe ExternalService and
    /// the validating webhook denies an invalid one.
    fn wait_live(&self, deadline: Instant, timeout: Duration) -> Result<(), DevError> {
        // The invalid probe passes the CRD schema (checked after mutation, before validation)
        // and fails our rules: an unknown protocol (E6).
        let probe = |protocol: &str| {
            json!({
                "apiVersion": "networking.gloo.solo.io/v2",
                "kind": "ExternalService",
                "metadata": {"name": "egress-webhook-liveness-probe", "namespace": "default"},
                "spec": {
                    "hosts": ["probe.example.com"],
                    "ports": [{"name": "http", "number": 80, "protocol": protocol}]
                }
            })
            .to_string()
        };
        let (valid, invalid) = (probe("HTTP"), probe("NOT-A-PROTOCOL"));
        let create = ["create", "--dry-run=server", "-o", "json", "-f", "-"];
        let denial = format!(
            "admission webhook \"{}\" denied the request",
            webhook::VALIDATING_WEBHOOK
        );
        let mut mutated = false;
        poll(
            "the apiserver calling the webhook",
            deadline,
            timeout,
            || {
                if !mutated {
                    let out = self
                        .kubectl_stdin(&create, &valid)
                        .map_err(|e| e.to_string())?;
                    let stored: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
                    if stored.pointer("/spec/ports/0/targetPort").is_none() {
                        return Err(format!(
                            "not defaulted yet: {}",
                            String::from_utf8_lossy(&out.stderr).trim()
                        ));
                    }
                    mutated = true;
                }
                let out = self
                    .kubectl_stdin(&create, &invalid)
                    .map_err(|e| e.to_string())?;
                let stderr = String::from_utf8_lossy(&out.stderr);
                if !out.status.success() && stderr.contains(&denial) {
                    Ok(())
                } else {
                    Err(format!("not denied yet: {}", stderr.trim()))
                }
            },
        )
    }

    pub fn cp(&self) -> &ControlPlane {
        // Only `Drop` takes it.
        self.cp.as_ref().expect("control plane present until drop")
    }

    /// The control plane, to stop and start its processes (outage tests).
    pub fn cp_mut(&mut self) -> &mut ControlPlane {
        self.cp.as_mut().expect("the control plane runs until drop")
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        self.cp().kubeconfig()
    }

    /// The webhook's own identity (its ServiceAccount, and a kubeconfig with its token).
    pub fn webhook_user(&self) -> &WebhookIdentity {
        &self.user
    }

    /// `https://127.0.0.1:<port>`, as registered.
    pub fn webhook_url(&self) -> String {
        format!("https://{}", self.webhook_addr)
    }

    pub fn webhook_addr(&self) -> SocketAddr {
        self.webhook_addr
    }

    /// PEM of the CA of the webhook's serving certificate (the registered caBundle).
    pub fn webhook_ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Directory with ca.crt, tls.crt and tls.key of the webhook.
    pub fn webhook_tls_dir(&self) -> &Path {
        &self.tls_dir
    }

    /// The pid of the webhook child (process mode, while it runs).
    pub fn webhook_pid(&self) -> Option<u32> {
        match &self.webhook {
            Webhook::Process { child, .. } => Some(child.child.id()),
            _ => None,
        }
    }

    /// The in-process webhook's catalog (in-process mode, while it runs).
    pub fn webhook_catalog(&self) -> Option<&Arc<Catalog>> {
        match &self.webhook {
            Webhook::InProcess { catalog, .. } => Some(catalog),
            _ => None,
        }
    }

    /// The in-process webhook's metrics, as `/metrics` serves them.
    pub fn webhook_metrics_text(&self) -> Option<String> {
        // Through the plain-HTTP port, as Prometheus reads it: the handler refreshes the gauges
        // it computes on read (catalog objects, watch health) first.
        let addr = self.webhook_metrics_addr()?;
        http_get_text(addr, "/metrics").ok()
    }

    /// The options the webhook runs with.
    pub fn core_options(&self) -> &Options {
        &self.core
    }

    pub fn timings(&self) -> Timings {
        self.timings
    }

    /// Runs `f` on the cluster's tokio runtime (kube clients must be built inside it).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime
            .as_ref()
            .expect("runtime present until drop")
            .block_on(f)
    }

    /// A kube client as admin; call inside [`Self::block_on`].
    pub async fn admin_client(&self) -> Result<kube::Client, ClientError> {
        client_from_kubeconfig(self.kubeconfig()).await
    }

    /// Runs kubectl as admin with `stdin`, whatever its exit status.
    pub fn kubectl_stdin(
        &self,
        args: &[&str],
        stdin: &str,
    ) -> Result<std::process::Output, DevError> {
        Ok(self.cp().kubectl_with_stdin(args, stdin)?)
    }

    fn kubectl_stdin_ok(&self, args: &[&str], stdin: &str) -> Result<String, DevError> {
        let out = self.kubectl_stdin(args, stdin)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(DevError::Setup(format!(
                "`kubectl {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    /// Stops the webhook (gracefully: SIGTERM for a child) and waits until it is gone. The
    /// webhook configurations stay registered, so the apiserver's calls now fail.
    pub fn stop_webhook(&mut self) -> Result<(), DevError> {
        match std::mem::replace(&mut self.webhook, Webhook::Stopped) {
            Webhook::InProcess {
                mut running,
                mut source,
                controller,
                ..
            } => {
                source.stop();
                running.shutdown();
                if let Some(rt) = &self.runtime
                    && tokio::runtime::Handle::try_current().is_err()
                {
                    let done = &mut running.done;
                    let _ = rt.block_on(async {
                        tokio::time::timeout(Duration::from_secs(10), done).await
                    });
                    // Gives the Lease up.
                    rt.block_on(controller.stop());
                }
                running.done.abort();
                Ok(())
            }
            Webhook::Process { mut child, .. } => {
                terminate(&mut child);
                Ok(())
            }
            Webhook::Stopped => Ok(()),
        }
    }

    /// Stops everything and reports the first error (`Drop` does the same silently).
    pub fn stop(mut self) -> Result<(), DevError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), DevError> {
        let webhook = self.stop_webhook();
        if let Some(rt) = self.runtime.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                rt.shutdown_background();
            } else {
                rt.shutdown_timeout(Duration::from_secs(2));
            }
        }
        self.spawner.take();
        let cp = match self.cp.take() {
            Some(cp) => cp.stop().map_err(DevError::from),
            None => Ok(()),
        };
        webhook.and(cp)
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Only the apiserver may call the webhook: its client certificate (the admission kubeconfig of
/// the control plane), checked by CA and name, as `serve --client-ca` does in a cluster.
fn apiserver_client(cp: &ControlPlane) -> ClientCa {
    ClientCa {
        ca_file: cp.webhook_client_ca_path().to_path_buf(),
        allowed_names: vec![controlplane::WEBHOOK_CLIENT_NAME.to_string()],
    }
}

/// Calls `f` every 50 ms until it succeeds or `deadline` passes.
fn poll(
    what: &'static str,
    deadline: Instant,
    timeout: Duration,
    mut f: impl FnMut() -> Result<(), String>,
) -> Result<(), DevError> {
    loop {
        let last = match f() {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(DevError::Timeout {
                what,
                timeout,
                last,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How the webhook process is started (process mode), to start it again or start a replica.
struct ProcessSpec {
    program: PathBuf,
    /// `serve` and its flags but the listen addresses.
    args: Vec<String>,
    run_dir: PathBuf,
    timeout: Duration,
}

impl ProcessSpec {
    /// Start `serve` on `addr` (metrics on `metrics`), logging to `log` in the run directory,
    /// with `env` added; wait until its plain-HTTP `/readyz` is true.
    fn spawn(
        &self,
        spawner: &Spawner,
        addr: SocketAddr,
        metrics: SocketAddr,
        log: &str,
        env: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<Managed, DevError> {
        let log = self.run_dir.join(log);
        let mut args = self.args.clone();
        args.push(format!("--listen={addr}"));
        args.push(format!("--metrics-listen={metrics}"));
        let mut cmd = process::command(&self.program, &args, &log)
            .map_err(io(format!("creating {}", log.display())))?;
        cmd.envs(env.iter().copied());
        let child = spawner
            .spawn(cmd)
            .map_err(io(format!("starting {}", self.program.display())))?;
        let mut child = Managed {
            name: "egress-webhook",
            child,
            log,
        };
        // The plain-HTTP /readyz turns 200 once the catalog and the controller's watches synced.
        let ready = poll("webhook /readyz", deadline, self.timeout, || {
            if let Some(status) = child.exited() {
                return Err(format!("exited: {status}"));
            }
            http_get(metrics, "/readyz")
        });
        if let Err(e) = ready {
            let status = child.kill().map(|s| s.to_string()).unwrap_or_default();
            return Err(if status.is_empty() {
                e
            } else {
                DevError::WebhookExited {
                    status,
                    log: child.log.display().to_string(),
                    tail: process::log_tail(&child.log, 30),
                }
            });
        }
        Ok(child)
    }
}

/// How [`DevCluster::start_replica_with`] starts a webhook process.
#[derive(Clone, Debug, Default)]
pub struct ReplicaOptions<'a> {
    pub env: &'a [(&'a str, &'a str)],
    /// Flags added to the dev cluster's `serve` flags.
    pub args: Vec<String>,
    /// `--tls-cert`/`--tls-key` instead of the dev cluster's certificate files.
    pub tls: Option<CertFiles>,
    /// Listen here instead of on a free port.
    pub addr: Option<SocketAddr>,
}

/// A second webhook process (see [`DevCluster::start_replica`]); dropping it kills it.
pub struct Replica {
    child: Managed,
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
}

impl Replica {
    /// SIGTERM, and wait (at most 10 s) until it is gone: it releases the Lease on the way.
    pub fn stop(&mut self) {
        terminate(&mut self.child);
    }

    pub fn log(&self) -> &Path {
        &self.child.log
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// SIGTERM, then SIGKILL if it is not gone within 10 s.
fn terminate(child: &mut Managed) {
    let pid = child.child.id() as libc::pid_t;
    // SAFETY: kill(2) on our own child's pid (not yet reaped, so not reused).
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.exited().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
}

/// The body of a plain HTTP GET answered 200 (metrics of a webhook process).
pub fn http_get_text(addr: SocketAddr, path: &str) -> Result<String, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    match text.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_string()),
        _ => Err(text.lines().next().unwrap_or_default().to_string()),
    }
}

/// A plain HTTP GET: Ok on status 200.
fn http_get(addr: SocketAddr, path: &str) -> Result<(), String> {
    http_get_text(addr, path).map(|_| ())
}
