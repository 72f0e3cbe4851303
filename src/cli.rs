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

    /// TOML file of options, keyed by their long names (`listen = "0.0.0.0:8080"`); flags and
    /// environment variables override it (see src/config.rs).
    #[arg(long, global = true, env = "FLEET_LEDGER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

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
    /// Prints the configuration `serve` would run with (same flags, environment and --config
    /// file), where each value came from, secrets redacted.
    Config(ServeArgs),
    /// Prints a signed JWT for the configured secret.
    Token(TokenArgs),
    /// Measures the service end to end (`bench --scenario …`), or the event log alone
    /// (`bench append`).
    Bench(BenchArgs),
    /// Checks the event log's hash chain, every stream's versions and every checkpoint (or,
    /// with --file, an export, offline); exits non-zero naming the first broken position.
    Verify(VerifyArgs),
    /// Writes the event log as JSON lines, one event with its hashes per line, to stdout.
    Export(ExportArgs),
    /// Imports an export into the event log (created if needed); importing twice adds nothing.
    Import(ImportArgs),
    /// Copies the SQLite store to FILE while the service runs, and verifies the copy.
    Backup(BackupArgs),
    /// Rebuilds read models from position 0 into shadow tables, then swaps them in, while the
    /// service keeps running on the same store; prints a summary.
    Replay(ReplayArgs),
    /// The fuel checks: `anomalias evaluar` scores them on a synthetic fleet-month.
    Anomalias(AnomaliasArgs),
}

#[derive(Debug, Args)]
pub struct AnomaliasArgs {
    #[command(subcommand)]
    pub command: AnomaliasCommand,
}

#[derive(Debug, Subcommand)]
pub enum AnomaliasCommand {
    /// Generates a fleet-month with known anomalies of every kind, replays it through every
    /// check in the order recorded, and prints precision and recall per rule; exits non-zero
    /// when a rule misses the target (recall ≥ 0.95 at precision ≥ 0.90).
    Evaluar(EvaluarArgs),
}

#[derive(Debug, Args)]
pub struct EvaluarArgs {
    /// Seed of the generated month (the same seed, the same month).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Vehicles in the month.
    #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub vehiculos: u64,
    /// Share of refuels altered (after each plate's first six), between 0 and 1.
    #[arg(long, default_value_t = 0.2)]
    pub proporcion: f64,

    #[command(flatten)]
    pub thresholds: AnomalyArgs,
}

/// Where each fuel check draws its line (issue 16): `serve`'s detector and `anomalias evaluar`
/// read the same options. The defaults are [`aggregates::anomaly::Thresholds::default`]'s.
#[derive(Debug, Clone, Args)]
pub struct AnomalyArgs {
    /// Share by which a refuel's gallons may exceed the vehicle's tank capacity before
    /// GALONES_SOBRE_CAPACIDAD (0.05: 5%).
    #[arg(
        long,
        env = "FLEET_LEDGER_ALERTA_TOLERANCIA_CAPACIDAD",
        default_value = "0.05"
    )]
    pub alerta_tolerancia_capacidad: rust_decimal::Decimal,

    /// Days that must pass between two refuels of a plate; at or below it, TANQUEO_MUY_PRONTO
    /// (0: a second refuel the same day).
    #[arg(
        long,
        env = "FLEET_LEDGER_ALERTA_INTERVALO_MINIMO_DIAS",
        default_value_t = 0
    )]
    pub alerta_intervalo_minimo_dias: i64,

    /// Robust z-score (0.6745 · |x − median| / MAD) past which a cost per gallon
    /// (COSTO_ATIPICO_ESTACION) or a consumption (CONSUMO_ATIPICO) is atypical.
    #[arg(long, env = "FLEET_LEDGER_ALERTA_Z_MAX", default_value = "3.5")]
    pub alerta_z_max: rust_decimal::Decimal,

    /// Earlier values (refuels of the plate, prices of the station) a comparison with history
    /// needs before it is made at all.
    #[arg(
        long,
        env = "FLEET_LEDGER_ALERTA_HISTORIAL_MINIMO",
        default_value_t = 5
    )]
    pub alerta_historial_minimo: usize,

    /// Share of a plate's earlier refuels that reported an hourmeter for a refuel without one to
    /// be HOROMETRO_FALTANTE.
    #[arg(
        long,
        env = "FLEET_LEDGER_ALERTA_PROPORCION_HOROMETRO",
        default_value = "0.8"
    )]
    pub alerta_proporcion_horometro: rust_decimal::Decimal,

    /// Days within which the same plate, station and amount is a POSIBLE_DUPLICADO.
    #[arg(
        long,
        env = "FLEET_LEDGER_ALERTA_VENTANA_DUPLICADO_DIAS",
        default_value_t = 1
    )]
    pub alerta_ventana_duplicado_dias: i64,

    /// COP by which the operator's saldo_disponible may differ from the computed balance before
    /// SALDO_REPORTADO_DESVIADO.
    #[arg(
        long,
        env = "FLEET_LEDGER_ALERTA_TOLERANCIA_SALDO",
        default_value = "1000"
    )]
    pub alerta_tolerancia_saldo: rust_decimal::Decimal,
}

