//! The integrity commands: `verify` (a store or an export), `export`, `import` and `backup`.
//!
//! Each reads the log as sealed rows ([`crate::store::history`]) a page at a time and runs every
//! event through one [`ChainCheck`], so a log of any length is checked in bounded memory (one
//! entry per stream), and an export is checked exactly as the store it came from.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::queries::checkpoints::{all_checkpoints, Checkpoint};
use crate::store::chain::{canonical_time, Broken, ChainCheck, ChainHash, SealedEvent};
use crate::store::history::{History, ImportError, PAGE_EVENTS};
use crate::store::StoreError;
use crate::StoreLocation;

/// Events one import transaction writes: the write lock is held for one batch at a time, so a
/// running service keeps appending between them.
const IMPORT_BATCH_EVENTS: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum IntegrityError {
    #[error("the log is broken at {0}")]
    Broken(Broken),
    #[error(
        "the log's head is position {head}, but its events run to position {last} \
         (position {first_unaccounted} is past the head)",
        first_unaccounted = .head + 1
    )]
    PastHead { head: i64, last: i64 },
    #[error(
        "the log's head is position {head}, but its events end at position {last}: \
         position {missing} is missing",
        missing = .last + 1
    )]
    ShortOfHead { head: i64, last: i64 },
    #[error("{kind} {name} is at position {position}, past the log's last position {head}")]
    CheckpointAhead {
        kind: String,
        name: String,
        position: i64,
        head: i64,
    },
    #[error("{path}, line {line}: {reason}")]
    Line {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("import refused: {0}")]
    Import(ImportError),
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing the export: {0}")]
    Output(std::io::Error),
    #[error("{0} already exists: a backup never overwrites a file")]
    BackupExists(PathBuf),
    #[error(
        "backup copies the embedded SQLite store; for PostgreSQL use pg_dump, for KurrentDB its \
         own backup of the database directory"
    )]
    BackupNeedsSqlite,
    #[error(
        "this log has no hash chain yet (it predates migration 0004): start the service on it \
         once, and the chain is filled in before it serves"
    )]
    NoChain,
    #[error("event log: {0}")]
    Store(#[from] StoreError),
    #[error("read models: {0}")]
    ReadModels(#[from] crate::queries::QueryError),
}

impl From<ImportError> for IntegrityError {
    fn from(error: ImportError) -> Self {
        match error {
            ImportError::Store(error) => Self::Store(error),
            other => Self::Import(other),
        }
    }
}

impl From<sqlx::Error> for IntegrityError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}

/// What an intact chain holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSummary {
    pub events: u64,
    pub streams: usize,
    /// The first position checked (the one after the start of an export from a later position).
    pub first: i64,
    /// The last position checked, and its hash.
    pub last: i64,
    pub head_hash: ChainHash,
    /// What the first event links to (the genesis for a check from position 1).
    pub anchor: ChainHash,
}

impl ChainSummary {
    fn of(check: &ChainCheck, first: i64, anchor: ChainHash) -> Self {
        let (last, head_hash) = check.tip();
        Self {
            events: check.events(),
            streams: check.streams(),
            first,
            last,
            head_hash,
            anchor,
        }
    }

    fn describe(&self, out: &mut impl Write) -> std::io::Result<()> {
        if self.events == 0 {
            writeln!(out, "events:      none")?;
        } else {
            writeln!(
                out,
                "events:      {} in {} streams, positions {} to {}",
                self.events, self.streams, self.first, self.last
            )?;
        }
        writeln!(out, "chain:       intact; head hash {}", self.head_hash)?;
        if self.first > 1 {
            writeln!(
                out,
                "anchor:      position {} links to {}: confirm it against the log the file came from",
                self.first - 1,
                self.anchor
            )?;
        }
        Ok(())
    }
}

