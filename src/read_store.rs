//! Where read models live, and how a projection's [`Change`]s become SQL.
//!
//! Read-model SQL is written once for both backends through sqlx's `Any` driver: the tables use
//! only types both databases share (`BIGINT`, `TEXT`), exact decimals are stored as text, and
//! every change is an `INSERT … ON CONFLICT … DO UPDATE` or a `DELETE` that both understand.
//! On SQLite the read models sit in their own file beside the log, so projection transactions
//! never wait for (or delay) the log's writer.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use projections::{Cell, Change};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, ConnectOptions, Transaction};

/// Longest a read waits for a PostgreSQL connection before it is answered 503.
pub const OUTAGE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum ReadStoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl ReadStoreError {
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Database(error) if crate::store::is_outage(error))
    }
}

#[derive(Clone)]
pub struct ReadStore {
    pool: AnyPool,
    /// On SQLite, one projection writes at a time. SQLite has one write lock per file, and a
    /// writer that finds it taken sleeps in the busy handler (1, 2, 5 … 100 ms): projections
    /// contending for it made every command wait tens of milliseconds. Queueing here instead
    /// hands the lock over the moment it is free. `None` on PostgreSQL, whose rows lock alone.
    writer: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl ReadStore {
    pub async fn open(database_url: &str) -> Result<Self, ReadStoreError> {
        sqlx::any::install_default_drivers();
        let is_sqlite = database_url.starts_with("sqlite:");
        let options = AnyConnectOptions::from_str(database_url)?.disable_statement_logging();
        let pool = AnyPoolOptions::new()
            .max_connections(if is_sqlite { 4 } else { 8 })
            // On PostgreSQL a read fails fast (503) while the database is out of reach, instead
            // of holding the request; SQLite's connections are only ever busy, never gone.
            .acquire_timeout(if is_sqlite {
                Duration::from_secs(30)
            } else {
                OUTAGE_TIMEOUT
            })
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if is_sqlite {
                        // Read models are rebuilt from the log, so NORMAL suffices: a crash can
                        // only roll back whole (changes + checkpoint) transactions together.
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = NORMAL",
                            "PRAGMA busy_timeout = 10000",
                            // Reads map the file instead of copying each page out of the OS
                            // cache with a syscall (a 500-vehicle lookup touches ~1,000 rows
                            // scattered over the table). Address space, not memory: only the
                            // pages read are resident, and the OS shares them between connections.
                            "PRAGMA mmap_size = 1073741824",
                        ] {
                            sqlx::Executor::execute(&mut *connection, pragma).await?;
                        }
                    } else {
                        // Read models are small and hot: their pages are in shared buffers, so
                        // a random page costs about what a sequential one does. At the default
                        // (4) PostgreSQL answered a 500-vehicle lookup (`vehicle IN (…500…)`)
                        // with a sequential scan of the whole table, ~12 ms, instead of 500
                        // index probes, ~3 ms (EXPLAIN ANALYZE, 55,000 rows).
                        sqlx::Executor::execute(&mut *connection, "SET random_page_cost = 1.1")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/read_models")
            .set_ignore_missing(true)
            .run(&pool)
            .await?;
        let writer = is_sqlite.then(|| Arc::new(tokio::sync::Mutex::new(())));
        Ok(Self { pool, writer })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// `count` bind placeholders numbered from `first`, for a statement whose parameters are
    /// bound in the order they appear. On SQLite they are anonymous `?`: SQLite looks a
    /// numbered `$n` up among all of a statement's names on every bind, which is quadratic in
    /// their number (a 500-vehicle lookup spent most of its time there).
    pub fn placeholders(&self, first: usize, count: usize) -> Vec<String> {
        if self.writer.is_some() {
            vec!["?".to_string(); count]
        } else {
            (first..first + count).map(|n| format!("${n}")).collect()
        }
    }

    /// The aggregate that joins text in a given order: `{name}(text, separator ORDER BY …)`
    /// means the same on both stores under their own names (SQLite ≥ 3.44, as bundled).
    pub fn string_agg(&self) -> &'static str {
        if self.writer.is_some() {
            "group_concat"
        } else {
            "string_agg"
        }
    }

    /// Waits for the turn to write (SQLite), and answers the guard that holds it.
    pub async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.writer {
            Some(writer) => Some(writer.clone().lock_owned().await),
            None => None,
        }
    }