impl AnomalyArgs {
    pub fn thresholds(&self) -> aggregates::anomaly::Thresholds {
        aggregates::anomaly::Thresholds {
            capacity_tolerance: self.alerta_tolerancia_capacidad,
            min_interval_days: self.alerta_intervalo_minimo_dias,
            robust_z_max: self.alerta_z_max,
            history_min: self.alerta_historial_minimo,
            hourmeter_usual_share: self.alerta_proporcion_horometro,
            duplicate_window_days: self.alerta_ventana_duplicado_dias,
            saldo_tolerance: self.alerta_tolerancia_saldo,
            ..aggregates::anomaly::Thresholds::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub store: StoreArgs,

    /// A read model to rebuild (`tanqueos`, `saldos`, …); repeat for several. Without it, every
    /// one.
    #[arg(long = "projection", value_name = "NAME")]
    pub projections: Vec<String>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub store: StoreArgs,

    /// Check this export (`fleet-ledger export > FILE`) instead of a store: no database needed.
    #[arg(long)]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub store: StoreArgs,

    /// First position to export (the line of the first event says what it links to).
    #[arg(long = "desde-posicion", default_value_t = 1, value_parser = clap::value_parser!(i64).range(1..))]
    pub desde_posicion: i64,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub store: StoreArgs,

    /// The export to import.
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub store: StoreArgs,

    /// Where the copy of the log goes (it must not exist); the read models go beside it, where
    /// `serve --database-url sqlite://FILE` finds them.
    pub file: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Directory for the embedded SQLite store and the generated JWT secret.
    #[arg(long, env = "FLEET_LEDGER_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// `postgres://…` switches to PostgreSQL, `esdb://…` or `kurrentdb://…` to a KurrentDB log
    /// (built with the feature `kurrentdb`); a `sqlite://…` URL or path picks the SQLite file.
    /// Without it the SQLite store lives under --data-dir.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Where the read models and their checkpoints live (`sqlite://…` or `postgres://…`) when
    /// they should not share the log's database: needed with a KurrentDB log (`esdb://…`,
    /// `kurrentdb://…`, built with the feature `kurrentdb`), which keeps no read models; SQLite
    /// under --data-dir without it.
    #[arg(long, env = "FLEET_LEDGER_READ_MODELS_URL")]
    pub read_models_url: Option<String>,
}

/// How bearer tokens are checked; `serve` and `token` read the same flags, so `token` signs what
/// `serve` accepts.
#[derive(Debug, Clone, Args)]
pub struct JwtArgs {
    /// Require this `iss` in every token (and write it into tokens `token` signs).
    #[arg(long, env = "FLEET_LEDGER_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Require this `aud` in every token (and write it into tokens `token` signs).
    #[arg(long, env = "FLEET_LEDGER_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// PEM file with an RSA public key: accept RS256 tokens signed with its private key instead
    /// of HS256 ones (the secret is then not used).
    #[arg(long, env = "FLEET_LEDGER_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,
}

impl StoreArgs {
    pub fn location(&self) -> crate::StoreLocation {
        crate::StoreLocation::resolve_with_read_models(
            &self.data_dir,
            self.database_url.as_deref(),
            self.read_models_url.as_deref(),
        )
    }
}

impl JwtArgs {
    pub fn settings(&self) -> crate::auth::JwtSettings {
        let given = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
        crate::auth::JwtSettings {
            issuer: given(&self.jwt_issuer),
            audience: given(&self.jwt_audience),
            public_key: self.jwt_public_key.clone(),
        }
    }
}

/// How many requests `serve` works on at once, and for how long each.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Requests worked on at once; past it a request is answered 503 at once (load shedding).
    #[arg(long, env = "FLEET_LEDGER_MAX_IN_FLIGHT", default_value_t = crate::http::limits::IN_FLIGHT_MAX_DEFAULT, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,

    /// Longest a request may run (e.g. 30s, 2m) before it is abandoned with a 503.
    #[arg(long, env = "FLEET_LEDGER_REQUEST_TIMEOUT", default_value = "30s", value_parser = crate::config::parse_duration)]
    pub request_timeout: std::time::Duration,
}

impl LimitArgs {
    pub fn limits(&self) -> crate::HttpLimits {
        crate::HttpLimits {
            in_flight_max: self.max_in_flight,
            request_timeout: self.request_timeout,
        }
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "FLEET_LEDGER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub jwt: JwtArgs,

    #[command(flatten)]
    pub limits: LimitArgs,

    #[command(flatten)]
    pub anomalies: AnomalyArgs,

    /// Time zone in which a plain date given as `as_of` ends (an IANA name such as
    /// America/Bogota or America/Sao_Paulo, whose offset on that date applies, or a fixed offset
    /// such as -05:00).
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

    /// Let webhooks point at loopback, private and link-local addresses (a receiver on the same
    /// host or network, as in development). Off: such URLs are refused at registration and at
    /// every delivery.
    #[arg(long, env = "FLEET_LEDGER_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,

    /// Save a stream's aggregate every this many events, so that loading a long stream (for a
    /// command after a restart, or an as_of) folds only the events after its newest snapshot.
    /// A state that grows with its stream is saved less often (at most about as many bytes as
    /// the events it spares). 0 turns snapshots off.
    #[arg(long, env = "FLEET_LEDGER_SNAPSHOT_EVERY", default_value_t = crate::store::snapshots::SNAPSHOT_EVERY_EVENTS_DEFAULT)]
    pub snapshot_every: u64,

    /// `/readyz` answers 503 when a read model is more than this many events behind the log's
    /// head (or is stalled); a smaller lag, as under steady writes, is still ready.
    #[arg(long, env = "FLEET_LEDGER_READY_LAG_MAX", default_value_t = crate::settings::READY_LAG_MAX_EVENTS_DEFAULT)]
    pub ready_lag_max: u64,

    /// Offer a role picker on the dashboard's login page (`/ui/login`) that signs in as any
    /// role without a token. For development only: off, the picker is not shown and its form
    /// is refused.
    #[arg(long, env = "FLEET_LEDGER_DEV_LOGIN")]
    pub dev_login: bool,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The token's subject: who the events will say acted.
    #[arg(long)]
    pub sub: String,

    /// admin, operador or auditor; repeat for several. Without it the token is an operador's.
    #[arg(long = "role")]
    pub roles: Vec<String>,

    /// Lifetime, e.g. 8h, 30m, 7d, 1h 30m.
    #[arg(long, default_value = "8h", value_parser = crate::config::parse_duration)]
    pub ttl: std::time::Duration,

    /// Directory holding the generated JWT secret (ignored when FLEET_LEDGER_JWT_SECRET is set).
    #[arg(long, env = "FLEET_LEDGER_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    #[command(flatten)]
    pub jwt: JwtArgs,
}

/// `bench --scenario …` runs scenarios; `bench append …` is the log's own benchmark.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: Option<BenchCommand>,

