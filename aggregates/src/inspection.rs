//! Self-inspections (seed 003): the reference data a batch is validated against (companies,
//! operation types, questionnaires, users) and the inspections themselves, in **one stream**.
//!
//! One stream, so that a batch is decided on one state and committed as one append: whether a
//! plate already has an open inspection of its company (`entradas_conflitantes`), whether the
//! operation type is still active, whether the token still names an active company, all of it is
//! read from the state the batch's events are appended to. Two batches racing for one plate are
//! serialised by the stream's version; the second sees the first's inspections.
//!
//! Parse, don't validate: the HTTP edge turns each entry into a [`BatchEntry`] whose fields are
//! already typed (`None` when missing, empty or of the wrong type), hashes the company token with
//! sha256 ([`TokenHash`]) and draws each inspection's [`InspectionHash`]; `decide` sorts every
//! entry into the seed's six categories.

use std::collections::{HashMap, HashSet};

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::placa::Placa;
use crate::NAME_LEN_MAX;

/// The one stream of the self-inspection family.
pub const INSPECTIONS_STREAM_ID: &str = "all";
/// Seed 003 names no limit; one request queues at most this many inspections.
pub const BATCH_ENTRIES_MAX: usize = 1_000;
/// Longest e-mail address (RFC 5321's path limit).
pub const EMAIL_LEN_MAX: usize = 254;

/// Brazil's area codes (DDD), as Anatel assigns them.
pub const BRAZILIAN_DDDS: [u8; 67] = [
    11, 12, 13, 14, 15, 16, 17, 18, 19, // São Paulo
    21, 22, 24, 27, 28, // Rio de Janeiro, Espírito Santo
    31, 32, 33, 34, 35, 37, 38, // Minas Gerais
    41, 42, 43, 44, 45, 46, 47, 48, 49, // Paraná, Santa Catarina
    51, 53, 54, 55, // Rio Grande do Sul
    61, 62, 63, 64, 65, 66, 67, 68, 69, // Centre-West, Tocantins, Acre, Rondônia
    71, 73, 74, 75, 77, 79, // Bahia, Sergipe
    81, 82, 83, 84, 85, 86, 87, 88, 89, // North-East
    91, 92, 93, 94, 95, 96, 97, 98, 99, // North, Maranhão
];

/// A Brazilian mobile number: 11 digits, a valid DDD, then a 9. Stored as its digits only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MobilePhone(String);

impl MobilePhone {
    /// `"(44) 99999-9999"`, `"44 99999 9999"` and `"44999999999"` are all `44999999999`. Only
    /// the punctuation people write numbers with is dropped (spaces, parentheses, hyphens and
    /// dots); anything else, a country code included, makes it not a mobile number here.
    pub fn parse(raw: &str) -> Option<Self> {
        let mut digits = String::with_capacity(11);
        for c in raw.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '(' | ')' | '-' | '.' => {}
                _ => return None,
            }
            if digits.len() > 11 {
                return None;
            }
        }
        let bytes = digits.as_bytes();
        if bytes.len() != 11 {
            return None;
        }
        let ddd = (bytes[0] - b'0') * 10 + (bytes[1] - b'0');
        (BRAZILIAN_DDDS.contains(&ddd) && bytes[2] == b'9').then_some(Self(digits))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A Brazilian plate, old (`ABC1234`) or Mercosul (`ABC1D23`): three letters, a digit, a letter
/// or digit, two digits; typed with spaces, hyphens or lowercase, stored uppercase without them.
pub fn brazilian_plate(raw: &str) -> Option<Placa> {
    let placa = Placa::parse(raw).ok()?;
    let b = placa.as_str().as_bytes();
    let shaped = b.len() == 7
        && b[..3].iter().all(u8::is_ascii_uppercase)
        && b[3].is_ascii_digit()
        && (b[4].is_ascii_uppercase() || b[4].is_ascii_digit())
        && b[5..].iter().all(u8::is_ascii_digit);
    shaped.then_some(placa)
}

/// sha256 of a company's token, hex. The token itself is shown once and never stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenHash(String);

