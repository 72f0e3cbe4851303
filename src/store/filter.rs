//! Filtered reads of the log: the feed's `tipos=` and `stream=`, an audit subject's events and
//! everything one actor did. One filter type, one SQL builder for both stores (they differ only
//! in how JSON is read, [`Dialect`]), and an in-memory matcher that says the same thing.

use chrono::{DateTime, Utc};

use super::StoredEvent;

/// Which events a filtered read selects; an absent condition selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub stream_type: Option<String>,
    pub stream_id: Option<String>,
    /// One entity of a stream that holds many: the payload field naming it, and its id.
    pub entity: Option<(&'static str, i64)>,
    /// Any of these types; empty selects every type.
    pub event_types: Vec<String>,
    /// The metadata's `actor` (the JWT `sub` of whoever caused the event).
    pub actor: Option<String>,
    /// `recorded_at` at or after.
    pub recorded_from: Option<DateTime<Utc>>,
    /// `recorded_at` at or before.
    pub recorded_to: Option<DateTime<Utc>>,
}

impl EventFilter {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// What the SQL of [`select`] selects, said in Rust: for logs that cannot filter (test
    /// doubles) and for tests that check the stores against it.
    pub fn matches(&self, event: &StoredEvent) -> bool {
        self.stream_type
            .as_ref()
            .is_none_or(|t| *t == event.stream_type)
            && self
                .stream_id
                .as_ref()
                .is_none_or(|id| *id == event.stream_id)
            && self.entity.is_none_or(|(field, id)| {
                event.payload.get(field).and_then(serde_json::Value::as_i64) == Some(id)
            })
            && (self.event_types.is_empty() || self.event_types.contains(&event.event_type))
            && self
                .actor
                .as_ref()
                .is_none_or(|a| event.metadata.actor.as_ref() == Some(a))
            && self.recorded_from.is_none_or(|t| event.recorded_at >= t)
            && self.recorded_to.is_none_or(|t| event.recorded_at <= t)
    }
}

/// How a store reads JSON columns: the only difference between the two stores' filtered reads.
pub(crate) struct Dialect {
    /// The metadata's actor, written exactly as the `events_by_actor` index of migration 0003
    /// is, so that the planner can use the index.
    pub actor: &'static str,
    /// A payload field compared with a bound value: `{field}` is replaced by the field's name
    /// (always one of the domain's own, never the caller's text).
    pub payload_field_equals: &'static str,
    /// Whether the entity id is bound as text (PostgreSQL's `->>` answers text).
    pub entity_id_as_text: bool,
    /// What turns a statement into its plan, the column of each plan line, and a statement
    /// run first in the same transaction.
    pub explain: &'static str,
    pub explain_column: usize,
    pub explain_setup: Option<&'static str>,
}

/// A value bound to the filtered read's statement.
pub(crate) enum Bind {
    Text(String),
    Int(i64),
    Time(DateTime<Utc>),
}

/// `select` (the store's `SELECT … FROM events`) restricted to `filter` and to positions in
/// `(after_position, until_position]`, in position order, at most `limit` rows: the statement's
/// text (placeholders `$1`, `$2`, … in both stores) and its values.
///
/// On SQLite `recorded_at` is TEXT in the form sqlx writes a `DateTime<Utc>` (RFC 3339, `+00:00`,
/// 0, 3, 6 or 9 fractional digits), and a bound instant is written the same way, so comparing the
/// texts orders them as instants.
pub(crate) fn select(
    select: &str,
    dialect: &Dialect,
    filter: &EventFilter,
    after_position: i64,
    until_position: i64,
    limit: i64,
) -> (String, Vec<Bind>) {
    select_ordered(
        select,
        dialect,
        filter,
        after_position,
        until_position,
        limit,
        "",
    )
}

/// The last event [`select`] would select up to `until_position`: the same conditions, newest
/// first, one row.
pub(crate) fn select_last(
    select: &str,
    dialect: &Dialect,
    filter: &EventFilter,
    until_position: i64,
) -> (String, Vec<Bind>) {
    select_ordered(select, dialect, filter, 0, until_position, 1, " DESC")
}

fn select_ordered(
    select: &str,
    dialect: &Dialect,
    filter: &EventFilter,
    after_position: i64,
    until_position: i64,
    limit: i64,
    order: &str,
) -> (String, Vec<Bind>) {
    let mut binds = vec![Bind::Int(after_position), Bind::Int(until_position)];
    let mut sql = format!("{select} WHERE position > $1 AND position <= $2");
    let next = |sql: &mut String, binds: &mut Vec<Bind>, clause: &str, bind: Bind| {
        binds.push(bind);
        sql.push_str(" AND ");
        sql.push_str(&clause.replace("{}", &format!("${}", binds.len())));
    };
    if let Some(actor) = &filter.actor {
        let clause = format!("{} = {{}}", dialect.actor);
        next(&mut sql, &mut binds, &clause, Bind::Text(actor.clone()));
    }
    if let Some(stream_type) = &filter.stream_type {
        next(
            &mut sql,
            &mut binds,
            "stream_type = {}",
            Bind::Text(stream_type.clone()),
        );
    }
    if let Some(stream_id) = &filter.stream_id {
        next(
            &mut sql,
            &mut binds,
            "stream_id = {}",
            Bind::Text(stream_id.clone()),
        );
    }
    if let Some((field, id)) = filter.entity {
        debug_assert!(field.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        let clause = dialect.payload_field_equals.replace("{field}", field);
        let bind = if dialect.entity_id_as_text {
            Bind::Text(id.to_string())
        } else {
            Bind::Int(id)
        };
        next(&mut sql, &mut binds, &clause, bind);
    }
    if !filter.event_types.is_empty() {
        let first = binds.len() + 1;
        let placeholders: Vec<String> = (first..first + filter.event_types.len())
            .map(|n| format!("${n}"))
            .collect();
        sql.push_str(&format!(" AND event_type IN ({})", placeholders.join(", ")));
        binds.extend(filter.event_types.iter().cloned().map(Bind::Text));
    }
    if let Some(from) = filter.recorded_from {
        next(&mut sql, &mut binds, "recorded_at >= {}", Bind::Time(from));
    }
    if let Some(to) = filter.recorded_to {
        next(&mut sql, &mut binds, "recorded_at <= {}", Bind::Time(to));
    }
    binds.push(Bind::Int(limit));
    sql.push_str(&format!(" ORDER BY position{order} LIMIT ${}", binds.len()));
    (sql, binds)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::sqlite::DIALECT;

    #[test]
    fn every_condition_is_one_numbered_placeholder() {
        let filter = EventFilter {
            stream_type: Some("fleet".into()),
            stream_id: Some("main".into()),
            entity: Some(("vehicle_id", 1)),
            event_types: vec!["VehicleDeleted".into(), "VehicleUpdated".into()],
            actor: Some("ana".into()),
            recorded_from: Some(Utc::now()),
            recorded_to: Some(Utc::now()),
        };
        let (sql, binds) = select("SELECT * FROM events", &DIALECT, &filter, 0, 10, 5);
        assert_eq!(
            sql,
            "SELECT * FROM events WHERE position > $1 AND position <= $2 \
             AND json_extract(metadata, '$.actor') = $3 AND stream_type = $4 \
             AND stream_id = $5 AND json_extract(payload, '$.vehicle_id') = $6 \
             AND event_type IN ($7, $8) AND recorded_at >= $9 AND recorded_at <= $10 \
             ORDER BY position LIMIT $11"
        );
        assert_eq!(binds.len(), 11);
    }
}
