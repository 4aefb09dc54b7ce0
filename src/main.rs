//! egress-webhook: flags and wiring only. The work happens in the library (`cli`, `core`).

use std::process::ExitCode;

/// The offline commands allocate and free many small objects (20,000 objects decode into
/// hundreds of thousands of strings and maps): mimalloc halves the time spent in the allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use egress_webhook::cli::{
    self, access::AccessArgs, certs::CertsArgs, check::CheckArgs, dev::DevArgs, render::RenderArgs,
    serve::ServeArgs, webhook_config::WebhookConfigArgs,
};

#[derive(Parser)]
#[command(
    name = "egress-webhook",
    version,
    about = "Gloo Mesh v2 egress kinds on plain Istio: admission webhook and offline tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Default, validate and cross-check objects from files (exit 0: no errors, 1: errors, 2: usage/parse).
    Check(CheckArgs),
    /// Print the Istio objects the webhook would write for the objects in the files.
    Render(RenderArgs),
    /// Who can reach an external host through the egress gateway (exit with --from: 0 allowed, 1 denied, 3 depends on the request).
    Access(AccessArgs),
    /// Print the CustomResourceDefinitions of ExternalService, VirtualGateway and AccessPolicy.
    Crds,
    /// List every rule the webhook enforces (id, action, kind, summary).
    Rules {
        /// A Markdown table instead of aligned text.
        #[arg(long)]
        markdown: bool,
    },
    /// Write a CA and a serving certificate for local use.
    Certs(CertsArgs),
    /// Serve /mutate and /validate over HTTPS (plus /healthz, /readyz, /metrics).
    Serve(Box<ServeArgs>),
    /// Print the Mutating- and ValidatingWebhookConfiguration (default: as in manifests/base/).
    WebhookConfig(WebhookConfigArgs),
    /// A local control plane with CRDs and the webhook registered (Ctrl-C stops it).
    Dev(DevArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // clap uses 0 for --help/--version and 2 for usage errors, as we do.
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    // stdout/stderr are locked only by the synchronous commands: `serve` logs to stderr from
    // its worker threads, which would wait forever on a lock held here.
    let (out, err) = (std::io::stdout, std::io::stderr);
    let code = match cli.command {
        Command::Check(args) => cli::check::run(&args, &mut out().lock(), &mut err().lock()),
        Command::Render(args) => cli::render::run(&args, &mut out().lock(), &mut err().lock()),
        Command::Access(args) => cli::access::run(&args, &mut out().lock(), &mut err().lock()),
        Command::Crds => print_or_fail(egress_webhook::crds::render()),
        Command::Rules { markdown } => {
            print!("{}", cli::rules::render(markdown));
            cli::EXIT_OK
        }
        Command::Certs(args) => match cli::certs::run(&args) {
            Ok(()) => cli::EXIT_OK,
            Err(e) => {
                eprintln!("error: {e}");
                cli::EXIT_FINDINGS
            }
        },
        Command::Serve(args) => serve(*args),
        Command::WebhookConfig(args) => print_or_fail(cli::webhook_config::run(&args)),
        Command::Dev(args) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            cli::dev::run(&args)
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(2))
}

/// Print a generated document, or the error (exit 2).
fn print_or_fail<E: std::fmt::Display>(text: Result<String, E>) -> i32 {
    match text {
        Ok(text) => {
            print!("{text}");
            cli::EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            cli::EXIT_USAGE
        }
    }
}

/// The server runs on tokio; everything else is synchronous.
fn serve(args: ServeArgs) -> i32 {
    // One crypto provider for the whole process: ring (kube and rustls agree on it).
    let _ = rustls::crypto::ring::default_provider().install_default();
    cli::serve::init_logging(args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return cli::EXIT_FINDINGS;
        }
    };
    match runtime.block_on(cli::serve::run(args)) {
        Ok(()) => cli::EXIT_OK,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            cli::EXIT_FINDINGS
        }
    }
}