    #[command(flatten)]
    pub run: BenchRunArgs,
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

/// A scenario as the command line names it; `all` stands for every one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScenarioName {
    /// POST /api/tanqueos only.
    Tanqueos,
    /// 80% refuels, 10% advance payments, 10% reads.
    Mixed,
    /// Every projection rebuilt from position 0 over --events stored events.
    Rebuild,
    /// AppState::open to /readyz 200 with --events events stored.
    Startup,
    /// A station's balance as_of the middle of --events events.
    AsOf,
    /// Seed 001's lookup of 500 vehicles against --lookup-results recorded check results.
    Lookup,
    /// Seed 003's batches of 1,000 self-inspections, then webhook deliveries to a local
    /// receiver.
    Inspecciones,
    /// Every scenario; they always run in the order above.
    All,
}

#[derive(Debug, Args)]
pub struct BenchRunArgs {
    /// Scenario to run; repeat for several, or `all` (they run in the order listed below).
    #[arg(long = "scenario", value_enum, required = true)]
    pub scenarios: Vec<ScenarioName>,

    /// Concurrent keep-alive connections of the load scenarios.
    #[arg(short = 'c', long, default_value_t = 64)]
    pub connections: usize,

    /// Seconds each load scenario runs (and the longest the as-of scenario keeps asking).
    #[arg(short = 'd', long, default_value_t = 15.0)]
    pub duration: f64,

