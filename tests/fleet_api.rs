//! Fleet registry over HTTP (seeds 000 and 002): plates, drivers, stations, catalogues, vehicle
//! sync, `/vehiculo` and missions, with every status and message the issue pins.

mod common;

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use common::TestApp;
use fleet_ledger::auth::Role;
use serde_json::{json, Value};

on_both_stores!(
    plates_are_normalised_and_registered_once,
    a_plate_array_registers_all_or_nothing,
    plate_status_changes_and_filters,
    drivers_and_stations_check_their_references,
    catalogues_ship_defaults_and_only_admins_add,
    sync_counts_active_plates_and_is_idempotent,
    sync_never_resurrects_a_deleted_vehicle,
    concurrent_syncs_create_each_vehicle_exactly_once,
    concurrent_creations_never_give_a_plate_two_live_vehicles,
    a_vehicle_is_created_read_and_listed_in_the_seed_shape,
    vehicle_creation_refuses_bad_input_in_the_envelope,
    vehiculo_auth_refusals_use_the_envelope,
    a_vehicle_update_records_only_what_changed,
    delete_follows_seed_002,
    a_deleted_vehicle_is_reactivated_by_creating_its_plate,
    a_mission_runs_its_whole_lifecycle,
    mission_refusals_name_what_is_wrong,
    scheduling_racing_a_deletion_ends_with_exactly_one_refused,
    rebuilt_read_models_give_the_same_answers,
);

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let token = app.operador();
    let body = body.map(|b| b.to_string());
    app.call(method, path, Some(&token), body.as_deref()).await
}

async fn post(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    send(app, Method::POST, path, Some(body)).await
}

fn envelope_error(body: &Value) -> (&Value, &Value) {
    assert!(
        body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{body}"
    );
    assert!(body.get("data").is_none(), "errors carry no data: {body}");
    (&body["success"], &body["message"])
}

async fn vehicle(app: &TestApp, placa: &str) -> Value {
    let (status, body) = post(
        app,
        "/vehiculo",
        json!({ "placa": placa, "idClaseVehiculo": 1, "idEstadoVehiculo": 1 }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["data"].clone()
}

async fn driver(app: &TestApp) -> i64 {
    let (status, body) = post(
        app,
        "/api/conductores",
        json!({ "conductor": "Juan Pérez" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    body["id"].as_i64().unwrap()
}

async fn plates_are_normalised_and_registered_once(app: TestApp) {
    let (status, body) = post(
        &app,
        "/api/placas",
        json!({ "placa": "abc-123", "estado": "ACTIVADA" }),
    )
    .await;
    assert_eq!(
        (status, body.to_string()),
        (
            StatusCode::CREATED,
            r#"{"id":1,"placa":"ABC123","estado":"ACTIVADA"}"#.into()
        )
    );
    let (status, body) = post(
        &app,
        "/api/placas",
        json!({ "placa": "ABC 123", "estado": "ACTIVADA" }),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::CONFLICT,
            json!({ "error": "La placa ABC123 ya está registrada" })
        )
    );
    for (placa, message) in [
        ("", "La placa es obligatoria"),
        ("  - ", "La placa es obligatoria"),
        ("AB#12", "La placa solo puede contener letras y números"),
        (
            "ABCDEFGHIJKLMNOPQRSTU",
            "La placa no puede superar 20 caracteres",
        ),
    ] {
        let (status, body) = post(
            &app,
            "/api/placas",
            json!({ "placa": placa, "estado": "ACTIVADA" }),
        )
        .await;
        assert_eq!(
            (status, body),
            (StatusCode::BAD_REQUEST, json!({ "error": message })),
            "{placa:?}"
        );
    }
    let (status, body) = post(
        &app,
        "/api/placas",
        json!({ "placa": "XYZ9", "estado": "ACTIVA" }),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({ "error": "El campo estado debe ser ACTIVADA o DESACTIVADA" })
        )
    );
    let (status, body) = post(&app, "/api/placas", json!({ "estado": "ACTIVADA" })).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({ "error": "Missing required field: placa" })
        )
    );
    let (status, body) = send(&app, Method::GET, "/api/placas/1", None).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({ "id": 1, "placa": "ABC123", "estado": "ACTIVADA" })
        )
    );
    let (status, body) = send(&app, Method::GET, "/api/placas/99", None).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({ "error": "No se encontró la placa con ID 99" })
        )
    );
}

