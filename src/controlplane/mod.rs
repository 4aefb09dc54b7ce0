//! A real, local Kubernetes control plane for tests and `make dev`: etcd, kube-apiserver and
//! kube-controller-manager on loopback ports, plus kubectl to talk to them.
//!
//! The binaries are built from Go modules by `hack/controlplane/build.sh` (see
//! [`Binaries::locate`]). Everything here is synchronous (`std::process`), so plain `#[test]`s and
//! the CLI can use it without an async runtime.
//!
//! ```no_run
//! use egress_webhook::controlplane::{ControlPlane, Options};
//! let cp = ControlPlane::start(Options::default())?;
//! cp.install_crds(&["manifests/crds/gloo-egress-crds.yaml"])?;
//! let out = cp.kubectl_ok(&["get", "namespaces", "-o", "name"])?;
//! cp.stop()?;
//! # Ok::<(), egress_webhook::controlplane::Error>(())
//! ```
//!
//! Cleanup: [`ControlPlane::stop`] and `Drop` (which also runs when a test panics) kill
//! kube-controller-manager, kube-apiserver and etcd in that order and remove the run directory.
//! If the test process itself is SIGKILLed, the children get SIGKILL from the kernel
//! (PR_SET_PDEATHSIG); only the run directory under the temp dir is then left behind.

mod binaries;
mod pki;
pub(crate) mod process;

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use binaries::{BIN_DIR_ENV, Binaries, ETCD_VERSION, K8S_VERSION, cache_root};
pub use pki::CertAndKey;

use pki::Ca;
use process::{Managed, Spawner};

/// Everything that can go wrong starting or using a control plane.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "control-plane binaries not found ({missing}). Build them with `hack/controlplane/build.sh` \
         (Kubernetes {K8S_VERSION} and etcd {ETCD_VERSION} from Go modules; about 9 min cold on 2 \
         cores), or set {BIN_DIR_ENV} to a directory holding etcd, kube-apiserver, \
         kube-controller-manager and kubectl"
    )]
    BinariesMissing { missing: String },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    #[error("generating certificates: {0}")]
    Certificate(#[from] rcgen::Error),

    #[error("{process} exited during start-up ({status}); last lines of {}:\n{tail}", log.display())]
    ProcessExited {
        process: &'static str,
        status: String,
        log: PathBuf,
        tail: String,
    },

    #[error("{what} not ready after {timeout:?}; last lines of {}:\n{tail}", log.display())]
    StartTimeout {
        what: String,
        timeout: Duration,
        log: PathBuf,
        tail: String,
    },

    #[error("`kubectl {args}` failed ({status}): {stderr}")]
    Kubectl {
        args: String,
        status: String,
        stderr: String,
    },

    #[error("invalid user for a client certificate: {0}")]
    InvalidUser(String),
}

impl Error {
    fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    /// A start that failed because another process took one of our ports between picking it
    /// and binding it; worth retrying with new ports.
    fn is_port_clash(&self) -> bool {
        match self {
            Error::ProcessExited { tail, .. } | Error::StartTimeout { tail, .. } => {
                tail.contains("address already in use")
            }
            _ => false,
        }
    }
}

/// How to start a [`ControlPlane`].
#[derive(Debug, Clone)]
pub struct Options {
    /// One directory with all four binaries. `None`: `$EGRESS_CP_BIN_DIR`, else build.sh's cache
    /// directories.
    pub bin_dir: Option<PathBuf>,
    /// Budget for the whole start (apiserver ready, then the controller manager working). About
    /// 4 s on an idle 2-core machine; the default leaves room for a machine busy compiling.
    pub start_timeout: Duration,
    /// Start kube-controller-manager (garbage collector, namespace and service-account
    /// controllers). Without it, owner references are never collected, deleted namespaces stay
    /// Terminating and namespaces get no `default` ServiceAccount.
    pub controller_manager: bool,
    /// Where to create the run directory; `None` is the system temp dir.
    pub parent_dir: Option<PathBuf>,
    /// Keep the run directory (certs, logs, etcd data) after stop, for debugging.
    /// `Options::default()` sets it when `EGRESS_CP_KEEP_RUN_DIR=1`.
    pub keep_run_dir: bool,
    /// Write the apiserver's audit log (every request at the Metadata level, as JSON lines) to
    /// `audit.log` in the run directory: which user sent which request, as the apiserver saw it
    /// (tests/e2e_guardrails_idle.rs counts the webhook's requests with it). Off by default: it
    /// costs a write per request.
    pub audit_log: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            bin_dir: None,
            start_timeout: Duration::from_secs(120),
            controller_manager: true,
            parent_dir: None,
            keep_run_dir: std::env::var("EGRESS_CP_KEEP_RUN_DIR").is_ok_and(|v| v == "1"),
            audit_log: false,
        }
    }
}

