//! The static binary of the image (`make static`, the recipe the Dockerfile runs) needs nothing
//! but itself: `file` and `ldd` call it statically linked, and in an empty root (a temporary
//! directory holding only the binary and what the test copies in, entered with `unshare -r` +
//! `chroot`: no libc, no /proc, /dev, /etc or /tmp) it prints its version and help, makes
//! certificates, checks the running example, and serves a review over TLS to a client outside
//! the root (the network namespace is shared).
//!
//! The test builds the binary itself, with `STATIC_PROFILE=dev`: the same linking as the
//! release binary, in about half the time (see the time it prints). Without user namespaces
//! or chroot it is SKIPPED, saying which is missing.

mod support;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use egress_webhook::cluster::dev::http_get_text;
use support::server::{Http, client, init_crypto, post, url, valid_review};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `make static STATIC_PROFILE=dev`, once per test binary; the path it prints.
fn static_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let started = Instant::now();
        let out = Command::new("make")
            .args(["-s", "static", "STATIC_PROFILE=dev"])
            .current_dir(repo())
            // Under `make test` these name the outer make's jobserver, which is not ours.
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS")
            .env_remove("MAKELEVEL")
            .output()
            .expect("make runs");
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "make static failed:\n{stdout}\n{}",
            text(&out.stderr)
        );
        let path = stdout
            .lines()
            .find_map(|l| l.strip_prefix("static binary: "))
            .unwrap_or_else(|| panic!("make static printed no path:\n{stdout}"));
        eprintln!(
            "make static STATIC_PROFILE=dev: {:.1?} (incremental when warm)",
            started.elapsed()
        );
        repo().join(path)
    })
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

/// `unshare -r chroot`, or why an empty root cannot be entered here.
fn empty_root_tools() -> Result<(PathBuf, PathBuf), String> {
    let unshare = which("unshare").ok_or("no unshare on PATH")?;
    let chroot = which("chroot").ok_or("no chroot on PATH")?;
    let probe = Command::new(&unshare)
        .args(["-r", "true"])
        .output()
        .map_err(|e| format!("unshare: {e}"))?;
    if !probe.status.success() {
        return Err(format!(
            "`unshare -r true` failed (user namespaces off?): {}",
            text(&probe.stderr).trim()
        ));
    }
    Ok((unshare, chroot))
}

/// The binary run as `/egress-webhook` inside `root`, with an empty environment as well.
fn in_root(tools: &(PathBuf, PathBuf), root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(&tools.0);
    c.arg("-r")
        .arg(&tools.1)
        .arg(root)
        .arg("/egress-webhook")
        .args(args)
        .env_clear();
    c
}

