//! Self-inspections' read models (seed 003): the reference data the admin endpoints list, and
//! one inspection by its hash.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{all, by_id, QueryError};
use crate::read_store::ReadStore;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": 1, "nome": "Acme Vistorias", "bloquear_placas_repetidas": false, "ativo": true}))]
pub struct Company {
    pub id: i64,
    pub nome: String,
    pub bloquear_placas_repetidas: bool,
    pub ativo: bool,
}

fn company_from(row: &AnyRow) -> Result<Company, QueryError> {
    Ok(Company {
        id: row.try_get(0)?,
        nome: row.try_get(1)?,
        bloquear_placas_repetidas: row.try_get::<i64, _>(2)? != 0,
        ativo: row.try_get::<i64, _>(3)? != 0,
    })
}

const COMPANY_COLUMNS: &str = "SELECT id, nome, bloquear_placas_repetidas, ativo FROM rm_empresas";

pub async fn companies(read_models: &ReadStore) -> Result<Vec<Company>, QueryError> {
    all(
        read_models,
        &format!("{COMPANY_COLUMNS} ORDER BY id"),
        company_from,
    )
    .await
}

pub async fn company(read_models: &ReadStore, id: i64) -> Result<Option<Company>, QueryError> {
    let sql = format!("{COMPANY_COLUMNS} WHERE id = $1");
    by_id(read_models, &sql, id, company_from).await
}

/// An operation type or a user: a name that can be deactivated.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": 1, "nome": "Venda", "ativo": true}))]
pub struct Named {
    pub id: i64,
    pub nome: String,
    pub ativo: bool,
}

fn named_from(row: &AnyRow) -> Result<Named, QueryError> {
    Ok(Named {
        id: row.try_get(0)?,
        nome: row.try_get(1)?,
        ativo: row.try_get::<i64, _>(2)? != 0,
    })
}

/// The two tables of [`Named`] entries.
#[derive(Debug, Clone, Copy)]
pub enum NamedTable {
    OperationTypes,
    Users,
}

impl NamedTable {
    fn table(self) -> &'static str {
        match self {
            Self::OperationTypes => "rm_tipos_operacao",
            Self::Users => "rm_usuarios",
        }
    }
}

pub async fn named_list(
    read_models: &ReadStore,
    which: NamedTable,
) -> Result<Vec<Named>, QueryError> {
    let sql = format!("SELECT id, nome, ativo FROM {} ORDER BY id", which.table());
    all(read_models, &sql, named_from).await
}

pub async fn named(
    read_models: &ReadStore,
    which: NamedTable,
    id: i64,
) -> Result<Option<Named>, QueryError> {
    let sql = format!(
        "SELECT id, nome, ativo FROM {} WHERE id = $1",
        which.table()
    );
    by_id(read_models, &sql, id, named_from).await
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": 1, "nome": "Carro de passeio", "ativo": true, "tipos_operacao": [1]}))]
pub struct Questionnaire {
    pub id: i64,
    pub nome: String,
    pub ativo: bool,
    pub tipos_operacao: Vec<i64>,
}

fn questionnaire_from(row: &AnyRow) -> Result<Questionnaire, QueryError> {
    let tipos: String = row.try_get(3)?;
    Ok(Questionnaire {
        id: row.try_get(0)?,
        nome: row.try_get(1)?,
        ativo: row.try_get::<i64, _>(2)? != 0,
        tipos_operacao: serde_json::from_str(&tipos)
            .map_err(|e| QueryError::Corrupt(format!("tipos_operacao {tipos:?}: {e}")))?,
    })
}

const QUESTIONNAIRE_COLUMNS: &str = "SELECT id, nome, ativo, tipos_operacao FROM rm_questionarios";

pub async fn questionnaires(read_models: &ReadStore) -> Result<Vec<Questionnaire>, QueryError> {
    let sql = format!("{QUESTIONNAIRE_COLUMNS} ORDER BY id");
    all(read_models, &sql, questionnaire_from).await
}

pub async fn questionnaire(
    read_models: &ReadStore,
    id: i64,
) -> Result<Option<Questionnaire>, QueryError> {
    let sql = format!("{QUESTIONNAIRE_COLUMNS} WHERE id = $1");
    by_id(read_models, &sql, id, questionnaire_from).await
}

/// One inspection as `GET /auto-inspecao/{hash}` and the webhooks' `dados` show it. The company
/// token is never part of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"hash": "abb279b4bf745390b79423fa72a0c1d2", "status": "ABERTA",
    "link": "https://inspecao.example.com/abb279b4bf745390b79423fa72a0c1d2", "empresa_id": 1, "id_tipo_operacao": 45,
    "veiculo_placa": "ABC1234", "veiculo_tipo": 19777, "veiculo_nome": "Corsa", "cliente_nome": "David",
    "cliente_email": "david@example.com", "cliente_numero": "44999999999", "criado_por": 24681,
    "selecionar_galeria": "sim", "enviar_para_usuario": "nao", "criado_em": "2026-03-01T10:00:00.000Z",
    "atualizado_em": "2026-03-01T10:00:01.000Z"}))]
