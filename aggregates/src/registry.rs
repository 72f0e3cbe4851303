//! Reference data the fleet points at: drivers (`conductores`), fuel stations (`bombas`) and the
//! vehicle catalogues (class, state, fuel type, department). Each kind is one stream, so its
//! integer ids are assigned densely and without races.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::period::Periodo;
use crate::NAME_LEN_MAX;

/// The single stream of the drivers and of the stations.
pub const REGISTRY_STREAM_ID: &str = "all";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("El campo {field} es obligatorio")]
    EmptyName { index: usize, field: &'static str },
    #[error("El campo {field} no puede superar {NAME_LEN_MAX} caracteres")]
    NameTooLong { index: usize, field: &'static str },
    #[error("No hay registros para registrar")]
    NothingToRegister,
    #[error("No se encontró el registro con ID {id}")]
    NotFound { id: i64 },
    #[error("Ya existe {nombre} en el catálogo")]
    Duplicate { index: usize, nombre: String },
}

impl RegistryError {
    /// Position of the offending entry in an all-or-nothing registration.
    pub fn index(&self) -> Option<usize> {
        match self {
            Self::EmptyName { index, .. }
            | Self::NameTooLong { index, .. }
            | Self::Duplicate { index, .. } => Some(*index),
            _ => None,
        }
    }
}

/// A trimmed, non-empty, bounded name.
pub fn checked_name(raw: &str, index: usize, field: &'static str) -> Result<String, RegistryError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(RegistryError::EmptyName { index, field });
    }
    if name.chars().count() > NAME_LEN_MAX {
        return Err(RegistryError::NameTooLong { index, field });
    }
    Ok(name.to_string())
}

// ---------------------------------------------------------------------------------------------
// Drivers

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Drivers {
    last_id: i64,
}

#[derive(Debug, Clone)]
pub struct NewDriver {
    pub conductor: String,
    pub area_principal: Option<i64>,
}

