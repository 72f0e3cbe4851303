//! Self-inspections (seed 003): `POST /auto-inspecao/criar-em-lote` queues a batch all or
//! nothing, and each inspection is read, concluded or cancelled by its hash.
//!
//! The family takes no Bearer token, as the seed's service: a batch's entries name their
//! company by its token, and an inspection's 128-bit random hash is the capability to read or
//! move it (whoever was given the link). Its refusals are `{"erro":"…"}` (Portuguese, like the
//! seed), except seed 003's 422, whose body is the six categories of failing entries; what the
//! shared layers refuse in `{"error"}` is rewritten by [`error_format`].

use aggregates::inspection::{
    brazilian_plate, BatchEntry, BatchRefusal, InspectionCommand, InspectionError, InspectionHash,
    MobilePhone, BATCH_ENTRIES_MAX, EMAIL_LEN_MAX, INSPECTIONS_STREAM_ID,
};
use aggregates::NAME_LEN_MAX;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::extract::{
    nested_deeper_than, read_body, Path, ReadModelsLag, RequestId, JSON_DEPTH_MAX,
};
use super::inspection_registry::{random_hex, refusal as registry_refusal, token_hash};
use crate::commands::Executed;
use crate::queries::inspections::{self as queries, InspectionView};
use crate::state::READ_YOUR_WRITES_TIMEOUT;
use crate::store::EventMetadata;
use crate::AppState;
use utoipa::ToSchema;

/// A self-inspection to create (seed 003). Every field is required.
#[derive(ToSchema)]
#[schema(example = json!({"token": "AAA000", "veiculo_placa": "ABC1234", "id_tipo_operacao": 45, "veiculo_tipo": 19777,
    "veiculo_nome": "Corsa", "cliente_nome": "David", "cliente_email": "david@example.com",
    "cliente_numero": "44999999999", "criado_por": 24681, "selecionar_galeria": "sim",
    "enviar_para_usuario": "nao"}))]
pub struct InspectionEntry {
    /// The company's token, as `POST /api/empresas` showed it.
    #[schema(max_length = 256)]
    pub token: String,
    /// An active operation type.
    #[schema(minimum = 1)]
    pub id_tipo_operacao: i64,
    pub veiculo_placa: String,
    /// A questionnaire enabled for the operation type.
    #[schema(minimum = 1)]
    pub veiculo_tipo: i64,
    pub veiculo_nome: String,
    pub cliente_nome: String,
    #[schema(format = Email)]
    pub cliente_email: String,
    /// A Brazilian mobile number: 11 digits (a valid DDD, then a 9); spaces, parentheses,
    /// hyphens and dots are dropped (`(44) 99999-9999`).
    pub cliente_numero: String,
    /// A registered, active user.
    #[schema(minimum = 1)]
    pub criado_por: i64,
    /// `sim` or `nao`.
    pub selecionar_galeria: String,
    /// `sim` or `nao`.
    pub enviar_para_usuario: String,
}

/// An entry as sent, with the `hash` that now names it first.
#[derive(ToSchema)]
#[schema(example = json!({"hash": "abb279b4bf745390b79423fa72a0c1d2", "token": "AAA000", "veiculo_placa": "ABC1234",
    "id_tipo_operacao": 45, "veiculo_tipo": 19777, "veiculo_nome": "Corsa", "cliente_nome": "David",
    "cliente_email": "david@example.com", "cliente_numero": "44999999999", "criado_por": 24681,
    "selecionar_galeria": "sim", "enviar_para_usuario": "nao"}))]
pub struct QueuedInspection {
    /// 32 hex characters.
    pub hash: String,
    #[serde(flatten)]
    pub entry: InspectionEntry,
}

/// Seed 003's 422: the indexes of the refused entries, by why. Nothing was queued.
#[derive(ToSchema)]
#[schema(example = json!({"entradas_repetidas": [], "entradas_conflitantes": [], "entradas_dados_faltando": [0],
    "entradas_numero_invalido": [], "entradas_questionario_invalido": [], "entradas_tipo_operacao_invalido": []}))]
pub struct RefusedEntries {
    /// Entries that conflict with others of the same request (a repeated plate where the
    /// company blocks them).
    pub entradas_repetidas: Vec<i64>,
    /// Entries that conflict with inspections already open.
    pub entradas_conflitantes: Vec<i64>,
    pub entradas_dados_faltando: Vec<i64>,
    pub entradas_numero_invalido: Vec<i64>,
    pub entradas_questionario_invalido: Vec<i64>,
    pub entradas_tipo_operacao_invalido: Vec<i64>,
}

const HASH: &str = "The inspection's hash, as the batch answered it";

