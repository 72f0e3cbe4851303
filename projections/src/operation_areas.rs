//! The `areas_operacion` table: one row per registered operation area.

use aggregates::{OperationAreaEvent, OperationAreas};

use crate::{decode, Cell, Change, FoldError, Projection, Recorded};

pub struct OperationAreasProjection;

pub const TABLE: &str = "rm_areas_operacion";

impl Projection for OperationAreasProjection {
    fn name(&self) -> &'static str {
        "areas_operacion"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[TABLE]
    }

    fn apply(&self, event: &Recorded) -> Result<Vec<Change>, FoldError> {
        if event.stream_type != <OperationAreas as cqrs_es::Aggregate>::TYPE {
            return Ok(Vec::new());
        }
        let changes = match decode::<OperationAreaEvent>(event)? {
            OperationAreaEvent::OperationAreaRegistered { id, nombre } => vec![Change::Upsert {
                table: TABLE,
                key: vec![("id", Cell::Int(Some(id)))],
                values: vec![
                    ("nombre", Cell::Text(Some(nombre))),
                    ("creado_por", Cell::Text(event.actor.clone())),
                    (
                        "creado_en",
                        Cell::Text(Some(event.recorded_at.to_rfc3339())),
                    ),
                ],
            }],
        };
        Ok(changes)
    }
}
