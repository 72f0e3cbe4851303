//! The command line: flags and environment variables become one validated configuration.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::settings::ServiceTimeZone;

#[derive(Debug, Parser)]
#[command(
    name = "fleet-ledger",
    version,
    about = "Event-sourced ledger for fleet operators: vehicles, fuel stations, refuels and payments"
)]
pub struct Cli {
    /// Log format: human-readable text, or one JSON object per line.
    #[arg(long, global = true, env = "FLEET_LEDGER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the HTTP service.
    Serve(ServeArgs),
    /// Prints a signed JWT for the configured secret.
    Token(TokenArgs),
    /// Measures the event log.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Directory for the embedded SQLite store and the generated JWT secret.
    #[arg(long, env = "FLEET_LEDGER_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// `postgres://…` switches to PostgreSQL; a `sqlite://…` URL or path picks the SQLite file.
    /// Without it the SQLite store lives under --data-dir.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "FLEET_LEDGER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub store: StoreArgs,

    /// Time zone in which a plain date given as `as_of` ends (IANA name of a zone without
    /// daylight saving, e.g. America/Bogota, or an offset such as -05:00).
    #[arg(long, env = "FLEET_LEDGER_TIME_ZONE", default_value = "America/Bogota")]
    pub time_zone: ServiceTimeZone,

    /// Station balance (COP) below which `GET /api/saldos-bombas` says CRITICO; from it up to
    /// zero a station is BAJO.
    #[arg(
        long,
        env = "FLEET_LEDGER_SALDO_CRITICO",
        default_value = "-500000",
        allow_hyphen_values = true
    )]
    pub saldo_critico: rust_decimal::Decimal,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The token's subject: who the events will say acted.
    #[arg(long)]
    pub sub: String,

    /// admin, operador or auditor; repeat for several. Without it the token is an operador's.
    #[arg(long = "role")]
    pub roles: Vec<String>,

    /// Lifetime, e.g. 8h, 30m, 7d.
    #[arg(long, default_value = "8h")]
    pub ttl: String,

    /// Directory holding the generated JWT secret (ignored when FLEET_LEDGER_JWT_SECRET is set).
    #[arg(long, env = "FLEET_LEDGER_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Appends events from concurrent writers and reports throughput and latency.
    Append(BenchAppendArgs),
}

#[derive(Debug, Args)]
pub struct BenchAppendArgs {
    /// Concurrent writers, each appending to its own stream.
    #[arg(long, default_value_t = 16)]
    pub writers: usize,

    /// Events to append in total.
    #[arg(long, default_value_t = 100_000)]
    pub events: usize,

    /// Where to append. Without it a fresh SQLite file in a temporary directory is used.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
}
