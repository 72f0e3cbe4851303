//! Read models as pure folds.
//!
//! A projection takes one recorded event and answers with the row changes it causes in its read
//! model. It performs no I/O: the service turns [`Change`]s into SQL and applies them together with
//! the projection's checkpoint, and tests can fold whole histories in memory.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub mod alerts;
pub mod balances;
pub mod fleet;
#[cfg(test)]
mod histories;
pub mod inspections;
pub mod journal;
pub mod ledger;
pub mod operation_areas;
pub mod periods;
pub mod registry;
pub mod vehicle_checks;

/// An event as the log recorded it, which is all a projection may look at.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub position: i64,
    pub stream_type: String,
    pub stream_id: String,
    pub version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: Value,
    pub actor: Option<String>,
    pub recorded_at: DateTime<Utc>,
}

/// One column value. Money and quantities travel as exact decimal text, flags as 0/1.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cell {
    Int(Option<i64>),
    Text(Option<String>),
}

pub type Row = Vec<(&'static str, Cell)>;

/// What an event does to one row of one read-model table.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Insert the row, or overwrite the non-key columns of the row with the same key.
    Upsert {
        table: &'static str,
        key: Row,
        values: Row,
    },
    /// Overwrite the given columns of the row with this key, if there is one.
    Update {
        table: &'static str,
        key: Row,
        values: Row,
    },
    Delete {
        table: &'static str,
        key: Row,
    },
    /// Overwrite a row with what a step makes of its stored values: a running total, which
    /// depends on every event before this one.
    Derive(Derive),
}

/// How a stored column is read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Text,
}

/// Columns with their kinds.
pub type Columns = &'static [(&'static str, Kind)];

/// A row as the table holds it: column → value.
pub type Stored = BTreeMap<&'static str, Cell>;

/// A row whose new values are computed from its stored ones (and from rows it looks up), by a
/// pure [`Step`]. The writer reads the row as every earlier change left it, and stores
/// `key` + the step's values, then the step's further changes.
///
/// It exists because a running total cannot be written from one event alone: an event says
/// "add 5", the stored row says what it is added to. The fold stays pure (no I/O), and the
/// read-modify-write happens in the writer's transaction, so a retried or abandoned batch can
/// never count an event twice.
#[derive(Debug, Clone)]
pub struct Derive {
    pub table: &'static str,
    pub key: Row,
    /// The non-key columns the step reads (and writes).
    pub columns: Columns,
    /// Rows the step needs besides its own, looked up after every change before this one.
    pub lookups: Vec<Lookup>,
    pub step: Arc<dyn Step>,
}

impl PartialEq for Derive {
    fn eq(&self, other: &Self) -> bool {
        // A step is data behind a trait; its debug form shows every field it holds.
        self.table == other.table
            && self.key == other.key
            && self.columns == other.columns
            && self.lookups == other.lookups
            && format!("{:?}", self.step) == format!("{:?}", other.step)
    }
}

/// The first row of `table`, in descending `order`, among those whose `prefix` columns hold
/// the given values and whose `present` column (if named) is not null. `order` names integer
/// columns that hold no null and single a row out, so both databases pick the same one.
#[derive(Debug, Clone, PartialEq)]
pub struct Lookup {
    pub table: &'static str,
    pub prefix: Row,
    pub present: Option<&'static str>,
    pub order: &'static [&'static str],
    pub columns: Columns,
}

/// The pure part of a [`Derive`]: stored values in, new values out.
pub trait Step: std::fmt::Debug + Send + Sync {
    /// `stored` is the row before (none when the table has no row with the key yet; then it
    /// holds the key columns and `columns` otherwise); `found` holds each lookup's row, in
    /// order.
    fn next(&self, stored: Option<&Stored>, found: &[Option<Stored>]) -> Derived;
}

/// What a [`Step`] makes of a row: its new non-key values, and changes that come with them
/// (a copy of the row under another key, say).
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    pub values: Row,
    pub also: Vec<Change>,
}

pub fn int(value: impl Into<Option<i64>>) -> Cell {
    Cell::Int(value.into())
}

pub fn text(value: impl Into<Option<String>>) -> Cell {
    Cell::Text(value.into())
}

pub fn flag(value: bool) -> Cell {
    Cell::Int(Some(i64::from(value)))
}

