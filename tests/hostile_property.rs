//! Random and mutated requests at every endpoint `app()` routes (issue 10): whatever arrives,
//! the service never answers 5xx (a panic would be a 500), and a refused request (4xx) appends
//! nothing to the log.
//!
//! Bounded for CI: `FLEET_LEDGER_FUZZ_CASES` requests per store (1,000 by default, a couple of
//! seconds); set it higher to search longer, e.g.
//! `FLEET_LEDGER_FUZZ_CASES=50000 cargo test --test hostile_property`. With
//! `FLEET_LEDGER_FUZZ_TRACE=1` (and `-- --nocapture`) every request and answer is printed.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::TestApp;
use fleet_ledger::auth::Role;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value};

on_both_stores!(random_requests_never_fail_the_server_nor_write_when_refused);

/// Requests per store unless `FLEET_LEDGER_FUZZ_CASES` says otherwise.
const CASES_DEFAULT: u32 = 1000;

/// What a path's `{id}` stands for.
#[derive(Debug, Clone, Copy)]
enum Param {
    None,
    Id,
    Catalog,
    Account,
    /// `{tipo}/{id}` of the audit routes, as one parameter.
    Subject,
    /// A token's `sub`.
    Sub,
}

/// One route and method of `app()`, with a body it would accept and the query parameters it
/// reads.
struct Endpoint {
    method: Method,
    path: &'static str,
    param: Param,
    body: Option<&'static str>,
    query: &'static [&'static str],
}

const fn endpoint(
    method: Method,
    path: &'static str,
    param: Param,
    body: Option<&'static str>,
    query: &'static [&'static str],
) -> Endpoint {
    Endpoint {
        method,
        path,
        param,
        body,
        query,
    }
}

const TANQUEO: &str = r#"{"fecha":"2024-03-15","conductor_id":1,"placa_id":1,"bomba_id":1,"area_operacion_id":1,"tipo_combustible":"ACPM","valor_tanqueo":150000,"cantidad_galones":12.5,"horometro":1250.5,"saldo_disponible":350000,"concepto":"OPERATIVO","tipo_operacion":"TANQUEO","observacion":"ruta"}"#;
const VEHICULO: &str = r#"{"placa":"P503067","idClaseVehiculo":1,"idEstadoVehiculo":1,"marca":"TOYOTA","anio":2020,"kilometrajeActual":1000,"capacidadCombustibleGalones":20.5,"fechaUltimaRevision":"2024-01-01","idEmpresa":4}"#;
const INSPECTION_BATCH: &str = r#"[{"token":"AAA000","veiculo_placa":"ABC1234","id_tipo_operacao":45,"veiculo_tipo":19777,"veiculo_nome":"Corsa","cliente_nome":"David","cliente_email":"david@example.com","cliente_numero":"44999999999","criado_por":24681,"selecionar_galeria":"sim","enviar_para_usuario":"nao"}]"#;
/// A documentation address: public to the policy, routed nowhere.
const WEBHOOK: &str = r#"{"empresa_id":1,"url":"https://203.0.113.10/hooks","eventos":["auto_inspecao.criada","auto_inspecao.cancelada"]}"#;
const TANQUEO_FILTERS: &[&str] = &[
    "desde",
    "hasta",
    "bomba_id",
    "placa_id",
    "conductor_id",
    "area_operacion_id",
    "tipo_operacion",
    "concepto",
    "tipo_combustible",
    "page",
    "limit",
];