impl TokenHash {
    /// From the hex digest the edge computed (64 lowercase hex digits).
    pub fn from_hex(hex: String) -> Option<Self> {
        let valid = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        valid.then_some(Self(hex))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The unguessable name of one inspection (128 random bits as 32 hex digits), drawn at the edge.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InspectionHash(String);

impl InspectionHash {
    pub const LEN: usize = 32;

    /// A hash as a path carries it; anything but 32 lowercase hex digits cannot name one.
    pub fn parse(raw: &str) -> Option<Self> {
        let valid =
            raw.len() == Self::LEN && raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        valid.then(|| Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where an inspection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InspectionStatus {
    /// Queued by a batch, not yet processed.
    Pendente,
    /// Processed: its link exists and the client can fill it in.
    Aberta,
    Concluida,
    Cancelada,
}

impl InspectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pendente => "PENDENTE",
            Self::Aberta => "ABERTA",
            Self::Concluida => "CONCLUIDA",
            Self::Cancelada => "CANCELADA",
        }
    }

    /// Pending and open inspections hold their plate: a new one for it conflicts.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pendente | Self::Aberta)
    }
}

/// The link path of an inspection, once processed.
pub fn inspection_link(hash: &InspectionHash) -> String {
    format!("/auto-inspecao/{}", hash.as_str())
}

/// What a company's webhook may be told of: an inspection opened (processed from the queue),
/// concluded or cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WebhookEvento {
    Criada,
    Concluida,
    Cancelada,
    /// The fuel checks flagged a refuel of one of the company's vehicles (issue 16).
    TanqueoAnomalia,
}

impl WebhookEvento {
    pub const ALL: [Self; 4] = [
        Self::Criada,
        Self::Concluida,
        Self::Cancelada,
        Self::TanqueoAnomalia,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Criada => "auto_inspecao.criada",
            Self::Concluida => "auto_inspecao.concluida",
            Self::Cancelada => "auto_inspecao.cancelada",
            Self::TanqueoAnomalia => "tanqueo.anomalia",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == raw)
    }

    /// What an event of the inspections' stream is told as, by its type; `None` for the events
    /// no webhook hears of.
    pub fn of_event_type(event_type: &str) -> Option<Self> {
        match event_type {
            "InspectionCreated" => Some(Self::Criada),
            "InspectionConcluded" => Some(Self::Concluida),
            "InspectionCancelled" => Some(Self::Cancelada),
            _ => None,
        }
    }
}

/// One entry of a batch as the edge parsed it: `None` for a field missing, empty or of the
/// wrong type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchEntry {
    pub hash: Option<InspectionHash>,
    pub token: Option<TokenHash>,
    pub id_tipo_operacao: Option<i64>,
    pub veiculo_placa: Option<Placa>,
    pub veiculo_tipo: Option<i64>,
    pub veiculo_nome: Option<String>,
    pub cliente_nome: Option<String>,
    pub cliente_email: Option<String>,
    /// `None` when missing; `Some(None)` when sent but not a Brazilian mobile number.
    pub cliente_numero: Option<Option<MobilePhone>>,
    pub criado_por: Option<i64>,
    pub selecionar_galeria: Option<bool>,
    pub enviar_para_usuario: Option<bool>,
}

/// Why a batch was refused: the 0-based indices of the entries in each of seed 003's categories.
/// An entry may be in several.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BatchRefusal {
    pub entradas_repetidas: Vec<usize>,
    pub entradas_conflitantes: Vec<usize>,
    pub entradas_dados_faltando: Vec<usize>,
    pub entradas_numero_invalido: Vec<usize>,
    pub entradas_questionario_invalido: Vec<usize>,
    pub entradas_tipo_operacao_invalido: Vec<usize>,
}

