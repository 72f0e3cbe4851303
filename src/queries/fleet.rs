//! The fleet's read models: plates, missions and vehicles.

use aggregates::fleet::{MissionStatus, PlateStatus};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{by_id, optional_decimal, where_clause, QueryError};
use crate::read_store::{decimal_json, ReadStore};

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": 1, "placa": "ABC123", "estado": "ACTIVADA"}))]
pub struct Plate {
    pub id: i64,
    pub placa: String,
    pub estado: String,
}

fn plate_from(row: &AnyRow) -> Result<Plate, QueryError> {
    Ok(Plate {
        id: row.try_get(0)?,
        placa: row.try_get(1)?,
        estado: row.try_get(2)?,
    })
}

/// Every plate in id order, or only those in `estado`.
pub async fn plates(
    read_models: &ReadStore,
    estado: Option<PlateStatus>,
) -> Result<Vec<Plate>, QueryError> {
    let pool = read_models.pool();
    let rows = match estado {
        Some(estado) => {
            sqlx::query("SELECT id, placa, estado FROM rm_placas WHERE estado = $1 ORDER BY id")
                .bind(estado.as_str())
                .fetch_all(pool)
                .await?
        }
        None => {
            sqlx::query("SELECT id, placa, estado FROM rm_placas ORDER BY id")
                .fetch_all(pool)
                .await?
        }
    };
    rows.iter().map(plate_from).collect()
}

pub async fn plate(read_models: &ReadStore, id: i64) -> Result<Option<Plate>, QueryError> {
    let sql = "SELECT id, placa, estado FROM rm_placas WHERE id = $1";
    by_id(read_models, sql, id, plate_from).await
}

/// A mission, its fields in the order the API shows them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": 1, "vehiculo_id": 1, "conductor_id": 1, "descripcion": "Ruta Bogotá-Tunja", "fecha_programada": "2026-03-01", "estado": "COMPLETADA", "kilometraje_inicial": 120500, "combustible_inicial_galones": 30.5, "kilometraje_final": 120800, "combustible_final_galones": 12.25, "kilometraje_recorrido": 300, "combustible_consumido_galones": 18.25, "motivo_cancelacion": null}))]
pub struct Mission {
    pub id: i64,
    pub vehiculo_id: i64,
    pub conductor_id: i64,
    pub descripcion: String,
    pub fecha_programada: String,
    /// `PROGRAMADA`, `EN_EJECUCION`, `COMPLETADA` or `CANCELADA`.
    pub estado: String,
    pub kilometraje_inicial: Option<i64>,
    #[schema(value_type = Option<f64>)]
    pub combustible_inicial_galones: Option<Decimal>,
    pub kilometraje_final: Option<i64>,
    #[schema(value_type = Option<f64>)]
    pub combustible_final_galones: Option<Decimal>,
    pub kilometraje_recorrido: Option<i64>,
    #[schema(value_type = Option<f64>)]
    pub combustible_consumido_galones: Option<Decimal>,
    pub motivo_cancelacion: Option<String>,
}

const SELECT_MISSIONS: &str = "SELECT id, vehiculo_id, conductor_id, descripcion, fecha_programada, estado, \
     kilometraje_inicial, combustible_inicial_galones, kilometraje_final, combustible_final_galones, \
     kilometraje_recorrido, combustible_consumido_galones, motivo_cancelacion FROM rm_misiones";

fn mission_from(row: &AnyRow) -> Result<Mission, QueryError> {
    Ok(Mission {
        id: row.try_get(0)?,
        vehiculo_id: row.try_get(1)?,
        conductor_id: row.try_get(2)?,
        descripcion: row.try_get(3)?,
        fecha_programada: row.try_get(4)?,
        estado: row.try_get(5)?,
        kilometraje_inicial: row.try_get(6)?,
        combustible_inicial_galones: optional_decimal(row, 7)?,
        kilometraje_final: row.try_get(8)?,
        combustible_final_galones: optional_decimal(row, 9)?,
        kilometraje_recorrido: row.try_get(10)?,
        combustible_consumido_galones: optional_decimal(row, 11)?,
        motivo_cancelacion: row.try_get(12)?,
    })
}

pub async fn mission(read_models: &ReadStore, id: i64) -> Result<Option<Mission>, QueryError> {
    let sql = format!("{SELECT_MISSIONS} WHERE id = $1");
    by_id(read_models, &sql, id, mission_from).await
}

/// Missions in id order, narrowed to one vehicle and one state when given.
pub async fn missions(
    read_models: &ReadStore,
    vehiculo_id: Option<i64>,
    estado: Option<MissionStatus>,
) -> Result<Vec<Mission>, QueryError> {
    let mut conditions = Vec::new();
    if vehiculo_id.is_some() {
        conditions.push("vehiculo_id = $1".to_string());
    }
    if estado.is_some() {
        conditions.push(format!("estado = ${}", conditions.len() + 1));
    }
    let sql = format!("{SELECT_MISSIONS}{} ORDER BY id", where_clause(&conditions));
    let mut query = sqlx::query(&sql);
    if let Some(vehiculo_id) = vehiculo_id {
        query = query.bind(vehiculo_id);
    }
    if let Some(estado) = estado {
        query = query.bind(estado.as_str());
    }
    let rows = query.fetch_all(read_models.pool()).await?;
    rows.iter().map(mission_from).collect()
}

/// Which vehicles a list shows.
#[derive(Debug, Default)]
pub struct VehicleFilter {
    pub incluir_eliminados: bool,
    pub id_empresa: Option<i64>,
    pub id_operacion: Option<i64>,
}