/// Client credentials of one user, signed by the control plane's CA.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    pub name: String,
    pub groups: Vec<String>,
    pub cert_and_key: CertAndKey,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// A kubeconfig that authenticates as this user against this control plane.
    pub kubeconfig: PathBuf,
}

/// A running etcd + kube-apiserver (+ kube-controller-manager). Dropping it stops everything.
#[derive(Debug)]
pub struct ControlPlane {
    run_dir: PathBuf,
    keep_run_dir: bool,
    binaries: Binaries,
    server_url: String,
    kubeconfig: PathBuf,
    ca: Ca,
    /// Signs only the apiserver's webhook client certificate (and test impostors).
    webhook_client_ca: Ca,
    ca_pem: String,
    ca_path: PathBuf,
    /// The CA of the client certificate the apiserver presents to webhooks.
    webhook_client_ca_path: PathBuf,
    /// In start order (etcd, kube-apiserver, kube-controller-manager); stopped in reverse.
    processes: Vec<Managed>,
    /// How each process was started (name, program, arguments): to start it again after
    /// [`ControlPlane::kill_process`].
    launches: Vec<(&'static str, PathBuf, Vec<String>)>,
    /// Declared after `processes` and dropped after them: its thread must outlive the children
    /// (see [`Spawner`]).
    spawner: Spawner,
    minted_users: AtomicUsize,
    startup: Duration,
    stopped: bool,
    /// The apiserver's audit log, with [`Options::audit_log`].
    audit_log: Option<PathBuf>,
}

/// The common name of the client certificate kube-apiserver presents to every admission webhook
/// it calls (configured with `--admission-control-config-file`, as a real cluster's would be).
pub const WEBHOOK_CLIENT_NAME: &str = "kube-apiserver-webhook-client";

/// How many times a start is retried when a picked port was taken by someone else.
const PORT_CLASH_ATTEMPTS: usize = 3;

impl ControlPlane {
    /// Starts etcd and kube-apiserver, waits for `/readyz` and the `default` namespace, then
    /// (unless disabled) starts kube-controller-manager and waits for its service-account
    /// controller to create `default/default`.
    pub fn start(opts: Options) -> Result<Self, Error> {
        let binaries = Binaries::locate(opts.bin_dir.as_deref())?;
        let mut attempt = 1;
        loop {
            match Self::start_once(binaries.clone(), &opts) {
                Err(e) if e.is_port_clash() && attempt < PORT_CLASH_ATTEMPTS => attempt += 1,
                other => return other,
            }
        }
    }