impl BatchRefusal {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectionError {
    #[error("El campo {field} es obligatorio")]
    EmptyName { field: &'static str },
    #[error("El campo {field} no puede superar {NAME_LEN_MAX} caracteres")]
    NameTooLong { field: &'static str },
    #[error("No se encontró la empresa con ID {id}")]
    CompanyNotFound { id: i64 },
    #[error("No se encontró el tipo de operación con ID {id}")]
    OperationTypeNotFound { id: i64 },
    #[error("No se encontró el cuestionario con ID {id}")]
    QuestionnaireNotFound { id: i64 },
    #[error("No se encontró el usuario con ID {id}")]
    UserNotFound { id: i64 },
    /// A questionnaire enabled for an operation type that does not exist.
    #[error("El campo tipos_operacao no es válido: no existe el tipo de operación con ID {id}")]
    UnknownOperationType { id: i64 },
    #[error("El campo empresa_id no es válido: no existe la empresa con ID {id}")]
    UnknownCompany { id: i64 },
    #[error("El campo eventos debe nombrar al menos un evento")]
    WebhookWithoutEvents,
    #[error("Ya existe una empresa con ese token")]
    TokenTaken,
    #[error("the batch is empty")]
    EmptyBatch,
    #[error("some entries are invalid")]
    /// Boxed: six index lists would make every `Result` of the aggregate carry them.
    BatchRefused(Box<BatchRefusal>),
    #[error("inspection hash {0} is already taken")]
    HashTaken(String),
    #[error("Auto inspeção não encontrada")]
    InspectionNotFound,
    #[error("A auto inspeção está {}; não pode passar a {}", from.as_str(), to.as_str())]
    Transition {
        from: InspectionStatus,
        to: InspectionStatus,
    },
}

fn checked_name(raw: &str, field: &'static str) -> Result<String, InspectionError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(InspectionError::EmptyName { field });
    }
    if name.chars().count() > NAME_LEN_MAX {
        return Err(InspectionError::NameTooLong { field });
    }
    Ok(name.to_string())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Company {
    token: TokenHash,
    bloquear_placas_repetidas: bool,
    ativo: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Questionnaire {
    ativo: bool,
    tipos_operacao: Vec<i64>,
}

/// What the stream knows of one inspection: enough to decide conflicts and transitions.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Inspection {
    empresa_id: i64,
    veiculo_placa: Placa,
    status: InspectionStatus,
}

/// The whole family's state. Reference data is indexed by id (ids are dense from 1).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Inspections {
    companies: Vec<Company>,
    /// Token hash → company id.
    tokens: HashMap<String, i64>,
    operation_types: Vec<bool>,
    questionnaires: Vec<Questionnaire>,
    users: Vec<bool>,
    inspections: HashMap<InspectionHash, Inspection>,
    /// `empresa_id:PLACA` → how many of its inspections are open.
    open_plates: HashMap<String, u32>,
    /// How many webhooks are registered (ids are dense from 1).
    webhooks: i64,
}

fn plate_key(empresa_id: i64, placa: &Placa) -> String {
    format!("{empresa_id}:{}", placa.as_str())
}

#[derive(Debug, Clone)]
pub enum InspectionCommand {
    RegisterCompany {
        nome: String,
        token: TokenHash,
        bloquear_placas_repetidas: bool,
    },
    ChangeCompany {
        id: i64,
        ativo: Option<bool>,
        bloquear_placas_repetidas: Option<bool>,
    },
    RegisterOperationType {
        nome: String,
        ativo: bool,
    },
    ChangeOperationType {
        id: i64,
        ativo: Option<bool>,
    },
    RegisterQuestionnaire {
        nome: String,
        ativo: bool,
        tipos_operacao: Vec<i64>,
    },
    ChangeQuestionnaire {
        id: i64,
        ativo: Option<bool>,
    },
    RegisterUser {
        nome: String,
    },
    ChangeUser {
        id: i64,
        ativo: Option<bool>,
    },
    /// A company's webhook; its URL arrives checked and its signing secret already sealed
    /// (encrypted at rest).
    RegisterWebhook {
        empresa_id: i64,
        url: String,
        eventos: Vec<WebhookEvento>,
        secret_sealed: String,
    },
    /// Queues every entry, or none (seed 003's all-or-nothing validation).
    RequestBatch {
        entries: Vec<BatchEntry>,
    },
    /// The processor's step: queued inspections become open, each with its link. One that is no
    /// longer pending (processed already, or cancelled first) is left as it is.
    Open {
        hashes: Vec<InspectionHash>,
    },
    Conclude {
        hash: InspectionHash,
    },
    Cancel {
        hash: InspectionHash,
    },
}

/// One queued inspection, as the batch's entry gave it (normalised).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestedInspection {
    pub hash: InspectionHash,
    pub empresa_id: i64,
    pub id_tipo_operacao: i64,
    pub veiculo_placa: Placa,
    pub veiculo_tipo: i64,
    pub veiculo_nome: String,
    pub cliente_nome: String,
    pub cliente_email: String,
    pub cliente_numero: MobilePhone,
    pub criado_por: i64,
    pub selecionar_galeria: bool,
    pub enviar_para_usuario: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InspectionEvent {
    CompanyRegistered {
        id: i64,
        nome: String,
        /// sha256 of the token, hex: the token is shown once and never stored.
        token_sha256: TokenHash,
        bloquear_placas_repetidas: bool,
    },
    CompanyChanged {
        id: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ativo: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bloquear_placas_repetidas: Option<bool>,
    },
    OperationTypeRegistered {
        id: i64,
        nome: String,
        ativo: bool,
    },
    OperationTypeChanged {
        id: i64,
        ativo: bool,
    },
    QuestionnaireRegistered {
        id: i64,
        nome: String,
        ativo: bool,
        tipos_operacao: Vec<i64>,
    },
    QuestionnaireChanged {
        id: i64,
        ativo: bool,
    },
    UserRegistered {
        id: i64,
        nome: String,
    },
    UserChanged {
        id: i64,
        ativo: bool,
    },
    WebhookRegistered {
        id: i64,
        empresa_id: i64,
        url: String,
        eventos: Vec<String>,
        /// The signing secret, encrypted with the service's key: it must be usable for signing,
        /// so it cannot be hashed; it is never shown again.
        secret_sealed: String,
    },
    InspectionRequested {
        inspection: RequestedInspection,
    },
    InspectionCreated {
        hash: InspectionHash,
        status: InspectionStatus,
        link: String,
    },
    InspectionConcluded {
        hash: InspectionHash,
        empresa_id: i64,
        veiculo_placa: Placa,
    },
    InspectionCancelled {
        hash: InspectionHash,
        empresa_id: i64,
        veiculo_placa: Placa,
    },
}

impl DomainEvent for InspectionEvent {
    fn event_type(&self) -> String {
        match self {
            Self::CompanyRegistered { .. } => "CompanyRegistered",
            Self::CompanyChanged { .. } => "CompanyChanged",
            Self::OperationTypeRegistered { .. } => "OperationTypeRegistered",
            Self::OperationTypeChanged { .. } => "OperationTypeChanged",
            Self::QuestionnaireRegistered { .. } => "QuestionnaireRegistered",
            Self::QuestionnaireChanged { .. } => "QuestionnaireChanged",
            Self::UserRegistered { .. } => "UserRegistered",
            Self::UserChanged { .. } => "UserChanged",
            Self::WebhookRegistered { .. } => "WebhookRegistered",
            Self::InspectionRequested { .. } => "InspectionRequested",
            Self::InspectionCreated { .. } => "InspectionCreated",
            Self::InspectionConcluded { .. } => "InspectionConcluded",
            Self::InspectionCancelled { .. } => "InspectionCancelled",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        crate::upcast::REGISTRY
            .current_version(&self.event_type())
            .to_string()
    }
}

/// A 1-based id into a dense list, if it names an entry.
fn slot<T>(list: &[T], id: i64) -> Option<&T> {
    usize::try_from(id)
        .ok()
        .and_then(|id| id.checked_sub(1))
        .and_then(|index| list.get(index))
}

impl Inspections {
    /// The active company whose token hashes to `token`. The map finds the candidate; the
    /// digests are then compared in constant time, so how long a lookup takes says nothing about
    /// how much of a guessed token was right.
    fn company_by_token(&self, token: &TokenHash) -> Option<i64> {
        let id = *self.tokens.get(token.as_str())?;
        let company = slot(&self.companies, id)?;
        let same: bool = company
            .token
            .as_str()
            .as_bytes()
            .ct_eq(token.as_str().as_bytes())
            .into();
        (same && company.ativo).then_some(id)
    }