async fn a_plate_array_registers_all_or_nothing(app: TestApp) {
    let (status, body) = post(
        &app,
        "/api/placas",
        json!([{ "placa": "A1", "estado": "ACTIVADA" }, { "placa": "a-1", "estado": "ACTIVADA" }]),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::CONFLICT,
            json!({ "error": "Registro 1: La placa A1 ya está registrada" })
        )
    );
    let (status, body) = post(
        &app,
        "/api/placas",
        json!([{ "placa": "B1", "estado": "ACTIVADA" }, { "placa": "", "estado": "ACTIVADA" }]),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({ "error": "Registro 1: La placa es obligatoria" })
        )
    );
    assert_eq!(
        send(&app, Method::GET, "/api/placas", None).await.1,
        json!([])
    );
    let (status, body) = post(&app, "/api/placas", json!([{ "placa": "B1", "estado": "ACTIVADA" }, { "placa": "B2", "estado": "DESACTIVADA" }])).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        body,
        json!([{ "id": 1, "placa": "B1", "estado": "ACTIVADA" }, { "id": 2, "placa": "B2", "estado": "DESACTIVADA" }])
    );
}

async fn plate_status_changes_and_filters(app: TestApp) {
    post(
        &app,
        "/api/placas",
        json!([{ "placa": "C1", "estado": "ACTIVADA" }, { "placa": "C2", "estado": "ACTIVADA" }]),
    )
    .await;
    let (status, body) = send(
        &app,
        Method::PATCH,
        "/api/placas/2",
        Some(json!({ "estado": "DESACTIVADA" })),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({ "id": 2, "placa": "C2", "estado": "DESACTIVADA" })
        )
    );
    let (_, active) = send(&app, Method::GET, "/api/placas?estado=ACTIVADA", None).await;
    assert_eq!(
        active,
        json!([{ "id": 1, "placa": "C1", "estado": "ACTIVADA" }])
    );
    let (_, inactive) = send(&app, Method::GET, "/api/placas?estado=DESACTIVADA", None).await;
    assert_eq!(
        inactive,
        json!([{ "id": 2, "placa": "C2", "estado": "DESACTIVADA" }])
    );
    let (status, _) = send(&app, Method::GET, "/api/placas?estado=OTRO", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = send(
        &app,
        Method::PATCH,
        "/api/placas/9",
        Some(json!({ "estado": "ACTIVADA" })),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({ "error": "No se encontró la placa con ID 9" })
        )
    );
    let (status, _) = send(
        &app,
        Method::PATCH,
        "/api/placas/abc",
        Some(json!({ "estado": "ACTIVADA" })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn drivers_and_stations_check_their_references(app: TestApp) {
    let (status, body) = post(
        &app,
        "/api/areas-operacion",
        json!({ "nombre": "Logística" }),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::CREATED,
            json!({ "id": 1, "nombre": "Logística" })
        )
    );
    let (status, body) = post(
        &app,
        "/api/conductores",
        json!({ "conductor": "Juan Pérez", "area_principal": 1 }),
    )
    .await;
    assert_eq!(
        (status, body.to_string()),
        (
            StatusCode::CREATED,
            r#"{"id":1,"conductor":"Juan Pérez","area_principal":1}"#.into()
        )
    );
    let (status, body) = post(
        &app,
        "/api/conductores",
        json!({ "conductor": "Ana", "area_principal": 7 }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("area_principal"),
        "{body}"
    );
    let (status, body) = post(&app, "/api/conductores", json!({ "conductor": "   " })).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({ "error": "El campo conductor es obligatorio" })
        )
    );

    let (status, body) = post(
        &app,
        "/api/bombas",
        json!({ "bomba": "Estación Central", "area_operacion_id": 1 }),
    )
    .await;
    assert_eq!(
        (status, body.to_string()),
        (StatusCode::CREATED, r#"{"id":1,"bomba":"Estación Central","area_operacion_id":1,"permitir_saldo_negativo":true}"#.into())
    );
    let (status, body) = send(
        &app,
        Method::PATCH,
        "/api/bombas/1",
        Some(json!({ "permitir_saldo_negativo": false })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["permitir_saldo_negativo"], false);
    let (status, body) = post(
        &app,
        "/api/bombas",
        json!([{ "bomba": "Norte" }, { "bomba": "Sur", "area_operacion_id": 3 }]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().starts_with("Registro 1: "),
        "{body}"
    );
    let (_, stations) = send(&app, Method::GET, "/api/bombas", None).await;
    assert_eq!(stations.as_array().unwrap().len(), 1, "all or nothing");
    let (status, body) = send(
        &app,
        Method::PATCH,
        "/api/bombas/5",
        Some(json!({ "permitir_saldo_negativo": true })),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({ "error": "No se encontró la bomba con ID 5" })
        )
    );
    let (status, body) = send(&app, Method::GET, "/api/bombas/5", None).await;

    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({ "error": "No se encontró la bomba con ID 5" })
        )
    );
    let (status, body) = send(&app, Method::GET, "/api/conductores/1", None).await;
    assert_eq!(
        (status, body["conductor"].clone()),
        (StatusCode::OK, json!("Juan Pérez"))
    );
}