    fn start_once(binaries: Binaries, opts: &Options) -> Result<Self, Error> {
        let started = Instant::now();
        let deadline = started + opts.start_timeout;
        // Everything fallible that needs no directory comes first, so a failure leaves none.
        let ca = Ca::generate()?;
        let webhook_client_ca = Ca::generate_named("egress-webhook local webhook-client CA")?;
        let spawner = Spawner::new().map_err(Error::io("starting the spawner thread"))?;
        let parent = opts.parent_dir.clone().unwrap_or_else(std::env::temp_dir);
        let run_dir = create_run_dir(&parent)?;

        // From here on `cp` owns the run dir and the children: any early return drops it, which
        // kills whatever was started and removes the directory.
        let mut cp = ControlPlane {
            kubeconfig: run_dir.join("admin.kubeconfig"),
            ca_path: run_dir.join("pki/ca.crt"),
            webhook_client_ca_path: run_dir.join("pki/webhook-client-ca.crt"),
            run_dir,
            keep_run_dir: opts.keep_run_dir,
            binaries,
            server_url: String::new(),
            ca,
            webhook_client_ca,
            ca_pem: String::new(),
            processes: Vec::new(),
            launches: Vec::new(),
            spawner,
            minted_users: AtomicUsize::new(0),
            startup: Duration::ZERO,
            stopped: false,
            audit_log: None,
        };
        cp.ca_pem = cp.ca.cert_pem();

        let pki = cp.run_dir.join("pki");
        create_dir(&pki)?;
        write_file(&cp.ca_path, &cp.ca_pem, false)?;
        write_file(&pki.join("ca.key"), cp.ca.key_pem(), true)?;
        let serving = cp.ca.apiserver_cert()?;
        write_file(&pki.join("apiserver.crt"), &serving.cert_pem, false)?;
        write_file(&pki.join("apiserver.key"), &serving.key_pem, true)?;
        let (sa_key, sa_pub) = pki::service_account_key()?;
        write_file(&pki.join("sa.key"), &sa_key, true)?;
        write_file(&pki.join("sa.pub"), &sa_pub, false)?;

        let admission_config = cp.write_admission_config(&pki)?;

        let ports = process::free_ports(3).map_err(Error::io("picking free loopback ports"))?;
        let (etcd_client, etcd_peer, apiserver_port) = (ports[0], ports[1], ports[2]);
        cp.server_url = format!("https://127.0.0.1:{apiserver_port}");

        let admin = cp.write_user("admin", Some("system:masters"), "admin")?;
        // The admin kubeconfig lives at the top of the run dir, where people look for it.
        fs::rename(&admin.kubeconfig, &cp.kubeconfig)
            .map_err(Error::io(format!("moving {}", admin.kubeconfig.display())))?;

        let etcd_data = cp.run_dir.join("etcd-data");
        let etcd_client_url = format!("http://127.0.0.1:{etcd_client}");
        let etcd_peer_url = format!("http://127.0.0.1:{etcd_peer}");
        let etcd_args = args(&[
            "--name=egress-cp",
            &format!("--data-dir={}", etcd_data.display()),
            &format!("--listen-client-urls={etcd_client_url}"),
            &format!("--advertise-client-urls={etcd_client_url}"),
            &format!("--listen-peer-urls={etcd_peer_url}"),
            &format!("--initial-advertise-peer-urls={etcd_peer_url}"),
            &format!("--initial-cluster=egress-cp={etcd_peer_url}"),
            // Throw-away data: skip fsync, which dominates etcd latency on shared disks.
            "--unsafe-no-fsync",
            "--quota-backend-bytes=4294967296",
        ]);
        let audit_args = if opts.audit_log {
            let policy = pki.join("audit-policy.yaml");
            // Metadata: who, verb, resource, name and response code, no bodies. RequestReceived
            // left out: one event per request (two for a watch: started, complete).
            write_file(
                &policy,
                "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n",
                false,
            )?;
            let log = cp.run_dir.join("audit.log");
            let a = vec![
                format!("--audit-policy-file={}", policy.display()),
                format!("--audit-log-path={}", log.display()),
                "--audit-log-format=json".to_string(),
                // Written before the response: a request answered is in the log.
                "--audit-log-mode=blocking".to_string(),
            ];
            cp.audit_log = Some(log);
            a
        } else {
            Vec::new()
        };
        let p = pki.display();
        let mut apiserver_args = args(&[
            &format!("--etcd-servers={etcd_client_url}"),
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            &format!("--secure-port={apiserver_port}"),
            &format!(
                "--cert-dir={}",
                cp.run_dir.join("apiserver-certs").display()
            ),
            &format!("--tls-cert-file={p}/apiserver.crt"),
            &format!("--tls-private-key-file={p}/apiserver.key"),
            &format!("--client-ca-file={p}/ca.crt"),
            "--authorization-mode=RBAC",
            // Webhooks get a client certificate from the apiserver, so that a webhook can tell
            // its real caller from anyone else who reaches its port.
            &format!(
                "--admission-control-config-file={}",
                admission_config.display()
            ),
            "--service-cluster-ip-range=10.0.0.0/24",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            &format!("--service-account-key-file={p}/sa.pub"),
            &format!("--service-account-signing-key-file={p}/sa.key"),
            // A loopback advertise address is invalid as an Endpoints IP; without this the
            // apiserver logs an error every 10 s trying to publish the `kubernetes` Service.
            "--endpoint-reconciler-type=none",
        ]);
        apiserver_args.extend(audit_args);

        // The apiserver starts at once, without waiting for etcd: it retries its etcd
        // connection, and overlapping the two start-ups saves about a second.
        cp.spawn("etcd", cp.binaries.etcd.clone(), &etcd_args)?;
        cp.spawn(
            "kube-apiserver",
            cp.binaries.kube_apiserver.clone(),
            &apiserver_args,
        )?;
        cp.wait_until("kube-apiserver /readyz", deadline, "kube-apiserver", |cp| {
            cp.kubectl_succeeds(&["get", "--raw=/readyz"])
        })?;
        // /readyz does not cover the bootstrap controller that creates `default`; tests that
        // create objects there right away would race it.
        cp.wait_until("namespace default", deadline, "kube-apiserver", |cp| {
            cp.kubectl_succeeds(&["get", "namespace", "default"])
        })?;

        if opts.controller_manager {
            let kcm_args = args(&[
                &format!("--kubeconfig={}", cp.kubeconfig.display()),
                // resourcequota-controller: quota status, which the ResourceQuota admission
                // check (it runs after the validating webhooks) needs to enforce anything.
                "--controllers=garbage-collector-controller,namespace-controller,\
                 serviceaccount-controller,serviceaccount-token-controller,resourcequota-controller",
                "--use-service-account-credentials=false",
                "--leader-elect=false",
                &format!("--service-account-private-key-file={p}/sa.key"),
                &format!("--root-ca-file={p}/ca.crt"),
                // No HTTPS endpoint: nothing to bind, and no authn/authz kubeconfigs needed.
                "--bind-address=127.0.0.1",
                "--secure-port=0",
            ]);
            cp.spawn(
                "kube-controller-manager",
                cp.binaries.kube_controller_manager.clone(),
                &kcm_args,
            )?;
            // The service-account controller creating `default/default` shows the controller
            // manager is connected and its informers synced; the garbage collector and the
            // namespace controller sync at the same moment (measured 0.1-0.3 s apart).
            cp.wait_until(
                "kube-controller-manager",
                deadline,
                "kube-controller-manager",
                |cp| cp.kubectl_succeeds(&["get", "serviceaccount", "default", "-n", "default"]),
            )?;
        }
        cp.startup = started.elapsed();
        Ok(cp)
    }