    /// The projection's stored checkpoint; a projection seen for the first time gets a row at 0,
    /// so that every later move is a compare-and-set ([`advance_checkpoint`]).
    pub async fn checkpoint(&self, projection: &str) -> Result<i64, ReadStoreError> {
        sqlx::query(
            "INSERT INTO projection_checkpoints (name, position) VALUES ($1, 0) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(projection)
        .execute(&self.pool)
        .await?;
        let position: Option<i64> =
            sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = $1")
                .bind(projection)
                .fetch_optional(&self.pool)
                .await?;
        Ok(position.unwrap_or(0))
    }

    /// Every stored checkpoint, by projection name.
    pub async fn checkpoints(
        &self,
    ) -> Result<std::collections::HashMap<String, i64>, ReadStoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT name, position FROM projection_checkpoints")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().collect())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Moves a projection's checkpoint from `from` to `to`, only forward and only if it still is at
/// `from`. `false` when it is not: another instance folded these events meanwhile, and the
/// caller must roll its transaction back instead of applying them a second time.
pub async fn advance_checkpoint(
    tx: &mut Transaction<'_, Any>,
    projection: &str,
    from: i64,
    to: i64,
) -> Result<bool, sqlx::Error> {
    debug_assert!(to > from, "a checkpoint only moves forward");
    let moved = sqlx::query(
        "UPDATE projection_checkpoints SET position = $1 \
         WHERE name = $2 AND position = $3 AND position < $1",
    )
    .bind(to)
    .bind(projection)
    .bind(from)
    .execute(&mut **tx)
    .await?;
    Ok(moved.rows_affected() == 1)
}

/// A typed placeholder. Through the `Any` driver a NULL reaches PostgreSQL as untyped text, which
/// a `BIGINT` column refuses; the cast gives every value its column's type on both databases.
fn placeholder(number: usize, cell: &Cell) -> String {
    match cell {
        Cell::Int(_) => format!("CAST(${number} AS BIGINT)"),
        Cell::Text(_) => format!("CAST(${number} AS TEXT)"),
    }
}

/// [`placeholder`] for SQLite: parameters bound in order of appearance.
fn anonymous_placeholder(cell: &Cell) -> &'static str {
    match cell {
        Cell::Int(_) => "CAST(? AS BIGINT)",
        Cell::Text(_) => "CAST(? AS TEXT)",
    }
}

/// Placeholders are written as `$1, $2, …` by hand: sqlx's `Any` query builder emits `?`, which
/// PostgreSQL rejects. SQLite numbers `$n` parameters in order of appearance, which is the same.
pub async fn apply_change(
    tx: &mut Transaction<'_, Any>,
    change: Change,
) -> Result<(), sqlx::Error> {
    let (sql, cells) = match change {
        Change::Upsert { table, key, values } => {
            let columns: Vec<&str> = key.iter().chain(&values).map(|(c, _)| *c).collect();
            let placeholders: Vec<String> = key
                .iter()
                .chain(&values)
                .enumerate()
                .map(|(index, (_, cell))| placeholder(index + 1, cell))
                .collect();
            let key_columns: Vec<&str> = key.iter().map(|(c, _)| *c).collect();
            let on_conflict = if values.is_empty() {
                "DO NOTHING".to_string()
            } else {
                let updates: Vec<String> = values
                    .iter()
                    .map(|(c, _)| format!("{c} = excluded.{c}"))
                    .collect();
                format!("DO UPDATE SET {}", updates.join(", "))
            };
            let sql = format!(
                "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT ({}) {on_conflict}",
                columns.join(", "),
                placeholders.join(", "),
                key_columns.join(", "),
            );
            (
                sql,
                key.into_iter()
                    .chain(values)
                    .map(|(_, cell)| cell)
                    .collect::<Vec<_>>(),
            )
        }
        Change::Update { table, key, values } => {
            let assignments: Vec<String> = values
                .iter()
                .enumerate()
                .map(|(index, (column, cell))| {
                    format!("{column} = {}", placeholder(index + 1, cell))
                })
                .collect();
            let conditions: Vec<String> = key
                .iter()
                .enumerate()
                .map(|(index, (column, _))| format!("{column} = ${}", values.len() + index + 1))
                .collect();
            let sql = format!(
                "UPDATE {table} SET {} WHERE {}",
                assignments.join(", "),
                conditions.join(" AND ")
            );
            (
                sql,
                values
                    .into_iter()
                    .chain(key)
                    .map(|(_, cell)| cell)
                    .collect(),
            )
        }
        Change::Delete { table, key } => {
            let conditions: Vec<String> = key
                .iter()
                .enumerate()
                .map(|(index, (column, _))| format!("{column} = ${}", index + 1))
                .collect();
            let sql = format!("DELETE FROM {table} WHERE {}", conditions.join(" AND "));
            (sql, key.into_iter().map(|(_, cell)| cell).collect())
        }
    };
    let mut query = sqlx::query(&sql);
    for cell in cells {
        query = match cell {
            Cell::Int(value) => query.bind(value),
            Cell::Text(value) => query.bind(value),
        };
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// Most bind parameters in one statement. Binding `$n` placeholders on SQLite looks each name up
/// among all of the statement's (quadratic in their number; it showed in the profile at 30,000),
/// so statements stay small: a few hundred parameters already make round trips negligible.
const PARAMS_PER_STATEMENT_MAX: usize = 200;

/// Applies `changes` in order, as [`apply_change`] one by one would, but with consecutive
/// upserts of one table and one column set written as a single multi-row statement.
///
/// A batch of a thousand events is a few statements instead of thousands of round trips; that
/// is what lets a projection keep up with the log. Within one statement a key appears once (an
/// `ON CONFLICT DO UPDATE` may not touch a row twice): a later upsert of the same key replaces
/// the earlier one, exactly what applying them in order would leave.
pub async fn apply_changes(
    tx: &mut Transaction<'_, Any>,
    changes: Vec<Change>,
) -> Result<(), sqlx::Error> {
    let mut group = UpsertGroup::default();
    for change in changes {
        match change {
            Change::Upsert { table, key, values } if group.takes(table, &key, &values) => {
                group.push(key, values);
            }
            Change::Upsert { table, key, values } => {
                group.flush(tx).await?;
                group = UpsertGroup::start(table, &key, &values);
                group.push(key, values);
            }
            other => {
                group.flush(tx).await?;
                apply_change(tx, other).await?;
            }
        }
    }
    group.flush(tx).await
}

/// Consecutive upserts of one table with the same key and value columns.
#[derive(Default)]
struct UpsertGroup {
    table: &'static str,
    key_columns: Vec<&'static str>,
    value_columns: Vec<&'static str>,
    rows: Vec<Vec<Cell>>,
    /// Key cells → index in `rows`, so a repeated key replaces its row.
    index: std::collections::BTreeMap<Vec<Cell>, usize>,
}

impl UpsertGroup {
    fn start(table: &'static str, key: &projections::Row, values: &projections::Row) -> Self {
        Self {
            table,
            key_columns: key.iter().map(|(c, _)| *c).collect(),
            value_columns: values.iter().map(|(c, _)| *c).collect(),
            ..Self::default()
        }
    }

    fn takes(&self, table: &str, key: &projections::Row, values: &projections::Row) -> bool {
        !self.rows.is_empty()
            && self.table == table
            && self.key_columns.iter().eq(key.iter().map(|(c, _)| c))
            && self.value_columns.iter().eq(values.iter().map(|(c, _)| c))
    }

    fn push(&mut self, key: projections::Row, values: projections::Row) {
        let key_cells: Vec<Cell> = key.into_iter().map(|(_, cell)| cell).collect();
        let mut row = key_cells.clone();
        row.extend(values.into_iter().map(|(_, cell)| cell));
        match self.index.get(&key_cells) {
            Some(&at) => self.rows[at] = row,
            None => {
                self.index.insert(key_cells, self.rows.len());
                self.rows.push(row);
            }
        }
    }

    async fn flush(&mut self, tx: &mut Transaction<'_, Any>) -> Result<(), sqlx::Error> {
        let rows = std::mem::take(&mut self.rows);
        self.index.clear();
        let columns = self.key_columns.len() + self.value_columns.len();
        if rows.is_empty() || columns == 0 {
            return Ok(());
        }
        let on_conflict = if self.value_columns.is_empty() {
            "DO NOTHING".to_string()
        } else {
            let updates: Vec<String> = self
                .value_columns
                .iter()
                .map(|c| format!("{c} = excluded.{c}"))
                .collect();
            format!("DO UPDATE SET {}", updates.join(", "))
        };
        let all_columns: Vec<&str> = self
            .key_columns
            .iter()
            .chain(&self.value_columns)
            .copied()
            .collect();
        // SQLite looks a numbered `$n` up among all of a statement's parameter names on every
        // bind (quadratic: 12% of a rebuild's time at 200 parameters); anonymous `?` in order
        // skips that. PostgreSQL only understands `$n`.
        let anonymous = tx.backend_name() == "SQLite";
        for chunk in rows.chunks((PARAMS_PER_STATEMENT_MAX / columns).max(1)) {
            let mut number = 0;
            let tuples: Vec<String> = chunk
                .iter()
                .map(|row| {
                    let placeholders: Vec<String> = row
                        .iter()
                        .map(|cell| {
                            number += 1;
                            if anonymous {
                                anonymous_placeholder(cell).to_string()
                            } else {
                                placeholder(number, cell)
                            }
                        })
                        .collect();
                    format!("({})", placeholders.join(", "))
                })
                .collect();
            let sql = format!(
                "INSERT INTO {} ({}) VALUES {} ON CONFLICT ({}) {on_conflict}",
                self.table,
                all_columns.join(", "),
                tuples.join(", "),
                self.key_columns.join(", "),
            );
            let mut query = sqlx::query(&sql);
            for cell in chunk.iter().flatten() {
                query = match cell {
                    Cell::Int(value) => query.bind(*value),
                    Cell::Text(value) => query.bind(value.clone()),
                };
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }
}

/// A decimal column (stored as exact text) as a JSON number, or `null`.
pub fn decimal_json(raw: Option<String>) -> serde_json::Value {
    raw.and_then(|text| text.parse::<rust_decimal::Decimal>().ok())
        .and_then(|exact| serde_json::to_value(exact).ok())
        .unwrap_or(serde_json::Value::Null)
}