    fn open_inspections_of(&self, empresa_id: i64, placa: &Placa) -> u32 {
        self.open_plates
            .get(&plate_key(empresa_id, placa))
            .copied()
            .unwrap_or(0)
    }

    /// The status of an inspection, if the stream knows it.
    pub fn status(&self, hash: &InspectionHash) -> Option<InspectionStatus> {
        self.inspections.get(hash).map(|i| i.status)
    }

    /// Sorts every entry into seed 003's categories; queues them all only if none is in any.
    fn decide_batch(
        &self,
        entries: Vec<BatchEntry>,
    ) -> Result<Vec<InspectionEvent>, InspectionError> {
        if entries.is_empty() {
            return Err(InspectionError::EmptyBatch);
        }
        let mut refusal = BatchRefusal::default();
        let mut plates_seen: HashSet<String> = HashSet::with_capacity(entries.len());
        let mut hashes_seen: HashSet<InspectionHash> = HashSet::with_capacity(entries.len());
        let mut events = Vec::with_capacity(entries.len());
        for (index, entry) in entries.into_iter().enumerate() {
            let company = entry
                .token
                .as_ref()
                .and_then(|token| self.company_by_token(token));
            let user_known = entry
                .criado_por
                .and_then(|id| slot(&self.users, id))
                .is_some_and(|active| *active);
            if matches!(entry.cliente_numero, Some(None)) {
                refusal.entradas_numero_invalido.push(index);
            }
            if let Some(id) = entry.id_tipo_operacao {
                if !slot(&self.operation_types, id).is_some_and(|active| *active) {
                    refusal.entradas_tipo_operacao_invalido.push(index);
                }
            }
            if let Some(id) = entry.veiculo_tipo {
                let enabled = slot(&self.questionnaires, id).is_some_and(|q| {
                    q.ativo
                        && entry
                            .id_tipo_operacao
                            .is_none_or(|tipo| q.tipos_operacao.contains(&tipo))
                });
                if !enabled {
                    refusal.entradas_questionario_invalido.push(index);
                }
            }
            if let (Some(empresa_id), Some(placa)) = (company, entry.veiculo_placa.as_ref()) {
                let blocks =
                    slot(&self.companies, empresa_id).is_some_and(|c| c.bloquear_placas_repetidas);
                if !plates_seen.insert(plate_key(empresa_id, placa)) && blocks {
                    refusal.entradas_repetidas.push(index);
                }
                if self.open_inspections_of(empresa_id, placa) > 0 {
                    refusal.entradas_conflitantes.push(index);
                }
            }
            let complete = user_known.then_some(()).and_then(|()| {
                Some(RequestedInspection {
                    hash: entry.hash?,
                    empresa_id: company?,
                    id_tipo_operacao: entry.id_tipo_operacao?,
                    veiculo_placa: entry.veiculo_placa?,
                    veiculo_tipo: entry.veiculo_tipo?,
                    veiculo_nome: entry.veiculo_nome?,
                    cliente_nome: entry.cliente_nome?,
                    cliente_email: entry.cliente_email?,
                    // An invalid number is its own category, not missing data.
                    cliente_numero: entry.cliente_numero?.unwrap_or(MobilePhone(String::new())),
                    criado_por: entry.criado_por?,
                    selecionar_galeria: entry.selecionar_galeria?,
                    enviar_para_usuario: entry.enviar_para_usuario?,
                })
            });
            match complete {
                None => refusal.entradas_dados_faltando.push(index),
                Some(inspection) if refusal.is_empty() => {
                    if self.inspections.contains_key(&inspection.hash)
                        || !hashes_seen.insert(inspection.hash.clone())
                    {
                        // 128 random bits drawn twice: a broken random source, not bad input.
                        return Err(InspectionError::HashTaken(inspection.hash.0));
                    }
                    events.push(InspectionEvent::InspectionRequested { inspection });
                }
                Some(_) => {}
            }
        }
        if !refusal.is_empty() {
            return Err(InspectionError::BatchRefused(Box::new(refusal)));
        }
        Ok(events)
    }