    fn spawn(
        &mut self,
        name: &'static str,
        program: PathBuf,
        args: &[String],
    ) -> Result<(), Error> {
        let log = self.run_dir.join(format!("{name}.log"));
        let cmd = process::command(&program, args, &log)
            .map_err(Error::io(format!("creating {}", log.display())))?;
        let child = self
            .spawner
            .spawn(cmd)
            .map_err(Error::io(format!("starting {}", program.display())))?;
        self.processes.push(Managed { name, child, log });
        self.launches.push((name, program, args.to_vec()));
        Ok(())
    }

    /// An outage: SIGKILL `name` (`etcd`, `kube-apiserver` or `kube-controller-manager`), which
    /// stays down until [`ControlPlane::restart_process`].
    pub fn kill_process(&mut self, name: &str) -> Result<(), Error> {
        let p = self
            .processes
            .iter_mut()
            .find(|p| p.name == name)
            .ok_or_else(|| Error::InvalidUser(format!("no process {name:?}")))?;
        p.kill().map_err(Error::io(format!("killing {name}")))?;
        Ok(())
    }

    /// Start a killed process again with the same flags (same ports, same etcd data) and wait
    /// until the apiserver's `/readyz` is true again (it checks etcd too). Its log goes to
    /// `<name>.restarted.log`.
    pub fn restart_process(&mut self, name: &str, timeout: Duration) -> Result<(), Error> {
        let (name, program, args) = self
            .launches
            .iter()
            .find(|l| l.0 == name)
            .cloned()
            .ok_or_else(|| Error::InvalidUser(format!("no process {name:?}")))?;
        let log = self.run_dir.join(format!("{name}.restarted.log"));
        let cmd = process::command(&program, &args, &log)
            .map_err(Error::io(format!("creating {}", log.display())))?;
        let child = self
            .spawner
            .spawn(cmd)
            .map_err(Error::io(format!("starting {}", program.display())))?;
        if let Some(p) = self.processes.iter_mut().find(|p| p.name == name) {
            *p = Managed { name, child, log };
        }
        self.wait_until(
            "kube-apiserver /readyz after a restart",
            Instant::now() + timeout,
            name,
            |cp| cp.kubectl_succeeds(&["get", "--raw=/readyz"]),
        )
    }

