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

use std::collections::{BTreeMap, VecDeque};

use projections::{Cell, Change, Derive, Kind, Lookup, Stored};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, ConnectOptions, Row, Transaction};

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
                        // A transaction whose task died between statements (aborted, or stuck)
                        // would otherwise hold its rows, the checkpoints and the lease among
                        // them, for as long as its pooled connection lives, and every other
                        // instance would wait on those locks: the server ends it instead. The
                        // runner's transactions go statement to statement with no waits between.
                        sqlx::Executor::execute(
                            &mut *connection,
                            "SET idle_in_transaction_session_timeout = '30s'",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        // Both migrators record into the same table; each ignores the versions only the other
        // knows. The SQLite-only ones take store-specific DDL (`WITHOUT ROWID`).
        sqlx::migrate!("./migrations/read_models")
            .set_ignore_missing(true)
            .run(&pool)
            .await?;
        if is_sqlite {
            sqlx::migrate!("./migrations/read_models_sqlite")
                .set_ignore_missing(true)
                .run(&pool)
                .await?;
        }
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

    /// The aggregate that joins text: `{name}(text, separator)` (and `… ORDER BY …)`) means the
    /// same on both stores under their own names (SQLite ≥ 3.44, as bundled).
    pub fn string_agg(&self) -> &'static str {
        if self.writer.is_some() {
            "group_concat"
        } else {
            "string_agg"
        }
    }

    /// Whether the read models live in PostgreSQL (else SQLite).
    pub fn is_postgres(&self) -> bool {
        self.writer.is_none()
    }

    /// Waits for the turn to write (SQLite), and answers the guard that holds it.
    pub async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.writer {
            Some(writer) => Some(writer.clone().lock_owned().await),
            None => None,
        }
    }

    /// Begins a transaction that writes read models. On SQLite it takes the file's write lock
    /// up front (`BEGIN IMMEDIATE`): a deferred transaction that reads before it writes (a
    /// running total read, then stored) fails outright with `SQLITE_BUSY_SNAPSHOT` when another
    /// process committed in between, as `fleet-ledger replay` does beside a running service;
    /// waiting for the lock first makes it queue (busy timeout) instead. Callers in this process
    /// still take [`Self::write_turn`] first, so they queue here rather than in SQLite.
    pub async fn begin_write(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        if self.writer.is_some() {
            self.pool.begin_with("BEGIN IMMEDIATE").await
        } else {
            self.pool.begin().await
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

/// Which copy of a projection's tables a change is written to.
///
/// A rebuild folds the log into shadow tables beside the live ones (same columns, keys and
/// indexes) while the service keeps reading and folding into the live ones, then swaps them in
/// (see `crate::rebuild`). The projections name their tables once; the writer maps each name
/// here, so that changes a step derives while it is written (`Derived::also`) land in the
/// same copy as the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableSet {
    Live,
    Shadow,
}

/// Appended to a live table's name (and a SQLite index's) to name its shadow.
pub const SHADOW_SUFFIX: &str = "__shadow";

impl TableSet {
    /// The SQL name of `table` in this set.
    pub fn name(self, table: &str) -> std::borrow::Cow<'_, str> {
        match self {
            Self::Live => std::borrow::Cow::Borrowed(table),
            Self::Shadow => std::borrow::Cow::Owned(format!("{table}{SHADOW_SUFFIX}")),
        }
    }
}

/// Applies one change, as [`apply_changes`] would alone.
pub async fn apply_change(
    tx: &mut Transaction<'_, Any>,
    change: Change,
) -> Result<(), sqlx::Error> {
    apply_changes(tx, vec![change]).await
}

/// An update, as one statement.
///
/// Placeholders are written as `$1, $2, …` by hand: sqlx's `Any` query builder emits `?`, which
/// PostgreSQL rejects. SQLite numbers `$n` parameters in order of appearance, which is the same.
fn update_statement(
    table: &str,
    key: projections::Row,
    values: projections::Row,
) -> (String, Vec<Cell>) {
    let assignments: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(index, (column, cell))| format!("{column} = {}", placeholder(index + 1, cell)))
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
    let cells = values
        .into_iter()
        .chain(key)
        .map(|(_, cell)| cell)
        .collect();
    (sql, cells)
}