    /// The events `command` appends, or why it is refused; `handle` writes them.
    pub fn decide(
        &self,
        command: InspectionCommand,
    ) -> Result<Vec<InspectionEvent>, InspectionError> {
        use InspectionCommand as C;
        use InspectionEvent as E;
        let event = match command {
            C::RegisterCompany {
                nome,
                token,
                bloquear_placas_repetidas,
            } => {
                if self.tokens.contains_key(token.as_str()) {
                    return Err(InspectionError::TokenTaken);
                }
                E::CompanyRegistered {
                    id: self.companies.len() as i64 + 1,
                    nome: checked_name(&nome, "nome")?,
                    token_sha256: token,
                    bloquear_placas_repetidas,
                }
            }
            C::ChangeCompany {
                id,
                ativo,
                bloquear_placas_repetidas,
            } => {
                let company =
                    slot(&self.companies, id).ok_or(InspectionError::CompanyNotFound { id })?;
                let ativo = ativo.filter(|a| *a != company.ativo);
                let bloquear_placas_repetidas =
                    bloquear_placas_repetidas.filter(|b| *b != company.bloquear_placas_repetidas);
                if ativo.is_none() && bloquear_placas_repetidas.is_none() {
                    return Ok(Vec::new());
                }
                E::CompanyChanged {
                    id,
                    ativo,
                    bloquear_placas_repetidas,
                }
            }
            C::RegisterOperationType { nome, ativo } => E::OperationTypeRegistered {
                id: self.operation_types.len() as i64 + 1,
                nome: checked_name(&nome, "nome")?,
                ativo,
            },
            C::ChangeOperationType { id, ativo } => {
                let current = *slot(&self.operation_types, id)
                    .ok_or(InspectionError::OperationTypeNotFound { id })?;
                match ativo.filter(|a| *a != current) {
                    Some(ativo) => E::OperationTypeChanged { id, ativo },
                    None => return Ok(Vec::new()),
                }
            }
            C::RegisterQuestionnaire {
                nome,
                ativo,
                tipos_operacao,
            } => {
                let nome = checked_name(&nome, "nome")?;
                if let Some(&id) = tipos_operacao
                    .iter()
                    .find(|id| slot(&self.operation_types, **id).is_none())
                {
                    return Err(InspectionError::UnknownOperationType { id });
                }
                let mut tipos_operacao = tipos_operacao;
                tipos_operacao.sort_unstable();
                tipos_operacao.dedup();
                E::QuestionnaireRegistered {
                    id: self.questionnaires.len() as i64 + 1,
                    nome,
                    ativo,
                    tipos_operacao,
                }
            }
            C::ChangeQuestionnaire { id, ativo } => {
                let current = slot(&self.questionnaires, id)
                    .ok_or(InspectionError::QuestionnaireNotFound { id })?;
                match ativo.filter(|a| *a != current.ativo) {
                    Some(ativo) => E::QuestionnaireChanged { id, ativo },
                    None => return Ok(Vec::new()),
                }
            }
            C::RegisterUser { nome } => E::UserRegistered {
                id: self.users.len() as i64 + 1,
                nome: checked_name(&nome, "nome")?,
            },
            C::ChangeUser { id, ativo } => {
                let current = *slot(&self.users, id).ok_or(InspectionError::UserNotFound { id })?;
                match ativo.filter(|a| *a != current) {
                    Some(ativo) => E::UserChanged { id, ativo },
                    None => return Ok(Vec::new()),
                }
            }
            C::RegisterWebhook {
                empresa_id,
                url,
                eventos,
                secret_sealed,
            } => {
                if slot(&self.companies, empresa_id).is_none() {
                    return Err(InspectionError::UnknownCompany { id: empresa_id });
                }
                let mut eventos = eventos;
                eventos.sort_unstable();
                eventos.dedup();
                if eventos.is_empty() {
                    return Err(InspectionError::WebhookWithoutEvents);
                }
                E::WebhookRegistered {
                    id: self.webhooks + 1,
                    empresa_id,
                    url,
                    eventos: eventos.iter().map(|e| e.as_str().to_string()).collect(),
                    secret_sealed,
                }
            }
            C::RequestBatch { entries } => return self.decide_batch(entries),
            C::Open { hashes } => {
                let mut events = Vec::with_capacity(hashes.len());
                for hash in hashes {
                    match self.inspections.get(&hash) {
                        Some(inspection) if inspection.status == InspectionStatus::Pendente => {
                            events.push(E::InspectionCreated {
                                link: inspection_link(&hash),
                                hash,
                                status: InspectionStatus::Aberta,
                            });
                        }
                        Some(_) => {}
                        None => return Err(InspectionError::InspectionNotFound),
                    }
                }
                return Ok(events);
            }
            C::Conclude { hash } => {
                let inspection = self.transition(&hash, InspectionStatus::Concluida)?;
                E::InspectionConcluded {
                    hash,
                    empresa_id: inspection.empresa_id,
                    veiculo_placa: inspection.veiculo_placa.clone(),
                }
            }
            C::Cancel { hash } => {
                let inspection = self.transition(&hash, InspectionStatus::Cancelada)?;
                E::InspectionCancelled {
                    hash,
                    empresa_id: inspection.empresa_id,
                    veiculo_placa: inspection.veiculo_placa.clone(),
                }
            }
        };
        Ok(vec![event])
    }