    /// Polls `ready` every 100 ms until it holds, a child exits, or the deadline passes.
    fn wait_until(
        &mut self,
        what: &str,
        deadline: Instant,
        blame: &'static str,
        mut ready: impl FnMut(&Self) -> bool,
    ) -> Result<(), Error> {
        let started = Instant::now();
        loop {
            for p in &mut self.processes {
                if let Some(status) = p.exited() {
                    return Err(Error::ProcessExited {
                        process: p.name,
                        status: status.to_string(),
                        log: p.log.clone(),
                        tail: process::log_tail(&p.log, 40),
                    });
                }
            }
            if ready(self) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let log = self.run_dir.join(format!("{blame}.log"));
                return Err(Error::StartTimeout {
                    what: what.to_string(),
                    timeout: started.elapsed(),
                    tail: process::log_tail(&log, 40),
                    log,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `https://127.0.0.1:<port>` of kube-apiserver.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// The admin kubeconfig (CN=admin, O=system:masters, which bypasses RBAC).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// PEM of the CA that signed the apiserver's serving cert and every client cert.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Path of [`Self::ca_pem`] on disk.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// PEM file of the CA that signed the client certificate (CN [`WEBHOOK_CLIENT_NAME`]) the
    /// apiserver presents to admission webhooks: what a webhook's `--client-ca` names.
    pub fn webhook_client_ca_path(&self) -> &Path {
        &self.webhook_client_ca_path
    }

    /// A client certificate from the webhook-client CA with any common name: what an impostor
    /// who got hold of that CA's signature, or the apiserver itself ([`WEBHOOK_CLIENT_NAME`]),
    /// presents. Written under the run dir's `pki/`; returns (cert path, key path).
    pub fn webhook_client_cert(&self, common_name: &str) -> Result<(PathBuf, PathBuf), Error> {
        validate_name("webhook client name", common_name)?;
        let pair = self.webhook_client_ca.client_cert(common_name, None)?;
        let stem = self.run_dir.join("pki").join(format!(
            "webhook-client-{}",
            self.minted_users.fetch_add(1, Ordering::Relaxed)
        ));
        let (cert, key) = (stem.with_extension("crt"), stem.with_extension("key"));
        write_file(&cert, &pair.cert_pem, false)?;
        write_file(&key, &pair.key_pem, true)?;
        Ok((cert, key))
    }

    /// The run directory: certs, kubeconfigs, `<process>.log` files and etcd's data.
    /// The apiserver's audit log (JSON lines), when started with [`Options::audit_log`].
    pub fn audit_log(&self) -> Option<&Path> {
        self.audit_log.as_deref()
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    pub fn binaries(&self) -> &Binaries {
        &self.binaries
    }

    /// Launch to fully started (including the controller manager, if enabled).
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// (name, pid) of every process started, in start order.
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        self.processes
            .iter()
            .map(|p| (p.name, p.child.id()))
            .collect()
    }

    /// A kubectl command for the given kubeconfig. The discovery cache goes into the run dir so
    /// that nothing is written under `~/.kube` and no stale cache survives from another run.
    pub fn kubectl_command_for(&self, kubeconfig: &Path) -> Command {
        let mut cmd = Command::new(&self.binaries.kubectl);
        cmd.arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!(
                "--cache-dir={}",
                self.run_dir.join("kubectl-cache").display()
            ))
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null());
        cmd
    }

    /// A kubectl command authenticated as admin; add arguments, stdin etc. as needed.
    pub fn kubectl_command(&self) -> Command {
        self.kubectl_command_for(&self.kubeconfig)
    }

    /// Runs kubectl as admin and returns its output, whatever the exit status.
    pub fn kubectl<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<Output, Error> {
        self.kubectl_command()
            .args(args)
            .output()
            .map_err(Error::io(format!(
                "running {}",
                self.binaries.kubectl.display()
            )))
    }

    /// Runs kubectl as admin with `stdin` piped in (e.g. `apply -f -`).
    pub fn kubectl_with_stdin<S: AsRef<OsStr>>(
        &self,
        args: &[S],
        stdin: &str,
    ) -> Result<Output, Error> {
        let mut child = self
            .kubectl_command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(Error::io(format!(
                "running {}",
                self.binaries.kubectl.display()
            )))?;
        // Write from a thread: kubectl may fill its stdout pipe before it has read all input.
        let input = stdin.to_owned();
        let mut pipe = child.stdin.take();
        let writer = std::thread::spawn(move || match pipe.as_mut() {
            Some(p) => p.write_all(input.as_bytes()),
            None => Ok(()),
        });
        let out = child
            .wait_with_output()
            .map_err(Error::io("waiting for kubectl"))?;
        // A broken pipe only means kubectl stopped reading early; its exit status tells why.
        if let Ok(Err(e)) = writer.join()
            && e.kind() != io::ErrorKind::BrokenPipe
        {
            return Err(Error::Io {
                context: "writing kubectl's stdin".into(),
                source: e,
            });
        }
        Ok(out)
    }

    /// Runs kubectl as admin; a non-zero exit is an [`Error::Kubectl`] carrying stderr.
    /// Returns stdout.
    pub fn kubectl_ok<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<String, Error> {
        let out = self.kubectl(args)?;
        output_ok(args, out)
    }

    fn kubectl_succeeds(&self, args: &[&str]) -> bool {
        self.kubectl_command()
            .args(args)
            .arg("--request-timeout=5s")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Server-side applies the CRD manifests, then waits until every CRD is Established (served
    /// by the apiserver), so that custom objects can be created right after.
    pub fn install_crds<P: AsRef<Path>>(&self, paths: &[P]) -> Result<(), Error> {
        if paths.is_empty() {
            return Ok(());
        }
        let mut apply: Vec<String> = vec!["apply".into(), "--server-side".into()];
        for p in paths {
            apply.push("-f".into());
            apply.push(p.as_ref().display().to_string());
        }
        self.kubectl_ok(&apply)?;
        self.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "crd",
            "--all",
            "--timeout=60s",
        ])?;
        Ok(())
    }

    /// Mints a client certificate and a kubeconfig for `name`, signed by this control plane's
    /// CA, so that a component (the webhook, say) talks to the apiserver under its own identity
    /// and is subject to RBAC. `groups` holds at most one group: the certificate generator keeps
    /// one Organization per subject. Every authenticated user is also in
    /// `system:authenticated` without asking.
    pub fn mint_user(&self, name: &str, groups: &[&str]) -> Result<UserCredentials, Error> {
        validate_name("user name", name)?;
        for g in groups {
            validate_name("group", g)?;
        }
        if groups.len() > 1 {
            return Err(Error::InvalidUser(format!(
                "{} groups given for {name:?}; at most one group per certificate is supported",
                groups.len()
            )));
        }
        let n = self.minted_users.fetch_add(1, Ordering::Relaxed);
        // File names come from a counter plus a sanitized name: user names may hold ':' and
        // other characters that do not belong in paths.
        let stem: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(48)
            .collect();
        self.write_user(name, groups.first().copied(), &format!("user-{n}-{stem}"))
    }

    /// The admission configuration of kube-apiserver: both webhook plugins read a kubeconfig
    /// whose only user is the client certificate [`WEBHOOK_CLIENT_NAME`]. The apiserver picks a
    /// kubeconfig user by the webhook's host: `*.svc` covers in-cluster Services
    /// (`<name>.<namespace>.svc:443`), and `*`, the resolver's catch-all, the local webhooks at
    /// `https://127.0.0.1:<port>`, whose ports are only picked after the apiserver has started
    /// (the file is read once, at start-up).
    fn write_admission_config(&self, pki: &Path) -> Result<PathBuf, Error> {
        let pair = self
            .webhook_client_ca
            .client_cert(WEBHOOK_CLIENT_NAME, None)?;
        let (cert, key) = (
            pki.join("webhook-client.crt"),
            pki.join("webhook-client.key"),
        );
        write_file(
            &self.webhook_client_ca_path,
            &self.webhook_client_ca.cert_pem(),
            false,
        )?;
        write_file(&cert, &pair.cert_pem, false)?;
        write_file(&key, &pair.key_pem, true)?;
        let kubeconfig = pki.join("admission-kubeconfig.yaml");
        let user = serde_json::json!({
            "client-certificate": cert.display().to_string(),
            "client-key": key.display().to_string(),
        });
        let config = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "users": [
                {"name": "*.svc", "user": user},
                {"name": "*", "user": user},
            ],
        });
        // JSON is YAML: no serializer needed, and every path is quoted.
        write_file(&kubeconfig, &config.to_string(), true)?;
        let plugin = |name: &str| {
            serde_json::json!({
                "name": name,
                "configuration": {
                    "apiVersion": "apiserver.config.k8s.io/v1",
                    "kind": "WebhookAdmissionConfiguration",
                    "kubeConfigFile": kubeconfig.display().to_string(),
                },
            })
        };
        let admission = serde_json::json!({
            "apiVersion": "apiserver.config.k8s.io/v1",
            "kind": "AdmissionConfiguration",
            "plugins": [plugin("ValidatingAdmissionWebhook"), plugin("MutatingAdmissionWebhook")],
        });
        let path = pki.join("admission-config.yaml");
        write_file(&path, &admission.to_string(), false)?;
        Ok(path)
    }