    /// Zipf exponent of the station each request picks (1.0: the hottest of 300 gets ~16%).
    #[arg(long, default_value_t = 1.0)]
    pub skew: f64,

    /// Stations registered before each scenario.
    #[arg(long, default_value_t = 300)]
    pub stations: usize,

    /// Plates registered before each scenario.
    #[arg(long, default_value_t = 5000)]
    pub plates: usize,

    /// Drivers registered before each scenario.
    #[arg(long, default_value_t = 2000)]
    pub drivers: usize,

    /// Events stored for the rebuild, as-of and startup scenarios.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,

    /// Vehicle check results recorded for the lookup scenario (issue 11's size; --events does
    /// not change it).
    #[arg(long, default_value_t = 100_000)]
    pub lookup_results: usize,

    /// Concurrent keep-alive connections of the lookup scenario (issue 11's; --connections
    /// does not change it).
    #[arg(long, default_value_t = 16)]
    pub lookup_connections: usize,

    /// Entries of each self-inspection batch (inspecciones; at most 1,000).
    #[arg(long, default_value_t = 1_000)]
    pub inspection_entries: usize,

    /// Batches timed one after another (inspecciones).
    #[arg(long, default_value_t = 20)]
    pub inspection_batches: usize,

    /// Inspections queued after a webhook is registered, each one delivery (inspecciones).
    #[arg(long, default_value_t = 5_000)]
    pub webhook_deliveries: usize,

    /// As-of requests to time (fewer if --duration runs out first).
    #[arg(long, default_value_t = 200)]
    pub as_of_requests: usize,

    /// `postgres://…`: run the in-process service on PostgreSQL, each scenario in a new schema.
    /// Without it each scenario gets a fresh SQLite store in a temporary directory.
    #[arg(long, conflicts_with = "url")]
    pub database_url: Option<String>,

    /// Drive a running service at this http:// URL instead (tanqueos and mixed only).
    #[arg(long, requires = "token")]
    pub url: Option<String>,

    /// Bearer token for --url; it must carry the admin role (`fleet-ledger token --role admin`).
    #[arg(long, requires = "url")]
    pub token: Option<String>,

