//! Reference data of the self-inspections (seed 003), admin only: companies (`empresas`, each
//! with the token its batches authenticate with), operation types, questionnaires and users.
//! Registered and changed through the inspections' own stream, so a batch is decided on the same
//! state as every deactivation (see `aggregates::inspection`).

use aggregates::inspection::{InspectionCommand, InspectionError, InspectionEvent, TokenHash};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{CommandContext, JsonBody, Path};
use super::fields::Fields;
use super::{parse_id, run_command};
use crate::queries::inspections::{self as queries, Company, Named, NamedTable, Questionnaire};
use crate::AppState;
use utoipa::ToSchema;

/// An inspection company to register.
#[derive(ToSchema)]
#[schema(example = json!({"nome": "Acme Vistorias", "bloquear_placas_repetidas": true}))]
pub struct CompanyRequest {
    /// Required. At most 10,000 characters.
    #[schema(max_length = 10000)]
    pub nome: String,
    /// Optional (default `false`): refuse a batch entry whose plate has an open inspection.
    #[schema(required = false)]
    pub bloquear_placas_repetidas: Option<bool>,
}

/// A registered company, with the token its self-inspection batches carry. The token is shown
/// this once: the log keeps only its SHA-256.
#[derive(ToSchema)]
#[schema(example = json!({"id": 1, "nome": "Acme Vistorias", "bloquear_placas_repetidas": true, "ativo": true,
    "token": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}))]
pub struct RegisteredCompany {
    pub id: i64,
    pub nome: String,
    pub bloquear_placas_repetidas: bool,
    pub ativo: bool,
    /// 64 hex characters.
    pub token: String,
}

/// A company's change: either field, or both.
#[derive(ToSchema)]
#[schema(example = json!({"ativo": false}))]
pub struct CompanyChange {
    #[schema(required = false)]
    pub ativo: Option<bool>,
    #[schema(required = false)]
    pub bloquear_placas_repetidas: Option<bool>,
}

/// An operation type to register.
#[derive(ToSchema)]
#[schema(example = json!({"nome": "Venda", "ativo": true}))]
pub struct OperationTypeRequest {
    /// Required. At most 10,000 characters.
    #[schema(max_length = 10000)]
    pub nome: String,
    /// Optional (default `true`).
    #[schema(required = false)]
    pub ativo: Option<bool>,
}

/// A questionnaire to register.
#[derive(ToSchema)]
#[schema(example = json!({"nome": "Carro de passeio", "tipos_operacao": [1]}))]
pub struct QuestionnaireRequest {
    /// Required. At most 10,000 characters.
    #[schema(max_length = 10000)]
    pub nome: String,
    /// Optional (default `true`).
    #[schema(required = false)]
    pub ativo: Option<bool>,
    /// Optional. Registered operation types it is enabled for, at most 1,000.
    #[schema(required = false, max_items = 1000)]
    pub tipos_operacao: Option<Vec<i64>>,
}

/// A self-inspection user to register.
#[derive(ToSchema)]
#[schema(example = json!({"nome": "Ana Souza"}))]
pub struct UserRequest {
    /// Required. At most 10,000 characters.
    #[schema(max_length = 10000)]
    pub nome: String,
}

/// Switch an entry on or off.
#[derive(ToSchema)]
#[schema(example = json!({"ativo": false}))]
pub struct ActiveChange {
    /// Required.
    pub ativo: bool,
}

/// Operation types one questionnaire may be enabled for.
const QUESTIONNAIRE_TYPES_MAX: usize = 1_000;
/// Bytes of a company token: 256 bits from the operating system's CSPRNG.
const TOKEN_BYTES: usize = 32;

const COMPANY_FIELDS: [&str; 2] = ["nome", "bloquear_placas_repetidas"];
const COMPANY_CHANGES: [&str; 2] = ["ativo", "bloquear_placas_repetidas"];
const NAMED_FIELDS: [&str; 2] = ["nome", "ativo"];
const QUESTIONNAIRE_FIELDS: [&str; 3] = ["nome", "ativo", "tipos_operacao"];
const USER_FIELDS: [&str; 1] = ["nome"];
const ACTIVE_ONLY: [&str; 1] = ["ativo"];