    fn write_user(
        &self,
        name: &str,
        group: Option<&str>,
        stem: &str,
    ) -> Result<UserCredentials, Error> {
        let cert_and_key = self.ca.client_cert(name, group)?;
        let dir = self.run_dir.join("users");
        create_dir(&dir)?;
        let cert_path = dir.join(format!("{stem}.crt"));
        let key_path = dir.join(format!("{stem}.key"));
        let kubeconfig = dir.join(format!("{stem}.kubeconfig"));
        write_file(&cert_path, &cert_and_key.cert_pem, false)?;
        write_file(&key_path, &cert_and_key.key_pem, true)?;
        let text = render_kubeconfig(&self.server_url, &self.ca_path, name, &cert_path, &key_path);
        write_file(&kubeconfig, &text, true)?;
        Ok(UserCredentials {
            name: name.to_string(),
            groups: group.map(str::to_string).into_iter().collect(),
            cert_and_key,
            cert_path,
            key_path,
            kubeconfig,
        })
    }

    /// Stops kube-controller-manager, kube-apiserver and etcd (in that order: an apiserver
    /// that loses etcd first hangs for a minute) and removes the run directory. Returns the
    /// first error; cleanup continues past errors.
    pub fn stop(mut self) -> Result<(), Error> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), Error> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let mut first_err = None;
        while let Some(mut p) = self.processes.pop() {
            if let Err(e) = p.kill() {
                first_err.get_or_insert(Error::Io {
                    context: format!("stopping {}", p.name),
                    source: e,
                });
            }
        }
        if !self.keep_run_dir
            && let Err(e) = fs::remove_dir_all(&self.run_dir)
            && e.kind() != io::ErrorKind::NotFound
        {
            first_err.get_or_insert(Error::Io {
                context: format!("removing {}", self.run_dir.display()),
                source: e,
            });
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // Errors cannot be reported from Drop; stop() is the way to see them.
        let _ = self.shutdown();
    }
}

