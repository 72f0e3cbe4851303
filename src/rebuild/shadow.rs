//! Shadow tables: a copy of one live read-model table (same columns, keys and indexes) that a
//! rebuild folds into, and the statements that swap it in.
//!
//! PostgreSQL copies a table's definition itself (`LIKE … INCLUDING ALL`). SQLite has no such
//! statement, so its shadow is created from the live table's own DDL in `sqlite_master`, with
//! the names changed. Either way the shadow is what the migrations made of the live table today,
//! not a second copy of the schema to keep in step.
//!
//! After the swap every index has its original name again, so that a later migration that names
//! one (`DROP INDEX rm_tanqueos_fecha`) finds it: PostgreSQL renames the shadow's indexes;
//! SQLite cannot rename an index, so it builds the secondary ones again under their names.

use sqlx::{Any, Row, Transaction};

use crate::read_store::{TableSet, SHADOW_SUFFIX};

/// Creates the (empty) shadow of live table `table`, dropping one a rebuild that died left.
pub(super) async fn create(
    tx: &mut Transaction<'_, Any>,
    table: &str,
) -> Result<(), super::RebuildError> {
    let shadow = TableSet::Shadow.name(table);
    execute(tx, &format!("DROP TABLE IF EXISTS {shadow}")).await?;
    if is_postgres(tx) {
        execute(
            tx,
            &format!("CREATE TABLE {shadow} (LIKE {table} INCLUDING ALL)"),
        )
        .await?;
        return Ok(());
    }
    // The table first: its indexes refer to it.
    let definitions = sqlx::query(
        "SELECT type, name, sql FROM sqlite_master \
         WHERE tbl_name = $1 AND sql IS NOT NULL ORDER BY type = 'index', name",
    )
    .bind(table)
    .fetch_all(&mut **tx)
    .await?;
    if definitions.is_empty() {
        return Err(super::RebuildError::Shadow(format!(
            "table {table} does not exist"
        )));
    }
    for definition in definitions {
        let sql: String = definition.try_get("sql")?;
        let shadow_sql = shadow_ddl(&sql, table).map_err(super::RebuildError::Shadow)?;
        execute(tx, &shadow_sql).await?;
    }
    Ok(())
}

/// Drops live table `table` and puts its shadow in its place, under the live names.
pub(super) async fn swap(
    tx: &mut Transaction<'_, Any>,
    table: &str,
) -> Result<(), super::RebuildError> {
    let shadow = TableSet::Shadow.name(table);
    if is_postgres(tx) {
        let live_indexes = postgres_indexes(tx, table).await?;
        let shadow_indexes = postgres_indexes(tx, &shadow).await?;
        execute(tx, &format!("DROP TABLE {table}")).await?;
        execute(tx, &format!("ALTER TABLE {shadow} RENAME TO {table}")).await?;
        for (from, to) in index_renames(&shadow_indexes, &live_indexes)
            .map_err(|e| super::RebuildError::Shadow(format!("{table}: {e}")))?
        {
            execute(tx, &format!("ALTER INDEX \"{from}\" RENAME TO \"{to}\"")).await?;
        }
        return Ok(());
    }
    // Secondary indexes only: those of keys and UNIQUE columns (`sqlite_autoindex_…`, no SQL)
    // are renamed with their table.
    let live_indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, sql FROM sqlite_master \
         WHERE type = 'index' AND tbl_name = $1 AND sql IS NOT NULL ORDER BY name",
    )
    .bind(table)
    .fetch_all(&mut **tx)
    .await?;
    execute(tx, &format!("DROP TABLE {table}")).await?;
    execute(tx, &format!("ALTER TABLE {shadow} RENAME TO {table}")).await?;
    for (name, sql) in live_indexes {
        execute(tx, &format!("DROP INDEX {name}{SHADOW_SUFFIX}")).await?;
        execute(tx, &sql).await?;
    }
    Ok(())
}

/// Drops the shadow of `table`, if there is one (a rebuild that failed).
pub(super) async fn discard(tx: &mut Transaction<'_, Any>, table: &str) -> Result<(), sqlx::Error> {
    execute(
        tx,
        &format!("DROP TABLE IF EXISTS {}", TableSet::Shadow.name(table)),
    )
    .await
}

fn is_postgres(tx: &Transaction<'_, Any>) -> bool {
    tx.backend_name() == "PostgreSQL"
}

async fn execute(tx: &mut Transaction<'_, Any>, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::query(sql).execute(&mut **tx).await.map(|_| ())
}

/// `(name, definition)` of every index of `table` in the current schema.
async fn postgres_indexes(
    tx: &mut Transaction<'_, Any>,
    table: &str,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT CAST(indexname AS TEXT), indexdef FROM pg_indexes \
         WHERE schemaname = current_schema() AND tablename = $1 ORDER BY indexname",
    )
    .bind(table)
    .fetch_all(&mut **tx)
    .await
}