    /// An inspection concludes only once open (its link exists); it is cancelled while pending
    /// or open. Anything else names both states.
    fn transition(
        &self,
        hash: &InspectionHash,
        to: InspectionStatus,
    ) -> Result<&Inspection, InspectionError> {
        let inspection = self
            .inspections
            .get(hash)
            .ok_or(InspectionError::InspectionNotFound)?;
        let allowed = match to {
            InspectionStatus::Concluida => inspection.status == InspectionStatus::Aberta,
            InspectionStatus::Cancelada => inspection.status.is_open(),
            _ => false,
        };
        if !allowed {
            return Err(InspectionError::Transition {
                from: inspection.status,
                to,
            });
        }
        Ok(inspection)
    }

    fn close(&mut self, hash: &InspectionHash, status: InspectionStatus) {
        if let Some(inspection) = self.inspections.get_mut(hash) {
            if inspection.status.is_open() {
                let key = plate_key(inspection.empresa_id, &inspection.veiculo_placa);
                if let Some(count) = self.open_plates.get_mut(&key) {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        self.open_plates.remove(&key);
                    }
                }
            }
            inspection.status = status;
        }
    }
}

/// Sets `list[id - 1]`, growing the list: ids are dense, but `apply` never fails.
fn put<T: Clone>(list: &mut Vec<T>, id: i64, value: T) {
    let Some(index) = usize::try_from(id).ok().and_then(|id| id.checked_sub(1)) else {
        return;
    };
    if list.len() <= index {
        list.resize(index + 1, value.clone());
    }
    list[index] = value;
}

impl Aggregate for Inspections {
    const TYPE: &'static str = "auto-inspecao";
    type Command = InspectionCommand;
    type Event = InspectionEvent;
    type Error = InspectionError;
    type Services = ();

