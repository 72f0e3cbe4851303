//! Operation areas (`areas_operacion` in the seeds): the reference list every station, driver and
//! refuel points at.
//!
//! All areas live in one stream so that the integer ids the seeds show are assigned densely and
//! without races: the stream's commands run one after another, and the aggregate knows the last id.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::registry::{checked_name, RegistryError};

/// The single stream holding every operation area.
pub const OPERATION_AREAS_STREAM_ID: &str = "all";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OperationAreas {
    last_id: i64,
}

#[derive(Debug, Clone)]
pub enum OperationAreaCommand {
    /// Registers every name or none of them.
    Register { nombres: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperationAreaEvent {
    OperationAreaRegistered { id: i64, nombre: String },
}

impl DomainEvent for OperationAreaEvent {
    fn event_type(&self) -> String {
        match self {
            Self::OperationAreaRegistered { .. } => "OperationAreaRegistered".to_string(),
        }
    }

    fn event_version(&self) -> String {
        crate::upcast::REGISTRY
            .current_version(&self.event_type())
            .to_string()
    }
}

impl Aggregate for OperationAreas {
    const TYPE: &'static str = "operation-areas";
    type Command = OperationAreaCommand;
    type Event = OperationAreaEvent;
    type Error = RegistryError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            OperationAreaCommand::Register { nombres } => {
                if nombres.is_empty() {
                    return Err(RegistryError::NothingToRegister);
                }
                let checked = nombres
                    .iter()
                    .enumerate()
                    .map(|(index, nombre)| checked_name(nombre, index, "nombre"))
                    .collect::<Result<Vec<_>, _>>()?;
                for nombre in checked {
                    let id = self.last_id + 1;
                    sink.write(
                        OperationAreaEvent::OperationAreaRegistered { id, nombre },
                        self,
                    )
                    .await;
                }
                Ok(())
            }
        }
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            OperationAreaEvent::OperationAreaRegistered { id, .. } => self.last_id = id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn register(
        areas: &mut OperationAreas,
        nombres: &[&str],
    ) -> Result<Vec<OperationAreaEvent>, RegistryError> {
        let sink = EventSink::default();
        let command = OperationAreaCommand::Register {
            nombres: nombres.iter().map(|n| n.to_string()).collect(),
        };
        areas.handle(command, &(), &sink).await?;
        Ok(sink.collect().await)
    }

    #[tokio::test]
    async fn ids_continue_from_the_last_registered_area() {
        let mut areas = OperationAreas::default();
        register(&mut areas, &["Logística"]).await.unwrap();
        let events = register(&mut areas, &[" Norte ", "Sur"]).await.unwrap();
        assert_eq!(
            events,
            vec![
                OperationAreaEvent::OperationAreaRegistered {
                    id: 2,
                    nombre: "Norte".into()
                },
                OperationAreaEvent::OperationAreaRegistered {
                    id: 3,
                    nombre: "Sur".into()
                },
            ]
        );
    }

    #[tokio::test]
    async fn one_blank_name_refuses_the_whole_batch() {
        let mut areas = OperationAreas::default();
        let refused = register(&mut areas, &["Norte", "   "]).await;
        assert_eq!(
            refused,
            Err(RegistryError::EmptyName {
                index: 1,
                field: "nombre"
            })
        );
    }
}