/// Checks the log at `location` and its readers' checkpoints, writing what it checked to `out`.
/// The first problem found is the error.
pub async fn verify_store(
    location: &StoreLocation,
    out: &mut impl Write,
) -> Result<ChainSummary, IntegrityError> {
    let mut history = History::connect(&location.log_url).await?;
    // Checkpoints first: the log only grows, so every checkpoint read now must be at or below
    // the last position the walk below reaches.
    let checkpoints = all_checkpoints(&location.read_models_url).await?;
    let summary = walk_store(&mut history).await;
    history.close().await;
    let summary = summary?;
    let _ = writeln!(out, "store:       {}", backend_name(location));
    let _ = summary.describe(out);
    check_checkpoints(checkpoints.as_deref(), summary.last, out)?;
    let _ = writeln!(out, "ok");
    Ok(summary)
}

fn backend_name(location: &StoreLocation) -> String {
    if location.is_postgres() {
        // The URL may carry a password: name the backend only.
        "postgres".to_string()
    } else {
        format!("sqlite {}", sqlite_path(&location.log_url).display())
    }
}

/// Walks the whole log in position order through one chain check, then makes sure the walk
/// reached the head the store records (and no further).
async fn walk_store(history: &mut History) -> Result<ChainSummary, IntegrityError> {
    let mut check = ChainCheck::new();
    loop {
        let (after, _) = check.tip();
        let page = read_page(history, after, PAGE_EVENTS).await?;
        if page.is_empty() {
            let head = history.head().await?;
            if head == after {
                break;
            }
            if head < after {
                return Err(IntegrityError::PastHead { head, last: after });
            }
            // Appends committed during the walk: read on, unless there is nothing to read.
            if read_page(history, after, 1).await?.is_empty() {
                return Err(IntegrityError::ShortOfHead { head, last: after });
            }
            continue;
        }
        for event in &page {
            check.check(event).map_err(IntegrityError::Broken)?;
        }
    }
    Ok(ChainSummary::of(&check, 1, ChainHash::GENESIS))
}

/// Up to `limit` sealed events after `after`; a log without the chain column is said to be one.
async fn read_page(
    history: &mut History,
    after: i64,
    limit: i64,
) -> Result<Vec<SealedEvent>, IntegrityError> {
    match history.page(after, limit).await {
        Err(StoreError::Database(sqlx::Error::Database(error)))
            if is_missing_chain_column(error.as_ref()) =>
        {
            Err(IntegrityError::NoChain)
        }
        page => Ok(page?),
    }
}

/// PostgreSQL's `undefined_column`, or SQLite's "no such column", for `chain_hash`: a log that
/// no release with the chain has opened yet.
fn is_missing_chain_column(error: &dyn sqlx::error::DatabaseError) -> bool {
    error.message().contains("chain_hash")
        && (error.code().as_deref() == Some("42703") || error.message().contains("no such column"))
}

fn check_checkpoints(
    checkpoints: Option<&[Checkpoint]>,
    last: i64,
    out: &mut impl Write,
) -> Result<(), IntegrityError> {
    let Some(checkpoints) = checkpoints else {
        let _ = writeln!(
            out,
            "checkpoints: no read models beside this log; none checked"
        );
        return Ok(());
    };
    if let Some(ahead) = checkpoints.iter().find(|c| c.position > last) {
        return Err(IntegrityError::CheckpointAhead {
            kind: ahead.kind.clone(),
            name: ahead.name.clone(),
            position: ahead.position,
            head: last,
        });
    }
    let count = |kind: &str| checkpoints.iter().filter(|c| c.kind == kind).count();
    let _ = writeln!(
        out,
        "checkpoints: projections {}, consumers {}; all at or below position {last}",
        count("projection"),
        count("consumer")
    );
    Ok(())
}

/// One line of an export: an event with everything its hash covers, the hash it links to and
/// its own. `payload` and `metadata` are the stored JSON, byte for byte.
#[derive(Debug, Serialize, Deserialize)]
struct ExportLine<'a> {
    position: i64,
    event_id: String,
    stream_type: String,
    stream_id: String,
    version: i64,
    event_type: String,
    schema_version: i32,
    #[serde(borrow)]
    payload: &'a RawValue,
    #[serde(borrow)]
    metadata: &'a RawValue,
    recorded_at: String,
    previous_hash: String,
    hash: String,
}