fn output_ok<S: AsRef<OsStr>>(args: &[S], out: Output) -> Result<String, Error> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Kubectl {
            args: args
                .iter()
                .map(|a| a.as_ref().to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// Names become certificate subjects and kubeconfig entries; reject what would be ambiguous
/// or unprintable there.
fn validate_name(what: &str, s: &str) -> Result<(), Error> {
    if s.is_empty() {
        return Err(Error::InvalidUser(format!("empty {what}")));
    }
    if s.chars().any(char::is_control) {
        return Err(Error::InvalidUser(format!(
            "{what} {s:?} holds control characters"
        )));
    }
    Ok(())
}

/// A kubeconfig with file references (not inline data), so that the certs next to it can be
/// inspected with openssl. Strings are written as JSON strings, which YAML reads verbatim
/// whatever characters they hold.
fn render_kubeconfig(server: &str, ca: &Path, user: &str, cert: &Path, key: &Path) -> String {
    let q = |s: &str| serde_json::Value::from(s).to_string();
    let path = |p: &Path| q(&p.display().to_string());
    let (server, ca, user, cert, key) = (q(server), path(ca), q(user), path(cert), path(key));
    [
        "apiVersion: v1".to_string(),
        "kind: Config".to_string(),
        "clusters:".to_string(),
        "- name: egress-cp".to_string(),
        "  cluster:".to_string(),
        format!("    server: {server}"),
        format!("    certificate-authority: {ca}"),
        "users:".to_string(),
        format!("- name: {user}"),
        "  user:".to_string(),
        format!("    client-certificate: {cert}"),
        format!("    client-key: {key}"),
        "contexts:".to_string(),
        "- name: egress-cp".to_string(),
        "  context:".to_string(),
        "    cluster: egress-cp".to_string(),
        format!("    user: {user}"),
        "current-context: egress-cp".to_string(),
        String::new(),
    ]
    .join("\n")
}

/// A fresh, private run directory under `parent`. Named after the pid and the clock so that
/// leftovers of a killed run are attributable; `create_dir` (not `_all`) refuses to reuse one.
fn create_run_dir(parent: &Path) -> Result<PathBuf, Error> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = parent.join(format!("egress-cp-{}-{nanos}-{n}", std::process::id()));
    private_dir_builder()
        .create(&dir)
        .map_err(Error::io(format!("creating {}", dir.display())))?;
    Ok(dir)
}

/// Creates a private directory inside the run dir; an existing one is fine (e.g. `users/`).
fn create_dir(dir: &Path) -> Result<(), Error> {
    match private_dir_builder().create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(Error::Io {
            context: format!("creating {}", dir.display()),
            source: e,
        }),
    }
}

/// Owner-only directories: they hold private keys.
fn private_dir_builder() -> fs::DirBuilder {
    let mut b = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b
}