pub fn admin_only(context: &CommandContext) -> Result<(), ApiError> {
    if context.actor.is_admin() {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

/// A registration's or change's refusal as the `/api` family says it.
pub fn refusal(error: InspectionError) -> ApiError {
    let message = error.to_string();
    match error {
        InspectionError::EmptyName { .. }
        | InspectionError::NameTooLong { .. }
        | InspectionError::UnknownCompany { .. }
        | InspectionError::WebhookWithoutEvents
        | InspectionError::UnknownOperationType { .. } => ApiError::BadRequest(message),
        InspectionError::CompanyNotFound { .. }
        | InspectionError::OperationTypeNotFound { .. }
        | InspectionError::QuestionnaireNotFound { .. }
        | InspectionError::UserNotFound { .. }
        | InspectionError::InspectionNotFound => ApiError::NotFound(message),
        InspectionError::TokenTaken | InspectionError::Transition { .. } => {
            ApiError::Conflict(message)
        }
        other => ApiError::internal(other),
    }
}

/// `n` bytes from the operating system's random source, as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buffer = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buffer);
    hex(&buffer)
}

pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// sha256 of a company token, as the log keeps it.
pub fn token_hash(token: &str) -> TokenHash {
    use sha2::{Digest, Sha256};
    TokenHash::from_hex(hex(&Sha256::digest(token.as_bytes())))
        .expect("a sha256 digest in hex is 64 hex digits")
}

async fn execute(
    state: &AppState,
    context: &CommandContext,
    command: InspectionCommand,
) -> Result<Vec<InspectionEvent>, ApiError> {
    let executed = run_command(
        state,
        &state.inspections,
        aggregates::inspection::INSPECTIONS_STREAM_ID,
        command,
        context,
        refusal,
    )
    .await?;
    Ok(executed.events)
}

fn name(fields: &Fields<'_>) -> Result<String, ApiError> {
    fields.required("nome", |f, n| f.text(n, 10_000))
}

/// Register an inspection company (admin); its token is shown this once
#[utoipa::path(post, path = "/api/empresas", request_body = CompanyRequest,
    responses((status = 201, body = RegisteredCompany)))]
pub async fn create_company(
    State(state): State<AppState>,
    context: CommandContext,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    admin_only(&context)?;
    let fields = Fields::of(&body, &COMPANY_FIELDS)?;
    let nome = name(&fields)?;
    let bloquear_placas_repetidas = fields
        .boolean("bloquear_placas_repetidas")?
        .unwrap_or(false);
    let token = random_hex(TOKEN_BYTES);
    let command = InspectionCommand::RegisterCompany {
        nome,
        token: token_hash(&token),
        bloquear_placas_repetidas,
    };
    let events = execute(&state, &context, command).await?;
    let Some(InspectionEvent::CompanyRegistered {
        id,
        nome,
        bloquear_placas_repetidas,
        ..
    }) = events.into_iter().next()
    else {
        return Err(ApiError::internal("a registration appended no company"));
    };
    let body = json!({
        "id": id,
        "nome": nome,
        "bloquear_placas_repetidas": bloquear_placas_repetidas,
        "ativo": true,
        "token": token,
    });
    Ok((StatusCode::CREATED, Json(body)))
}

/// Inspection companies, in id order, without their tokens (admin)
#[utoipa::path(get, path = "/api/empresas", responses((status = 200, body = Vec<Company>)))]
pub async fn list_companies(
    State(state): State<AppState>,
    context: CommandContext,
) -> Result<Json<Vec<Company>>, ApiError> {
    admin_only(&context)?;
    Ok(Json(queries::companies(&state.read_models).await?))
}

/// Change an inspection company (admin)
#[utoipa::path(patch, path = "/api/empresas/{id}", params(("id" = i64, Path)), request_body = CompanyChange,
    responses((status = 200, body = Company)))]