/// A delete, as one statement.
fn delete_statement(table: &str, key: projections::Row) -> (String, Vec<Cell>) {
    let conditions: Vec<String> = key
        .iter()
        .enumerate()
        .map(|(index, (column, _))| format!("{column} = ${}", index + 1))
        .collect();
    let sql = format!("DELETE FROM {table} WHERE {}", conditions.join(" AND "));
    (sql, key.into_iter().map(|(_, cell)| cell).collect())
}

async fn execute(
    tx: &mut Transaction<'_, Any>,
    (sql, cells): (String, Vec<Cell>),
) -> Result<(), sqlx::Error> {
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

/// Applies `changes` in order, as [`apply_change`] one by one would, but with the upserts of one
/// table and one column set written as multi-row statements.
///
/// A batch of a thousand events is a few statements instead of thousands of round trips; that
/// is what lets a projection keep up with the log. Upserts wait in one group per table until
/// something else touches that table (an update, a delete, a lookup, a read of a derived row)
/// or the batch ends: statements on different tables do not depend on each other, so an event
/// that writes three tables still joins three groups. Within one statement a key appears once
/// (an `ON CONFLICT DO UPDATE` may not touch a row twice): a later upsert of the same key
/// replaces the earlier one, exactly what applying them in order would leave.
///
/// A [`Change::Derive`] reads its row once per batch (then keeps it as derived so far), so a
/// running total over a thousand events is one read and one write, not a thousand of each.
pub async fn apply_changes(
    tx: &mut Transaction<'_, Any>,
    changes: Vec<Change>,
) -> Result<(), sqlx::Error> {
    apply_changes_to(tx, changes, TableSet::Live).await
}

/// [`apply_changes`] into the tables of `tables`.
pub async fn apply_changes_to(
    tx: &mut Transaction<'_, Any>,
    changes: Vec<Change>,
    tables: TableSet,
) -> Result<(), sqlx::Error> {
    // Rows derived in this batch as they stand now (none: the table has no such row). A plain
    // change to a table drops its rows from here, so they are read again after it.
    let mut derived = read_derived_rows(tx, &changes, tables).await?;
    let mut pending: VecDeque<Change> = changes.into();
    let mut groups: BTreeMap<&'static str, UpsertGroup> = BTreeMap::new();
    while let Some(change) = pending.pop_front() {
        match change {
            Change::Upsert { table, key, values } => {
                forget_table(&mut derived, table);
                join_group(tx, &mut groups, tables, table, key, values).await?;
            }
            Change::Update { table, key, values } => {
                forget_table(&mut derived, table);
                flush_table(tx, &mut groups, tables, table).await?;
                execute(tx, update_statement(&tables.name(table), key, values)).await?;
            }
            Change::Delete { table, key } => {
                forget_table(&mut derived, table);
                flush_table(tx, &mut groups, tables, table).await?;
                execute(tx, delete_statement(&tables.name(table), key)).await?;
            }
            Change::Derive(derive) => {
                let mut found = Vec::with_capacity(derive.lookups.len());
                for lookup in &derive.lookups {
                    flush_table(tx, &mut groups, tables, lookup.table).await?;
                    found.push(look_up(tx, lookup, tables).await?);
                }
                let slot = (
                    derive.table,
                    derive.key.iter().map(|(_, cell)| cell.clone()).collect(),
                );
                // Taken out, and put back below as derived.
                let stored = match derived.remove(&slot) {
                    Some(row) => row,
                    None => {
                        flush_table(tx, &mut groups, tables, derive.table).await?;
                        read_derived(tx, &derive, tables).await?
                    }
                };
                let next = derive.step.next(stored.as_ref(), &found);
                let row: Stored = derive.key.iter().chain(&next.values).cloned().collect();
                derived.insert(slot, Some(row));
                join_group(
                    tx,
                    &mut groups,
                    tables,
                    derive.table,
                    derive.key,
                    next.values,
                )
                .await?;
                for also in next.also.into_iter().rev() {
                    pending.push_front(also);
                }
            }
        }
    }
    for group in groups.values_mut() {
        group.flush(tx, tables).await?;
    }
    Ok(())
}

/// Adds an upsert to its table's group, first writing the group out if its columns differ.
async fn join_group(
    tx: &mut Transaction<'_, Any>,
    groups: &mut BTreeMap<&'static str, UpsertGroup>,
    tables: TableSet,
    table: &'static str,
    key: projections::Row,
    values: projections::Row,
) -> Result<(), sqlx::Error> {
    let group = groups.entry(table).or_default();
    if !group.takes(table, &key, &values) {
        group.flush(tx, tables).await?;
        *group = UpsertGroup::start(table, &key, &values);
    }
    group.push(key, values);
    Ok(())
}

/// Writes out the upserts waiting for `table`, before something reads or changes it.
async fn flush_table(
    tx: &mut Transaction<'_, Any>,
    groups: &mut BTreeMap<&'static str, UpsertGroup>,
    tables: TableSet,
    table: &str,
) -> Result<(), sqlx::Error> {
    match groups.get_mut(table) {
        Some(group) => group.flush(tx, tables).await,
        None => Ok(()),
    }
}

/// Reads the cells of `columns` from `row`, in order, the first at index `first`.
fn cells(
    row: &AnyRow,
    first: usize,
    columns: impl IntoIterator<Item = (&'static str, Kind)>,
) -> Result<Stored, sqlx::Error> {
    columns
        .into_iter()
        .enumerate()
        .map(|(index, (column, kind))| {
            let cell = match kind {
                Kind::Int => Cell::Int(row.try_get(first + index)?),
                Kind::Text => Cell::Text(row.try_get(first + index)?),
            };
            Ok((column, cell))
        })
        .collect()
}

fn bind_cells<'q>(
    mut query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    cells: impl IntoIterator<Item = &'q Cell>,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    for cell in cells {
        query = match cell {
            Cell::Int(value) => query.bind(*value),
            Cell::Text(value) => query.bind(value.clone()),
        };
    }
    query
}