/// An instant as the read models store it (RFC 3339, UTC).
pub fn instant(at: &DateTime<Utc>) -> Cell {
    Cell::Text(Some(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
}

/// A read model: its name (the checkpoint's key), its tables, and its fold.
pub trait Projection: Send + Sync {
    fn name(&self) -> &'static str;

    /// Tables this projection owns; a rebuild empties exactly these.
    fn tables(&self) -> &'static [&'static str];

    /// The changes `event` causes. Events this projection does not care about give none.
    fn apply(&self, event: &Recorded) -> Result<Vec<Change>, FoldError>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldError {
    pub position: i64,
    pub reason: String,
}

impl std::fmt::Display for FoldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "event at position {} cannot be folded: {}",
            self.position, self.reason
        )
    }
}

impl std::error::Error for FoldError {}

/// Deserializes an event payload into the domain's event type, naming the position on failure.
pub fn decode<E: serde::de::DeserializeOwned>(event: &Recorded) -> Result<E, FoldError> {
    decode_parts(event.position, &event.event_type, &event.payload)
}

/// [`decode`] from an event's parts, for a caller that holds them without a [`Recorded`] (and
/// should not copy a payload to make one).
pub fn decode_parts<E: serde::de::DeserializeOwned>(
    position: i64,
    event_type: &str,
    payload: &Value,
) -> Result<E, FoldError> {
    aggregates::codec::decode(event_type, payload).map_err(|e| FoldError {
        position,
        reason: e.to_string(),
    })
}

/// An in-memory read model: table → key → row. It is what the SQL tables hold, which lets tests
/// replay a history without a database and compare it with the live tables.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemoryModel {
    pub tables: BTreeMap<&'static str, BTreeMap<Vec<Cell>, BTreeMap<&'static str, Cell>>>,
}

impl MemoryModel {
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Upsert { table, key, values } => {
                let key_cells: Vec<Cell> = key.iter().map(|(_, c)| c.clone()).collect();
                let row = self
                    .tables
                    .entry(table)
                    .or_default()
                    .entry(key_cells)
                    .or_default();
                for (column, cell) in key.into_iter().chain(values) {
                    row.insert(column, cell);
                }
            }
            Change::Update { table, key, values } => {
                let key_cells: Vec<Cell> = key.iter().map(|(_, c)| c.clone()).collect();
                if let Some(row) = self
                    .tables
                    .get_mut(table)
                    .and_then(|rows| rows.get_mut(&key_cells))
                {
                    for (column, cell) in values {
                        row.insert(column, cell);
                    }
                }
            }
            Change::Delete { table, key } => {
                let key_cells: Vec<Cell> = key.into_iter().map(|(_, c)| c).collect();
                if let Some(rows) = self.tables.get_mut(table) {
                    rows.remove(&key_cells);
                }
            }
            Change::Derive(derive) => {
                let key_cells: Vec<Cell> = derive.key.iter().map(|(_, c)| c.clone()).collect();
                let stored = self
                    .tables
                    .get(derive.table)
                    .and_then(|rows| rows.get(&key_cells))
                    .cloned();
                let found: Vec<Option<Stored>> = derive
                    .lookups
                    .iter()
                    .map(|lookup| self.look_up(lookup))
                    .collect();
                let derived = derive.step.next(stored.as_ref(), &found);
                self.apply(Change::Upsert {
                    table: derive.table,
                    key: derive.key,
                    values: derived.values,
                });
                for change in derived.also {
                    self.apply(change);
                }
            }
        }
    }

    /// What [`Lookup`] finds in this model.
    pub fn look_up(&self, lookup: &Lookup) -> Option<Stored> {
        let matches = |row: &&Stored| {
            lookup
                .prefix
                .iter()
                .all(|(column, cell)| row.get(column) == Some(cell))
                && lookup.present.is_none_or(|column| {
                    matches!(
                        row.get(column),
                        Some(Cell::Int(Some(_)) | Cell::Text(Some(_)))
                    )
                })
        };
        let order = |row: &&Stored| -> Vec<Cell> {
            lookup
                .order
                .iter()
                .map(|column| row.get(column).cloned().unwrap_or(Cell::Int(None)))
                .collect()
        };
        self.tables
            .get(lookup.table)?
            .values()
            .filter(matches)
            .max_by_key(order)
            .cloned()
    }

    /// Folds a whole history through `projection`.
    pub fn replay<'a>(
        projection: &dyn Projection,
        events: impl IntoIterator<Item = &'a Recorded>,
    ) -> Result<Self, FoldError> {
        let mut model = Self::default();
        for event in events {
            for change in projection.apply(event)? {
                model.apply(change);
            }
        }
        Ok(model)
    }
}
