//! `egress-webhook dev`: a local Kubernetes control plane with the webhook registered, for trying
//! things with kubectl. Foreground by default (Ctrl-C or SIGTERM stops everything);
//! `--detach --state-dir DIR` runs the same thing in the background and returns once it is
//! ready; `--down --state-dir DIR` stops it.
//!
//! The webhook runs in this process (`cluster::dev::DevCluster`, in-process mode): one process
//! to stop, and the same code path as the end-to-end tests. It still talks to the apiserver only
//! as its own client-certificate user `egress-webhook`, bound to the ClusterRole of the
//! manifests, never as admin.
//!
//! State directory layout: `kubeconfig` (admin), `pid`, `ready` (written last, JSON with the
//! addresses), `webhook.log`, `dev.log` (detached only), and the control plane's run directory
//! `egress-cp-*` (certificates, process logs, etcd data; removed on stop).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cluster::dev::{DevCluster, DevOptions, WebhookMode};
use crate::controlplane::{self, K8S_VERSION};

use super::{EXIT_FINDINGS, EXIT_OK, EXIT_USAGE};

#[derive(clap::Args, Debug)]
pub struct DevArgs {
    /// The cluster name the webhook runs with.
    #[arg(long, default_value = "cluster1", env = "CLUSTER_NAME")]
    pub cluster_name: String,
    /// Once the webhook is live, `kubectl apply` these files (a directory: its files in name
    /// order) and print the Istio objects the webhook generates for them.
    #[arg(long)]
    pub apply: Vec<PathBuf>,
    /// Keep the run here: kubeconfig, pid, logs (required by --detach and --down).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Start in the background; return when everything is ready.
    #[arg(long, requires = "state_dir", conflicts_with = "down")]
    pub detach: bool,
    /// Stop the background instance of --state-dir.
    #[arg(long, requires = "state_dir", conflicts_with = "apply")]
    pub down: bool,
    /// Give up when the start takes longer (seconds).
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

pub fn run(args: &DevArgs) -> i32 {
    let result = if args.down {
        down(args)
    } else if args.detach {
        detach(args)
    } else {
        foreground(args)
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FINDINGS
        }
    }
}

fn state_dir(args: &DevArgs) -> Result<Option<PathBuf>, String> {
    let Some(dir) = &args.state_dir else {
        return Ok(None);
    };
    fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    dir.canonicalize()
        .map(Some)
        .map_err(|e| format!("{}: {e}", dir.display()))
}

/// The pid of a live `egress-webhook dev` recorded in `dir`, if any.
fn running_pid(dir: &Path) -> Option<i32> {
    let pid: i32 = fs::read_to_string(dir.join("pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    is_dev_process(pid).then_some(pid)
}

/// Is `pid` alive (not a zombie) and an `egress-webhook ... dev` process? Guards against a pid
/// file that outlived its process and a pid reused by something else.
fn is_dev_process(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name: "1234 (name) S ...".
    let state = stat.rsplit(')').next().map(str::trim_start).unwrap_or("");
    if state.starts_with('Z') || state.starts_with('X') {
        return false;
    }
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    args.first().is_some_and(|a| a.contains("egress-webhook")) && args.iter().any(|a| a == "dev")
}

/// Does `pid` exist and is not a zombie?
fn process_running(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit(')').next().map(str::trim_start).unwrap_or("");
        !(state.starts_with('Z') || state.starts_with('X'))
    })
}