/// Every route `app()` lists (src/lib.rs), with each method it routes. `/readyz` is checked
/// apart: it answers 503 by design while a projection catches up.
fn endpoints() -> Vec<Endpoint> {
    use Param::*;
    let (get, post, put, patch, delete) = (
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    );
    vec![
        endpoint(get.clone(), "/healthz", None, Option::None, &[]),
        endpoint(get.clone(), "/metrics", None, Option::None, &[]),
        endpoint(get.clone(), "/openapi.json", None, Option::None, &[]),
        endpoint(
            get.clone(),
            "/api/eventos",
            None,
            Option::None,
            &["desde_posicion", "limite", "tipos", "stream"],
        ),
        endpoint(
            get.clone(),
            "/api/eventos/stream",
            None,
            Option::None,
            &["desde_posicion", "tipos", "stream"],
        ),
        endpoint(
            get.clone(),
            "/api/auditoria/actores/{sub}/eventos",
            Sub,
            Option::None,
            &["desde", "hasta", "tipos", "desde_posicion", "limite"],
        ),
        endpoint(
            get.clone(),
            "/api/auditoria/{tipo}/{id}/eventos",
            Subject,
            Option::None,
            &["desde_posicion", "limite"],
        ),
        endpoint(
            get.clone(),
            "/api/auditoria/{tipo}/{id}",
            Subject,
            Option::None,
            &["as_of"],
        ),
        endpoint(
            get.clone(),
            "/api/admin/proyecciones",
            None,
            Option::None,
            &[],
        ),
        // Names that are no projection's (a rebuild of a real one is tests/replay.rs's).
        endpoint(
            post.clone(),
            "/api/admin/proyecciones/{name}/reconstruir",
            Id,
            Option::None,
            &[],
        ),
        endpoint(get.clone(), "/api/areas-operacion", None, Option::None, &[]),
        endpoint(
            post.clone(),
            "/api/areas-operacion",
            None,
            Some(r#"[{"nombre":"Norte"},{"nombre":"Sur"}]"#),
            &[],
        ),
        endpoint(
            get.clone(),
            "/api/areas-operacion/{id}",
            Id,
            Option::None,
            &[],
        ),
        endpoint(get.clone(), "/api/placas", None, Option::None, &["estado"]),
        endpoint(
            post.clone(),
            "/api/placas",
            None,
            Some(r#"{"placa":"XYZ-987","estado":"ACTIVADA"}"#),
            &[],
        ),
        endpoint(get.clone(), "/api/placas/{id}", Id, Option::None, &[]),
        endpoint(
            patch.clone(),
            "/api/placas/{id}",
            Id,
            Some(r#"{"estado":"DESACTIVADA"}"#),
            &[],
        ),
        endpoint(get.clone(), "/api/conductores", None, Option::None, &[]),
        endpoint(
            post.clone(),
            "/api/conductores",
            None,
            Some(r#"{"conductor":"Ana Gómez","area_principal":1}"#),
            &[],
        ),
        endpoint(get.clone(), "/api/conductores/{id}", Id, Option::None, &[]),
        endpoint(get.clone(), "/api/bombas", None, Option::None, &[]),
        endpoint(
            post.clone(),
            "/api/bombas",
            None,
            Some(r#"{"bomba":"Norte","area_operacion_id":1,"permitir_saldo_negativo":false}"#),
            &[],
        ),
        endpoint(get.clone(), "/api/bombas/{id}", Id, Option::None, &[]),
        endpoint(
            patch.clone(),
            "/api/bombas/{id}",
            Id,
            Some(r#"{"bomba":"Sur","permitir_saldo_negativo":true}"#),
            &[],
        ),
        endpoint(
            get.clone(),
            "/api/catalogos/{catalogo}",
            Catalog,
            Option::None,
            &[],
        ),
        endpoint(
            post.clone(),
            "/api/catalogos/{catalogo}",
            Catalog,
            Some(r#"{"nombre":"Furgón"}"#),
            &[],
        ),
        endpoint(post.clone(), "/api/flota/sync", None, Option::None, &[]),
        endpoint(
            get.clone(),
            "/api/tanqueos",
            None,
            Option::None,
            TANQUEO_FILTERS,
        ),
        endpoint(post.clone(), "/api/tanqueos", None, Some(TANQUEO), &[]),
        endpoint(get.clone(), "/api/tanqueos/{id}", Id, Option::None, &[]),
        endpoint(
            put.clone(),
            "/api/tanqueos/{id}",
            Id,
            Some(r#"{"valor_tanqueo":140000,"observacion":"corregido"}"#),
            &[],
        ),
        endpoint(
            post.clone(),
            "/api/tanqueos/{id}/anular",
            Id,
            Some(r#"{"motivo":"Registrado dos veces"}"#),
            &[],
        ),
        endpoint(
            get.clone(),
            "/api/alertas",
            None,
            Option::None,
            &[
                "regla",
                "severidad",
                "estado",
                "placa_id",
                "bomba_id",
                "desde",
                "hasta",
                "page",
                "limit",
            ],
        ),
        endpoint(
            post.clone(),
            "/api/alertas/{id}/revisar",
            Id,
            Some(r#"{"resolucion":"confirmada","nota":"revisada"}"#),
            &[],
        ),
        endpoint(get.clone(), "/api/alertas/bandas", None, Option::None, &[]),
        endpoint(
            Method::PUT,
            "/api/alertas/bandas",
            None,
            Some(
                r#"{"tipo_combustible":"ACPM","desde":"2026-01-01","hasta":null,"minimo":9500,"maximo":14500}"#,
            ),
            &[],
        ),
        endpoint(
            post.clone(),
            "/api/tanqueos/import",
            None,
            Some(
                r#"{"area_operacion_id":1,"bomba_id":1,"records":[{"FECHA":"15/03/2024","NOMBRE CONDUCTOR":"juan perez","PLACA":"abc 123","TIPO COMBUSTIBLE":"ACPM","VALOR TANQUEO":"$150.000","CANTIDAD GALONES":"12,5"}]}"#,
            ),
            &["atomico"],
        ),
        endpoint(get.clone(), "/api/cierres", None, Option::None, &[]),
        endpoint(
            post.clone(),
            "/api/cierres",
            None,
            Some(r#"{"anio":2024,"mes":2}"#),
            &[],
        ),
        endpoint(
            post.clone(),
            "/api/cierres/reabrir",
            None,
            Some(r#"{"anio":2024,"mes":2,"motivo":"Factura tardía"}"#),
            &[],
        ),
        endpoint(
            get.clone(),
            "/api/bombas/{id}/saldo",
            Id,
            Option::None,
            &["as_of", "fecha_corte"],
        ),
        endpoint(get.clone(), "/api/saldos-bombas", None, Option::None, &[]),
        endpoint(
            get.clone(),
            "/api/bombas/{id}/movimientos",
            Id,
            Option::None,
            &["desde", "hasta"],
        ),
        endpoint(
            get.clone(),
            "/api/reconciliacion",
            None,
            Option::None,
            &["bomba_id", "desde", "hasta"],
        ),
        endpoint(
            get.clone(),
            "/api/contabilidad/balance-prueba",
            None,
            Option::None,
            &["as_of"],
        ),
        endpoint(
            get.clone(),
            "/api/contabilidad/cuentas/{cuenta}/movimientos",
            Account,
            Option::None,
            &[],
        ),
        endpoint(
            get.clone(),
            "/api/misiones",
            None,
            Option::None,
            &["vehiculo_id", "estado"],
        ),
        endpoint(
            post.clone(),
            "/api/misiones",
            None,
            Some(
                r#"{"vehiculo_id":1,"conductor_id":1,"descripcion":"Ruta norte","fecha_programada":"2026-03-01"}"#,
            ),
            &[],
        ),
        endpoint(get.clone(), "/api/misiones/{id}", Id, Option::None, &[]),
        endpoint(
            post.clone(),
            "/api/misiones/{id}/iniciar",
            Id,
            Some(r#"{"kilometraje_inicial":120500,"combustible_inicial_galones":30}"#),
            &[],
        ),
        endpoint(
            post.clone(),
            "/api/misiones/{id}/finalizar",
            Id,
            Some(r#"{"kilometraje_final":120730,"combustible_final_galones":21.5}"#),
            &[],
        ),
        endpoint(
            post.clone(),
            "/api/misiones/{id}/cancelar",
            Id,
            Some(r#"{"motivo":"Vehículo en taller"}"#),
            &[],
        ),
        endpoint(
            get.clone(),
            "/vehiculo",
            None,
            Option::None,
            &["incluir_eliminados", "empresa_id", "operacion_id"],
        ),
        endpoint(post.clone(), "/vehiculo", None, Some(VEHICULO), &[]),
        endpoint(get.clone(), "/vehiculo/{id}", Id, Option::None, &[]),
        endpoint(
            put,
            "/vehiculo/{id}",
            Id,
            Some(r#"{"kilometrajeActual":130000,"observaciones":"ok"}"#),
            &[],
        ),
        endpoint(delete, "/vehiculo/{id}", Id, Option::None, &[]),
        endpoint(get.clone(), "/api/empresas", None, Option::None, &[]),
        endpoint(
            post.clone(),
            "/api/empresas",
            None,
            Some(r#"{"nome":"Vistorias","bloquear_placas_repetidas":true}"#),
            &[],
        ),
        endpoint(
            patch.clone(),
            "/api/empresas/{id}",
            Id,
            Some(r#"{"ativo":false,"bloquear_placas_repetidas":true}"#),
            &[],
        ),
        endpoint(get.clone(), "/api/tipos-operacao", None, Option::None, &[]),
        endpoint(
            post.clone(),
            "/api/tipos-operacao",
            None,
            Some(r#"{"nome":"Venda","ativo":true}"#),
            &[],
        ),
        endpoint(
            patch.clone(),
            "/api/tipos-operacao/{id}",
            Id,
            Some(r#"{"ativo":false}"#),
            &[],
        ),
        endpoint(get.clone(), "/api/questionarios", None, Option::None, &[]),
        endpoint(
            post.clone(),
            "/api/questionarios",
            None,
            Some(r#"{"nome":"Carro","ativo":true,"tipos_operacao":[1,2]}"#),
            &[],
        ),
        endpoint(
            patch.clone(),
            "/api/questionarios/{id}",
            Id,
            Some(r#"{"ativo":false}"#),
            &[],
        ),
        endpoint(get.clone(), "/api/usuarios", None, Option::None, &[]),
        endpoint(
            post.clone(),
            "/api/usuarios",
            None,
            Some(r#"{"nome":"David"}"#),
            &[],
        ),
        endpoint(
            patch.clone(),
            "/api/usuarios/{id}",
            Id,
            Some(r#"{"ativo":false}"#),
            &[],
        ),
        endpoint(get.clone(), "/api/webhooks", None, Option::None, &[]),
        endpoint(post.clone(), "/api/webhooks", None, Some(WEBHOOK), &[]),
        endpoint(
            get.clone(),
            "/api/webhooks/{id}/entregas",
            Id,
            Option::None,
            &["limite"],
        ),
        endpoint(
            post.clone(),
            "/api/webhooks/{id}/entregas/{entrega}/reenviar",
            Id,
            Option::None,
            &[],
        ),
        endpoint(
            post.clone(),
            "/auto-inspecao/criar-em-lote",
            None,
            Some(INSPECTION_BATCH),
            &[],
        ),
        endpoint(get.clone(), "/auto-inspecao/{hash}", Id, Option::None, &[]),
        endpoint(
            post.clone(),
            "/auto-inspecao/{hash}/concluir",
            Id,
            Option::None,
            &[],
        ),
        endpoint(
            post,
            "/auto-inspecao/{hash}/cancelar",
            Id,
            Option::None,
            &[],
        ),
    ]
}

/// JSON numbers as clients send them, exact and hostile (arbitrary precision keeps the text).
fn json_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        (0i64..200).prop_map(Value::from),
        (any::<i32>(), 0u32..12).prop_map(|(n, scale)| {
            serde_json::from_str(&rust_decimal::Decimal::new(n.into(), scale).to_string())
                .unwrap_or(Value::Null)
        }),
        prop::sample::select(vec![
            "0",
            "-0",
            "1e400",
            "-1e400",
            "1E-2",
            "0.0000001",
            "1.500000000",
            "99999999999999999999999999999999",
            "1000000000000001",
            "-1",
            "12.10",
            "1e15",
            "9223372036854775808",
            "-9223372036854775809",
            "0.1e-400",
        ])
        .prop_map(|text| serde_json::from_str(text).unwrap_or(Value::Null)),
    ]
}

/// Text as clients send it: ordinary, empty, padded, enormous, or holding what stores choke on.
fn json_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,24}",
        "[A-Z0-9 -]{0,12}",
        prop::sample::select(vec![
            "",
            " ",
            "\u{0}",
            "a\u{0}b",
            "2024-03-15",
            "2024-02-30",
            "15/03/2024",
            "ACPM",
            "TANQUEO",
            "ANTICIPO",
            "ACTIVADA",
            "DESACTIVADA",
            "'; DROP TABLE tanqueo; --",
            "$150.000",
            "12,5",
            "abc",
            "\u{202e}rtl",
            "😀",
            "\\",
            "\"",
        ])
        .prop_map(str::to_string),
        (1usize..3000).prop_map(|n| "x".repeat(n)),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        json_number(),
        json_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{1,10}", inner), 0..4)
                .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// How a valid example body is bent.
#[derive(Debug, Clone)]
enum Mutation {
    /// The example as it is.
    Keep,
    /// One field (picked by index) given another value.
    Replace(usize, Value),
    /// One field left out.
    Remove(usize),
    /// A field the endpoint does not know.
    Add(String, Value),
    /// The example inside an array, possibly repeated.
    Wrap(usize),
    /// Any JSON at all.
    Random(Value),
    /// Bytes that may not even be JSON.
    Raw(Vec<u8>),
    /// The example cut short.
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => Just(Mutation::Keep),
        6 => (any::<usize>(), json_value()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        2 => any::<usize>().prop_map(Mutation::Remove),
        1 => ("[a-zA-Z_ ]{1,12}", json_value()).prop_map(|(k, v)| Mutation::Add(k, v)),
        1 => (0usize..4).prop_map(Mutation::Wrap),
        2 => json_value().prop_map(Mutation::Random),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Mutation::Raw),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(example: &str, mutation: &Mutation) -> Vec<u8> {
    let Ok(mut value) = serde_json::from_str::<Value>(example) else {
        return example.as_bytes().to_vec();
    };
    // Arrays of examples are bent in their first item.
    let target = match &mut value {
        Value::Array(items) => items.first_mut(),
        other => Some(other),
    };
    if let Some(Value::Object(map)) = target {
        let keys: Vec<String> = map.keys().cloned().collect();
        let pick = |i: usize| keys.get(i % keys.len().max(1)).cloned();
        match mutation {
            Mutation::Replace(i, v) => {
                if let Some(key) = pick(*i) {
                    map.insert(key, v.clone());
                }
            }
            Mutation::Remove(i) => {
                if let Some(key) = pick(*i) {
                    map.remove(&key);
                }
            }
            Mutation::Add(key, v) => {
                map.insert(key.clone(), v.clone());
            }
            _ => {}
        }
    }
    match mutation {
        Mutation::Wrap(n) => serde_json::to_vec(&vec![value; *n]).unwrap_or_default(),
        Mutation::Random(v) => serde_json::to_vec(v).unwrap_or_default(),
        Mutation::Raw(bytes) => bytes.clone(),
        Mutation::Truncate(at) => {
            let text = value.to_string();
            let cut = at % text.len().max(1);
            text.as_bytes()[..cut].to_vec()
        }
        _ => serde_json::to_vec(&value).unwrap_or_default(),
    }
}

/// A path parameter: mostly ids that exist or nearly, then everything else.
fn path_param(param: Param) -> BoxedStrategy<String> {
    let junk = prop::sample::select(vec![
        "0",
        "-1",
        "abc",
        "1.5",
        "%20",
        "%FF",
        "%C3%28",
        "9223372036854775808",
        "1e3",
        "%2F",
        "..",
        "%00",
        "00001",
        "+1",
    ])
    .prop_map(str::to_string);
    match param {
        Param::None => Just(String::new()).boxed(),
        Param::Id => prop_oneof![4 => (1i64..4).prop_map(|n| n.to_string()), 1 => junk].boxed(),
        Param::Catalog => prop_oneof![
            3 => prop::sample::select(vec![
                "clases-vehiculo", "estados-vehiculo", "tipos-combustible", "departamentos",
                "combustibles",
            ])
            .prop_map(str::to_string),
            1 => junk,
        ]
        .boxed(),
        Param::Subject => prop_oneof![
            3 => prop::sample::select(vec![
                "bomba/1", "placa/1", "vehiculo/1", "mision/1", "catalogo/combustibles",
                "vehiculo/99", "camion/1", "catalogo/colores",
            ])
            .prop_map(str::to_string),
            1 => (junk.clone(), junk.clone()).prop_map(|(tipo, id)| format!("{tipo}/{id}")),
        ]
        .boxed(),
        Param::Sub => prop_oneof![
            3 => prop::sample::select(vec!["ana@flota.co", "system", "nadie"])
                .prop_map(str::to_string),
            1 => junk,
        ]
        .boxed(),
        Param::Account => prop_oneof![
            3 => prop::sample::select(vec![
                "1105-caja", "1330-anticipos-bomba-1", "2205-proveedores-bomba-1",
                "5135-combustible",
            ])
            .prop_map(str::to_string),
            1 => junk,
        ]
        .boxed(),
    }
}

fn query_value() -> impl Strategy<Value = String> {
    prop_oneof![
        (-2i64..5).prop_map(|n| n.to_string()),
        prop::sample::select(vec![
            "",
            ",",
            ",,",
            "1,2",
            "1,,x",
            "2024-03-15",
            "2024-13-01",
            "2024-03-15T10:00:00Z",
            "2024-03-15T10:00:00-05:00",
            "true",
            "false",
            "TANQUEO",
            "anticipo",
            "TanqueoRecorded",
            "vehicledeleted,PlateRegistered",
            "fleet/main",
            "fuel-station",
            "fuel-station/1",
            "fleet/",
            "FOO",
            "OPERATIVO",
            "acpm",
            "ACTIVADA",
            "COMPLETADA",
            "1001",
            "501",
            "9223372036854775807",
            "-9223372036854775808",
            "1e3",
        ])
        .prop_map(str::to_string),
        "\\PC{0,16}",
    ]
}

/// Percent-encodes everything but unreserved characters, so any text makes a valid URI.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Debug, Clone)]
struct Case {
    endpoint: usize,
    param: String,
    query: Vec<(String, String)>,
    mutation: Mutation,
    content_type: Option<&'static str>,
    role: Option<Role>,
    idempotency_key: Option<&'static str>,
}

fn case(endpoints: &[Endpoint]) -> impl Strategy<Value = Case> {
    let count = endpoints.len();
    let shapes: Vec<(Param, Vec<String>)> = endpoints
        .iter()
        .map(|e| (e.param, e.query.iter().map(|q| q.to_string()).collect()))
        .collect();
    (0..count).prop_flat_map(move |index| {
        let (param, keys) = shapes[index].clone();
        let key = if keys.is_empty() {
            "[a-z_]{1,8}".boxed()
        } else {
            prop_oneof![4 => prop::sample::select(keys), 1 => "[a-z_]{1,8}"].boxed()
        };
        (
            Just(index),
            path_param(param),
            prop::collection::vec((key, query_value()), 0..4),
            mutation(),
            prop_oneof![
                8 => Just(Some("application/json")),
                2 => Just(None),
                1 => Just(Some("text/plain")),
            ],
            prop_oneof![
                6 => Just(Some(Role::Admin)),
                2 => Just(Some(Role::Operador)),
                1 => Just(Some(Role::Auditor)),
                1 => Just(None),
            ],
            // A few keys reused across requests: replays, and reuse with another request.
            prop_oneof![
                5 => Just(None),
                1 => Just(Some("clave-1")),
                1 => Just(Some("clave-2")),
                1 => Just(Some("")),
            ],
        )
            .prop_map(
                |(endpoint, param, query, mutation, content_type, role, idempotency_key)| Case {
                    endpoint,
                    param,
                    query,
                    mutation,
                    content_type,
                    role,
                    idempotency_key,
                },
            )
    })
}

/// `path` with each `{…}` parameter replaced by `value` (`{tipo}/{id}` taken as one).
fn with_param(path: &str, value: &str) -> String {
    path.replace("{tipo}/{id}", "{tipo}")
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                value
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn check(app: &TestApp, endpoints: &[Endpoint], case: Case) -> Result<(), TestCaseError> {
    let endpoint = &endpoints[case.endpoint];
    let mut uri = with_param(endpoint.path, &case.param);
    if !case.query.is_empty() {
        let pairs: Vec<String> = case
            .query
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        uri = format!("{uri}?{}", pairs.join("&"));
    }
    let mut request = Request::builder().method(endpoint.method.clone()).uri(&uri);
    if let Some(role) = case.role {
        request = request.header("authorization", format!("Bearer {}", app.token(role)));
    }
    if let Some(key) = case.idempotency_key {
        request = request.header("idempotency-key", key);
    }
    let body = match endpoint.body {
        Some(example) => {
            if let Some(content_type) = case.content_type {
                request = request.header("content-type", content_type);
            }
            Body::from(mutate(example, &case.mutation))
        }
        None => Body::empty(),
    };
    let request = request
        .body(body)
        .map_err(|e| TestCaseError::reject(format!("not a request: {e}")))?;
    // The fuel checks' detector may still be answering an earlier refuel.
    app.consumers_settled().await;
    let head = app.state.log.head().await.unwrap();
    let (status, _, answer) = app.send(request).await;
    if std::env::var("FLEET_LEDGER_FUZZ_TRACE").is_ok() {
        eprintln!(
            "TRACE {} {} {} {uri} {answer}",
            endpoint.method,
            endpoint.path,
            status.as_u16()
        );
    }
    prop_assert!(
        status.as_u16() < 500,
        "{} {uri} answered {status} {answer}",
        endpoint.method
    );
    if status.is_client_error() {
        let appended = app.state.log.read_all(head, 100).await.unwrap();
        // A refuel takes its id from a block reserved on first need (src/ids.rs); a refusal
        // after that reservation leaves the block behind, which no read model shows.
        let written: Vec<String> = appended
            .iter()
            .filter(|event| event.stream_type != "fuel-record-ids")
            .map(|event| format!("{} {}", event.stream_type, event.event_type))
            .collect();
        prop_assert!(
            written.is_empty(),
            "{} {uri} was refused ({status} {answer}) yet appended {written:?}",
            endpoint.method
        );
    }
    Ok(())
}

async fn random_requests_never_fail_the_server_nor_write_when_refused(app: TestApp) {
    app.seed_fleet().await;
    let endpoints = endpoints();
    let covered: Vec<(String, &str)> = endpoints
        .iter()
        .map(|e| (e.method.to_string(), e.path))
        .collect();
    for (method, path) in common::ROUTES {
        assert!(
            *path == "/readyz" || covered.contains(&(method.to_string(), *path)),
            "{method} {path} is routed but not fuzzed"
        );
    }
    assert_eq!(
        covered.len(),
        common::ROUTES.len() - 1,
        "every fuzzed route is routed"
    );
    let cases = std::env::var("FLEET_LEDGER_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES_DEFAULT);
    let mut runner = TestRunner::new(Config {
        cases,
        // Each step is a request on a growing store: shrink briefly, the failure is printed.
        max_shrink_iters: 512,
        failure_persistence: None,
        ..Config::default()
    });
    let handle = tokio::runtime::Handle::current();
    let result = tokio::task::block_in_place(|| {
        runner
            .run(&case(&endpoints), |case| {
                handle.block_on(check(&app, &endpoints, case))
            })
            .map_err(|failure| failure.to_string())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    // Whatever was written, every read model could fold it.
    let token = app.token(Role::Admin);
    let (status, answer) = app
        .call(Method::GET, "/api/admin/proyecciones", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !answer.to_string().contains("\"stalled\":{"),
        "a projection stalled: {answer}"
    );
}