pub async fn change_company(
    State(state): State<AppState>,
    context: CommandContext,
    Path(raw_id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Company>, ApiError> {
    admin_only(&context)?;
    let id = parse_id(&raw_id, "la empresa")?;
    let fields = Fields::of(&body, &COMPANY_CHANGES)?;
    let command = InspectionCommand::ChangeCompany {
        id,
        ativo: fields.boolean("ativo")?,
        bloquear_placas_repetidas: fields.boolean("bloquear_placas_repetidas")?,
    };
    execute(&state, &context, command).await?;
    queries::company(&state.read_models, id)
        .await?
        .map(Json)
        .ok_or_else(|| refusal(InspectionError::CompanyNotFound { id }))
}

/// Register an operation type (admin)
#[utoipa::path(post, path = "/api/tipos-operacao", request_body = OperationTypeRequest,
    responses((status = 201, body = Named)))]
pub async fn create_operation_type(
    State(state): State<AppState>,
    context: CommandContext,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Named>), ApiError> {
    admin_only(&context)?;
    let fields = Fields::of(&body, &NAMED_FIELDS)?;
    let command = InspectionCommand::RegisterOperationType {
        nome: name(&fields)?,
        ativo: fields.boolean("ativo")?.unwrap_or(true),
    };
    match execute(&state, &context, command).await?.into_iter().next() {
        Some(InspectionEvent::OperationTypeRegistered { id, nome, ativo }) => {
            Ok((StatusCode::CREATED, Json(Named { id, nome, ativo })))
        }
        _ => Err(ApiError::internal(
            "a registration appended no operation type",
        )),
    }
}

/// Operation types, in id order (admin)
#[utoipa::path(get, path = "/api/tipos-operacao", responses((status = 200, body = Vec<Named>)))]
pub async fn list_operation_types(
    State(state): State<AppState>,
    context: CommandContext,
) -> Result<Json<Vec<Named>>, ApiError> {
    admin_only(&context)?;
    let listed = queries::named_list(&state.read_models, NamedTable::OperationTypes).await?;
    Ok(Json(listed))
}

/// Switch an operation type on or off (admin)
#[utoipa::path(patch, path = "/api/tipos-operacao/{id}", params(("id" = i64, Path)), request_body = ActiveChange,
    responses((status = 200, body = Named)))]
pub async fn change_operation_type(
    State(state): State<AppState>,
    context: CommandContext,
    Path(raw_id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Named>, ApiError> {
    let id = parse_id(&raw_id, "el tipo de operación")?;
    let command = |ativo| InspectionCommand::ChangeOperationType { id, ativo };
    change_named(
        &state,
        &context,
        &body,
        NamedTable::OperationTypes,
        id,
        command,
    )
    .await
}

/// Sets `ativo` of the operation type or user `id` → 200 with it.
async fn change_named(
    state: &AppState,
    context: &CommandContext,
    body: &Value,
    which: NamedTable,
    id: i64,
    command: impl FnOnce(Option<bool>) -> InspectionCommand,
) -> Result<Json<Named>, ApiError> {
    admin_only(context)?;
    let fields = Fields::of(body, &ACTIVE_ONLY)?;
    execute(state, context, command(fields.boolean("ativo")?)).await?;
    let not_found = match which {
        NamedTable::OperationTypes => InspectionError::OperationTypeNotFound { id },
        NamedTable::Users => InspectionError::UserNotFound { id },
    };
    queries::named(&state.read_models, which, id)
        .await?
        .map(Json)
        .ok_or_else(|| refusal(not_found))
}

/// `tipos_operacao`: a list of positive ids (absent: none).
fn operation_type_ids(body: &Value) -> Result<Vec<i64>, ApiError> {
    let invalid = || {
        ApiError::BadRequest("El campo tipos_operacao debe ser una lista de IDs positivos".into())
    };
    match body.get("tipos_operacao") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(ids)) if ids.len() > QUESTIONNAIRE_TYPES_MAX => {
            Err(ApiError::BadRequest(format!(
                "El campo tipos_operacao admite como máximo {QUESTIONNAIRE_TYPES_MAX} IDs"
            )))
        }
        Some(Value::Array(ids)) => ids
            .iter()
            .map(|id| id.as_i64().filter(|id| *id > 0).ok_or_else(invalid))
            .collect(),
        Some(_) => Err(invalid()),
    }
}

/// Register a questionnaire (admin); every operation type must exist
#[utoipa::path(post, path = "/api/questionarios", request_body = QuestionnaireRequest,
    responses((status = 201, body = Questionnaire)))]
