//! `omnibiz`: parse arguments, load settings, start telemetry, run a target.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use omnibiz::app::{self, Application, Target};
use omnibiz::seed::{self, SeedPlan};
use omnibiz_domain::{CustomerId, UserId, UserRole};
use omnibiz_service::auth::{Principal, mint_hs256};
use omnibiz_service::config::Settings;
use omnibiz_service::telemetry;
use omnibiz_store::mongo::legacy::MigrateOptions;

/// The process's allocator: jemalloc unless built without the `jemalloc`
/// feature (see `Cargo.toml`). Its size classes keep an idle connection's
/// memory close to what it holds live.
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "omnibiz",
    version,
    about = "OmniBiz Messaging: real-time chat between businesses and their customers"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// REST API + Socket.IO gateway in one process on an embedded SQLite store (the default).
    Serve,
    /// Stateless REST API pod (MongoDB and Redis required).
    Api,
    /// Socket.IO gateway pod (MongoDB and Redis required).
    Gateway,
    /// Create demo owners, customers and conversations; print tokens and curl lines.
    Seed {
        /// Business owners to create.
        #[arg(long, default_value_t = 1)]
        owners: usize,
        /// Customers per business owner.
        #[arg(long, default_value_t = 5)]
        customers_per_owner: usize,
        /// How many of each owner's customers get no conversation yet (to try
        /// starting one from either side); the others get one each.
        #[arg(long, default_value_t = 1)]
        fresh_customers: usize,
        /// Write every token (and conversation id) to this JSON file.
        #[arg(long)]
        tokens_out: Option<PathBuf>,
        /// Token lifetime in hours.
        #[arg(long, default_value_t = 24 * 7)]
        token_ttl_hours: u64,
        /// Base URL used in the printed curl lines (default: from HOST/PORT).
        #[arg(long)]
        base_url: Option<String>,
    },
    /// Prepare a MongoDB database the Node.js service wrote: number its
    /// messages (`seq`), fill the fields our reads need, build the indexes.
    /// Idempotent, resumable, safe while both services run (docs/migration.md).
    Migrate {
        /// Report what would change; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Messages numbered per batch.
        #[arg(long, default_value_t = 1000)]
        batch_size: usize,
        /// Pause between batches in milliseconds, to go easy on a busy database.
        #[arg(long, default_value_t = 0)]
        pause_ms: u64,
    },
    /// Mint a development token for an existing user or customer.
    Token {
        #[arg(long, conflicts_with = "customer", required_unless_present = "customer")]
        user: Option<String>,
        #[arg(long)]
        customer: Option<String>,
        /// For --user: mint an admin token.
        #[arg(long)]
        admin: bool,
        /// Lifetime in hours.
        #[arg(long, default_value_t = 24)]
        ttl_hours: u64,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    let service = match &command {
        Command::Serve => "omnibiz-serve",
        Command::Api => "omnibiz-api",
        Command::Gateway => "omnibiz-gateway",
        _ => "omnibiz-cli",
    };
    let otlp = settings.otlp_endpoint.clone().map(|endpoint| telemetry::Otlp {
        endpoint,
        service: service.to_owned(),
        sample_ratio: settings.trace_sample_ratio,
    });
    // Held to the end of `main`: dropping it flushes the spans still batched.
    let _traces = telemetry::init_tracing(settings.log_format, &settings.log_level, otlp.as_ref());
    match run(command, settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error.cause_chain = ?e, "fatal");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(settings, Target::Serve).await,
        Command::Api => serve(settings, Target::Api).await,
        Command::Gateway => serve(settings, Target::Gateway).await,
        Command::Seed { owners, customers_per_owner, fresh_customers, tokens_out, token_ttl_hours, base_url } => {
            let (secret, _) = omnibiz::secret::jwt_secret(&settings, true)?;
            let opened = app::open_store(&settings, Target::Serve).await?;
            if let Some(m) = &opened.mongo {
                m.ensure_indexes().await?;
            }
            let plan = SeedPlan {
                owners,
                customers_per_owner,
                fresh_customers,
                token_ttl: Duration::from_secs(token_ttl_hours * 3600),
                base_url: base_url.unwrap_or_else(|| format!("http://127.0.0.1:{}", settings.port)),
                tokens_out,
            };
            eprintln!("seeding into {}", opened.describe);
            let out = seed::run(opened.store, &secret, &plan).await?;
            print!("{}", seed::summary(&out, &plan));
            Ok(())
        }
        Command::Migrate { dry_run, batch_size, pause_ms } => {
            let opts = MigrateOptions { dry_run, batch: batch_size, pause: Duration::from_millis(pause_ms) };
            omnibiz::migrate::run(&settings, &opts).await.map(drop)
        }
        Command::Token { user, customer, admin, ttl_hours } => {
            let (secret, _) = omnibiz::secret::jwt_secret(&settings, true)?;
            let principal = match (user, customer) {
                (Some(u), _) => {
                    let role = if admin { UserRole::Admin } else { UserRole::BusinessOwner };
                    Principal::User { id: u.parse::<UserId>()?, role }
                }
                (None, Some(c)) => Principal::Customer { id: c.parse::<CustomerId>()? },
                (None, None) => anyhow::bail!("give --user ID or --customer ID"),
            };
            println!("{}", mint_hs256(&secret, &principal, ttl_hours * 3600)?);
            Ok(())
        }
    }
}

async fn serve(settings: Settings, target: Target) -> anyhow::Result<()> {
    let app = Application::build(&settings, target).await?;
    println!("{}", app.banner());
    app.run_until_stopped(app::shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}
