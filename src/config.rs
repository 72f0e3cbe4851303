//! One configuration from four places, in one precedence order:
//! **flags > `FLEET_LEDGER_*` environment variables > the TOML file (`--config FILE`) > defaults.**
//!
//! The options themselves (names, environment variables, defaults, parsers) are declared once,
//! in [`crate::cli`]; clap resolves flags, environment and defaults. The file slots in between:
//! every key of it whose option neither a flag nor the environment set is handed to clap as if
//! it were a flag, so a value from the file goes through the same parser, and a bad one is
//! refused naming the option and the file, before anything starts.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use crate::cli::Cli;

/// Environment variable naming the configuration file (like `--config`).
pub const CONFIG_ENV: &str = "FLEET_LEDGER_CONFIG";

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A flag or environment variable clap refused (or `--help`/`--version`): clap prints it.
    #[error("{0}")]
    Cli(#[from] clap::Error),
    #[error("configuration file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

impl ConfigError {
    /// Prints the refusal (or the help) and ends the process: 0 for `--help`, 2 otherwise.
    pub fn exit(self) -> ! {
        match self {
            ConfigError::Cli(error) => error.exit(),
            file @ ConfigError::File { .. } => {
                eprintln!("error: {file}");
                std::process::exit(2)
            }
        }
    }
}

/// The command line resolved against the environment and the configuration file, and where
/// each option's value came from.
#[derive(Debug)]
pub struct Loaded {
    pub cli: Cli,
    matches: ArgMatches,
    /// Options (their long names) whose value the file gave.
    from_file: BTreeSet<String>,
    file: Option<PathBuf>,
}

/// Reads the process's arguments, environment and configuration file.
pub fn load() -> Result<Loaded, ConfigError> {
    load_from(std::env::args_os())
}

/// [`load`] over these arguments (the first is the program's name).
pub fn load_from<I, T>(args: I) -> Result<Loaded, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let matches = Cli::command().try_get_matches_from(&args)?;
    let cli = Cli::from_arg_matches(&matches)?;
    let Some(path) = cli.config.clone() else {
        return Ok(Loaded {
            cli,
            matches,
            from_file: BTreeSet::new(),
            file: None,
        });
    };
    let refuse = |reason: String| ConfigError::File {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| refuse(e.to_string()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| refuse(e.to_string()))?;
    let (extra, from_file) = file_arguments(&matches, &table).map_err(refuse)?;
    if extra.is_empty() {
        return Ok(Loaded {
            cli,
            matches,
            from_file,
            file: Some(path),
        });
    }
    let mut all = args;
    all.extend(extra);
    let matches = Cli::command()
        .try_get_matches_from(&all)
        .map_err(|e| refuse(e.render().to_string().trim().to_string()))?;
    let cli = Cli::from_arg_matches(&matches)?;
    Ok(Loaded {
        cli,
        matches,
        from_file,
        file: Some(path),
    })
}

/// The flags standing for the file's keys that no flag or environment variable already set.
/// A key is an option's long name, with `_` or `-` (`ready_lag_max` or `ready-lag-max`).
fn file_arguments(
    matches: &ArgMatches,
    table: &toml::Table,
) -> Result<(Vec<OsString>, BTreeSet<String>), String> {
    let command = Cli::command();
    let (sub_name, sub_matches) = matches
        .subcommand()
        .ok_or_else(|| "no command given".to_string())?;
    let sub = command
        .find_subcommand(sub_name)
        .ok_or_else(|| format!("unknown command {sub_name}"))?;
    // What `serve` takes may sit in a file shared with the other commands, which ignore it.
    let serve = command
        .find_subcommand("serve")
        .expect("serve is a command");
    let mut extra = Vec::new();
    let mut from_file = BTreeSet::new();
    for (key, value) in table {
        let long = key.replace('_', "-");
        if long == "config" {
            return Err("`config` cannot name another file".to_string());
        }
        let arg = sub
            .get_arguments()
            .chain(command.get_arguments())
            .find(|arg| arg.get_long() == Some(long.as_str()));
        let Some(arg) = arg else {
            if serve
                .get_arguments()
                .any(|arg| arg.get_long() == Some(long.as_str()))
            {
                continue;
            }
            return Err(format!("unknown option `{key}`"));
        };
        let id = arg.get_id().as_str();
        let source = sub_matches
            .value_source(id)
            .or_else(|| matches.value_source(id));
        if matches!(
            source,
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let flag = format!("--{long}");
        let values = match value {
            toml::Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        for item in values {
            match item {
                toml::Value::Boolean(true) => extra.push(OsString::from(&flag)),
                toml::Value::Boolean(false) => {}
                toml::Value::String(text) => extra.push(OsString::from(format!("{flag}={text}"))),
                toml::Value::Integer(n) => extra.push(OsString::from(format!("{flag}={n}"))),
                toml::Value::Float(x) => extra.push(OsString::from(format!("{flag}={x}"))),
                other => {
                    return Err(format!(
                        "option `{key}`: {} is not a string, number or boolean",
                        other.type_str()
                    ))
                }
            }
        }
        from_file.insert(long);
    }
    Ok((extra, from_file))
}

/// A duration as people write it (`8h`, `30s`, `1h 30m`, `7days`), or a number of seconds;
/// zero is refused.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let duration = match text.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(text)
            .map_err(|e| format!("invalid duration {text:?} ({e}): use e.g. 8h, 30m, 45s or 7d"))?,
    };
    if duration.is_zero() {
        return Err("the duration must be positive".to_string());
    }
    Ok(duration)
}

impl Loaded {
    /// The effective configuration of the command as TOML that `--config` reads back, each line
    /// saying where its value came from; secrets are redacted (and commented out).
    pub fn describe(&self) -> String {
        let mut out = String::from(
            "# fleet-ledger: effective configuration\n\
             # precedence: flags > environment (FLEET_LEDGER_*) > configuration file > defaults\n",
        );
        if let Some(file) = &self.file {
            out.push_str(&format!("# configuration file: {}\n", file.display()));
        }
        let command = Cli::command();
        let Some((sub_name, sub_matches)) = self.matches.subcommand() else {
            return out;
        };
        let Some(sub) = command.find_subcommand(sub_name) else {
            return out;
        };
        for arg in sub.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version" | "config") {
                continue;
            }
            let id = arg.get_id().as_str();
            let values: Vec<String> = sub_matches
                .get_raw(id)
                .map(|raw| raw.map(|v| v.to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            let source = if self.from_file.contains(long) {
                "configuration file".to_string()
            } else {
                match sub_matches.value_source(id) {
                    Some(ValueSource::CommandLine) => format!("flag --{long}"),
                    Some(ValueSource::EnvVariable) => {
                        format!("environment {}", env.clone().unwrap_or_default())
                    }
                    Some(ValueSource::DefaultValue) => "default".to_string(),
                    _ => "unset".to_string(),
                }
            };
            let key = long.replace('-', "_");
            let shown: Vec<String> = values.iter().map(|v| redact_url(v)).collect();
            let value = match shown.as_slice() {
                [] => {
                    out.push_str(&format!("# {key} =  # {source}\n"));
                    continue;
                }
                [one] => toml_value(one),
                many => format!(
                    "[{}]",
                    many.iter()
                        .map(|v| toml_value(v))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            out.push_str(&format!("{key} = {value}  # {source}\n"));
        }
        for (name, env) in [
            ("jwt_secret", crate::auth::SECRET_ENV),
            ("webhook_key", crate::webhooks::seal::KEY_ENV),
        ] {
            let source = if std::env::var_os(env).is_some_and(|v| !v.is_empty()) {
                format!("environment {env}, redacted")
            } else {
                "generated in the data directory".to_string()
            };
            out.push_str(&format!("# {name} = \"<redacted>\"  # {source}\n"));
        }
        out
    }
}

/// A value as TOML writes it: numbers and booleans bare, the rest quoted.
fn toml_value(raw: &str) -> String {
    if raw == "true" || raw == "false" || raw.parse::<i64>().is_ok() {
        raw.to_string()
    } else {
        // A JSON string is a TOML basic string.
        serde_json::to_string(raw).unwrap_or_default()
    }
}

/// A URL with its password replaced by `***` (`postgres://app:***@db/ledger`); anything that is
/// not a URL with a password is returned as it is.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            if url.set_password(Some("***")).is_ok() {
                url.to_string()
            } else {
                raw.to_string()
            }
        }
        _ => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Command;

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet-ledger.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn serve(loaded: &Loaded) -> &crate::cli::ServeArgs {
        let Command::Serve(args) = &loaded.cli.command else {
            panic!("not serve");
        };
        args
    }

    #[test]
    fn a_flag_beats_the_file_and_the_file_beats_the_default() {
        let (_dir, path) = file(
            "listen = \"127.0.0.1:9000\"\nready_lag_max = 50\nrequest-timeout = \"2m\"\n\
             webhook_allow_private = true\n",
        );
        let path = path.to_str().unwrap();
        let loaded = load_from([
            "fleet-ledger",
            "serve",
            "--config",
            path,
            "--listen",
            "127.0.0.1:9100",
        ])
        .unwrap();
        let args = serve(&loaded);
        assert_eq!(args.listen.to_string(), "127.0.0.1:9100");
        assert_eq!(args.ready_lag_max, 50);
        assert_eq!(args.limits.request_timeout, Duration::from_secs(120));
        assert!(args.webhook_allow_private);
        assert_eq!(
            args.snapshot_every,
            crate::store::snapshots::SNAPSHOT_EVERY_EVENTS_DEFAULT
        );
        let described = loaded.describe();
        assert!(
            described.contains("listen = \"127.0.0.1:9100\"  # flag --listen\n"),
            "{described}"
        );
        assert!(
            described.contains("ready_lag_max = 50  # configuration file\n"),
            "{described}"
        );
        assert!(
            described.contains("max_in_flight = 1024  # default\n"),
            "{described}"
        );
    }

    #[test]
    fn a_bad_value_in_the_file_is_refused_naming_the_option_and_the_file() {
        let (_dir, path) = file("ready_lag_max = \"lots\"\n");
        let error = load_from(["fleet-ledger", "serve", "--config", path.to_str().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(error.contains("--ready-lag-max"), "{error}");
        assert!(error.contains("fleet-ledger.toml"), "{error}");
        let (_dir, path) = file("time_zone = \"Mars/Olympus_Mons\"\n");
        let error = load_from(["fleet-ledger", "serve", "--config", path.to_str().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(error.contains("--time-zone"), "{error}");
    }

    #[test]
    fn the_dashboards_dev_login_is_off_unless_a_flag_or_the_file_turns_it_on() {
        let off = load_from(["fleet-ledger", "serve"]).unwrap();
        assert!(!serve(&off).dev_login);
        let flag = load_from(["fleet-ledger", "serve", "--dev-login"]).unwrap();
        assert!(serve(&flag).dev_login);
        let (_dir, path) = file("dev_login = true\n");
        let from_file =
            load_from(["fleet-ledger", "serve", "--config", path.to_str().unwrap()]).unwrap();
        assert!(serve(&from_file).dev_login);
    }

    #[test]
    fn an_unknown_key_in_the_file_is_refused_by_name() {
        let (_dir, path) = file("listne = \"127.0.0.1:9000\"\n");
        let error = load_from(["fleet-ledger", "serve", "--config", path.to_str().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown option `listne`"), "{error}");
    }

    #[test]
    fn a_bad_flag_is_refused_naming_it() {
        let error = load_from(["fleet-ledger", "serve", "--request-timeout", "soon"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("--request-timeout"), "{error}");
    }

    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/ledger"),
            "postgres://app:***@db:5432/ledger"
        );
        assert_eq!(redact_url("postgres://db/ledger"), "postgres://db/ledger");
        let loaded = load_from([
            "fleet-ledger",
            "config",
            "--database-url",
            "postgres://app:s3cret@db/ledger",
        ])
        .unwrap();
        let described = loaded.describe();
        assert!(!described.contains("s3cret"), "{described}");
        assert!(
            described.contains("postgres://app:***@db/ledger"),
            "{described}"
        );
    }

    #[test]
    fn durations_are_read_as_people_write_them() {
        assert_eq!(parse_duration("8h"), Ok(Duration::from_secs(8 * 3600)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("0h").is_err());
    }
}