/// Removes what a previous run that did not stop cleanly (SIGKILL, power loss) left behind.
fn clean_stale(dir: &Path) {
    for f in ["pid", "ready", "kubeconfig"] {
        let _ = fs::remove_file(dir.join(f));
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("egress-cp-") {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

fn foreground(args: &DevArgs) -> Result<i32, String> {
    let dir = state_dir(args)?;
    if let Some(dir) = &dir {
        if let Some(pid) = running_pid(dir) {
            return Err(format!(
                "already running in {} (pid {pid}); stop it with `egress-webhook dev --down --state-dir {}`",
                dir.display(),
                dir.display()
            ));
        }
        clean_stale(dir);
        fs::write(dir.join("pid"), std::process::id().to_string())
            .map_err(|e| format!("writing {}/pid: {e}", dir.display()))?;
    }
    init_logging(dir.as_deref());
    let started = Instant::now();
    let opts = DevOptions {
        cluster_name: args.cluster_name.clone(),
        webhook: WebhookMode::InProcess,
        control_plane: controlplane::Options {
            parent_dir: dir.clone(),
            ..controlplane::Options::default()
        },
        webhook_timeout: Duration::from_secs(args.timeout),
        ..DevOptions::default()
    };
    println!(
        "starting: etcd, kube-apiserver and kube-controller-manager {K8S_VERSION}, CRDs, webhook ..."
    );
    let dev = match DevCluster::start(opts) {
        Ok(d) => d,
        Err(e) => {
            if let Some(dir) = &dir {
                clean_stale(dir);
            }
            return Err(e.to_string());
        }
    };
    // From here on, Ctrl-C and SIGTERM are handled: they end the wait below, and `dev` is dropped
    // (webhook, then control plane) before the state files are removed.
    let signals = dev.block_on(async { Signals::new() });
    let code = report_and_apply(&dev, args, dir.as_deref(), started);

    let kubeconfig = match &dir {
        Some(d) => {
            let k = d.join("kubeconfig");
            fs::copy(dev.kubeconfig(), &k).map_err(|e| format!("writing {}: {e}", k.display()))?;
            k
        }
        None => dev.kubeconfig().to_path_buf(),
    };
    let kubectl_dir = dev
        .cp()
        .binaries()
        .kubectl
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    println!();
    println!("export KUBECONFIG={}", kubeconfig.display());
    println!(
        "export PATH={}:$PATH   # kubectl {K8S_VERSION}",
        kubectl_dir.display()
    );
    if let Some(dir) = &dir {
        let ready = json!({
            "pid": std::process::id(),
            "kubeconfig": kubeconfig,
            "server": dev.cp().server_url(),
            "webhook": dev.webhook_url(),
            "metrics": dev.webhook_metrics_addr().map(|a| format!("http://{a}/metrics")),
            // For a webhook of your own against this cluster: the identity dev's webhook runs
            // as, and the CA of the client certificate the apiserver presents (`--client-ca`).
            "webhook_kubeconfig": dev.webhook_user().kubeconfig,
            "webhook_identity": dev.webhook_user().name,
            "webhook_client_ca": dev.cp().webhook_client_ca_path(),
            "kubectl": dev.cp().binaries().kubectl,
            "seconds": started.elapsed().as_secs_f64(),
        });
        fs::write(dir.join("ready"), format!("{ready:#}\n"))
            .map_err(|e| format!("writing {}/ready: {e}", dir.display()))?;
    }
    println!();
    println!("Ctrl-C stops everything.");
    let _ = std::io::stdout().flush();

    let why = match signals {
        Ok(mut s) => dev.block_on(s.recv()),
        Err(e) => {
            return Err(format!(
                "cannot handle signals ({e}); not waiting, stopping now"
            ));
        }
    };
    println!("{why}: stopping the webhook and the control plane ...");
    let stop = Instant::now();
    let result = dev.stop();
    if let Some(dir) = &dir {
        clean_stale(dir);
    }
    result.map_err(|e| e.to_string())?;
    println!("stopped in {:.1?}", stop.elapsed());
    Ok(code)
}

/// Prints where everything is, applies `--apply`, renders it. The exit code: 1 when an apply
/// failed (everything keeps running).
fn report_and_apply(dev: &DevCluster, args: &DevArgs, dir: Option<&Path>, started: Instant) -> i32 {
    let t = dev.timings();
    let cp = dev.cp();
    println!("ready in {:.1?}:", started.elapsed());
    println!(
        "  apiserver  {}  ({:.1?}; run dir {})",
        cp.server_url(),
        t.control_plane,
        cp.run_dir().display()
    );
    println!(
        "  CRDs       ExternalService, VirtualGateway, AccessPolicy + Istio 1.24.6  ({:.1?})",
        t.crds
    );
    println!(
        "  webhook    {}/mutate, /validate  as {}, cluster name {}  (catalog synced in {:.1?}; registered and called by the apiserver in {:.1?})",
        dev.webhook_url(),
        dev.webhook_user().name,
        dev.core_options().cluster_name,
        t.webhook,
        t.live
    );
    if let Some(dir) = dir {
        println!("  logs       {}", dir.join("webhook.log").display());
    }
    let mut code = EXIT_OK;
    let mut files = Vec::new();
    for p in &args.apply {
        match files_in(p) {
            Ok(f) => files.extend(f),
            Err(e) => {
                eprintln!("error: {e}");
                code = EXIT_FINDINGS;
            }
        }
    }
    for f in &files {
        println!();
        println!("$ kubectl apply -f {}", f.display());
        let path = f.display().to_string();
        match cp.kubectl(&["apply", "-f", &path]) {
            Ok(out) => {
                print!("{}", String::from_utf8_lossy(&out.stderr));
                print!("{}", String::from_utf8_lossy(&out.stdout));
                if !out.status.success() {
                    code = EXIT_FINDINGS;
                }
            }
            Err(e) => {
                println!("error: {e}");
                code = EXIT_FINDINGS;
            }
        }
    }
    if !files.is_empty() {
        println!();
        println!(
            "# The Istio objects the webhook wrote for them (its companions), read back from the cluster;"
        );
        println!("# `egress-webhook render manifests/examples` prints their full YAML.");
        let kinds = crate::companions::kinds::KINDS
            .iter()
            .map(|k| k.3)
            .collect::<Vec<_>>()
            .join(",");
        let selector = format!(
            "{}={}",
            crate::core::expand::metadata::MANAGED_BY,
            crate::core::expand::metadata::MANAGER
        );
        println!("$ kubectl get {kinds} -A -l {selector}");
        match dev.cp().kubectl(&["get", &kinds, "-A", "-l", &selector]) {
            Ok(out) => {
                print!("{}", String::from_utf8_lossy(&out.stdout));
                print!("{}", String::from_utf8_lossy(&out.stderr));
                if !out.status.success() {
                    code = EXIT_FINDINGS;
                }
            }
            Err(e) => {
                println!("error: {e}");
                code = EXIT_FINDINGS;
            }
        }
    }
    code
}

/// A file, or the YAML/JSON files of a directory in name order.
fn files_in(p: &Path) -> Result<Vec<PathBuf>, String> {
    if p.is_file() {
        return Ok(vec![p.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = fs::read_dir(p)
        .map_err(|e| format!("{}: {e}", p.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|f| {
            f.is_file()
                && matches!(
                    f.extension().and_then(|x| x.to_str()),
                    Some("yaml" | "yml" | "json")
                )
        })
        .collect();
    files.sort();
    Ok(files)
}

fn init_logging(dir: Option<&Path>) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let file = dir.and_then(|d| fs::File::create(d.join("webhook.log")).ok());
    let _ = match file {
        Some(f) => builder
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(f))
            .try_init(),
        None => builder.with_writer(std::io::stderr).try_init(),
    };
}

/// SIGINT and SIGTERM, registered at once (so they no longer kill the process) and awaited later.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Runs `dev` in the background: the same binary, in its own session (so the terminal's Ctrl-C
/// does not reach it), output to `<state-dir>/dev.log`. Returns once `ready` appears.
fn detach(args: &DevArgs) -> Result<i32, String> {
    let Some(dir) = state_dir(args)? else {
        return Ok(EXIT_USAGE);
    };
    if let Some(pid) = running_pid(&dir) {
        return Err(format!(
            "already running in {} (pid {pid}); stop it with `egress-webhook dev --down --state-dir {}`",
            dir.display(),
            dir.display()
        ));
    }
    clean_stale(&dir);
    let exe = std::env::current_exe().map_err(|e| format!("locating this binary: {e}"))?;
    let log_path = dir.join("dev.log");
    let log = fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut cmd = Command::new(&exe);
    cmd.arg("dev")
        .arg("--state-dir")
        .arg(&dir)
        .arg("--cluster-name")
        .arg(&args.cluster_name)
        .arg("--timeout")
        .arg(args.timeout.to_string());
    for a in &args.apply {
        cmd.arg("--apply").arg(a);
    }
    cmd.stdin(Stdio::null()).stdout(log).stderr(log_err);
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe and allocates nothing.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("starting {}: {e}", exe.display()))?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout + 30);
    loop {
        if dir.join("ready").is_file() {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!(
                "the background `dev` exited ({status}) before it was ready; {}:\n{log}",
                log_path.display()
            ));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            clean_stale(&dir);
            return Err(format!(
                "not ready within {}s; see {}",
                args.timeout + 30,
                log_path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = fs::read_to_string(&log_path).unwrap_or_default();
    // Everything the foreground run printed, except its Ctrl-C hint.
    print!("{}", log.replace("Ctrl-C stops everything.\n", ""));
    println!(
        "running in the background (pid {}); stop it with `make dev-down` or `egress-webhook dev --down --state-dir {}`",
        child.id(),
        dir.display()
    );
    Ok(EXIT_OK)
}

/// Stops the background instance: SIGTERM, then wait until it is gone (it stops the webhook
/// and the control plane and removes its files itself); SIGKILL after 30 s.
fn down(args: &DevArgs) -> Result<i32, String> {
    let Some(dir) = state_dir(args)? else {
        return Ok(EXIT_USAGE);
    };
    let Some(pid) = running_pid(&dir) else {
        clean_stale(&dir);
        println!("nothing running in {}", dir.display());
        return Ok(EXIT_OK);
    };
    // SAFETY: kill(2) on a pid just checked to be an `egress-webhook dev` process.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    // Wait on the process state only: while it exits, its cmdline is already empty.
    while process_running(pid) {
        if Instant::now() >= deadline {
            // SAFETY: as above.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(200));
            clean_stale(&dir);
            return Err(format!(
                "pid {pid} did not stop within 30 s after SIGTERM; sent SIGKILL (its children die with it)"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    clean_stale(&dir);
    println!("stopped (pid {pid}) in {:.1?}", started.elapsed());
    Ok(EXIT_OK)
}
