//! `emporium`: the whole storefront back end in one binary.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use emporium_http::config::{Config, Overrides};

mod status;

/// The request path allocates on every hop; glibc malloc took 19% of the CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "emporium",
    version,
    about = "A storefront back end where every cart and order is an actor"
)]
struct Cli {
    /// TOML configuration file (overridden by EMPORIUM_* variables and flags).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Address to listen on (EMPORIUM_LISTEN).
    #[arg(long, global = true)]
    listen: Option<String>,
    /// Data directory (EMPORIUM_DATA_DIR).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the storefront API (the default).
    Serve,
    /// Email customers about their orders: consume the order events from RabbitMQ and send
    /// each over SMTP, effectively once (EMPORIUM_SMTP_URL, EMPORIUM_MAIL_FROM, …).
    Notify,
    /// Manage the product catalog offline.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Print the API's OpenAPI 3.1 document (what `GET /api/openapi.json` serves), or write it
    /// to a file (`emporium openapi --out docs/openapi.json`).
    Openapi {
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Look at a running cluster.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Print a node's view of the cluster (GET /admin/cluster): members, shards per node, shards
    /// in motion, the last handoffs and forwarding counters.
    Status(status::StatusArgs),
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Create or update products (by SKU) from a JSON file.
    Import { file: PathBuf },
}

fn main() -> std::process::ExitCode {
    // Every TLS connection (store, Redis, RabbitMQ) is rustls on ring: named once for the process,
    // so a dependency that also enables another provider cannot leave the choice ambiguous.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let telemetry = emporium_http::telemetry::init();
    let cli = Cli::parse();
    // A client of a running node: it needs none of the server's configuration.
    if let Some(Command::Cluster {
        command: ClusterCommand::Status(args),
    }) = cli.command
    {
        let result = actix_web::rt::System::new().block_on(status::run(args));
        drop(telemetry);
        return match result {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("emporium: {message}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    // Needs no configuration either: the document depends on nothing but the code.
    if let Some(Command::Openapi { out }) = &cli.command {
        let doc = emporium_http::openapi::to_json();
        let written = match out {
            Some(path) => std::fs::write(path, doc)
                .map_err(|e| format!("cannot write {}: {e}", path.display())),
            None => {
                use std::io::Write as _;
                std::io::stdout()
                    .write_all(doc.as_bytes())
                    .map_err(|e| format!("cannot write to stdout: {e}"))
            }
        };
        return match written {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("emporium: {message}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let overrides = Overrides {
        listen: cli.listen,
        data_dir: cli.data_dir,
    };
    let config = match Config::load(cli.config.as_deref(), &overrides) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("emporium: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = actix_web::rt::System::new().block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => emporium_http::server::serve(config).await,
            Command::Catalog {
                command: CatalogCommand::Import { file },
            } => emporium_http::server::import_file(config, &file).await,
            Command::Cluster { .. } | Command::Openapi { .. } => Ok(()),
            #[cfg(feature = "notify")]
            Command::Notify => emporium_http::notify::run(config).await,
            #[cfg(not(feature = "notify"))]
            Command::Notify => Err(anyhow::anyhow!(
                "this build has no notifications (cargo feature `notify`)"
            )),
        }
    });
    drop(telemetry);
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("emporium: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