    async fn handle(
        &mut self,
        command: InspectionCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), InspectionError> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: InspectionEvent) {
        use InspectionEvent as E;
        match event {
            E::CompanyRegistered {
                id,
                token_sha256,
                bloquear_placas_repetidas,
                ..
            } => {
                self.tokens.insert(token_sha256.as_str().to_string(), id);
                put(
                    &mut self.companies,
                    id,
                    Company {
                        token: token_sha256,
                        bloquear_placas_repetidas,
                        ativo: true,
                    },
                );
            }
            E::CompanyChanged {
                id,
                ativo,
                bloquear_placas_repetidas,
            } => {
                if let Some(company) = usize::try_from(id - 1)
                    .ok()
                    .and_then(|i| self.companies.get_mut(i))
                {
                    if let Some(ativo) = ativo {
                        company.ativo = ativo;
                    }
                    if let Some(bloquear) = bloquear_placas_repetidas {
                        company.bloquear_placas_repetidas = bloquear;
                    }
                }
            }
            E::OperationTypeRegistered { id, ativo, .. }
            | E::OperationTypeChanged { id, ativo } => put(&mut self.operation_types, id, ativo),
            E::QuestionnaireRegistered {
                id,
                ativo,
                tipos_operacao,
                ..
            } => put(
                &mut self.questionnaires,
                id,
                Questionnaire {
                    ativo,
                    tipos_operacao,
                },
            ),
            E::QuestionnaireChanged { id, ativo } => {
                if let Some(q) = usize::try_from(id - 1)
                    .ok()
                    .and_then(|i| self.questionnaires.get_mut(i))
                {
                    q.ativo = ativo;
                }
            }
            E::UserRegistered { id, .. } => put(&mut self.users, id, true),
            E::UserChanged { id, ativo } => put(&mut self.users, id, ativo),
            E::WebhookRegistered { id, .. } => self.webhooks = self.webhooks.max(id),
            E::InspectionRequested { inspection } => {
                *self
                    .open_plates
                    .entry(plate_key(inspection.empresa_id, &inspection.veiculo_placa))
                    .or_default() += 1;
                self.inspections.insert(
                    inspection.hash,
                    Inspection {
                        empresa_id: inspection.empresa_id,
                        veiculo_placa: inspection.veiculo_placa,
                        status: InspectionStatus::Pendente,
                    },
                );
            }
            E::InspectionCreated { hash, status, .. } => {
                if let Some(inspection) = self.inspections.get_mut(&hash) {
                    inspection.status = status;
                }
            }
            E::InspectionConcluded { hash, .. } => self.close(&hash, InspectionStatus::Concluida),
            E::InspectionCancelled { hash, .. } => self.close(&hash, InspectionStatus::Cancelada),
        }
    }
}

/// Seed 003's field order of an entry, for rendering.
pub const ENTRY_FIELDS: [&str; 11] = [
    "token",
    "id_tipo_operacao",
    "veiculo_placa",
    "veiculo_tipo",
    "veiculo_nome",
    "cliente_nome",
    "cliente_email",
    "cliente_numero",
    "criado_por",
    "selecionar_galeria",
    "enviar_para_usuario",
];

/// `sim`/`nao` as seed 003 writes its flags.
pub fn sim_nao(flag: bool) -> &'static str {
    if flag {
        "sim"
    } else {
        "nao"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mobile_numbers_are_read_as_people_write_them_and_kept_as_digits() {
        for written in [
            "44999999999",
            "(44) 99999-9999",
            "44 99999 9999",
            "(11) 9.8765-4321",
        ] {
            let phone = MobilePhone::parse(written).unwrap();
            assert_eq!(phone.as_str().len(), 11, "{written}");
        }
        assert_eq!(
            MobilePhone::parse("(44) 99999-9999").unwrap().as_str(),
            "44999999999"
        );
        for refused in [
            "",
            "4499999999",        // 10 digits
            "449999999999",      // 12 digits
            "+55 44 99999-9999", // a country code
            "44899999999",       // no 9 after the DDD
            "20999999999",       // DDD 20 does not exist
            "10999999999",       // nor does 10
            "4499999999a",
            "44/99999-9999",
        ] {
            assert_eq!(MobilePhone::parse(refused), None, "{refused}");
        }
        assert_eq!(BRAZILIAN_DDDS.len(), 67);
        assert!(BRAZILIAN_DDDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn plates_are_brazilian_old_or_mercosul() {
        assert_eq!(brazilian_plate("abc-1234").unwrap().as_str(), "ABC1234");
        assert_eq!(brazilian_plate("ABC 1D23").unwrap().as_str(), "ABC1D23");
        for refused in ["", "AB1234", "ABCD123", "ABC12345", "1BC1234", "ABC12D3"] {
            assert_eq!(brazilian_plate(refused), None, "{refused}");
        }
    }

    #[test]
    fn hashes_and_token_digests_are_only_their_exact_shape() {
        assert!(InspectionHash::parse(&"a1".repeat(16)).is_some());
        assert!(InspectionHash::parse(&"A1".repeat(16)).is_none());
        assert!(InspectionHash::parse(&"a1".repeat(15)).is_none());
        assert!(TokenHash::from_hex("0f".repeat(32)).is_some());
        assert!(TokenHash::from_hex("0g".repeat(32)).is_none());
    }
}