impl ExportLine<'_> {
    fn sealed(&self) -> SealedEvent {
        SealedEvent {
            position: self.position,
            event_id: self.event_id.clone(),
            stream_type: self.stream_type.clone(),
            stream_id: self.stream_id.clone(),
            version: self.version,
            event_type: self.event_type.clone(),
            schema_version: self.schema_version,
            payload: self.payload.get().to_string(),
            metadata: self.metadata.get().to_string(),
            recorded_at: self.recorded_at.clone(),
            hash: Some(self.hash.clone()),
        }
    }
}

/// Stored JSON as a raw value for an export line: one line per event, so it must be valid JSON
/// without a line break (the writer never stores one).
fn raw_json<'a>(position: i64, field: &str, text: &'a str) -> Result<&'a RawValue, IntegrityError> {
    let corrupt = |reason: String| {
        IntegrityError::Store(StoreError::Corrupt {
            position,
            reason: format!("its {field} {reason}"),
        })
    };
    if text.contains(['\n', '\r']) {
        return Err(corrupt("spans several lines".to_string()));
    }
    serde_json::from_str(text).map_err(|e| corrupt(format!("is not JSON: {e}")))
}

/// Writes every event after position `from - 1` to `out`, one JSON object per line, checking
/// the chain as it goes (an export that completes is an intact one). Answers what it wrote.
pub async fn export(
    database_url: &str,
    from: i64,
    out: &mut impl Write,
) -> Result<ChainSummary, IntegrityError> {
    let mut history = History::connect(database_url).await?;
    let exported = export_from(&mut history, from.max(1), out).await;
    history.close().await;
    exported
}

async fn export_from(
    history: &mut History,
    from: i64,
    out: &mut impl Write,
) -> Result<ChainSummary, IntegrityError> {
    let anchor = match history.hash_at(from - 1).await? {
        Some(hash) => hash,
        None => {
            // Nothing stored there: either past the head (an empty export), or a hole.
            if history.head().await? < from - 1 {
                out.flush().map_err(IntegrityError::Output)?;
                return Ok(ChainSummary {
                    events: 0,
                    streams: 0,
                    first: from,
                    last: from - 1,
                    head_hash: ChainHash::GENESIS,
                    anchor: ChainHash::GENESIS,
                });
            }
            return Err(IntegrityError::Broken(Broken {
                position: from - 1,
                problem: crate::store::chain::Problem::Unhashed,
            }));
        }
    };
    let mut check = ChainCheck::after(from - 1, anchor);
    loop {
        let (after, _) = check.tip();
        let page = read_page(history, after, PAGE_EVENTS).await?;
        if page.is_empty() {
            break;
        }
        for event in &page {
            let (_, previous) = check.tip();
            check.check(event).map_err(IntegrityError::Broken)?;
            let recorded_at = event
                .fields()
                .map(|fields| canonical_time(fields.recorded_at))
                .expect("a checked event's time parses");
            let line = ExportLine {
                position: event.position,
                event_id: event.event_id.clone(),
                stream_type: event.stream_type.clone(),
                stream_id: event.stream_id.clone(),
                version: event.version,
                event_type: event.event_type.clone(),
                schema_version: event.schema_version,
                payload: raw_json(event.position, "payload", &event.payload)?,
                metadata: raw_json(event.position, "metadata", &event.metadata)?,
                recorded_at,
                previous_hash: previous.to_string(),
                hash: event.hash.clone().unwrap_or_default(),
            };
            serde_json::to_writer(&mut *out, &line)
                .map_err(|e| IntegrityError::Output(e.into()))?;
            out.write_all(b"\n").map_err(IntegrityError::Output)?;
        }
    }
    out.flush().map_err(IntegrityError::Output)?;
    Ok(ChainSummary::of(&check, from, anchor))
}