pub async fn create_questionnaire(
    State(state): State<AppState>,
    context: CommandContext,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Questionnaire>), ApiError> {
    admin_only(&context)?;
    let fields = Fields::of(&body, &QUESTIONNAIRE_FIELDS)?;
    let command = InspectionCommand::RegisterQuestionnaire {
        nome: name(&fields)?,
        ativo: fields.boolean("ativo")?.unwrap_or(true),
        tipos_operacao: operation_type_ids(&body)?,
    };
    match execute(&state, &context, command).await?.into_iter().next() {
        Some(InspectionEvent::QuestionnaireRegistered {
            id,
            nome,
            ativo,
            tipos_operacao,
        }) => Ok((
            StatusCode::CREATED,
            Json(Questionnaire {
                id,
                nome,
                ativo,
                tipos_operacao,
            }),
        )),
        _ => Err(ApiError::internal(
            "a registration appended no questionnaire",
        )),
    }
}

/// Questionnaires, in id order (admin)
#[utoipa::path(get, path = "/api/questionarios", responses((status = 200, body = Vec<Questionnaire>)))]
pub async fn list_questionnaires(
    State(state): State<AppState>,
    context: CommandContext,
) -> Result<Json<Vec<Questionnaire>>, ApiError> {
    admin_only(&context)?;
    Ok(Json(queries::questionnaires(&state.read_models).await?))
}

/// Switch a questionnaire on or off (admin)
#[utoipa::path(patch, path = "/api/questionarios/{id}", params(("id" = i64, Path)), request_body = ActiveChange,
    responses((status = 200, body = Questionnaire)))]
pub async fn change_questionnaire(
    State(state): State<AppState>,
    context: CommandContext,
    Path(raw_id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Questionnaire>, ApiError> {
    admin_only(&context)?;
    let id = parse_id(&raw_id, "el cuestionario")?;
    let fields = Fields::of(&body, &ACTIVE_ONLY)?;
    let ativo = fields.boolean("ativo")?;
    execute(
        &state,
        &context,
        InspectionCommand::ChangeQuestionnaire { id, ativo },
    )
    .await?;
    queries::questionnaire(&state.read_models, id)
        .await?
        .map(Json)
        .ok_or_else(|| refusal(InspectionError::QuestionnaireNotFound { id }))
}

/// Register a self-inspection user (admin)
#[utoipa::path(post, path = "/api/usuarios", request_body = UserRequest,
    responses((status = 201, body = Named)))]
pub async fn create_user(
    State(state): State<AppState>,
    context: CommandContext,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Named>), ApiError> {
    admin_only(&context)?;
    let fields = Fields::of(&body, &USER_FIELDS)?;
    let command = InspectionCommand::RegisterUser {
        nome: name(&fields)?,
    };
    match execute(&state, &context, command).await?.into_iter().next() {
        Some(InspectionEvent::UserRegistered { id, nome }) => Ok((
            StatusCode::CREATED,
            Json(Named {
                id,
                nome,
                ativo: true,
            }),
        )),
        _ => Err(ApiError::internal("a registration appended no user")),
    }
}

/// Self-inspection users, in id order (admin)
#[utoipa::path(get, path = "/api/usuarios", responses((status = 200, body = Vec<Named>)))]
pub async fn list_users(
    State(state): State<AppState>,
    context: CommandContext,
) -> Result<Json<Vec<Named>>, ApiError> {
    admin_only(&context)?;
    let listed = queries::named_list(&state.read_models, NamedTable::Users).await?;
    Ok(Json(listed))
}

/// Switch a user on or off (admin)
#[utoipa::path(patch, path = "/api/usuarios/{id}", params(("id" = i64, Path)), request_body = ActiveChange,
    responses((status = 200, body = Named)))]
pub async fn change_user(
    State(state): State<AppState>,
    context: CommandContext,
    Path(raw_id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Named>, ApiError> {
    let id = parse_id(&raw_id, "el usuario")?;
    let command = |ativo| InspectionCommand::ChangeUser { id, ativo };
    change_named(&state, &context, &body, NamedTable::Users, id, command).await
}