/// A batch of 1,000 entries with long names and addresses fits in well under this.
pub const BATCH_BODY_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Longest company token read (tokens are 64 hex digits; anything much longer is not one).
const TOKEN_LEN_MAX: usize = 256;
/// Bytes of an inspection hash: 128 bits from the operating system's CSPRNG.
const HASH_BYTES: usize = 16;
/// Who the events of this family say acted: it has no Bearer token to name a user.
const ACTOR: &str = "auto-inspecao";
/// Seed 003's 500 text.
const INTERNAL: &str = "Erro interno";

/// How this family refuses a request.
#[derive(Debug, thiserror::Error)]
pub enum InspectionApiError {
    /// 400: the body is not a JSON array of entry objects (seed 003: "Corpo inválido ou sintaxe
    /// JSON inválida").
    #[error("{0}")]
    InvalidBody(String),
    /// 422 with the six categories.
    #[error("entradas inválidas")]
    InvalidEntries(Box<BatchRefusal>),
    #[error("Auto inspeção não encontrada")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    /// What the shared layers refuse (outages, bugs, limits), rewritten by [`error_format`].
    #[error(transparent)]
    Api(#[from] ApiError),
}

fn erro(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "erro": message }))).into_response()
}

impl IntoResponse for InspectionApiError {
    fn into_response(self) -> Response {
        match self {
            Self::InvalidBody(message) => erro(StatusCode::BAD_REQUEST, &message),
            Self::InvalidEntries(refusal) => {
                (StatusCode::UNPROCESSABLE_ENTITY, Json(*refusal)).into_response()
            }
            Self::NotFound => erro(StatusCode::NOT_FOUND, &Self::NotFound.to_string()),
            Self::Conflict(message) => erro(StatusCode::CONFLICT, &message),
            Self::Api(error) => error.into_response(),
        }
    }
}

impl From<InspectionError> for InspectionApiError {
    fn from(error: InspectionError) -> Self {
        match error {
            InspectionError::BatchRefused(refusal) => Self::InvalidEntries(refusal),
            InspectionError::EmptyBatch => Self::InvalidBody(NO_ENTRIES.to_string()),
            InspectionError::InspectionNotFound => Self::NotFound,
            InspectionError::Transition { .. } => Self::Conflict(error.to_string()),
            other => Self::Api(registry_refusal(other)),
        }
    }
}

/// Rewrites a `{"error": …}` answer of the shared layers (limits, outages, panics, 404 and 405
/// of the router) into the family's `{"erro": …}`; a 500 says seed 003's `Erro interno`.
pub async fn error_format(request: Request, next: Next) -> Response {
    super::middleware::rewrite_refusals(request, next, |status, parsed, _| {
        let error = parsed?.get("error")?;
        let message = match error.as_str() {
            Some(message) if status != StatusCode::INTERNAL_SERVER_ERROR => message,
            _ => INTERNAL,
        };
        Some(json!({ "erro": message }))
    })
    .await
}

const NOT_AN_ARRAY: &str = "Corpo inválido: envie uma array JSON de auto inspeções";
const NO_ENTRIES: &str = "Corpo inválido: a array não tem entradas";

/// The fields an entry may carry (seed 003), the `hash` the answer adds excluded.
const ENTRY_FIELDS: [&str; 11] = aggregates::inspection::ENTRY_FIELDS;

/// A batch's body into its entry objects, as sent: the answer echoes them.
pub fn parse_batch(bytes: &[u8]) -> Result<Vec<Map<String, Value>>, InspectionApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(InspectionApiError::InvalidBody(NOT_AN_ARRAY.to_string()));
    }
    if nested_deeper_than(bytes, JSON_DEPTH_MAX) {
        return Err(InspectionApiError::InvalidBody(format!(
            "JSON inválido: aninhado além de {JSON_DEPTH_MAX} níveis"
        )));
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| InspectionApiError::InvalidBody(format!("JSON inválido: {e}")))?;
    let Value::Array(items) = value else {
        return Err(InspectionApiError::InvalidBody(NOT_AN_ARRAY.to_string()));
    };
    if items.is_empty() {
        return Err(InspectionApiError::InvalidBody(NO_ENTRIES.to_string()));
    }
    if items.len() > BATCH_ENTRIES_MAX {
        return Err(InspectionApiError::InvalidBody(format!(
            "Corpo inválido: no máximo {BATCH_ENTRIES_MAX} entradas por requisição (recebidas {})",
            items.len()
        )));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::Object(entry) => {
                // Strict bodies, as on every other endpoint: a misspelled field is refused, not
                // taken for a missing one.
                match entry.keys().find(|k| !ENTRY_FIELDS.contains(&k.as_str())) {
                    Some(unknown) => Err(InspectionApiError::InvalidBody(format!(
                        "Corpo inválido: campo desconhecido na entrada {index}: {}",
                        super::extract::echo(unknown)
                    ))),
                    None => Ok(entry),
                }
            }
            _ => Err(InspectionApiError::InvalidBody(format!(
                "Corpo inválido: a entrada {index} não é um objeto"
            ))),
        })
        .collect()
}