fn run_ok(mut c: Command, what: &str) -> Output {
    let out = c.output().expect("unshare runs");
    assert!(
        out.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A child killed (SIGKILL) on drop unless it already exited, so a failed assertion leaves
/// no server behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn static_binary_is_statically_linked() {
    let bin = static_binary();
    let file = Command::new("file")
        .arg(bin)
        .output()
        .expect("file(1) runs");
    let file = text(&file.stdout);
    eprintln!("file: {}", file.trim());
    // glibc's crt-static links a static PIE: file(1) says "static-pie linked".
    assert!(
        file.contains("statically linked") || file.contains("static-pie linked"),
        "{file}"
    );
    assert!(!file.contains("dynamically linked"), "{file}");
    let ldd = Command::new("ldd").arg(bin).output().expect("ldd runs");
    let ldd = format!("{}{}", text(&ldd.stdout), text(&ldd.stderr));
    eprintln!("ldd: {}", ldd.trim());
    assert!(ldd.contains("statically linked"), "{ldd}");
    assert!(!ldd.contains("libc.so"), "{ldd}");
}

#[test]
fn static_binary_serves_from_an_empty_root() {
    let tools = match empty_root_tools() {
        Ok(t) => t,
        Err(why) => {
            eprintln!("SKIPPED: cannot enter an empty root: {why}");
            return;
        }
    };
    let bin = static_binary();
    let root = tempfile::tempdir().expect("temp dir");
    std::fs::copy(bin, root.path().join("egress-webhook")).expect("copy the binary");
    let examples = root.path().join("examples");
    std::fs::create_dir(&examples).unwrap();
    for entry in std::fs::read_dir(repo().join("manifests/examples")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, examples.join(path.file_name().unwrap())).unwrap();
    }
    let listing: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    eprintln!("root holds {listing:?}");

    let version = run_ok(in_root(&tools, root.path(), &["--version"]), "--version");
    assert!(
        text(&version.stdout).starts_with(concat!("egress-webhook ", env!("CARGO_PKG_VERSION"))),
        "{}",
        text(&version.stdout)
    );
    let help = run_ok(in_root(&tools, root.path(), &["--help"]), "--help");
    assert!(
        text(&help.stdout).contains("serve"),
        "{}",
        text(&help.stdout)
    );
    run_ok(
        in_root(&tools, root.path(), &["certs", "--dir", "/tls"]),
        "certs",
    );
    let check = run_ok(
        in_root(&tools, root.path(), &["check", "/examples"]),
        "check",
    );
    assert!(
        !text(&check.stdout).contains("error:"),
        "{}",
        text(&check.stdout)
    );

    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let metrics: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let log = root.path().join("serve.log");
    let mut cmd = in_root(
        &tools,
        root.path(),
        &[
            "serve",
            "--objects=/examples",
            "--tls-cert=/tls/tls.crt",
            "--tls-key=/tls/tls.key",
            &format!("--listen={addr}"),
            &format!("--metrics-listen={metrics}"),
            "--shutdown-delay=0s",
        ],
    );
    cmd.stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut server = Running(cmd.spawn().expect("unshare runs"));
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Some(status) = server.0.try_wait().unwrap() {
            panic!("serve exited ({status}) in the empty root:\n{}", log_text());
        }
        match http_get_text(metrics, "/readyz") {
            Ok(_) => break,
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        http_get_text(metrics, "/readyz").is_ok(),
        "/readyz never answered 200 (last: {last}):\n{}",
        log_text()
    );

    init_crypto();
    let ca = std::fs::read_to_string(root.path().join("tls/ca.crt")).expect("certs wrote ca.crt");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for path in ["/mutate", "/validate"] {
        let (uid, review) = valid_review("static");
        let answer = rt
            .block_on(post(
                &client(&ca, Http::H1),
                &url(addr, path),
                serde_json::to_vec(&review).unwrap(),
            ))
            .unwrap_or_else(|e| panic!("POST {path}: {e}\n{}", log_text()));
        answer.assert_answers(&uid);
        assert_eq!(
            answer.response()["allowed"],
            true,
            "{path}: {}",
            answer.text
        );
    }

    // SIGTERM: the graceful path (no /proc or /dev in the root) ends with exit 0.
    // SAFETY: kill(2) on our own child's pid, not yet reaped.
    unsafe {
        libc::kill(server.0.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = server.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not stop on SIGTERM:\n{}",
            log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "serve exited {status}:\n{}", log_text());
}

/// glibc resolves names through NSS modules that a static binary cannot load; glibc 2.34+
/// builds the `files` and `dns` modules in, so /etc/hosts (and /etc/resolv.conf) still work
/// with no nsswitch.conf and no libnss_*.so. In a pod the apiserver is an IP
/// (KUBERNETES_SERVICE_HOST), but a `--kubeconfig` may name a host: resolve one in the empty
/// root and see the connection arrive.
#[test]
fn static_binary_resolves_names_from_etc_hosts() {
    let tools = match empty_root_tools() {
        Ok(t) => t,
        Err(why) => {
            eprintln!("SKIPPED: cannot enter an empty root: {why}");
            return;
        }
    };
    let bin = static_binary();
    let root = tempfile::tempdir().expect("temp dir");
    std::fs::copy(bin, root.path().join("egress-webhook")).expect("copy the binary");
    run_ok(
        in_root(&tools, root.path(), &["certs", "--dir", "/tls"]),
        "certs",
    );
    // The "apiserver": a listener that only needs to see the TCP connection.
    let apiserver = TcpListener::bind("127.0.0.1:0").unwrap();
    apiserver.set_nonblocking(true).unwrap();
    let port = apiserver.local_addr().unwrap().port();
    std::fs::create_dir(root.path().join("etc")).unwrap();
    std::fs::write(
        root.path().join("etc/hosts"),
        "127.0.0.1 apiserver.example.test\n",
    )
    .unwrap();
    std::fs::write(
        root.path().join("kubeconfig"),
        format!(
            "apiVersion: v1\nkind: Config\n\
             clusters: [{{name: c, cluster: {{server: 'https://apiserver.example.test:{port}', certificate-authority: /tls/ca.crt}}}}]\n\
             users: [{{name: u, user: {{token: not-checked}}}}]\n\
             contexts: [{{name: c, context: {{cluster: c, user: u}}}}]\n\
             current-context: c\n"
        ),
    )
    .unwrap();
    let log = root.path().join("serve.log");
    let mut cmd = in_root(
        &tools,
        root.path(),
        &[
            "serve",
            "--kubeconfig=/kubeconfig",
            "--tls-cert=/tls/tls.crt",
            "--tls-key=/tls/tls.key",
            &format!("--listen=127.0.0.1:{}", free_port()),
        ],
    );
    cmd.stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut server = Running(cmd.spawn().expect("unshare runs"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match apiserver.accept() {
            Ok((_, peer)) => {
                eprintln!("apiserver.example.test resolved: connection from {peer}");
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("accept: {e}"),
        }
        let log_text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(status) = server.0.try_wait().unwrap() {
            panic!("serve exited ({status}):\n{log_text}");
        }
        assert!(
            Instant::now() < deadline,
            "no connection to apiserver.example.test:{port}:\n{log_text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