/// Rows derived in a batch, by table and key cells, as they stand (none: no such row).
type DerivedRows = BTreeMap<(&'static str, Vec<Cell>), Option<Stored>>;

/// Drops the rows of `table` from `derived`, to be read again: something else changed it.
fn forget_table(derived: &mut DerivedRows, table: &str) {
    // Most plain changes are to tables nothing derives: a range lookup, not a walk of every row.
    let first = derived
        .range((table, Vec::new())..)
        .next()
        .map(|((first, _), _)| *first);
    if first == Some(table) {
        derived.retain(|(derived_table, _), _| *derived_table != table);
    }
}

/// The stored rows the batch's [`Derive`]s start from, read up front: a few statements per table
/// instead of one per row (a batch of refuels over a year of dates touches thousands of day
/// rows). Rows the batch changes by other means before deriving are dropped and read again.
async fn read_derived_rows(
    tx: &mut Transaction<'_, Any>,
    changes: &[Change],
    tables: TableSet,
) -> Result<DerivedRows, sqlx::Error> {
    // Derives of one table, by the shape of their key and columns: each group is one query.
    let mut wanted: BTreeMap<(&'static str, Vec<&'static str>), Vec<&Derive>> = BTreeMap::new();
    let mut rows = DerivedRows::new();
    for change in changes {
        if let Change::Derive(derive) = change {
            let key: Vec<Cell> = derive.key.iter().map(|(_, cell)| cell.clone()).collect();
            if rows.insert((derive.table, key), None).is_none() {
                let key_columns = derive.key.iter().map(|(column, _)| *column).collect();
                wanted
                    .entry((derive.table, key_columns))
                    .or_default()
                    .push(derive);
            }
        }
    }
    let anonymous = tx.backend_name() == "SQLite";
    for ((table, key_columns), derives) in wanted {
        let columns = derives[0].columns;
        if derives.iter().any(|d| d.columns != columns) {
            // Steps of one table that read different columns: read each on its own.
            for derive in derives {
                let key = derive.key.iter().map(|(_, cell)| cell.clone()).collect();
                rows.insert((table, key), read_derived(tx, derive, tables).await?);
            }
            continue;
        }
        let names: Vec<&str> = key_columns
            .iter()
            .copied()
            .chain(columns.iter().map(|(column, _)| *column))
            .collect();
        let keys_per_statement = (PARAMS_PER_STATEMENT_MAX / key_columns.len()).max(1);
        for chunk in derives.chunks(keys_per_statement) {
            let mut number = 0;
            let tuples: Vec<String> = chunk
                .iter()
                .map(|derive| {
                    let placeholders: Vec<String> = derive
                        .key
                        .iter()
                        .map(|(_, cell)| {
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
            // A join with the keys, not `(key) IN (VALUES …)`: SQLite scans the whole table for
            // a row-value IN, and looks each key up for a join.
            let sql_table = tables.name(table);
            let selected: Vec<String> = names.iter().map(|n| format!("{sql_table}.{n}")).collect();
            let on: Vec<String> = key_columns
                .iter()
                .enumerate()
                .map(|(index, column)| format!("{sql_table}.{column} = wanted.column{}", index + 1))
                .collect();
            let sql = format!(
                "SELECT {} FROM (VALUES {}) AS wanted JOIN {sql_table} ON {}",
                selected.join(", "),
                tuples.join(", "),
                on.join(" AND ")
            );
            let query = bind_cells(
                sqlx::query(&sql),
                chunk
                    .iter()
                    .flat_map(|d| d.key.iter().map(|(_, cell)| cell)),
            );
            let key_kinds: Vec<(&'static str, Kind)> = chunk[0]
                .key
                .iter()
                .map(|(column, cell)| match cell {
                    Cell::Int(_) => (*column, Kind::Int),
                    Cell::Text(_) => (*column, Kind::Text),
                })
                .collect();
            for row in query.fetch_all(&mut **tx).await? {
                let key_cells = cells(&row, 0, key_kinds.iter().copied())?;
                let key = key_columns
                    .iter()
                    .map(|column| key_cells[column].clone())
                    .collect();
                let mut stored = cells(&row, key_columns.len(), columns.iter().copied())?;
                stored.extend(key_cells);
                rows.insert((table, key), Some(stored));
            }
        }
    }
    Ok(rows)
}

/// The stored row a [`Derive`] starts from: its key and its columns, or none.
async fn read_derived(
    tx: &mut Transaction<'_, Any>,
    derive: &Derive,
    tables: TableSet,
) -> Result<Option<Stored>, sqlx::Error> {
    let names: Vec<&str> = derive.columns.iter().map(|(column, _)| *column).collect();
    let conditions: Vec<String> = derive
        .key
        .iter()
        .enumerate()
        .map(|(index, (column, _))| format!("{column} = ${}", index + 1))
        .collect();
    let sql = format!(
        "SELECT {} FROM {} WHERE {}",
        names.join(", "),
        tables.name(derive.table),
        conditions.join(" AND ")
    );
    let query = bind_cells(sqlx::query(&sql), derive.key.iter().map(|(_, cell)| cell));
    let Some(row) = query.fetch_optional(&mut **tx).await? else {
        return Ok(None);
    };
    let mut stored = cells(&row, 0, derive.columns.iter().copied())?;
    stored.extend(derive.key.iter().cloned());
    Ok(Some(stored))
}

/// The row a [`Lookup`] finds, as the table stands now.
async fn look_up(
    tx: &mut Transaction<'_, Any>,
    lookup: &Lookup,
    tables: TableSet,
) -> Result<Option<Stored>, sqlx::Error> {
    let names: Vec<&str> = lookup.columns.iter().map(|(column, _)| *column).collect();
    let mut conditions: Vec<String> = lookup
        .prefix
        .iter()
        .enumerate()
        .map(|(index, (column, _))| format!("{column} = ${}", index + 1))
        .collect();
    if let Some(present) = lookup.present {
        conditions.push(format!("{present} IS NOT NULL"));
    }
    let order: Vec<String> = lookup
        .order
        .iter()
        .map(|column| format!("{column} DESC"))
        .collect();
    let sql = format!(
        "SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT 1",
        names.join(", "),
        tables.name(lookup.table),
        conditions.join(" AND "),
        order.join(", ")
    );
    let query = bind_cells(
        sqlx::query(&sql),
        lookup.prefix.iter().map(|(_, cell)| cell),
    );
    let row = query.fetch_optional(&mut **tx).await?;
    row.map(|row| cells(&row, 0, lookup.columns.iter().copied()))
        .transpose()
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

    /// Whether an upsert can join this group (an empty group is started afresh instead).
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

    async fn flush(
        &mut self,
        tx: &mut Transaction<'_, Any>,
        tables: TableSet,
    ) -> Result<(), sqlx::Error> {
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
                tables.name(self.table),
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