#[derive(Debug, Clone)]
pub enum DriverCommand {
    Register { drivers: Vec<NewDriver> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DriverEvent {
    DriverRegistered {
        id: i64,
        conductor: String,
        area_principal: Option<i64>,
    },
}

impl DomainEvent for DriverEvent {
    fn event_type(&self) -> String {
        "DriverRegistered".to_string()
    }

    fn event_version(&self) -> String {
        crate::upcast::REGISTRY
            .current_version(&self.event_type())
            .to_string()
    }
}

impl Aggregate for Drivers {
    const TYPE: &'static str = "drivers";
    type Command = DriverCommand;
    type Event = DriverEvent;
    type Error = RegistryError;
    type Services = ();

    async fn handle(
        &mut self,
        command: DriverCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), RegistryError> {
        let DriverCommand::Register { drivers } = command;
        if drivers.is_empty() {
            return Err(RegistryError::NothingToRegister);
        }
        let mut events = Vec::with_capacity(drivers.len());
        for (index, driver) in drivers.into_iter().enumerate() {
            events.push(DriverEvent::DriverRegistered {
                id: self.last_id + 1 + index as i64,
                conductor: checked_name(&driver.conductor, index, "conductor")?,
                area_principal: driver.area_principal,
            });
        }
        for event in events {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: DriverEvent) {
        let DriverEvent::DriverRegistered { id, .. } = event;
        self.last_id = self.last_id.max(id);
    }
}

// ---------------------------------------------------------------------------------------------
// Fuel stations

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stations {
    last_id: i64,
    /// Months closed for every station (see [`crate::period`]). Kept in this stream so a close
    /// names exactly the stations registered before it, and a station registered after it
    /// inherits it: registrations and closes are ordered in one stream.
    #[serde(default)]
    closed: std::collections::BTreeSet<Periodo>,
}

impl Stations {
    /// The stations registered so far: ids are dense, from 1.
    pub fn ids(&self) -> std::ops::RangeInclusive<i64> {
        1..=self.last_id
    }

    pub fn is_closed(&self, periodo: Periodo) -> bool {
        self.closed.contains(&periodo)
    }
}

#[derive(Debug, Clone)]
pub struct NewStation {
    pub bomba: String,
    pub area_operacion_id: Option<i64>,
    pub permitir_saldo_negativo: bool,
}

/// What `PATCH /api/bombas/{id}` may change; absent means unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StationChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bomba: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area_operacion_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permitir_saldo_negativo: Option<bool>,
}

#[derive(Debug, Clone)]
pub enum StationCommand {
    Register {
        stations: Vec<NewStation>,
    },
    Update {
        id: i64,
        changes: StationChanges,
    },
    /// Closes a month for every station; nothing when it is already closed (each station's own
    /// close is then what a repeated request completes).
    ClosePeriod {
        periodo: Periodo,
    },
    /// Reopens a month for every station; nothing when it is not closed.
    ReopenPeriod {
        periodo: Periodo,
        motivo: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StationEvent {
    StationRegistered {
        id: i64,
        bomba: String,
        area_operacion_id: Option<i64>,
        permitir_saldo_negativo: bool,
    },
    StationUpdated {
        id: i64,
        changes: StationChanges,
    },
    /// The month is closed for every station: the `bombas` registered now each record it in
    /// their own stream with their closing balance (`PeriodClosed`), and a station registered
    /// later starts with it closed.
    AccountingPeriodClosed {
        anio: i32,
        mes: u32,
        bombas: Vec<i64>,
    },
    /// The month is open again, for `motivo`: the `bombas` registered now each reopen it in
    /// their own stream (`PeriodReopened`).
    AccountingPeriodReopened {
        anio: i32,
        mes: u32,
        motivo: String,
        bombas: Vec<i64>,
    },
}

impl DomainEvent for StationEvent {
    fn event_type(&self) -> String {
        match self {
            Self::StationRegistered { .. } => "StationRegistered",
            Self::StationUpdated { .. } => "StationUpdated",
            Self::AccountingPeriodClosed { .. } => "AccountingPeriodClosed",
            Self::AccountingPeriodReopened { .. } => "AccountingPeriodReopened",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        crate::upcast::REGISTRY
            .current_version(&self.event_type())
            .to_string()
    }
}

impl Aggregate for Stations {
    const TYPE: &'static str = "stations";
    type Command = StationCommand;
    type Event = StationEvent;
    type Error = RegistryError;
    type Services = ();

    async fn handle(
        &mut self,
        command: StationCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), RegistryError> {
        let events = match command {
            StationCommand::Register { stations } => {
                if stations.is_empty() {
                    return Err(RegistryError::NothingToRegister);
                }
                let mut events = Vec::with_capacity(stations.len());
                for (index, station) in stations.into_iter().enumerate() {
                    events.push(StationEvent::StationRegistered {
                        id: self.last_id + 1 + index as i64,
                        bomba: checked_name(&station.bomba, index, "bomba")?,
                        area_operacion_id: station.area_operacion_id,
                        permitir_saldo_negativo: station.permitir_saldo_negativo,
                    });
                }
                events
            }
            StationCommand::Update { id, mut changes } => {
                if id < 1 || id > self.last_id {
                    return Err(RegistryError::NotFound { id });
                }
                if let Some(bomba) = &changes.bomba {
                    changes.bomba = Some(checked_name(bomba, 0, "bomba")?);
                }
                if changes == StationChanges::default() {
                    Vec::new()
                } else {
                    vec![StationEvent::StationUpdated { id, changes }]
                }
            }
            StationCommand::ClosePeriod { periodo } => {
                if self.is_closed(periodo) {
                    Vec::new()
                } else {
                    vec![StationEvent::AccountingPeriodClosed {
                        anio: periodo.anio,
                        mes: periodo.mes,
                        bombas: self.ids().collect(),
                    }]
                }
            }
            StationCommand::ReopenPeriod { periodo, motivo } => {
                if self.is_closed(periodo) {
                    vec![StationEvent::AccountingPeriodReopened {
                        anio: periodo.anio,
                        mes: periodo.mes,
                        motivo,
                        bombas: self.ids().collect(),
                    }]
                } else {
                    Vec::new()
                }
            }
        };
        for event in events {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: StationEvent) {
        match event {
            StationEvent::StationRegistered { id, .. } => self.last_id = self.last_id.max(id),
            StationEvent::StationUpdated { .. } => {}
            StationEvent::AccountingPeriodClosed { anio, mes, .. } => {
                self.closed.insert(Periodo { anio, mes });
            }
            StationEvent::AccountingPeriodReopened { anio, mes, .. } => {
                self.closed.remove(&Periodo { anio, mes });
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Vehicle catalogues

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogKind {
    VehicleClass,
    VehicleState,
    FuelType,
    Department,
    /// What a fuel record is for (`tipo_combustible` of seed 004): fuels and the other products
    /// operators buy at stations.
    FuelProduct,
}

impl CatalogKind {
    pub const ALL: [Self; 5] = [
        Self::VehicleClass,
        Self::VehicleState,
        Self::FuelType,
        Self::Department,
        Self::FuelProduct,
    ];

    /// The stream id, and the path segment of `/api/catalogos/{…}`.
    pub fn slug(self) -> &'static str {
        match self {
            Self::VehicleClass => "clases-vehiculo",
            Self::VehicleState => "estados-vehiculo",
            Self::FuelType => "tipos-combustible",
            Self::Department => "departamentos",
            Self::FuelProduct => "combustibles",
        }
    }

    pub fn from_slug(slug: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.slug() == slug)
    }

    /// What a new installation starts with.
    pub fn defaults(self) -> &'static [&'static str] {
        match self {
            Self::VehicleClass => &[
                "Pick-up",
                "Sedán",
                "Camión",
                "Bus",
                "Motocicleta",
                "Camioneta",
            ],
            Self::VehicleState => &["Activo", "En mantenimiento", "Fuera de servicio"],
            Self::FuelType => &["Diesel", "Gasolina", "Eléctrico", "Híbrido", "Gas natural"],
            Self::Department => &[
                "Logística",
                "Operaciones",
                "Administración",
                "Mantenimiento",
            ],
            Self::FuelProduct => &[
                "ACPM",
                "GASOLINA",
                "EXTRA",
                "UREA",
                "LUBRICANTE",
                "HIDRAULICO",
                "ACEITE MOTOR",
                "LAVADO",
                "ENGRASE",
                "CONSUMIBLES LIMPIEZA",
            ],
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Catalog {
    names: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum CatalogCommand {
    /// Adds the defaults to a catalogue that has never had an entry; does nothing otherwise.
    Seed {
        catalogo: String,
        defaults: Vec<String>,
    },
    Add {
        catalogo: String,
        nombre: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogEvent {
    CatalogEntryAdded {
        catalogo: String,
        id: i64,
        nombre: String,
    },
}

impl DomainEvent for CatalogEvent {
    fn event_type(&self) -> String {
        "CatalogEntryAdded".to_string()
    }

    fn event_version(&self) -> String {
        crate::upcast::REGISTRY
            .current_version(&self.event_type())
            .to_string()
    }
}

impl Aggregate for Catalog {
    const TYPE: &'static str = "catalog";
    type Command = CatalogCommand;
    type Event = CatalogEvent;
    type Error = RegistryError;
    type Services = ();

    async fn handle(
        &mut self,
        command: CatalogCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), RegistryError> {
        let (catalogo, names) = match command {
            CatalogCommand::Seed { catalogo, defaults } if self.names.is_empty() => {
                (catalogo, defaults)
            }
            CatalogCommand::Seed { .. } => return Ok(()),
            CatalogCommand::Add { catalogo, nombre } => {
                let nombre = checked_name(&nombre, 0, "nombre")?;
                if self.names.iter().any(|n| n.eq_ignore_ascii_case(&nombre)) {
                    return Err(RegistryError::Duplicate { index: 0, nombre });
                }
                (catalogo, vec![nombre])
            }
        };
        for nombre in names {
            let id = self.names.len() as i64 + 1;
            sink.write(
                CatalogEvent::CatalogEntryAdded {
                    catalogo: catalogo.clone(),
                    id,
                    nombre,
                },
                self,
            )
            .await;
        }
        Ok(())
    }

    fn apply(&mut self, event: CatalogEvent) {
        let CatalogEvent::CatalogEntryAdded { nombre, .. } = event;
        self.names.push(nombre);
    }
}