async fn catalogues_ship_defaults_and_only_admins_add(app: TestApp) {
    let (status, classes) = send(&app, Method::GET, "/api/catalogos/clases-vehiculo", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(classes[0], json!({ "id": 1, "nombre": "Pick-up" }));
    assert_eq!(
        send(&app, Method::GET, "/api/catalogos/estados-vehiculo", None)
            .await
            .1[0]["nombre"],
        "Activo"
    );
    assert_eq!(
        send(&app, Method::GET, "/api/catalogos/tipos-combustible", None)
            .await
            .1[0]["nombre"],
        "Diesel"
    );
    let (status, body) = post(
        &app,
        "/api/catalogos/clases-vehiculo",
        json!({ "nombre": "Furgón" }),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::FORBIDDEN,
            json!({ "error": "Permiso denegado" })
        )
    );
    let admin = app.token(Role::Admin);
    let (status, body) = app
        .call(
            Method::POST,
            "/api/catalogos/clases-vehiculo",
            Some(&admin),
            Some(r#"{"nombre":"Furgón"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["nombre"], "Furgón");
    let (status, _) = send(&app, Method::GET, "/api/catalogos/colores", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn sync(app: &TestApp) -> Value {
    let (status, body) = send(app, Method::POST, "/api/flota/sync", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn sync_counts_active_plates_and_is_idempotent(app: TestApp) {
    assert_eq!(
        sync(&app).await.to_string(),
        r#"{"message":"No active plates found","total_active_plates":0,"newly_synced":0,"already_existing":0}"#
    );
    post(
        &app,
        "/api/placas",
        json!([
            { "placa": "S1", "estado": "ACTIVADA" },
            { "placa": "S2", "estado": "ACTIVADA" },
            { "placa": "S3", "estado": "DESACTIVADA" },
        ]),
    )
    .await;
    assert_eq!(
        sync(&app).await.to_string(),
        r#"{"message":"Sync successful","total_active_plates":2,"newly_synced":2,"already_existing":0}"#
    );
    post(
        &app,
        "/api/placas",
        json!({ "placa": "S4", "estado": "ACTIVADA" }),
    )
    .await;
    send(
        &app,
        Method::PATCH,
        "/api/placas/1",
        Some(json!({ "estado": "DESACTIVADA" })),
    )
    .await;
    // S1's vehicle no longer counts: its plate is deactivated.
    assert_eq!(
        sync(&app).await,
        json!({ "message": "Sync successful", "total_active_plates": 2, "newly_synced": 1, "already_existing": 1 })
    );
    assert_eq!(sync(&app).await["newly_synced"], 0);
    let (_, listed) = send(&app, Method::GET, "/vehiculo", None).await;
    let vehicles = listed["data"].as_array().unwrap();
    assert_eq!(vehicles.len(), 3);
    assert_eq!(vehicles[0]["Placa"], "S1");
    assert_eq!(vehicles[0]["IdEmpresa"], Value::Null);
    assert_eq!(vehicles[0]["IdOperacion"], Value::Null);
    assert_eq!(vehicles[0]["IdPlaca"], 1);
    let synced = app.state.log.read_type("fleet", 0, 100).await.unwrap();
    assert_eq!(
        synced
            .iter()
            .filter(|e| e.event_type == "VehicleSynced")
            .count(),
        3
    );
}

async fn sync_never_resurrects_a_deleted_vehicle(app: TestApp) {
    post(
        &app,
        "/api/placas",
        json!({ "placa": "D1", "estado": "ACTIVADA" }),
    )
    .await;
    sync(&app).await;
    let (status, _) = send(&app, Method::DELETE, "/vehiculo/1", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        sync(&app).await,
        json!({ "message": "Sync successful", "total_active_plates": 1, "newly_synced": 0, "already_existing": 1 })
    );
    let (_, body) = send(&app, Method::GET, "/vehiculo/1", None).await;
    assert_eq!(body["data"]["Eliminado"], true);
}

async fn concurrent_syncs_create_each_vehicle_exactly_once(app: TestApp) {
    let plates: Vec<Value> = (0..12)
        .map(|n| json!({ "placa": format!("CC{n}"), "estado": "ACTIVADA" }))
        .collect();
    post(&app, "/api/placas", Value::Array(plates)).await;
    let app = Arc::new(app);
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { sync(&app).await })
        })
        .collect();
    let mut newly = 0;
    for call in calls {
        let body = call.await.unwrap();
        assert_eq!(body["total_active_plates"], 12);
        assert_eq!(
            body["newly_synced"].as_i64().unwrap() + body["already_existing"].as_i64().unwrap(),
            12
        );
        newly += body["newly_synced"].as_i64().unwrap();
    }
    assert_eq!(newly, 12);
    let (_, listed) = send(&app, Method::GET, "/vehiculo", None).await;
    let mut placas: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["Placa"].as_str().unwrap())
        .collect();
    placas.sort_unstable();
    placas.dedup();
    assert_eq!(placas.len(), 12);
    assert_eq!(listed["data"].as_array().unwrap().len(), 12);
}

async fn concurrent_creations_never_give_a_plate_two_live_vehicles(app: TestApp) {
    post(
        &app,
        "/api/placas",
        json!({ "placa": "RACE1", "estado": "ACTIVADA" }),
    )
    .await;
    let app = Arc::new(app);
    let mut calls = Vec::new();
    for n in 0..8 {
        let app = app.clone();
        calls.push(tokio::spawn(async move {
            if n % 4 == 0 {
                send(&app, Method::POST, "/api/flota/sync", None).await
            } else {
                post(
                    &app,
                    "/vehiculo",
                    json!({ "placa": "race-1", "idClaseVehiculo": 1, "idEstadoVehiculo": 1 }),
                )
                .await
            }
        }));
    }
    let mut created = 0;
    for call in calls {
        let (status, body) = call.await.unwrap();
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::OK => created += body["newly_synced"].as_i64().unwrap_or(0),
            StatusCode::CONFLICT => {
                assert_eq!(body["message"], "Ya existe un vehículo con la placa RACE1")
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(created, 1);
    let (_, listed) = send(&app, Method::GET, "/vehiculo", None).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
}

async fn a_vehicle_is_created_read_and_listed_in_the_seed_shape(app: TestApp) {
    let motorista = driver(&app).await;
    let body = json!({
        "placa": "p 503067", "idClaseVehiculo": 1, "idEstadoVehiculo": 1, "idTipoCombustible": 1,
        "idMotoristaPorDefecto": motorista, "idDepartamentoAsignado": 1, "marca": "TOYOTA",
        "modelo": "HILUX", "anio": 2020, "color": "BLANCO", "numeroMotor": "1GRFE123456",
        "numeroChasis": "JT123456789012345", "numeroVin": "JT123456789012345", "capacidadPasajeros": 5,
        "capacidadCombustibleGalones": 80.0, "kilometrajeActual": 18000,
        "fechaUltimaRevision": "2024-03-15", "fechaProximoMantenimiento": "2024-09-15",
        "fechaTarjetaCirculacion": "2023-12-01", "numeroPolizaSeguro": "POL123456789",
        "fechaVencimientoSeguro": "2025-12-01", "observaciones": "Mantenimiento realizado en marzo 2024"
    });
    let (status, created) = post(&app, "/vehiculo", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["success"], true);
    assert_eq!(created["message"], "Vehículo creado exitosamente");
    let data = &created["data"];
    let expected = json!({
        "Id": 1, "Placa": "P503067", "Marca": "TOYOTA", "Modelo": "HILUX", "Anio": 2020, "Color": "BLANCO",
        "NumeroMotor": "1GRFE123456", "NumeroChasis": "JT123456789012345", "NumeroVin": "JT123456789012345",
        "CapacidadPasajeros": 5, "CapacidadCombustibleGalones": 80.0, "KilometrajeActual": 18000,
        "FechaUltimaRevision": "2024-03-15", "FechaProximoMantenimiento": "2024-09-15",
        "FechaTarjetaCirculacion": "2023-12-01", "NumeroPolizaSeguro": "POL123456789",
        "FechaVencimientoSeguro": "2025-12-01", "Observaciones": "Mantenimiento realizado en marzo 2024",
        "Eliminado": false, "IdClaseVehiculo": 1, "NombreClaseVehiculo": "Pick-up", "IdEstadoVehiculo": 1,
        "NombreEstadoVehiculo": "Activo", "IdTipoCombustible": 1, "NombreTipoCombustible": "Diesel",
        "IdMotoristaPorDefecto": motorista, "NombreMotoristaPorDefecto": "Juan Pérez",
        "IdDepartamentoAsignado": 1, "NombreDepartamentoAsignado": "Logística", "IdPlaca": 1,
        "IdEmpresa": null, "IdOperacion": null, "MisionesActivas": 0
    });
    for (key, value) in expected.as_object().unwrap() {
        assert_eq!(&data[key], value, "{key}");
    }
    assert!(data["FechaHoraCreacion"].as_str().unwrap().ends_with('Z'));
    let (status, read) = send(&app, Method::GET, "/vehiculo/1", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["message"], "Vehículo obtenido exitosamente");
    assert_eq!(read["data"], created["data"]);
    let (_, plates) = send(&app, Method::GET, "/api/placas", None).await;
    assert_eq!(
        plates,
        json!([{ "id": 1, "placa": "P503067", "estado": "ACTIVADA" }])
    );
    let (status, body) = post(
        &app,
        "/vehiculo",
        json!({ "placa": "P-503067", "idClaseVehiculo": 1, "idEstadoVehiculo": 1 }),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        envelope_error(&body),
        (
            &json!(false),
            &json!("Ya existe un vehículo con la placa P503067")
        )
    );
}

async fn vehicle_creation_refuses_bad_input_in_the_envelope(app: TestApp) {
    let cases = [
        (
            json!({ "idClaseVehiculo": 1, "idEstadoVehiculo": 1 }),
            "Missing required field: placa",
        ),
        (
            json!({ "placa": "V1", "idEstadoVehiculo": 1 }),
            "Missing required field: idClaseVehiculo",
        ),
        (
            json!({ "placa": "V1", "idClaseVehiculo": 1 }),
            "Missing required field: idEstadoVehiculo",
        ),
        (
            json!({ "placa": "V1", "idClaseVehiculo": 1, "idEstadoVehiculo": 1, "marca": "M".repeat(101) }),
            "El campo marca no puede superar 100 caracteres",
        ),
        (
            json!({ "placa": "V1", "idClaseVehiculo": 1, "idEstadoVehiculo": 1, "color": "C".repeat(51) }),
            "El campo color no puede superar 50 caracteres",
        ),
        (
            json!({ "placa": "V".repeat(21), "idClaseVehiculo": 1, "idEstadoVehiculo": 1 }),
            "La placa no puede superar 20 caracteres",
        ),
        (
            json!({ "placa": "V1", "idClaseVehiculo": 1, "idEstadoVehiculo": 1, "fechaUltimaRevision": "15/03/2024" }),
            "El campo fechaUltimaRevision debe ser una fecha YYYY-MM-DD",
        ),
        (
            json!({ "placa": "V1", "idClaseVehiculo": 1, "idEstadoVehiculo": 1, "anio": "dos mil" }),
            "El campo anio debe ser un número entero",
        ),
    ];
    for (body, message) in cases {
        let (status, answer) = post(&app, "/vehiculo", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            envelope_error(&answer),
            (&json!(false), &json!(message)),
            "{body}"
        );
    }
    let (status, answer) = post(
        &app,
        "/vehiculo",
        json!({ "placa": "V1", "idClaseVehiculo": 99, "idEstadoVehiculo": 1 }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("idClaseVehiculo"),
        "{answer}"
    );
    let (status, answer) = post(&app, "/vehiculo", json!({ "placa": "V1", "idClaseVehiculo": 1, "idEstadoVehiculo": 1, "idMotoristaPorDefecto": 4 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("idMotoristaPorDefecto"),
        "{answer}"
    );
    let token = app.operador();
    let (status, answer) = app
        .call(Method::POST, "/vehiculo", Some(&token), Some("{not json"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["success"], false);
    let (status, answer) = send(&app, Method::GET, "/vehiculo/abc", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["success"], false);
    assert_eq!(
        send(&app, Method::GET, "/api/placas", None).await.1,
        json!([]),
        "nothing was registered"
    );
}

async fn vehiculo_auth_refusals_use_the_envelope(app: TestApp) {
    let (status, body) = app.call(Method::GET, "/vehiculo/1", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        envelope_error(&body),
        (&json!(false), &json!("Authentication required"))
    );
    let auditor = app.token(Role::Auditor);
    let (status, body) = app
        .call(Method::DELETE, "/vehiculo/1", Some(&auditor), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        envelope_error(&body),
        (&json!(false), &json!("Permiso denegado"))
    );
}

async fn a_vehicle_update_records_only_what_changed(app: TestApp) {
    vehicle(&app, "U1").await;
    let (status, body) = send(
        &app,
        Method::PUT,
        "/vehiculo/1",
        Some(json!({ "marca": "MAZDA", "color": null, "idEmpresa": 4, "idOperacion": 9 })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"], "Vehículo actualizado exitosamente");
    assert_eq!(
        (
            body["data"]["Marca"].clone(),
            body["data"]["IdEmpresa"].clone()
        ),
        (json!("MAZDA"), json!(4))
    );
    let events = app.state.log.read_type("fleet", 0, 100).await.unwrap();
    let updated = events
        .iter()
        .find(|e| e.event_type == "VehicleUpdated")
        .unwrap();
    assert_eq!(
        updated.payload["changes"],
        json!({ "marca": "MAZDA", "id_empresa": 4, "id_operacion": 9 })
    );
    assert_eq!(updated.payload["previous"], json!({}));
    let updates = events
        .iter()
        .filter(|e| e.event_type == "VehicleUpdated")
        .count();
    assert_eq!(updates, 1, "one event per update");
    // Sending the vehicle back with its own plate is not a plate change.
    let (status, body) = send(
        &app,
        Method::PUT,
        "/vehiculo/1",
        Some(json!({ "placa": "u-1", "modelo": "CX5" })),
    )
    .await;
    assert_eq!(
        (status, body["data"]["Modelo"].clone()),
        (StatusCode::OK, json!("CX5"))
    );
    let (status, body) = send(
        &app,
        Method::PUT,
        "/vehiculo/1",
        Some(json!({ "placa": "U2" })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "La placa no se puede cambiar; registre el vehículo con la nueva placa"
    );

    let (_, filtered) = send(
        &app,
        Method::GET,
        "/vehiculo?empresa_id=4&operacion_id=9",
        None,
    )
    .await;
    assert_eq!(filtered["data"].as_array().unwrap().len(), 1);
    let (_, none) = send(&app, Method::GET, "/vehiculo?empresa_id=5", None).await;
    assert_eq!(none["data"], json!([]));
    let (status, body) = send(
        &app,
        Method::PUT,
        "/vehiculo/999",
        Some(json!({ "marca": "X" })),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        envelope_error(&body).1,
        "No se encontró el vehículo con ID 999"
    );
    send(&app, Method::DELETE, "/vehiculo/1", None).await;
    let (status, body) = send(
        &app,
        Method::PUT,
        "/vehiculo/1",
        Some(json!({ "marca": "X" })),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        envelope_error(&body).1,
        "El vehículo con ID 1 está eliminado"
    );
}

async fn delete_follows_seed_002(app: TestApp) {
    vehicle(&app, "P503067").await;
    let (status, body) = send(&app, Method::DELETE, "/vehiculo/1", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["success"].clone(), body["message"].clone()),
        (json!(true), json!("Vehículo eliminado exitosamente"))
    );
    assert_eq!(body["data"]["Eliminado"], true);
    assert_eq!(body["data"]["Placa"], "P503067");
    let (status, body) = send(&app, Method::DELETE, "/vehiculo/1", None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        envelope_error(&body),
        (
            &json!(false),
            &json!("El vehículo con ID 1 ya está eliminado")
        )
    );
    let (status, body) = send(&app, Method::DELETE, "/vehiculo/999", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        envelope_error(&body),
        (
            &json!(false),
            &json!("No se encontró el vehículo con ID 999")
        )
    );
    let (status, body) = send(&app, Method::DELETE, "/vehiculo/uno", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["success"], false);
    let deletions = app.state.log.read_type("fleet", 0, 100).await.unwrap();
    assert_eq!(
        deletions
            .iter()
            .filter(|e| e.event_type == "VehicleDeleted")
            .count(),
        1
    );
    let (_, live) = send(&app, Method::GET, "/vehiculo", None).await;
    assert_eq!(live["data"], json!([]));
    let (_, all) = send(&app, Method::GET, "/vehiculo?incluir_eliminados=true", None).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 1);

    vehicle(&app, "M1").await;
    let conductor = driver(&app).await;
    let mission = json!({ "vehiculo_id": 2, "conductor_id": conductor, "descripcion": "Ruta norte", "fecha_programada": "2026-03-01" });
    assert_eq!(
        post(&app, "/api/misiones", mission).await.0,
        StatusCode::CREATED
    );
    let (status, body) = send(&app, Method::DELETE, "/vehiculo/2", None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        envelope_error(&body).1,
        "No se puede eliminar el vehículo con ID 2 porque tiene misiones activas"
    );
    let (_, read) = send(&app, Method::GET, "/vehiculo/2", None).await;
    assert_eq!(read["data"]["MisionesActivas"], 1);
}

async fn a_deleted_vehicle_is_reactivated_by_creating_its_plate(app: TestApp) {
    vehicle(&app, "R1").await;
    send(
        &app,
        Method::PUT,
        "/vehiculo/1",
        Some(json!({ "kilometrajeActual": 120000, "color": "ROJO" })),
    )
    .await;

    send(&app, Method::DELETE, "/vehiculo/1", None).await;
    let (status, body) = post(
        &app,
        "/vehiculo",
        json!({ "placa": "r-1", "idClaseVehiculo": 2, "idEstadoVehiculo": 1, "marca": "NISSAN" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"], "Vehículo reactivado exitosamente");
    assert_eq!(body["data"]["Id"], 1);
    assert_eq!(body["data"]["Eliminado"], false);
    assert_eq!(body["data"]["Marca"], "NISSAN");
    assert_eq!(body["data"]["NombreClaseVehiculo"], "Sedán");
    assert_eq!(
        body["data"]["KilometrajeActual"], 120000,
        "what the body leaves out is kept"
    );
    assert_eq!(body["data"]["Color"], "ROJO");

    let events = app.state.log.read_type("fleet", 0, 100).await.unwrap();
    assert_eq!(events.last().unwrap().event_type, "VehicleReactivated");
}

async fn a_mission_runs_its_whole_lifecycle(app: TestApp) {
    vehicle(&app, "MS1").await;
    send(
        &app,
        Method::PUT,
        "/vehiculo/1",
        Some(json!({ "kilometrajeActual": 120000 })),
    )
    .await;
    let conductor = driver(&app).await;
    let (status, created) = post(&app, "/api/misiones", json!({ "vehiculo_id": 1, "conductor_id": conductor, "descripcion": "Ruta norte", "fecha_programada": "2026-03-01" })).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["id"], 1);
    assert_eq!(created["estado"], "PROGRAMADA");
    assert_eq!(created["descripcion"], "Ruta norte");
    assert_eq!(created["fecha_programada"], "2026-03-01");
    let (status, started) = post(
        &app,
        "/api/misiones/1/iniciar",
        json!({ "kilometraje_inicial": 120500, "combustible_inicial_galones": 30 }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    assert_eq!(started["estado"], "EN_EJECUCION");
    let (status, done) = post(
        &app,
        "/api/misiones/1/finalizar",
        json!({ "kilometraje_final": 120730, "combustible_final_galones": 21.5 }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["estado"], "COMPLETADA");
    assert_eq!(done["kilometraje_recorrido"], 230);
    assert_eq!(done["combustible_consumido_galones"].to_string(), "8.5");
    let (_, car) = send(&app, Method::GET, "/vehiculo/1", None).await;
    assert_eq!(car["data"]["KilometrajeActual"], 120730);
    assert_eq!(car["data"]["MisionesActivas"], 0);

    post(&app, "/api/misiones", json!({ "vehiculo_id": 1, "conductor_id": conductor, "descripcion": "Ruta sur", "fecha_programada": "2026-03-02" })).await;
    let (status, cancelled) = post(
        &app,
        "/api/misiones/2/cancelar",
        json!({ "motivo": "Lluvia" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cancelled["estado"], "CANCELADA");
    let (_, listed) = send(
        &app,
        Method::GET,
        "/api/misiones?vehiculo_id=1&estado=CANCELADA",
        None,
    )
    .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], 2);
    let (_, all) = send(&app, Method::GET, "/api/misiones", None).await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    let (status, one) = send(&app, Method::GET, "/api/misiones/1", None).await;
    assert_eq!(
        (status, one["estado"].clone()),
        (StatusCode::OK, json!("COMPLETADA"))
    );
}

async fn mission_refusals_name_what_is_wrong(app: TestApp) {
    vehicle(&app, "MR1").await;
    send(
        &app,
        Method::PUT,
        "/vehiculo/1",
        Some(json!({ "kilometrajeActual": 120500 })),
    )
    .await;
    let conductor = driver(&app).await;
    let schedule = |vehicle: i64, conductor: i64| json!({ "vehiculo_id": vehicle, "conductor_id": conductor, "descripcion": "Ruta", "fecha_programada": "2026-03-01" });
    let (status, body) = post(&app, "/api/misiones", schedule(99, conductor)).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({ "error": "No se encontró el vehículo con ID 99" })
        )
    );
    let (status, body) = post(&app, "/api/misiones", schedule(1, 42)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("conductor_id"),
        "{body}"
    );
    let (status, body) = post(&app, "/api/misiones", json!({ "vehiculo_id": 1, "conductor_id": conductor, "descripcion": "Ruta", "fecha_programada": "01/03/2026" })).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({ "error": "El campo fecha_programada debe ser una fecha YYYY-MM-DD" })
        )
    );

    post(&app, "/api/misiones", schedule(1, conductor)).await;
    let (status, body) = post(
        &app,
        "/api/misiones/1/finalizar",
        json!({ "kilometraje_final": 1, "combustible_final_galones": 1 }),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::CONFLICT,
            json!({ "error": "No se puede pasar la misión de PROGRAMADA a COMPLETADA" })
        )
    );
    let (status, body) = post(
        &app,
        "/api/misiones/1/iniciar",
        json!({ "kilometraje_inicial": 120000, "combustible_inicial_galones": 30 }),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({ "error": "El kilometraje inicial (120000) no puede ser menor que el kilometraje actual del vehículo (120500)" })
        )
    );
    post(
        &app,
        "/api/misiones/1/iniciar",
        json!({ "kilometraje_inicial": 120600, "combustible_inicial_galones": 30 }),
    )
    .await;
    let (status, body) = post(
        &app,
        "/api/misiones/1/finalizar",
        json!({ "kilometraje_final": 120599, "combustible_final_galones": 20 }),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({ "error": "El kilometraje final (120599) no puede ser menor que el kilometraje inicial (120600)" })
        )
    );
    let (status, body) = post(
        &app,
        "/api/misiones/1/iniciar",
        json!({ "kilometraje_inicial": 120600, "combustible_inicial_galones": 30 }),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::CONFLICT,
            json!({ "error": "No se puede pasar la misión de EN_EJECUCION a EN_EJECUCION" })
        )
    );
    post(
        &app,
        "/api/misiones/1/cancelar",
        json!({ "motivo": "Falla mecánica" }),
    )
    .await;
    let (status, body) = post(
        &app,
        "/api/misiones/1/cancelar",
        json!({ "motivo": "otra vez" }),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::CONFLICT,
            json!({ "error": "No se puede pasar la misión de CANCELADA a CANCELADA" })
        )
    );
    let (status, body) = post(
        &app,
        "/api/misiones/77/iniciar",
        json!({ "kilometraje_inicial": 1, "combustible_inicial_galones": 1 }),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({ "error": "No se encontró la misión con ID 77" })
        )
    );
    send(&app, Method::DELETE, "/vehiculo/1", None).await;
    let (status, body) = post(&app, "/api/misiones", schedule(1, conductor)).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::CONFLICT,
            json!({ "error": "El vehículo con ID 1 está eliminado" })
        )
    );
}

async fn scheduling_racing_a_deletion_ends_with_exactly_one_refused(app: TestApp) {
    let conductor = driver(&app).await;
    let app = Arc::new(app);
    for round in 0..6 {
        let id = vehicle(&app, &format!("RC{round}")).await["Id"]
            .as_i64()
            .unwrap();
        let scheduler = {
            let app = app.clone();
            tokio::spawn(async move {
                post(&app, "/api/misiones", json!({ "vehiculo_id": id, "conductor_id": conductor, "descripcion": "Ruta", "fecha_programada": "2026-03-01" })).await
            })
        };
        let deleter = {
            let app = app.clone();
            tokio::spawn(async move {
                send(&app, Method::DELETE, &format!("/vehiculo/{id}"), None).await
            })
        };
        let (scheduled, deleted) = (scheduler.await.unwrap(), deleter.await.unwrap());
        match (scheduled.0, deleted.0) {
            (StatusCode::CREATED, StatusCode::CONFLICT) => {
                assert_eq!(deleted.1["message"], format!("No se puede eliminar el vehículo con ID {id} porque tiene misiones activas"));
            }
            (StatusCode::CONFLICT, StatusCode::OK) => {
                assert_eq!(
                    scheduled.1["error"],
                    format!("El vehículo con ID {id} está eliminado")
                );
            }
            other => panic!(
                "round {round}: both or neither accepted: {other:?} {scheduled:?} {deleted:?}"
            ),
        }
    }
}

async fn rebuilt_read_models_give_the_same_answers(app: TestApp) {
    let app = Arc::new(app);
    post(
        &app,
        "/api/placas",
        json!([{ "placa": "RB1", "estado": "ACTIVADA" }, { "placa": "RB2", "estado": "ACTIVADA" }]),
    )
    .await;
    sync(&app).await;
    // Raw text: `json!` would turn 12.10 into an f64 and lose the trailing zero before we see it.
    let token = app.operador();
    let raw = r#"{"marca":"FORD","capacidadCombustibleGalones":12.10}"#;
    app.call(Method::PUT, "/vehiculo/1", Some(&token), Some(raw))
        .await;

    send(&app, Method::DELETE, "/vehiculo/2", None).await;
    let conductor = driver(&app).await;
    post(&app, "/api/misiones", json!({ "vehiculo_id": 1, "conductor_id": conductor, "descripcion": "Ruta", "fecha_programada": "2026-03-01" })).await;
    let paths = [
        "/vehiculo?incluir_eliminados=true",
        "/api/placas",
        "/api/misiones",
        "/api/conductores",
        "/api/catalogos/clases-vehiculo",
    ];
    let mut before = Vec::new();
    for path in paths {
        let (_, body) = send(&app, Method::GET, path, None).await;
        before.push(body.get("data").cloned().unwrap_or(body));
    }
    assert_eq!(
        before[0][0]["CapacidadCombustibleGalones"].to_string(),
        "12.10"
    );
    let pool = app.state.read_models.pool();
    for table in [
        "rm_vehiculos",
        "rm_placas",
        "rm_misiones",
        "rm_conductores",
        "rm_catalogos",
        "projection_checkpoints",
    ] {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(pool)
            .await
            .unwrap();
    }
    let app = app_restart(app).await;
    let head = app.state.log.head().await.unwrap();
    assert!(
        app.state
            .runner
            .wait_for(head, std::time::Duration::from_secs(10))
            .await
    );
    for (path, expected) in paths.iter().zip(before) {
        let (_, body) = send(&app, Method::GET, path, None).await;
        assert_eq!(
            body.get("data").cloned().unwrap_or(body),
            expected,
            "{path}"
        );
    }
}

async fn app_restart(app: Arc<TestApp>) -> TestApp {
    match Arc::try_unwrap(app) {
        Ok(app) => app.restart().await,
        Err(_) => panic!("the test app is still shared"),
    }
}
