use std::process::ExitCode;

use fleet_ledger::cli::{
    AnomaliasArgs, AnomaliasCommand, BenchArgs, BenchCommand, Command, LogFormat,
};
use fleet_ledger::settings::{LedgerSettings, WebhookSettings};
use fleet_ledger::webhooks::seal::SealingKey;
use fleet_ledger::{auth, bench, config, http, integrity, AppState};
use tracing_subscriber::EnvFilter;

// See Cargo.toml: glibc's malloc was a quarter of the CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    // One rustls crypto provider for the whole process, before anything builds a TLS config.
    // With the `kurrentdb` feature rustls is compiled with aws-lc too, and then a config built
    // without a process default panics; the KurrentDB client's own attempt to install aws-lc
    // at its first connection finds ring already there and leaves it (it ignores the refusal).
    // Webhooks name ring explicitly, so either way nothing depends on which one won. Ring for
    // the reason src/webhooks/client.rs gives (its deprecation is about post-quantum key
    // exchange only).
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
    let loaded = config::load().unwrap_or_else(|error| error.exit());
    if let Command::Config(_) = &loaded.cli.command {
        print!("{}", loaded.describe());
        return ExitCode::SUCCESS;
    }
    let cli = loaded.cli;
    // The bench runs the service in this process: its per-request info lines would bury the
    // progress line and the table (RUST_LOG still turns them on).
    // The integrity commands print their own report; info lines would only interleave.
    let default_level = match cli.command {
        Command::Serve(_) | Command::Token(_) => "info",
        _ => "warn",
    };
    init_logging(cli.log_format, default_level);
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "fleet-ledger failed");
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(command: Command) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        Command::Serve(args) => {
            let keys = auth::JwtKeys::load(&args.jwt.settings(), &args.store.data_dir)?;
            let location = args.store.location();
            let settings = LedgerSettings {
                time_zone: args.time_zone.clone(),
                saldo_critico_cop: args.saldo_critico,
                webhooks: WebhookSettings {
                    key: SealingKey::load(&args.store.data_dir)?,
                    allow_private: args.webhook_allow_private,
                    ..WebhookSettings::default()
                },
                snapshot_every_events: args.snapshot_every,
                ready_lag_max_events: args.ready_lag_max,
                dev_login: args.dev_login,
                anomalies: args.anomalies.thresholds(),
            };
            if settings.webhooks.allow_private {
                tracing::warn!(
                    "webhooks may call loopback, private and link-local addresses \
                     (--webhook-allow-private): for development only"
                );
            }
            if settings.dev_login {
                tracing::warn!(
                    "the dashboard's login lets anyone pick a role without a token \
                     (--dev-login): for development only"
                );
            }
            let state = AppState::open_with(&location, keys, settings).await?;

            let listener = tokio::net::TcpListener::bind(args.listen).await?;
            tracing::info!(listen = %listener.local_addr()?, store = state.log.backend(), "fleet-ledger serving");
            // Live feeds never end by themselves: told of the shutdown, they end, and their
            // connections stop holding the graceful shutdown open.
            let (closing, closing_feeds) = tokio::sync::watch::channel(false);
            let app = fleet_ledger::app_with_limits(state.clone(), args.limits.limits())
                .layer(axum::Extension(http::eventos::Closing(closing_feeds)));
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    shutdown_signal().await;
                    let _ = closing.send(true);
                })
                .await?;
            tracing::info!("stopped accepting requests; flushing the event log");
            state.shutdown().await;
            tracing::info!("shut down cleanly");
            Ok(())
        }
        Command::Config(_) => Ok(()),
        Command::Token(args) => {
            let keys = auth::JwtKeys::load(&args.jwt.settings(), &args.data_dir)?;
            let roles = args
                .roles
                .iter()
                .map(|name| {
                    auth::Role::parse(name).ok_or_else(|| {
                        format!("unknown role {name:?}: use admin, operador or auditor")
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            println!("{}", keys.try_issue(&args.sub, &roles, args.ttl)?);
            Ok(())
        }
        Command::Bench(BenchArgs {
            command: Some(BenchCommand::Append(args)),
            ..
        }) => {
            let scratch = tempdir()?;
            let log = bench::open_log(args.database_url.as_deref(), &scratch).await?;
            let report = bench::append(log.clone(), args.writers, args.events).await;
            log.shutdown().await;
            let _ = std::fs::remove_dir_all(&scratch);
            println!("{}", report?);
            Ok(())
        }
        Command::Verify(args) => {
            let mut out = std::io::stdout().lock();
            match &args.file {
                Some(file) => integrity::verify_file(file, &mut out)?,
                None => integrity::verify_store(&args.store.location(), &mut out).await?,
            };
            Ok(())
        }
        Command::Export(args) => {
            let location = args.store.location();
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            integrity::export(&location.log_url, args.desde_posicion, &mut out).await?;
            Ok(())
        }
        Command::Import(args) => {
            let location = args.store.location();
            let mut out = std::io::stdout().lock();
            integrity::import(&location.log_url, &args.file, &mut out).await?;
            Ok(())
        }
        Command::Replay(args) => {
            let mut out = std::io::stdout().lock();
            fleet_ledger::rebuild::replay(&args.store.location(), &args.projections, &mut out)
                .await?;
            Ok(())
        }
        Command::Anomalias(AnomaliasArgs {
            command: AnomaliasCommand::Evaluar(args),
        }) => {
            if !(0.0..=1.0).contains(&args.proporcion) {
                return Err(format!(
                    "--proporcion must be between 0 and 1, not {}",
                    args.proporcion
                )
                .into());
            }
            let month = fleet_ledger::anomalies::generate(
                args.seed,
                args.vehiculos as usize,
                args.proporcion,
            );
            let evaluation =
                fleet_ledger::anomalies::Evaluation::of(&month, &args.thresholds.thresholds());
            println!("{evaluation}");
            if !evaluation.meets_target() {
                return Err("a rule misses recall ≥ 0.95 at precision ≥ 0.90 (see above)".into());
            }
            Ok(())
        }
        Command::Backup(args) => {
            let mut out = std::io::stdout().lock();
            integrity::backup(&args.store.location(), &args.file, &mut out).await?;
            Ok(())
        }
        Command::Bench(BenchArgs { command: None, run }) => {
            // Stopping on a signal drops the run, and with it the temporary stores (which
            // hold gigabytes after a long history); a PostgreSQL schema in use stays behind.
            let report = tokio::select! {
                report = bench::run(run.to_config()?) => report?,
                () = shutdown_signal() => return Err("interrupted before the bench finished".into()),
            };
            println!("{report}");
            if let Some(path) = &run.json {
                std::fs::write(path, report.to_json()?)
                    .map_err(|e| format!("writing {}: {e}", path.display()))?;
            }
            if !report.verified() {
                return Err("the service disagrees with what it acknowledged (see above)".into());
            }
            Ok(())
        }
    }
}

fn tempdir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("fleet-ledger-bench-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutdown requested");
}