/// Writes a file; `private` ones (keys, kubeconfigs) are readable by the owner only.
fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), Error> {
    let mut o = fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, if private { 0o600 } else { 0o644 });
    #[cfg(not(unix))]
    let _ = private;
    o.open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .map_err(Error::io(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_quotes_everything() {
        let k = render_kubeconfig(
            "https://127.0.0.1:6443",
            Path::new("/r/ca.crt"),
            "system:serviceaccount:ns:x",
            Path::new("/r/u.crt"),
            Path::new("/r/u.key"),
        );
        assert!(
            k.contains("  user: \"system:serviceaccount:ns:x\"\n"),
            "{k}"
        );
        assert!(
            k.contains("    server: \"https://127.0.0.1:6443\"\n"),
            "{k}"
        );
        assert!(k.contains("    client-key: \"/r/u.key\"\n"), "{k}");
        assert!(k.ends_with("current-context: egress-cp\n"));
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("user name", "").is_err());
        assert!(validate_name("user name", "a\nb").is_err());
        assert!(validate_name("user name", "system:serviceaccount:a:b").is_ok());
    }

    #[test]
    fn port_clash_is_recognised() {
        let e = Error::ProcessExited {
            process: "etcd",
            status: "exit status: 1".into(),
            log: PathBuf::from("/x"),
            tail: "listen tcp 127.0.0.1:1234: bind: address already in use".into(),
        };
        assert!(e.is_port_clash());
        assert!(!Error::InvalidUser("x".into()).is_port_clash());
    }

    #[test]
    fn control_plane_is_send_and_sync() {
        // A test binary may share one control plane through a `static`.
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ControlPlane>();
    }

    /// A bin dir of shell scripts standing in for the real binaries, to exercise start-up
    /// failures without a 9-minute build. `etcd` just sleeps; `kubectl` always fails, so the
    /// apiserver never looks ready.
    fn fake_bin_dir(apiserver_script: &str) -> (PathBuf, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!(
            "egress-cp-fake-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let bin = root.join("bin");
        let runs = root.join("runs");
        fs::create_dir_all(&bin).unwrap();
        fs::create_dir_all(&runs).unwrap();
        for (name, body) in [
            ("etcd", "exec sleep 60"),
            ("kube-apiserver", apiserver_script),
            ("kube-controller-manager", "exec sleep 60"),
            ("kubectl", "exit 1"),
        ] {
            let path = bin.join(name);
            fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
        (bin, runs)
    }

    fn fake_options(bin: &Path, runs: &Path, timeout: Duration) -> Options {
        Options {
            bin_dir: Some(bin.to_path_buf()),
            parent_dir: Some(runs.to_path_buf()),
            start_timeout: timeout,
            keep_run_dir: false,
            ..Options::default()
        }
    }

    #[test]
    fn start_failure_carries_the_log_tail_and_cleans_up() {
        let (bin, runs) = fake_bin_dir("echo 'E0101 flag parsing failed: --bogus' >&2\nexit 3");
        let err = ControlPlane::start(fake_options(&bin, &runs, Duration::from_secs(30)))
            .expect_err("the fake apiserver exits");
        match &err {
            Error::ProcessExited {
                process,
                status,
                tail,
                ..
            } => {
                assert_eq!(*process, "kube-apiserver");
                assert!(status.contains('3'), "{status}");
                assert!(tail.contains("flag parsing failed: --bogus"), "{tail}");
            }
            other => panic!("unexpected error: {other}"),
        }
        assert!(err.to_string().contains("flag parsing failed"));
        // The failed start removed its run dir (and killed the fake etcd with it).
        assert_eq!(fs::read_dir(&runs).unwrap().count(), 0);
        fs::remove_dir_all(bin.parent().unwrap()).unwrap();
    }

    #[test]
    fn start_timeout_names_what_was_awaited() {
        let (bin, runs) = fake_bin_dir("echo 'waiting for etcd'\nexec sleep 60");
        let err = ControlPlane::start(fake_options(&bin, &runs, Duration::from_millis(300)))
            .expect_err("kubectl never succeeds");
        match &err {
            Error::StartTimeout { what, tail, .. } => {
                assert_eq!(what, "kube-apiserver /readyz");
                assert!(tail.contains("waiting for etcd"), "{tail}");
            }
            other => panic!("unexpected error: {other}"),
        }
        assert_eq!(fs::read_dir(&runs).unwrap().count(), 0);
        fs::remove_dir_all(bin.parent().unwrap()).unwrap();
    }

    #[test]
    fn port_clash_is_retried_with_new_ports() {
        // Each attempt appends a line, so the number of attempts can be counted afterwards.
        let (bin, runs) = fake_bin_dir("");
        let counter = runs.parent().unwrap().join("attempts");
        let script = format!(
            "echo x >> '{}'\necho 'listen tcp 127.0.0.1:1: bind: address already in use' >&2\nexit 1",
            counter.display()
        );
        fs::write(bin.join("kube-apiserver"), format!("#!/bin/sh\n{script}\n")).unwrap();
        let err = ControlPlane::start(fake_options(&bin, &runs, Duration::from_secs(30)))
            .expect_err("the port is always taken");
        assert!(err.is_port_clash(), "{err}");
        let attempts = fs::read_to_string(&counter).unwrap().lines().count();
        assert_eq!(attempts, PORT_CLASH_ATTEMPTS);
        fs::remove_dir_all(bin.parent().unwrap()).unwrap();
    }

    #[test]
    fn start_without_binaries_says_how_to_build_them() {
        let opts = Options {
            bin_dir: Some(PathBuf::from("/nonexistent/egress-cp")),
            ..Options::default()
        };
        let msg = ControlPlane::start(opts)
            .expect_err("no binaries")
            .to_string();
        assert!(msg.contains("hack/controlplane/build.sh"), "{msg}");
    }
}