pub struct InspectionView {
    pub hash: String,
    /// `PENDENTE` (queued), `ABERTA`, `CONCLUIDA` or `CANCELADA`.
    pub status: String,
    /// Where the client inspects, once it is open.
    pub link: Option<String>,
    pub empresa_id: i64,
    pub id_tipo_operacao: i64,
    pub veiculo_placa: String,
    pub veiculo_tipo: i64,
    pub veiculo_nome: String,
    pub cliente_nome: String,
    pub cliente_email: String,
    pub cliente_numero: String,
    pub criado_por: i64,
    pub selecionar_galeria: &'static str,
    pub enviar_para_usuario: &'static str,
    pub criado_em: String,
    pub atualizado_em: String,
}

const INSPECTION_COLUMNS: &str = "SELECT hash, status, link, empresa_id, id_tipo_operacao, \
     veiculo_placa, veiculo_tipo, veiculo_nome, cliente_nome, cliente_email, cliente_numero, \
     criado_por, selecionar_galeria, enviar_para_usuario, criado_em, atualizado_em \
     FROM rm_auto_inspecoes";

fn inspection_from(row: &AnyRow) -> Result<InspectionView, QueryError> {
    let flag = |index: usize| -> Result<&'static str, QueryError> {
        Ok(aggregates::inspection::sim_nao(
            row.try_get::<i64, _>(index)? != 0,
        ))
    };
    Ok(InspectionView {
        hash: row.try_get(0)?,
        status: row.try_get(1)?,
        link: row.try_get(2)?,
        empresa_id: row.try_get(3)?,
        id_tipo_operacao: row.try_get(4)?,
        veiculo_placa: row.try_get(5)?,
        veiculo_tipo: row.try_get(6)?,
        veiculo_nome: row.try_get(7)?,
        cliente_nome: row.try_get(8)?,
        cliente_email: row.try_get(9)?,
        cliente_numero: row.try_get(10)?,
        criado_por: row.try_get(11)?,
        selecionar_galeria: flag(12)?,
        enviar_para_usuario: flag(13)?,
        criado_em: row.try_get(14)?,
        atualizado_em: row.try_get(15)?,
    })
}

pub async fn inspection(
    read_models: &ReadStore,
    hash: &str,
) -> Result<Option<InspectionView>, QueryError> {
    let sql = format!("{INSPECTION_COLUMNS} WHERE hash = $1");
    let row = sqlx::query(&sql)
        .bind(hash)
        .fetch_optional(read_models.pool())
        .await?;
    row.as_ref().map(inspection_from).transpose()
}

/// The inspections of `hashes` that the read model holds, by hash.
pub async fn inspections(
    read_models: &ReadStore,
    hashes: &[&str],
) -> Result<HashMap<String, InspectionView>, QueryError> {
    const HASHES_PER_STATEMENT: usize = 200;
    let mut found = HashMap::with_capacity(hashes.len());
    for chunk in hashes.chunks(HASHES_PER_STATEMENT) {
        let sql = format!(
            "{INSPECTION_COLUMNS} WHERE hash IN ({})",
            read_models.placeholders(1, chunk.len()).join(", ")
        );
        let mut query = sqlx::query(&sql);
        for hash in chunk {
            query = query.bind(hash.to_string());
        }
        for row in query.fetch_all(read_models.pool()).await? {
            let view = inspection_from(&row)?;
            found.insert(view.hash.clone(), view);
        }
    }
    Ok(found)
}