/// Reads an export line by line and checks its chain, in bounded memory whatever the file's
/// length.
fn read_export(path: &Path) -> Result<ChainSummary, IntegrityError> {
    let file_error = |source| IntegrityError::File {
        path: path.to_path_buf(),
        source,
    };
    let reader = BufReader::new(File::open(path).map_err(file_error)?);
    let mut check: Option<ChainCheck> = None;
    let mut first = (1, ChainHash::GENESIS);
    for (index, line) in reader.lines().enumerate() {
        let number = index as u64 + 1;
        let line = line.map_err(file_error)?;
        if line.trim().is_empty() {
            continue;
        }
        let bad_line = |reason: String| IntegrityError::Line {
            path: path.to_path_buf(),
            line: number,
            reason,
        };
        let parsed: ExportLine = serde_json::from_str(&line)
            .map_err(|e| bad_line(format!("not an export line: {e}")))?;
        let check = match &mut check {
            Some(check) => check,
            None => {
                let anchor = if parsed.position == 1 {
                    ChainHash::GENESIS
                } else {
                    ChainHash::parse(&parsed.previous_hash).ok_or_else(|| {
                        bad_line(format!(
                            "previous_hash {:?} is not 64 hex digits",
                            parsed.previous_hash
                        ))
                    })?
                };
                first = (parsed.position, anchor);
                check.insert(ChainCheck::after(parsed.position - 1, anchor))
            }
        };
        check
            .expect_previous(parsed.position, &parsed.previous_hash)
            .map_err(IntegrityError::Broken)?;
        check
            .check(&parsed.sealed())
            .map_err(IntegrityError::Broken)?;
    }
    Ok(match &check {
        Some(check) => ChainSummary::of(check, first.0, first.1),
        None => ChainSummary::of(&ChainCheck::new(), 1, ChainHash::GENESIS),
    })
}

/// Checks an export offline, with no database; writes what it checked to `out`.
pub fn verify_file(path: &Path, out: &mut impl Write) -> Result<ChainSummary, IntegrityError> {
    let summary = read_export(path)?;
    let _ = writeln!(out, "file:        {}", path.display());
    let _ = summary.describe(out);
    let _ = writeln!(out, "ok");
    Ok(summary)
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub chain: ChainSummary,
    pub added: u64,
    pub present: u64,
}

/// Imports an export into the log at `database_url` (created and migrated if needed): checks
/// the whole file's chain first, then writes it in batches at its own positions. Events the
/// store already holds identically are skipped, so importing twice adds nothing; a store whose
/// history differs is refused at the first conflicting position, and nothing of that batch or
/// after it is written.
pub async fn import(
    database_url: &str,
    path: &Path,
    out: &mut impl Write,
) -> Result<ImportSummary, IntegrityError> {
    let chain = read_export(path)?;
    if !crate::store::is_postgres(database_url) {
        create_parent(&sqlite_path(database_url))?;
    }
    let mut history = History::open(database_url).await?;
    let imported = import_checked(&mut history, path, chain).await;
    history.close().await;
    let summary = imported?;
    let _ = writeln!(out, "file:        {}", path.display());
    let _ = summary.chain.describe(out);
    let _ = writeln!(
        out,
        "imported:    {} events added, {} already present",
        summary.added, summary.present
    );
    Ok(summary)
}

async fn import_checked(
    history: &mut History,
    path: &Path,
    chain: ChainSummary,
) -> Result<ImportSummary, IntegrityError> {
    let mut summary = ImportSummary {
        chain,
        added: 0,
        present: 0,
    };
    // The file was checked whole above; it is read again batch by batch (never held whole).
    // Reading is synchronous, so batches are gathered and written in turns.
    let file_error = |source| IntegrityError::File {
        path: path.to_path_buf(),
        source,
    };
    let mut lines = BufReader::new(File::open(path).map_err(file_error)?)
        .lines()
        .enumerate();
    let mut check: Option<ChainCheck> = None;
    loop {
        let mut batch = Vec::with_capacity(IMPORT_BATCH_EVENTS);
        let mut previous = None;
        for (index, line) in lines.by_ref() {
            let line = line.map_err(file_error)?;
            if line.trim().is_empty() {
                continue;
            }
            let parsed: ExportLine =
                serde_json::from_str(&line).map_err(|e| IntegrityError::Line {
                    path: path.to_path_buf(),
                    line: index as u64 + 1,
                    reason: format!("changed since it was checked: {e}"),
                })?;
            let check = check.get_or_insert_with(|| {
                ChainCheck::after(summary.chain.first - 1, summary.chain.anchor)
            });
            // Checked again as it is written: the file could have changed since the first pass.
            check
                .expect_previous(parsed.position, &parsed.previous_hash)
                .map_err(IntegrityError::Broken)?;
            let sealed = parsed.sealed();
            let (_, linked_to) = check.tip();
            check.check(&sealed).map_err(IntegrityError::Broken)?;
            previous.get_or_insert(linked_to);
            batch.push(sealed);
            if batch.len() == IMPORT_BATCH_EVENTS {
                break;
            }
        }
        let Some(previous) = previous else {
            return Ok(summary);
        };
        let imported = history.import(&batch, &previous).await?;
        summary.added += imported.added;
        summary.present += imported.present;
    }
}

