//! The tamper-evident chain over the event log: what bytes of an event are hashed, how each hash
//! links to the one before it, and the one check every reader of a chain runs (`verify` on a
//! database or on an export, and `import`).
//!
//! # Canonical bytes, version 1
//!
//! An event's canonical bytes are, in this order:
//!
//! | field | encoding |
//! | --- | --- |
//! | tag | the 21 ASCII bytes `fleet-ledger/event/v1`, length-prefixed like a text field |
//! | `position` | 8 bytes, big-endian two's complement |
//! | `event_id` | text: the UUID as stored, hyphenated lowercase |
//! | `stream_type`, `stream_id` | text |
//! | `version` | 8 bytes, big-endian |
//! | `event_type` | text |
//! | `schema_version` | 8 bytes, big-endian |
//! | `payload`, `metadata` | text: the JSON exactly as stored, byte for byte |
//! | `recorded_at` | text: RFC 3339 in UTC with exactly six fractional digits and `Z` |
//!
//! A text field is its UTF-8 length as 4 bytes big-endian, then its bytes: no field can bleed
//! into the next, so two different events never share canonical bytes. The tag names the
//! encoding, so a later version can never produce a hash that a version-1 event could have.
//!
//! `hash = SHA-256(previous hash (32 bytes) ‖ canonical bytes)`, where the previous hash of
//! position 1 is 32 zero bytes. Hashes are stored and exported as 64 lowercase hex digits.
//!
//! `recorded_at` is hashed at microsecond precision because that is all PostgreSQL keeps: the
//! same event must hash alike on both stores, or an export from SQLite could never be imported
//! into PostgreSQL. The writers therefore record times truncated to the microsecond
//! ([`recorded_now`]). Events stored on SQLite before the chain existed may carry nanoseconds;
//! those three extra digits are outside the hash.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use sha2::{Digest, Sha256};

const TAG_V1: &[u8] = b"fleet-ledger/event/v1";

/// One link of the chain: SHA-256 over the previous link and an event's canonical bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainHash([u8; 32]);

impl ChainHash {
    /// What position 1 links to.
    pub const GENESIS: ChainHash = ChainHash([0; 32]);

    /// Parses 64 hex digits (either case).
    pub fn parse(text: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Self(bytes))
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({self})")
    }
}

/// The hashed fields of one event, borrowed from wherever the event is (a planned row, a stored
/// row, a line of an export).
#[derive(Debug, Clone, Copy)]
pub struct EventFields<'a> {
    pub position: i64,
    /// The UUID's text as stored: hyphenated lowercase.
    pub event_id: &'a str,
    pub stream_type: &'a str,
    pub stream_id: &'a str,
    pub version: i64,
    pub event_type: &'a str,
    pub schema_version: i32,
    /// The payload's JSON text as stored.
    pub payload: &'a str,
    /// The metadata's JSON text as stored.
    pub metadata: &'a str,
    pub recorded_at: DateTime<Utc>,
}

impl EventFields<'_> {
    /// Feeds the canonical bytes (see the module's documentation) to `sink`, piece by piece.
    fn write_canonical<S: FnMut(&[u8])>(&self, sink: &mut S) {
        fn text<S: FnMut(&[u8])>(sink: &mut S, bytes: &[u8]) {
            let length = u32::try_from(bytes.len()).expect("a stored field is under 4 GiB");
            sink(&length.to_be_bytes());
            sink(bytes);
        }
        text(sink, TAG_V1);
        sink(&self.position.to_be_bytes());
        text(sink, self.event_id.as_bytes());
        text(sink, self.stream_type.as_bytes());
        text(sink, self.stream_id.as_bytes());
        sink(&self.version.to_be_bytes());
        text(sink, self.event_type.as_bytes());
        sink(&i64::from(self.schema_version).to_be_bytes());
        text(sink, self.payload.as_bytes());
        text(sink, self.metadata.as_bytes());
        text(sink, canonical_time(self.recorded_at).as_bytes());
    }

    /// The canonical bytes as one buffer (for tests and for anyone reimplementing the check).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.write_canonical(&mut |piece| bytes.extend_from_slice(piece));
        bytes
    }

    /// This event's link after `previous`.
    pub fn link(&self, previous: &ChainHash) -> ChainHash {
        let mut hasher = Sha256::new();
        hasher.update(previous.0);
        self.write_canonical(&mut |piece| hasher.update(piece));
        ChainHash(hasher.finalize().into())
    }
}