/// Which shadow index takes which live index's name: the one with the same definition once the
/// names are left out (`UNIQUE`, method, columns, predicate). Indexes with equal definitions
/// are interchangeable, so they pair in name order.
fn index_renames(
    shadow: &[(String, String)],
    live: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    let shape = |definition: &str| -> String {
        let unique = definition.starts_with("CREATE UNIQUE");
        let rest = definition
            .split_once(" USING ")
            .map_or(definition, |(_, rest)| rest);
        format!("{unique} {rest}")
    };
    let mut unpaired: Vec<(String, &str)> = live
        .iter()
        .map(|(name, definition)| (shape(definition), name.as_str()))
        .collect();
    let mut renames = Vec::with_capacity(shadow.len());
    for (name, definition) in shadow {
        let wanted = shape(definition);
        let Some(at) = unpaired.iter().position(|(shape, _)| *shape == wanted) else {
            return Err(format!(
                "the shadow's index {name} ({definition}) has no live twin"
            ));
        };
        let (_, live_name) = unpaired.remove(at);
        if live_name != name {
            renames.push((name.clone(), live_name.to_string()));
        }
    }
    if let Some((_, name)) = unpaired.first() {
        return Err(format!("the live index {name} has no twin in the shadow"));
    }
    Ok(renames)
}

/// The DDL of `table`'s shadow from SQLite's DDL of `table` or of one of its indexes:
/// `CREATE [UNIQUE] {TABLE|INDEX} [IF NOT EXISTS] name [ON table] …` with the table renamed to
/// its shadow and an index given the shadow suffix (index names are unique per database).
fn shadow_ddl(sql: &str, table: &str) -> Result<String, String> {
    let refuse = || format!("unexpected definition of {table} or its index: {sql}");
    let mut cursor = Cursor { sql, at: 0 };
    if !cursor.keyword("CREATE") {
        return Err(refuse());
    }
    let unique = cursor.keyword("UNIQUE");
    let is_index = if cursor.keyword("INDEX") {
        true
    } else if !unique && cursor.keyword("TABLE") {
        false
    } else {
        return Err(refuse());
    };
    if cursor.keyword("IF") && !(cursor.keyword("NOT") && cursor.keyword("EXISTS")) {
        return Err(refuse());
    }
    let (name_start, name_end, name) = cursor.identifier().ok_or_else(refuse)?;
    let mut out = String::with_capacity(sql.len() + 2 * SHADOW_SUFFIX.len());
    out.push_str(&sql[..name_start]);
    if !is_index {
        if !name.eq_ignore_ascii_case(table) {
            return Err(refuse());
        }
        out.push_str(&TableSet::Shadow.name(table));
        out.push_str(&sql[name_end..]);
        return Ok(out);
    }
    out.push_str(&name);
    out.push_str(SHADOW_SUFFIX);
    if !cursor.keyword("ON") {
        return Err(refuse());
    }
    let (on_start, on_end, on) = cursor.identifier().ok_or_else(refuse)?;
    if !on.eq_ignore_ascii_case(table) {
        return Err(refuse());
    }
    out.push_str(&sql[name_end..on_start]);
    out.push_str(&TableSet::Shadow.name(table));
    out.push_str(&sql[on_end..]);
    Ok(out)
}

/// Reads the head of a `CREATE` statement word by word.
struct Cursor<'a> {
    sql: &'a str,
    at: usize,
}