const SELECT_VEHICLES: &str = "SELECT v.id, v.placa, v.marca, v.modelo, v.anio, v.color, v.numero_motor, \
     v.numero_chasis, v.numero_vin, v.capacidad_pasajeros, v.capacidad_combustible_galones, \
     v.kilometraje_actual, v.fecha_ultima_revision, v.fecha_proximo_mantenimiento, \
     v.fecha_tarjeta_circulacion, v.numero_poliza_seguro, v.fecha_vencimiento_seguro, \
     v.observaciones, v.eliminado, v.creado_en, v.actualizado_en, \
     v.id_clase_vehiculo, clase.nombre, v.id_estado_vehiculo, estado.nombre, \
     v.id_tipo_combustible, combustible.nombre, v.id_motorista_por_defecto, motorista.conductor, \
     v.id_departamento_asignado, departamento.nombre, v.placa_id, v.id_empresa, v.id_operacion, \
     (SELECT COUNT(*) FROM rm_misiones m WHERE m.vehiculo_id = v.id \
        AND m.estado IN ('PROGRAMADA', 'EN_EJECUCION')) \
     FROM rm_vehiculos v \
     LEFT JOIN rm_catalogos clase ON clase.catalogo = 'clases-vehiculo' AND clase.id = v.id_clase_vehiculo \
     LEFT JOIN rm_catalogos estado ON estado.catalogo = 'estados-vehiculo' AND estado.id = v.id_estado_vehiculo \
     LEFT JOIN rm_catalogos combustible ON combustible.catalogo = 'tipos-combustible' AND combustible.id = v.id_tipo_combustible \
     LEFT JOIN rm_conductores motorista ON motorista.id = v.id_motorista_por_defecto \
     LEFT JOIN rm_catalogos departamento ON departamento.catalogo = 'departamentos' AND departamento.id = v.id_departamento_asignado";

/// The vehicles `filter` lets through, in id order, each as [`vehicle_json`] renders it.
pub async fn vehicles(
    read_models: &ReadStore,
    filter: &VehicleFilter,
) -> Result<Vec<Value>, QueryError> {
    let mut conditions = Vec::new();
    if !filter.incluir_eliminados {
        conditions.push("v.eliminado = 0".to_string());
    }
    let mut binds = Vec::new();
    for (column, value) in [
        ("v.id_empresa", filter.id_empresa),
        ("v.id_operacion", filter.id_operacion),
    ] {
        if let Some(value) = value {
            binds.push(value);
            conditions.push(format!("{column} = ${}", binds.len()));
        }
    }
    let sql = format!(
        "{SELECT_VEHICLES}{} ORDER BY v.id",
        where_clause(&conditions)
    );
    let mut query = sqlx::query(&sql);
    for value in binds {
        query = query.bind(value);
    }
    let rows = query.fetch_all(read_models.pool()).await?;
    rows.iter().map(vehicle_json).collect()
}

pub async fn vehicle(read_models: &ReadStore, id: i64) -> Result<Option<Value>, QueryError> {
    let sql = format!("{SELECT_VEHICLES} WHERE v.id = $1");
    by_id(read_models, &sql, id, vehicle_json).await
}

/// The seed's vehicle object (seed 002), field names and order as the seed shows them, one per
/// column of [`SELECT_VEHICLES`]. A JSON object rather than a struct: its 35 PascalCase fields
/// follow from the column list by kind.
fn vehicle_json(row: &AnyRow) -> Result<Value, QueryError> {
    let int = |i: usize| -> Result<Value, QueryError> {
        Ok(row
            .try_get::<Option<i64>, _>(i)?
            .map_or(Value::Null, Value::from))
    };
    let text = |i: usize| -> Result<Value, QueryError> {
        Ok(row
            .try_get::<Option<String>, _>(i)?
            .map_or(Value::Null, Value::from))
    };
    let decimal = |i: usize| -> Result<Value, QueryError> { Ok(decimal_json(row.try_get(i)?)) };
    let names = [
        "Id",
        "Placa",
        "Marca",
        "Modelo",
        "Anio",
        "Color",
        "NumeroMotor",
        "NumeroChasis",
        "NumeroVin",
        "CapacidadPasajeros",
        "CapacidadCombustibleGalones",
        "KilometrajeActual",
        "FechaUltimaRevision",
        "FechaProximoMantenimiento",
        "FechaTarjetaCirculacion",
        "NumeroPolizaSeguro",
        "FechaVencimientoSeguro",
        "Observaciones",
        "Eliminado",
        "FechaHoraCreacion",
        "FechaHoraActualizacion",
        "IdClaseVehiculo",
        "NombreClaseVehiculo",
        "IdEstadoVehiculo",
        "NombreEstadoVehiculo",
        "IdTipoCombustible",
        "NombreTipoCombustible",
        "IdMotoristaPorDefecto",
        "NombreMotoristaPorDefecto",
        "IdDepartamentoAsignado",
        "NombreDepartamentoAsignado",
        "IdPlaca",
        "IdEmpresa",
        "IdOperacion",
        "MisionesActivas",
    ];
    let mut object = Map::new();
    for (index, name) in names.iter().enumerate() {
        let value = match *name {
            "Eliminado" => Value::Bool(row.try_get::<i64, _>(index)? != 0),
            "CapacidadCombustibleGalones" => decimal(index)?,
            "Id" | "Anio" | "CapacidadPasajeros" | "KilometrajeActual" | "IdPlaca"
            | "MisionesActivas" => int(index)?,
            name if name.starts_with("Id") => int(index)?,
            _ => text(index)?,
        };
        object.insert(name.to_string(), value);
    }
    Ok(Value::Object(object))
}
