//! The `fleet-ledger` binary as an operator runs it: `serve` with no configuration, `token`
//! signing with the secret `serve` generated, JSON logs, and a clean exit on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_fleet-ledger");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn command(dir: &Path) -> Command {
    let mut command = Command::new(BINARY);
    command
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("FLEET_LEDGER_JWT_SECRET")
        .env_remove("FLEET_LEDGER_DATA_DIR")
        .env_remove("FLEET_LEDGER_LISTEN")
        .env_remove("FLEET_LEDGER_LOG_FORMAT")
        .env_remove("FLEET_LEDGER_JWT_ISSUER")
        .env_remove("FLEET_LEDGER_JWT_AUDIENCE")
        .env_remove("FLEET_LEDGER_JWT_PUBLIC_KEY")
        .env_remove("FLEET_LEDGER_CONFIG")
        .env_remove("FLEET_LEDGER_READY_LAG_MAX")
        .env_remove("FLEET_LEDGER_READ_MODELS_URL");
    command
}

/// One HTTP/1.1 exchange over a fresh connection: `(status, body)`.
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

fn wait_until_healthy(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some((200, _)) = http(port, "GET", "/healthz", None, "") {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "serve exited before becoming healthy"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("serve did not become healthy within 30 s");
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not exit within 15 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_with_no_configuration_keeps_data_across_a_clean_sigterm_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut serve = command(dir.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_healthy(port, &mut serve);

    let secret = dir.path().join("data/jwt_secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the generated secret is private");
    }
    assert!(dir.path().join("data/ledger.db").exists());

    let token = command(dir.path())
        .args([
            "token",
            "--sub",
            "ana@flota.co",
            "--role",
            "operador",
            "--ttl",
            "8h",
        ])
        .output()
        .unwrap();
    assert!(token.status.success());
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();

    let created = http(
        port,
        "POST",
        "/api/areas-operacion",
        Some(&token),
        r#"{"nombre":"Logística"}"#,
    );
    assert_eq!(
        created,
        Some((201, r#"{"id":1,"nombre":"Logística"}"#.to_string()))
    );
    assert_eq!(
        http(port, "GET", "/api/areas-operacion", None, ""),
        Some((401, r#"{"error":"Authentication required"}"#.to_string()))
    );
    let status = terminate(&mut serve);
    assert_eq!(status.code(), Some(0), "SIGTERM ends serve cleanly");

    // Restarted with JSON logs, the service still has what it acknowledged.
    let port = free_port();
    let mut serve = command(dir.path())
        .args([
            "--log-format",
            "json",
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_healthy(port, &mut serve);
    assert_eq!(
        http(port, "GET", "/api/areas-operacion", Some(&token), ""),
        Some((200, r#"[{"id":1,"nombre":"Logística"}]"#.to_string()))
    );
    assert_eq!(terminate(&mut serve).code(), Some(0));
    let logs = BufReader::new(serve.stderr.take().unwrap());
    let mut lines = 0;
    for line in logs.lines() {
        let line = line.unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        assert!(parsed["level"].is_string());
        lines += 1;
    }
    assert!(lines >= 2, "serving and shutting down are logged");
}

fn serve_help() -> String {
    let help = command(Path::new("."))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    String::from_utf8(help.stdout).unwrap()
}

#[test]
fn help_documents_every_option() {
    let text = serve_help();
    for option in [
        "--listen",
        "--data-dir",
        "--database-url",
        "DATABASE_URL",
        "--read-models-url",
        "FLEET_LEDGER_READ_MODELS_URL",
        "--log-format",
    ] {
        assert!(
            text.contains(option),
            "serve --help mentions {option}:\n{text}"
        );
    }
}

#[test]
fn a_short_jwt_secret_stops_serve_with_a_message_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = command(dir.path())
        .env("FLEET_LEDGER_JWT_SECRET", "test-secret-do-not-use")
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "error: FLEET_LEDGER_JWT_SECRET is 22 bytes long; an HS256 secret needs at least 32"
        ),
        "{stderr}"
    );
    assert!(
        !dir.path().join("data/ledger.db").exists(),
        "nothing is opened before the keys are good"
    );
}

/// Without the feature, a KurrentDB URL stops startup naming the feature, and nothing is made
/// of it: no SQLite file, no directory named after the URL.
#[cfg(not(feature = "kurrentdb"))]
#[test]
fn a_kurrentdb_url_without_the_feature_stops_serve_naming_the_feature() {
    let dir = tempfile::tempdir().unwrap();
    let output = command(dir.path())
        .env("DATABASE_URL", "esdb://127.0.0.1:2113?tls=false")
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "error: event log: esdb:// names a KurrentDB (EventStoreDB) event log, but this \
             binary was built without the cargo feature `kurrentdb`: rebuild with \
             `cargo build --release --features kurrentdb`"
        ),
        "{stderr}"
    );
    assert!(
        !dir.path().join("esdb:").exists(),
        "the URL is not taken for a path"
    );
}

#[test]
fn a_bad_value_stops_serve_with_a_message_naming_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let output = command(dir.path())
        .env("FLEET_LEDGER_READY_LAG_MAX", "lots")
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("invalid value 'lots' for '--ready-lag-max <READY_LAG_MAX>'"),
        "{stderr}"
    );
    let file = dir.path().join("fleet-ledger.toml");
    std::fs::write(&file, "request_timeout = \"soon\"\n").unwrap();
    let output = command(dir.path())
        .args(["serve", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("fleet-ledger.toml"), "{stderr}");
    assert!(stderr.contains("--request-timeout"), "{stderr}");
    assert!(
        !dir.path().join("data/ledger.db").exists(),
        "nothing is opened before the configuration is good"
    );
}

#[test]
fn config_prints_the_effective_configuration_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet-ledger.toml");
    std::fs::write(&file, "listen = \"0.0.0.0:9000\"\nready_lag_max = 64\n").unwrap();
    let output = command(dir.path())
        .env(
            "FLEET_LEDGER_JWT_SECRET",
            "a-jwt-secret-of-at-least-32-bytes-long",
        )
        .env("DATABASE_URL", "postgres://app:pg-password@db:5432/ledger")
        .env("FLEET_LEDGER_READY_LAG_MAX", "32")
        .args(["config", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(!text.contains("a-jwt-secret"), "{text}");
    assert!(!text.contains("pg-password"), "{text}");
    for line in [
        "listen = \"0.0.0.0:9000\"  # configuration file\n",
        "ready_lag_max = 32  # environment FLEET_LEDGER_READY_LAG_MAX\n",
        "database_url = \"postgres://app:***@db:5432/ledger\"  # environment DATABASE_URL\n",
        "request_timeout = \"30s\"  # default\n",
        "# jwt_secret = \"<redacted>\"  # environment FLEET_LEDGER_JWT_SECRET, redacted\n",
    ] {
        assert!(text.contains(line), "no {line:?} in\n{text}");
    }
}

#[test]
fn tokens_are_never_logged_even_at_debug_level() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "0123456789abcdef0123456789abcdef-logged-never";
    let port = free_port();
    let mut serve = command(dir.path())
        .env("FLEET_LEDGER_JWT_SECRET", secret)
        .env("RUST_LOG", "debug")
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_healthy(port, &mut serve);
    let token = command(dir.path())
        .env("FLEET_LEDGER_JWT_SECRET", secret)
        .args(["token", "--sub", "ana@flota.co", "--role", "admin"])
        .output()
        .unwrap();
    assert!(token.status.success());
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();
    let tampered = format!("{token}x");
    assert_eq!(
        http(port, "GET", "/api/areas-operacion", Some(&token), "").map(|(s, _)| s),
        Some(200)
    );
    assert_eq!(
        http(port, "GET", "/api/areas-operacion", Some(&tampered), "").map(|(s, _)| s),
        Some(401)
    );
    assert_eq!(terminate(&mut serve).code(), Some(0));
    let mut logs = String::new();
    serve
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(
        logs.contains("token refused"),
        "the refusal is logged:\n{logs}"
    );
    for (part, text) in token.split('.').enumerate() {
        assert!(
            !logs.contains(text),
            "token part {part} appears in the logs"
        );
    }
    assert!(!logs.contains(secret), "the secret appears in the logs");
}

#[test]
fn help_documents_the_limits_and_token_options() {
    let text = serve_help();
    for option in [
        "--max-in-flight",
        "FLEET_LEDGER_MAX_IN_FLIGHT",
        "--request-timeout",
        "FLEET_LEDGER_REQUEST_TIMEOUT",
        "--jwt-issuer",
        "FLEET_LEDGER_JWT_ISSUER",
        "--jwt-audience",
        "FLEET_LEDGER_JWT_AUDIENCE",
        "--jwt-public-key",
        "FLEET_LEDGER_JWT_PUBLIC_KEY",
    ] {
        assert!(
            text.contains(option),
            "serve --help mentions {option}:\n{text}"
        );
    }
    let zero = command(Path::new("."))
        .args(["serve", "--max-in-flight", "0"])
        .output()
        .unwrap();
    assert_eq!(zero.status.code(), Some(2), "a cap of 0 is refused");
}

/// A subscriber of the live feed does not hold the shutdown open: on SIGTERM its stream ends
/// and `serve` exits 0.
#[test]
fn sigterm_ends_live_feeds_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut serve = command(dir.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_healthy(port, &mut serve);
    let token = command(dir.path())
        .args(["token", "--sub", "ana@flota.co", "--role", "auditor"])
        .output()
        .unwrap();
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();

    let mut feed = TcpStream::connect(("127.0.0.1", port)).unwrap();
    feed.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        feed,
        "GET /api/eventos/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    // The catalogues' default entries are the first events of a new store.
    let mut reader = BufReader::new(feed);
    let mut seen = String::new();
    while !seen.contains("id: 1\n") {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "{seen}");
        seen.push_str(&line);
    }
    assert!(seen.starts_with("HTTP/1.1 200 OK"), "{seen}");
    assert!(seen.contains("content-type: text/event-stream"), "{seen}");

    assert_eq!(terminate(&mut serve).code(), Some(0));
    let mut rest = String::new();
    // The stream ended (chunked encoding's last chunk), and the connection closed.
    reader.read_to_string(&mut rest).unwrap();
    assert!(rest.ends_with("0\r\n\r\n"), "{rest}");
}