impl Cursor<'_> {
    fn skip_space(&mut self) {
        let rest = &self.sql[self.at..];
        self.at += rest.len() - rest.trim_start().len();
    }

    /// Consumes `word` (any case) if it comes next as a whole word.
    fn keyword(&mut self, word: &str) -> bool {
        self.skip_space();
        let rest = &self.sql[self.at..];
        let matches = rest.len() >= word.len()
            && rest[..word.len()].eq_ignore_ascii_case(word)
            && !rest[word.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_');
        if matches {
            self.at += word.len();
        }
        matches
    }

    /// The next name, plain or quoted (`"…"`, `` `…` ``, `[…]`): its span and its text.
    fn identifier(&mut self) -> Option<(usize, usize, String)> {
        self.skip_space();
        let start = self.at;
        let rest = &self.sql[start..];
        let close = match rest.chars().next()? {
            '"' => Some('"'),
            '`' => Some('`'),
            '[' => Some(']'),
            _ => None,
        };
        let (length, name) = match close {
            Some(close) => {
                let end = rest[1..].find(close)?;
                (end + 2, rest[1..=end].to_string())
            }
            None => {
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                if end == 0 {
                    return None;
                }
                (end, rest[..end].to_string())
            }
        };
        self.at = start + length;
        Some((start, self.at, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_definition_names_the_shadow_and_keeps_everything_else() {
        let sql = "CREATE TABLE rm_placas (\n    id BIGINT PRIMARY KEY,\n    placa TEXT NOT NULL UNIQUE\n)";
        assert_eq!(
            shadow_ddl(sql, "rm_placas").unwrap(),
            "CREATE TABLE rm_placas__shadow (\n    id BIGINT PRIMARY KEY,\n    placa TEXT NOT NULL UNIQUE\n)"
        );
        assert_eq!(
            shadow_ddl("create table \"rm_x\"(id BIGINT)", "rm_x").unwrap(),
            "create table rm_x__shadow(id BIGINT)"
        );
    }

    #[test]
    fn an_index_definition_gets_its_own_shadow_name_on_the_shadow_table() {
        assert_eq!(
            shadow_ddl(
                "CREATE INDEX rm_saldos_movimientos_reportados ON rm_saldos_movimientos (bomba_id, fecha, id)\n    WHERE saldo_disponible IS NOT NULL",
                "rm_saldos_movimientos"
            )
            .unwrap(),
            "CREATE INDEX rm_saldos_movimientos_reportados__shadow ON rm_saldos_movimientos__shadow (bomba_id, fecha, id)\n    WHERE saldo_disponible IS NOT NULL"
        );
        assert_eq!(
            shadow_ddl(
                "CREATE UNIQUE INDEX IF NOT EXISTS by_name ON [rm_x](nombre)",
                "rm_x"
            )
            .unwrap(),
            "CREATE UNIQUE INDEX IF NOT EXISTS by_name__shadow ON rm_x__shadow(nombre)"
        );
    }

    #[test]
    fn a_definition_of_another_table_or_of_something_else_is_refused() {
        assert!(shadow_ddl("CREATE TABLE rm_otra (id BIGINT)", "rm_x").is_err());
        assert!(shadow_ddl("CREATE INDEX i ON rm_otra (id)", "rm_x").is_err());
        assert!(shadow_ddl("CREATE VIEW rm_x AS SELECT 1", "rm_x").is_err());
        assert!(shadow_ddl("CREATE UNIQUE TABLE rm_x (id BIGINT)", "rm_x").is_err());
    }

    #[test]
    fn shadow_indexes_take_the_names_of_their_live_twins() {
        let live = [
            (
                "rm_saldos_movimientos_orden".to_string(),
                "CREATE INDEX rm_saldos_movimientos_orden ON t.rm_saldos_movimientos USING btree (bomba_id, fecha, id)".to_string(),
            ),
            (
                "rm_saldos_movimientos_pkey".to_string(),
                "CREATE UNIQUE INDEX rm_saldos_movimientos_pkey ON t.rm_saldos_movimientos USING btree (bomba_id, id)".to_string(),
            ),
            (
                "rm_saldos_movimientos_reportados".to_string(),
                "CREATE INDEX rm_saldos_movimientos_reportados ON t.rm_saldos_movimientos USING btree (bomba_id, fecha, id) WHERE (saldo_disponible IS NOT NULL)".to_string(),
            ),
        ];
        let shadow = [
            (
                "rm_saldos_movimientos__shadow_bomba_id_fecha_id_idx".to_string(),
                "CREATE INDEX rm_saldos_movimientos__shadow_bomba_id_fecha_id_idx ON t.rm_saldos_movimientos__shadow USING btree (bomba_id, fecha, id)".to_string(),
            ),
            (
                "rm_saldos_movimientos__shadow_bomba_id_fecha_id_idx1".to_string(),
                "CREATE INDEX rm_saldos_movimientos__shadow_bomba_id_fecha_id_idx1 ON t.rm_saldos_movimientos__shadow USING btree (bomba_id, fecha, id) WHERE (saldo_disponible IS NOT NULL)".to_string(),
            ),
            (
                "rm_saldos_movimientos__shadow_pkey".to_string(),
                "CREATE UNIQUE INDEX rm_saldos_movimientos__shadow_pkey ON t.rm_saldos_movimientos__shadow USING btree (bomba_id, id)".to_string(),
            ),
        ];
        let renames = index_renames(&shadow, &live).unwrap();
        assert_eq!(
            renames,
            vec![
                (
                    "rm_saldos_movimientos__shadow_bomba_id_fecha_id_idx".to_string(),
                    "rm_saldos_movimientos_orden".to_string()
                ),
                (
                    "rm_saldos_movimientos__shadow_bomba_id_fecha_id_idx1".to_string(),
                    "rm_saldos_movimientos_reportados".to_string()
                ),
                (
                    "rm_saldos_movimientos__shadow_pkey".to_string(),
                    "rm_saldos_movimientos_pkey".to_string()
                ),
            ]
        );
        assert!(index_renames(&shadow[..2], &live).is_err());
    }
}