/// `recorded_at` as it is hashed and exported: RFC 3339, UTC, six fractional digits, `Z`.
pub fn canonical_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The time a writer records on the events of a batch: now, to the microsecond (see the module's
/// documentation for why not finer).
pub fn recorded_now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// An event as the log stores it, every field as the bytes that are hashed, with its stored hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEvent {
    pub position: i64,
    pub event_id: String,
    pub stream_type: String,
    pub stream_id: String,
    pub version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: String,
    pub metadata: String,
    /// RFC 3339 text (as SQLite stores it, or [`canonical_time`] of PostgreSQL's timestamp).
    pub recorded_at: String,
    /// `None` for a row the chain's backfill has not reached.
    pub hash: Option<String>,
}

impl SealedEvent {
    /// The hashed fields, or why they cannot be read.
    pub fn fields(&self) -> Result<EventFields<'_>, Problem> {
        let recorded_at = DateTime::parse_from_rfc3339(&self.recorded_at)
            .map_err(|e| Problem::Unreadable(format!("recorded_at {:?}: {e}", self.recorded_at)))?
            .with_timezone(&Utc);
        Ok(EventFields {
            position: self.position,
            event_id: &self.event_id,
            stream_type: &self.stream_type,
            stream_id: &self.stream_id,
            version: self.version,
            event_type: &self.event_type,
            schema_version: self.schema_version,
            payload: &self.payload,
            metadata: &self.metadata,
            recorded_at,
        })
    }
}

/// What is wrong at a position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("missing: the next event stored is at position {next}")]
    Missing { next: i64 },
    #[error("out of order: position {expected} was expected next")]
    OutOfOrder { expected: i64 },
    #[error("no hash is stored (the chain's backfill never reached it)")]
    Unhashed,
    #[error("the stored hash {stored} is not the hash of its contents ({computed})")]
    HashMismatch { stored: String, computed: String },
    #[error("it links to {stated}, but the event before it hashes to {actual}")]
    PreviousMismatch { stated: String, actual: String },
    #[error("stream {stream_type}/{stream_id} goes from version {previous} to {found}")]
    VersionGap {
        stream_type: String,
        stream_id: String,
        previous: i64,
        found: i64,
    },
    #[error("unreadable: {0}")]
    Unreadable(String),
}

/// The first broken position of a chain, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("position {position}: {problem}")]
pub struct Broken {
    pub position: i64,
    pub problem: Problem,
}

/// Checks events in position order: positions contiguous, every hash the link of its contents
/// after the one before, every stream's versions contiguous. Holds one entry per stream, never
/// the events.
#[derive(Debug)]
pub struct ChainCheck {
    next_position: i64,
    previous: ChainHash,
    versions: HashMap<(String, String), i64>,
    /// Checking from the middle of the log (an export from a later position): a stream's first
    /// event there may be past version 1.
    mid_log: bool,
    events: u64,
}

impl Default for ChainCheck {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainCheck {
    /// A check of the log from position 1.
    pub fn new() -> Self {
        Self::after(0, ChainHash::GENESIS)
    }

    /// A check that starts after `position`, whose hash is `previous` (taken on trust: an
    /// export from a later position carries it, and only the log it came from can confirm it).
    pub fn after(position: i64, previous: ChainHash) -> Self {
        Self {
            next_position: position + 1,
            previous,
            versions: HashMap::new(),
            mid_log: position > 0,
            events: 0,
        }
    }

