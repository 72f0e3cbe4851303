//! The service under test when it runs in this process: a fresh store of its own, and the real
//! router served on 127.0.0.1 on a port the kernel picks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::RngCore;
use sqlx::Connection;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::client::Api;
use super::BenchError;
use crate::auth::{JwtKeys, Role};
use crate::settings::LedgerSettings;
use crate::store;
use crate::{AppState, StoreLocation};

/// How long a stopping server may take to finish the requests in flight before it is dropped.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Lifetime of the bench's admin token: longer than any run.
const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
const TOKEN_SUBJECT: &str = "bench@fleet-ledger";

/// A temporary directory removed when dropped, whatever happened in it.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn create() -> Result<Self, BenchError> {
        let path =
            std::env::temp_dir().join(format!("fleet-ledger-bench-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&path)
            .map_err(|e| BenchError::io(format!("creating {}", path.display()), e))?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A new, empty store only this bench uses: SQLite files in a temporary directory, or a new
/// PostgreSQL schema (`bench_<uuid>`) that every connection is pointed at through `search_path`.
pub(crate) struct FreshStore {
    pub location: StoreLocation,
    postgres: Option<PostgresSchema>,
    _scratch: ScratchDir,
}

struct PostgresSchema {
    database_url: String,
    schema: String,
}

impl FreshStore {
    pub async fn create(database_url: Option<&str>) -> Result<Self, BenchError> {
        let scratch = ScratchDir::create()?;
        let Some(url) = database_url.filter(|url| store::is_postgres(url)) else {
            return Ok(Self {
                location: StoreLocation::resolve(scratch.path(), None),
                postgres: None,
                _scratch: scratch,
            });
        };
        let schema = format!("bench_{}", uuid::Uuid::now_v7().simple());
        let mut admin = sqlx::PgConnection::connect(url).await?;
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        let separator = if url.contains('?') { '&' } else { '?' };
        let scoped = format!("{url}{separator}options=-c%20search_path%3D{schema}");
        Ok(Self {
            location: StoreLocation::resolve(scratch.path(), Some(&scoped)),
            postgres: Some(PostgresSchema {
                database_url: url.to_string(),
                schema,
            }),
            _scratch: scratch,
        })
    }

    /// A fresh store for `scenario`, which runs its own service in this process (a remote
    /// target has its store already).
    pub async fn for_scenario(
        config: &super::BenchConfig,
        scenario: &'static str,
    ) -> Result<Self, BenchError> {
        let super::Target::InProcess { database_url } = &config.target else {
            return Err(BenchError::NeedsInProcess(scenario));
        };
        Self::create(database_url.as_deref()).await
    }

    /// Discards the store once `measured` is known, whatever it is, and answers it.
    pub async fn discard_after<T>(self, measured: Result<T, BenchError>) -> Result<T, BenchError> {
        self.discard().await?;
        measured
    }

    pub fn backend(&self) -> &'static str {
        if self.postgres.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    /// Removes the store: the PostgreSQL schema with everything in it, or the SQLite directory.
    pub async fn discard(self) -> Result<(), BenchError> {
        if let Some(PostgresSchema {
            database_url,
            schema,
        }) = &self.postgres
        {
            let mut admin = sqlx::PgConnection::connect(database_url).await?;
            sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&mut admin)
                .await?;
            admin.close().await?;
        }
        Ok(())
    }
}

/// Keys with a random secret, and an admin token signed with them: the fleet is registered
/// through the API, and catalogue-level writes need the admin role.
pub(crate) fn fresh_keys() -> (JwtKeys, String) {
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let keys = JwtKeys::new(secret.to_vec());
    let token = keys.issue(TOKEN_SUBJECT, &[Role::Admin], TOKEN_TTL);
    (keys, token)
}

/// The ledger open on a store and served over HTTP, as `fleet-ledger serve` runs it.
pub(crate) struct InProcessService {
    pub state: AppState,
    pub base_url: String,
    stop: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
}

impl InProcessService {
    pub async fn open(store: &FreshStore, keys: &JwtKeys) -> Result<Self, BenchError> {
        let state =
            AppState::open_with(&store.location, keys.clone(), LedgerSettings::default()).await?;
        Self::serve(state).await
    }

    /// Serves `state` on 127.0.0.1 on a free port.
    pub async fn serve(state: AppState) -> Result<Self, BenchError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| BenchError::io("binding 127.0.0.1:0", e))?;
        let address = listener
            .local_addr()
            .map_err(|e| BenchError::io("reading the listening address", e))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let router = crate::app(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Self {
            state,
            base_url: format!("http://{address}"),
            stop,
            server,
        })
    }

    pub fn api(&self, token: &str, connections: usize) -> Api {
        Api::new(&self.base_url, token, connections)
    }

    /// Stops accepting requests, lets those in flight finish, then shuts the ledger down (the
    /// log's writer flushed, projections stopped, pools closed). The store stays.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let mut server = self.server;
        if tokio::time::timeout(STOP_GRACE, &mut server).await.is_err() {
            tracing::warn!("the bench's server did not stop in time; dropping its connections");
            server.abort();
        }
        self.state.shutdown().await;
    }
}
