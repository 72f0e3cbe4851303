//! The registries' read models: operation areas, drivers, fuel stations and vehicle catalogues.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{all, by_id, QueryError};
use crate::read_store::ReadStore;

/// A registered entity another record may point at, by the table that holds it.
#[derive(Debug, Clone, Copy)]
pub enum Reference {
    OperationArea,
    Driver,
    Station,
    /// An entry of the catalogue with this slug.
    Catalog(&'static str),
}

/// Whether `reference` holds an entry with `id`.
pub async fn exists(
    read_models: &ReadStore,
    reference: Reference,
    id: i64,
) -> Result<bool, QueryError> {
    let pool = read_models.pool();
    let found: Option<i64> = match reference {
        Reference::OperationArea => {
            sqlx::query_scalar("SELECT id FROM rm_areas_operacion WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        }
        Reference::Driver => {
            sqlx::query_scalar("SELECT id FROM rm_conductores WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        }
        Reference::Station => {
            sqlx::query_scalar("SELECT id FROM rm_bombas WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        }
        Reference::Catalog(catalogo) => {
            sqlx::query_scalar("SELECT id FROM rm_catalogos WHERE catalogo = $1 AND id = $2")
                .bind(catalogo)
                .bind(id)
                .fetch_optional(pool)
                .await?
        }
    };
    Ok(found.is_some())
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": 1, "nombre": "Zona Norte"}))]
pub struct OperationArea {
    pub id: i64,
    pub nombre: String,
}

fn operation_area_from(row: &AnyRow) -> Result<OperationArea, QueryError> {
    Ok(OperationArea {
        id: row.try_get(0)?,
        nombre: row.try_get(1)?,
    })
}

pub async fn operation_areas(read_models: &ReadStore) -> Result<Vec<OperationArea>, QueryError> {
    let sql = "SELECT id, nombre FROM rm_areas_operacion ORDER BY id";
    all(read_models, sql, operation_area_from).await
}

pub async fn operation_area(
    read_models: &ReadStore,
    id: i64,
) -> Result<Option<OperationArea>, QueryError> {
    let sql = "SELECT id, nombre FROM rm_areas_operacion WHERE id = $1";
    by_id(read_models, sql, id, operation_area_from).await
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": 1, "conductor": "Juan Pérez", "area_principal": 1}))]
pub struct Driver {
    pub id: i64,
    pub conductor: String,
    pub area_principal: Option<i64>,
}

fn driver_from(row: &AnyRow) -> Result<Driver, QueryError> {
    Ok(Driver {
        id: row.try_get(0)?,
        conductor: row.try_get(1)?,
        area_principal: row.try_get(2)?,
    })
}

pub async fn drivers(read_models: &ReadStore) -> Result<Vec<Driver>, QueryError> {
    let sql = "SELECT id, conductor, area_principal FROM rm_conductores ORDER BY id";
    all(read_models, sql, driver_from).await
}

pub async fn driver(read_models: &ReadStore, id: i64) -> Result<Option<Driver>, QueryError> {
    let sql = "SELECT id, conductor, area_principal FROM rm_conductores WHERE id = $1";
    by_id(read_models, sql, id, driver_from).await
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": 1, "bomba": "Bomba Central", "area_operacion_id": 1, "permitir_saldo_negativo": true}))]
pub struct Station {
    pub id: i64,
    pub bomba: String,
    pub area_operacion_id: Option<i64>,
    pub permitir_saldo_negativo: bool,
}

fn station_from(row: &AnyRow) -> Result<Station, QueryError> {
    Ok(Station {
        id: row.try_get(0)?,
        bomba: row.try_get(1)?,
        area_operacion_id: row.try_get(2)?,
        permitir_saldo_negativo: row.try_get::<i64, _>(3)? != 0,
    })
}

/// Every station, in id order.
pub async fn stations(read_models: &ReadStore) -> Result<Vec<Station>, QueryError> {
    let sql =
        "SELECT id, bomba, area_operacion_id, permitir_saldo_negativo FROM rm_bombas ORDER BY id";
    all(read_models, sql, station_from).await
}

pub async fn station(read_models: &ReadStore, id: i64) -> Result<Option<Station>, QueryError> {
    let sql =
        "SELECT id, bomba, area_operacion_id, permitir_saldo_negativo FROM rm_bombas WHERE id = $1";
    by_id(read_models, sql, id, station_from).await
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": 1, "nombre": "ACPM"}))]
pub struct CatalogEntry {
    pub id: i64,
    pub nombre: String,
}

/// The entries of the catalogue `slug`, in id order.
pub async fn catalog_entries(
    read_models: &ReadStore,
    slug: &str,
) -> Result<Vec<CatalogEntry>, QueryError> {
    let rows = sqlx::query("SELECT id, nombre FROM rm_catalogos WHERE catalogo = $1 ORDER BY id")
        .bind(slug)
        .fetch_all(read_models.pool())
        .await?;
    rows.iter()
        .map(|row| {
            Ok(CatalogEntry {
                id: row.try_get(0)?,
                nombre: row.try_get(1)?,
            })
        })
        .collect()
}