/// Trimmed, non-blank text of at most `len_max` characters.
fn text(entry: &Map<String, Value>, name: &str, len_max: usize) -> Option<String> {
    let text = entry.get(name)?.as_str()?.trim();
    (!text.is_empty() && text.chars().count() <= len_max).then(|| text.to_string())
}

/// A positive JSON integer (a number written as text is of the wrong type).
fn id(entry: &Map<String, Value>, name: &str) -> Option<i64> {
    entry.get(name)?.as_i64().filter(|id| *id > 0)
}

/// `sim` or `nao`, as seed 003 writes its flags.
fn sim_nao(entry: &Map<String, Value>, name: &str) -> Option<bool> {
    match entry
        .get(name)?
        .as_str()?
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "sim" => Some(true),
        "nao" | "não" => Some(false),
        _ => None,
    }
}

/// One `local@domain.tld` without blanks: enough to tell an address from a name or a number.
fn email(entry: &Map<String, Value>) -> Option<String> {
    let address = text(entry, "cliente_email", EMAIL_LEN_MAX)?;
    let (local, domain) = address.split_once('@')?;
    let shaped = !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !address.chars().any(char::is_whitespace);
    shaped.then_some(address)
}

/// An entry object into the typed fields the aggregate decides on, with a fresh hash.
pub fn entry_of(entry: &Map<String, Value>, hash: InspectionHash) -> BatchEntry {
    BatchEntry {
        hash: Some(hash),
        token: entry
            .get("token")
            .and_then(Value::as_str)
            .filter(|t| !t.trim().is_empty() && t.len() <= TOKEN_LEN_MAX)
            .map(token_hash),
        id_tipo_operacao: id(entry, "id_tipo_operacao"),
        veiculo_placa: entry
            .get("veiculo_placa")
            .and_then(Value::as_str)
            .and_then(brazilian_plate),
        veiculo_tipo: id(entry, "veiculo_tipo"),
        veiculo_nome: text(entry, "veiculo_nome", NAME_LEN_MAX),
        cliente_nome: text(entry, "cliente_nome", NAME_LEN_MAX),
        cliente_email: email(entry),
        cliente_numero: entry
            .get("cliente_numero")
            .and_then(Value::as_str)
            .filter(|n| !n.trim().is_empty())
            .map(MobilePhone::parse),
        criado_por: id(entry, "criado_por"),
        selecionar_galeria: sim_nao(entry, "selecionar_galeria"),
        enviar_para_usuario: sim_nao(entry, "enviar_para_usuario"),
    }
}

fn new_hash() -> InspectionHash {
    InspectionHash::parse(&random_hex(HASH_BYTES)).expect("32 lowercase hex digits")
}

fn metadata(request_id: Option<RequestId>) -> EventMetadata {
    let request_id = request_id.map(|RequestId(id)| id);
    EventMetadata {
        actor: Some(ACTOR.to_string()),
        correlation_id: request_id.clone(),
        causation_id: None,
        request_id,
    }
}

/// Runs `command` on the inspections' stream.
async fn execute(
    state: &AppState,
    command: InspectionCommand,
    request_id: Option<RequestId>,
) -> Result<Executed<aggregates::inspection::Inspections>, InspectionApiError> {
    state
        .inspections
        .execute(INSPECTIONS_STREAM_ID, command, &metadata(request_id))
        .await
        .map_err(|error| match error {
            crate::commands::CommandError::Rejected(refusal) => refusal.into(),
            other => super::error::command_error(other, registry_refusal).into(),
        })
}