/// Creates the directory a SQLite file is to be written in.
fn create_parent(file: &Path) -> Result<(), IntegrityError> {
    match file.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir).map_err(|source| IntegrityError::File {
            path: dir.to_path_buf(),
            source,
        }),
        None => Ok(()),
    }
}

/// The file path of a `sqlite://…` URL.
fn sqlite_path(url: &str) -> PathBuf {
    PathBuf::from(
        url.trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:")
            .split('?')
            .next()
            .unwrap_or_default(),
    )
}

/// Where a backup went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    pub log: PathBuf,
    /// The read models' copy, beside it where `serve --database-url sqlite://FILE` looks.
    pub read_models: Option<PathBuf>,
    pub chain: ChainSummary,
}

/// Copies the SQLite store at `location` to `file` while the service may be writing to it, and
/// checks the copy. Each copy is `VACUUM INTO`: one read transaction, so a consistent snapshot
/// that never blocks the writer (WAL mode). The read models are copied first and the log second,
/// so every checkpoint in the copy is at or below the copied log's head: a service started on
/// the copy folds what its read models lack, and never skips an event.
pub async fn backup(
    location: &StoreLocation,
    file: &Path,
    out: &mut impl Write,
) -> Result<BackupSummary, IntegrityError> {
    if !location.is_sqlite() {
        return Err(IntegrityError::BackupNeedsSqlite);
    }
    create_parent(file)?;
    let read_models_copy = crate::state::sibling_read_models_path(&file.to_string_lossy());
    for target in [file, read_models_copy.as_path()] {
        if target.exists() {
            return Err(IntegrityError::BackupExists(target.to_path_buf()));
        }
    }
    let read_models = sqlite_path(&location.read_models_url);
    let read_models = if read_models.exists() {
        vacuum_into(&location.read_models_url, &read_models_copy).await?;
        Some(read_models_copy)
    } else {
        None
    };
    vacuum_into(&location.log_url, file).await?;
    let file_text = file.to_string_lossy().into_owned();
    let copy = StoreLocation::resolve(Path::new("."), Some(file_text.as_str()));
    let mut checked = Vec::new();
    let chain = verify_store(&copy, &mut checked).await?;
    let _ = writeln!(out, "backup:      {}", file.display());
    if let Some(read_models) = &read_models {
        let _ = writeln!(out, "read models: {}", read_models.display());
    }
    let _ = out.write_all(&checked);
    Ok(BackupSummary {
        log: file.to_path_buf(),
        read_models,
        chain,
    })
}

async fn vacuum_into(database_url: &str, target: &Path) -> Result<(), IntegrityError> {
    let mut connection =
        match History::connect(&sqlite_path(database_url).to_string_lossy()).await? {
            History::Sqlite(connection) => connection,
            History::Postgres(_) => return Err(IntegrityError::BackupNeedsSqlite),
        };
    sqlx::query("VACUUM INTO $1")
        .bind(target.to_string_lossy().into_owned())
        .execute(&mut connection)
        .await?;
    sqlx::Connection::close(connection).await?;
    Ok(())
}