    /// Also write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

impl BenchRunArgs {
    pub fn to_config(&self) -> Result<crate::bench::BenchConfig, String> {
        use crate::bench::{BenchConfig, FleetSize, InspectionSize, LookupSize, Scenario, Target};
        let mut scenarios = Vec::new();
        for name in &self.scenarios {
            scenarios.extend_from_slice(match name {
                ScenarioName::Tanqueos => &[Scenario::Tanqueos],
                ScenarioName::Mixed => &[Scenario::Mixed],
                ScenarioName::Rebuild => &[Scenario::Rebuild],
                ScenarioName::AsOf => &[Scenario::AsOf],
                ScenarioName::Startup => &[Scenario::Startup],
                ScenarioName::Lookup => &[Scenario::Lookup],
                ScenarioName::Inspecciones => &[Scenario::Inspecciones],
                ScenarioName::All => &Scenario::EVERY,
            });
        }
        let duration = std::time::Duration::try_from_secs_f64(self.duration)
            .map_err(|_| format!("--duration {} is not a number of seconds", self.duration))?;
        let target = match (&self.url, &self.token) {
            (Some(url), Some(token)) => Target::Remote {
                url: url.clone(),
                token: token.clone(),
            },
            _ => Target::InProcess {
                database_url: self.database_url.clone(),
            },
        };
        Ok(BenchConfig {
            scenarios,
            target,
            connections: self.connections,
            duration,
            skew: self.skew,
            fleet: FleetSize {
                stations: self.stations,
                plates: self.plates,
                drivers: self.drivers,
                ..FleetSize::default()
            },
            events: self.events,
            lookup: LookupSize {
                results: self.lookup_results,
                connections: self.lookup_connections,
            },
            inspections: InspectionSize {
                entries: self.inspection_entries,
                batches: self.inspection_batches,
                deliveries: self.webhook_deliveries,
            },
            as_of_requests: self.as_of_requests,
            progress: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::LookupSize;

    fn bench_config(args: &[&str]) -> crate::bench::BenchConfig {
        let cli = Cli::try_parse_from([&["fleet-ledger", "bench"], args].concat())
            .expect("the arguments parse");
        let Command::Bench(bench) = cli.command else {
            panic!("not the bench command");
        };
        bench.run.to_config().expect("a valid configuration")
    }

    #[test]
    fn private_webhook_addresses_are_refused_unless_the_flag_is_given() {
        let serve = |args: &[&str]| {
            let cli = Cli::try_parse_from([&["fleet-ledger", "serve"], args].concat())
                .expect("the arguments parse");
            let Command::Serve(serve) = cli.command else {
                panic!("not the serve command");
            };
            serve.webhook_allow_private
        };
        assert!(!serve(&[]));
        assert!(serve(&["--webhook-allow-private"]));
    }

    #[test]
    fn the_inspections_scenario_takes_its_own_sizes() {
        let config = bench_config(&[
            "--scenario",
            "inspecciones",
            "--inspection-entries",
            "500",
            "--inspection-batches",
            "3",
            "--webhook-deliveries",
            "70",
        ]);
        assert_eq!(config.scenarios, vec![crate::bench::Scenario::Inspecciones]);
        assert_eq!(
            config.inspections,
            crate::bench::InspectionSize {
                entries: 500,
                batches: 3,
                deliveries: 70
            }
        );
        let every = bench_config(&["--scenario", "all"]);
        assert_eq!(every.inspections, crate::bench::InspectionSize::default());
        assert!(every
            .scenarios
            .contains(&crate::bench::Scenario::Inspecciones));
    }

    #[test]
    fn the_lookup_keeps_the_issue_sizes_whatever_events_and_connections_say() {
        let config = bench_config(&["--scenario", "all", "--events", "5000", "-c", "3"]);
        assert_eq!(config.events, 5000);
        assert_eq!(config.connections, 3);
        assert_eq!(
            config.lookup,
            LookupSize {
                results: 100_000,
                connections: 16
            }
        );
        let config = bench_config(&[
            "--scenario",
            "lookup",
            "--lookup-results",
            "2000",
            "--lookup-connections",
            "4",
        ]);
        assert_eq!(
            config.lookup,
            LookupSize {
                results: 2000,
                connections: 4
            }
        );
    }
}