    /// Checks the next event; answers its hash.
    pub fn check(&mut self, event: &SealedEvent) -> Result<ChainHash, Broken> {
        let broken = |problem| Broken {
            position: event.position,
            problem,
        };
        if event.position > self.next_position {
            return Err(Broken {
                position: self.next_position,
                problem: Problem::Missing {
                    next: event.position,
                },
            });
        }
        if event.position < self.next_position {
            return Err(broken(Problem::OutOfOrder {
                expected: self.next_position,
            }));
        }
        let fields = event.fields().map_err(broken)?;
        let computed = fields.link(&self.previous);
        match &event.hash {
            None => return Err(broken(Problem::Unhashed)),
            Some(stored) if ChainHash::parse(stored) != Some(computed) => {
                return Err(broken(Problem::HashMismatch {
                    stored: stored.clone(),
                    computed: computed.to_string(),
                }))
            }
            Some(_) => {}
        }
        let key = (event.stream_type.clone(), event.stream_id.clone());
        let previous_version = match self.versions.get(&key) {
            Some(version) => Some(*version),
            None if self.mid_log => None,
            None => Some(0),
        };
        if previous_version.is_some_and(|previous| event.version != previous + 1) {
            return Err(broken(Problem::VersionGap {
                stream_type: event.stream_type.clone(),
                stream_id: event.stream_id.clone(),
                previous: previous_version.unwrap_or_default(),
                found: event.version,
            }));
        }
        self.versions.insert(key, event.version);
        self.previous = computed;
        self.next_position += 1;
        self.events += 1;
        Ok(computed)
    }

    /// Refuses an event (a line of an export) that says it links to another hash than the
    /// chain's last one.
    pub fn expect_previous(&self, position: i64, stated: &str) -> Result<(), Broken> {
        if ChainHash::parse(stated) == Some(self.previous) {
            return Ok(());
        }
        Err(Broken {
            position,
            problem: Problem::PreviousMismatch {
                stated: stated.to_string(),
                actual: self.previous.to_string(),
            },
        })
    }

    /// The last position checked (or the one the check started after) and its hash.
    pub fn tip(&self) -> (i64, ChainHash) {
        (self.next_position - 1, self.previous)
    }

    pub fn events(&self) -> u64 {
        self.events
    }