/// Create self-inspections in a batch (seed 003)
///
/// Every entry is queued in one append, or none is. Each is processed in the background and
/// announced to the company's webhooks (`auto_inspecao.criada`). No Bearer token: each entry
/// carries its company's token.
#[utoipa::path(post, path = "/auto-inspecao/criar-em-lote", request_body = Vec<InspectionEntry>, responses(
    (status = 200, body = Vec<QueuedInspection>, description = "Every entry queued, in the order sent"),
    (status = 422, body = RefusedEntries, description = "Some entries are invalid or conflicting: nothing queued"),
))]
pub async fn create_batch(
    State(state): State<AppState>,
    request_id: Option<axum::Extension<RequestId>>,
    lag: Option<axum::Extension<ReadModelsLag>>,
    request: Request,
) -> Result<Json<Value>, InspectionApiError> {
    let (parts, body) = request.into_parts();
    super::extract::json_content_type(&parts.headers)?;
    let bytes = read_body(&parts.headers, body, BATCH_BODY_BYTES_MAX).await?;
    let sent = parse_batch(&bytes)?;
    let hashes: Vec<InspectionHash> = sent.iter().map(|_| new_hash()).collect();
    let entries = sent
        .iter()
        .zip(&hashes)
        .map(|(entry, hash)| entry_of(entry, hash.clone()))
        .collect();
    let executed = execute(
        &state,
        InspectionCommand::RequestBatch { entries },
        request_id.map(|axum::Extension(id)| id),
    )
    .await?;
    // Answered from the command's events; a read after it waits for the read models instead.
    if !state.can_show(&executed.touched) {
        if let Some(axum::Extension(lag)) = lag {
            lag.mark();
        }
    }
    let answer = sent
        .into_iter()
        .zip(hashes)
        .map(|(entry, hash)| {
            let mut echoed = Map::with_capacity(entry.len() + 1);
            echoed.insert("hash".to_string(), Value::from(hash.as_str()));
            echoed.extend(entry);
            Value::Object(echoed)
        })
        .collect();
    Ok(Json(Value::Array(answer)))
}

fn hash_in_path(raw: &str) -> Result<InspectionHash, InspectionApiError> {
    InspectionHash::parse(raw).ok_or(InspectionApiError::NotFound)
}

async fn read(
    state: &AppState,
    hash: &InspectionHash,
) -> Result<InspectionView, InspectionApiError> {
    queries::inspection(&state.read_models, hash.as_str())
        .await
        .map_err(ApiError::from)?
        .ok_or(InspectionApiError::NotFound)
}

/// One self-inspection, by its hash
#[utoipa::path(get, path = "/auto-inspecao/{hash}", params(("hash" = String, Path, description = HASH)),
    responses((status = 200, body = InspectionView)))]
pub async fn get(
    State(state): State<AppState>,
    lag: Option<axum::Extension<ReadModelsLag>>,
    Path(raw): Path<String>,
) -> Result<Json<InspectionView>, InspectionApiError> {
    let hash = hash_in_path(&raw)?;
    if !state.read_barrier(READ_YOUR_WRITES_TIMEOUT).await {
        if let Some(axum::Extension(lag)) = lag {
            lag.mark();
        }
    }
    read(&state, &hash).await.map(Json)
}

async fn transition(
    state: &AppState,
    request_id: Option<axum::Extension<RequestId>>,
    lag: Option<axum::Extension<ReadModelsLag>>,
    raw: &str,
    command: impl FnOnce(InspectionHash) -> InspectionCommand,
) -> Result<Json<InspectionView>, InspectionApiError> {
    let hash = hash_in_path(raw)?;
    let request_id = request_id.map(|axum::Extension(id)| id);
    let executed = execute(state, command(hash.clone()), request_id).await?;
    if !state.settle(executed.position(), &executed.touched).await {
        if let Some(axum::Extension(lag)) = lag {
            lag.mark();
        }
    }
    read(state, &hash).await.map(Json)
}

/// Conclude an open self-inspection (ABERTA → CONCLUIDA)
#[utoipa::path(post, path = "/auto-inspecao/{hash}/concluir", params(("hash" = String, Path, description = HASH)),
    responses((status = 200, body = InspectionView)))]
pub async fn conclude(
    State(state): State<AppState>,
    request_id: Option<axum::Extension<RequestId>>,
    lag: Option<axum::Extension<ReadModelsLag>>,
    Path(raw): Path<String>,
) -> Result<Json<InspectionView>, InspectionApiError> {
    transition(&state, request_id, lag, &raw, |hash| {
        InspectionCommand::Conclude { hash }
    })
    .await
}

/// Cancel a pending or open self-inspection (→ CANCELADA)
#[utoipa::path(post, path = "/auto-inspecao/{hash}/cancelar", params(("hash" = String, Path, description = HASH)),
    responses((status = 200, body = InspectionView)))]
pub async fn cancel(
    State(state): State<AppState>,
    request_id: Option<axum::Extension<RequestId>>,
    lag: Option<axum::Extension<ReadModelsLag>>,
    Path(raw): Path<String>,
) -> Result<Json<InspectionView>, InspectionApiError> {
    transition(&state, request_id, lag, &raw, |hash| {
        InspectionCommand::Cancel { hash }
    })
    .await
}