    pub fn streams(&self) -> usize {
        self.versions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(position: i64, stream: &str, version: i64) -> SealedEvent {
        SealedEvent {
            position,
            event_id: format!("0190a0b0-0000-7000-8000-{position:012}"),
            stream_type: "bomba".into(),
            stream_id: stream.into(),
            version,
            event_type: "StationRegistered".into(),
            schema_version: 1,
            payload: r#"{"valor":12.10}"#.into(),
            metadata: r#"{"actor":"ana@flota.co"}"#.into(),
            recorded_at: "2026-03-01T12:00:00.123456Z".into(),
            hash: None,
        }
    }

    /// Seals events in order, as the writer does.
    fn sealed(events: Vec<SealedEvent>) -> Vec<SealedEvent> {
        let mut previous = ChainHash::GENESIS;
        events
            .into_iter()
            .map(|mut event| {
                previous = event.fields().unwrap().link(&previous);
                event.hash = Some(previous.to_string());
                event
            })
            .collect()
    }

    #[test]
    fn canonical_bytes_are_length_prefixed_and_tagged() {
        let event = event(1, "7", 1);
        let bytes = event.fields().unwrap().canonical_bytes();
        assert_eq!(&bytes[..4], &21u32.to_be_bytes());
        assert_eq!(&bytes[4..25], b"fleet-ledger/event/v1");
        assert_eq!(&bytes[25..33], &1i64.to_be_bytes());
        let time = b"2026-03-01T12:00:00.123456Z";
        assert!(bytes.ends_with(time));
        assert_eq!(
            &bytes[bytes.len() - time.len() - 4..bytes.len() - time.len()],
            &(time.len() as u32).to_be_bytes()
        );
    }

    #[test]
    fn a_time_hashes_alike_however_its_text_spells_it() {
        let mut sqlite = event(1, "7", 1);
        sqlite.recorded_at = "2026-03-01T12:00:00.123456+00:00".into();
        let canonical = event(1, "7", 1);
        assert_eq!(
            sqlite.fields().unwrap().link(&ChainHash::GENESIS),
            canonical.fields().unwrap().link(&ChainHash::GENESIS)
        );
    }

    #[test]
    fn moving_a_byte_from_one_field_to_the_next_changes_the_hash() {
        let mut a = event(1, "7", 1);
        let mut b = event(1, "7", 1);
        a.stream_type = "bomb".into();
        a.stream_id = "a7".into();
        b.stream_type = "bomba".into();
        b.stream_id = "7".into();
        assert_ne!(
            a.fields().unwrap().link(&ChainHash::GENESIS),
            b.fields().unwrap().link(&ChainHash::GENESIS)
        );
    }

    #[test]
    fn an_intact_chain_passes_and_its_tip_is_the_last_hash() {
        let events = sealed(vec![event(1, "7", 1), event(2, "8", 1), event(3, "7", 2)]);
        let mut check = ChainCheck::new();
        for event in &events {
            check.check(event).unwrap();
        }
        assert_eq!(check.events(), 3);
        assert_eq!(check.streams(), 2);
        let (position, hash) = check.tip();
        assert_eq!(position, 3);
        assert_eq!(Some(hash.to_string()), events[2].hash);
    }

    #[test]
    fn one_edited_byte_is_named_by_its_position() {
        let mut events = sealed(vec![event(1, "7", 1), event(2, "8", 1), event(3, "7", 2)]);
        events[1].payload = r#"{"valor":12.11}"#.into();
        let mut check = ChainCheck::new();
        check.check(&events[0]).unwrap();
        let broken = check.check(&events[1]).unwrap_err();
        assert_eq!(broken.position, 2);
        assert!(matches!(broken.problem, Problem::HashMismatch { .. }));
    }

    #[test]
    fn gaps_in_positions_and_versions_are_refused() {
        let events = sealed(vec![event(1, "7", 1), event(2, "7", 3)]);
        let mut check = ChainCheck::new();
        check.check(&events[0]).unwrap();
        assert_eq!(
            check.check(&events[1]).unwrap_err(),
            Broken {
                position: 2,
                problem: Problem::VersionGap {
                    stream_type: "bomba".into(),
                    stream_id: "7".into(),
                    previous: 1,
                    found: 3
                }
            }
        );
        let events = sealed(vec![event(1, "7", 1), event(3, "7", 2)]);
        let mut check = ChainCheck::new();
        check.check(&events[0]).unwrap();
        assert_eq!(
            check.check(&events[1]).unwrap_err(),
            Broken {
                position: 2,
                problem: Problem::Missing { next: 3 }
            }
        );
        let mut check = ChainCheck::new();
        check.check(&events[0]).unwrap();
        assert_eq!(
            check.check(&events[0]).unwrap_err(),
            Broken {
                position: 1,
                problem: Problem::OutOfOrder { expected: 2 }
            }
        );
    }

    #[test]
    fn a_check_from_the_middle_accepts_streams_already_under_way() {
        let events = sealed(vec![event(1, "7", 1), event(2, "7", 2), event(3, "7", 3)]);
        let anchor = ChainHash::parse(events[0].hash.as_deref().unwrap()).unwrap();
        let mut check = ChainCheck::after(1, anchor);
        check
            .expect_previous(2, events[0].hash.as_deref().unwrap())
            .unwrap();
        check.check(&events[1]).unwrap();
        check.check(&events[2]).unwrap();
        assert!(check
            .expect_previous(4, &ChainHash::GENESIS.to_string())
            .is_err());
    }

    #[test]
    fn hashes_print_and_parse_as_hex() {
        let hash = event(1, "7", 1).fields().unwrap().link(&ChainHash::GENESIS);
        let text = hash.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(ChainHash::parse(&text), Some(hash));
        assert_eq!(ChainHash::parse("zz"), None);
    }

    #[test]
    fn recorded_times_keep_microseconds_only() {
        let at = recorded_now();
        assert_eq!(at.timestamp_subsec_nanos() % 1000, 0);
    }
}
