//! `fleet-ledger bench` end to end at toy sizes: every scenario runs against the in-process
//! service on SQLite, its verification passes and its figures are real numbers.

use std::time::Duration;

use fleet_ledger::bench::{
    self, BenchConfig, FleetSize, InspectionSize, LookupSize, Scenario, Target,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_scenario_runs_and_verifies_on_sqlite() {
    let config = BenchConfig {
        scenarios: vec![
            Scenario::Tanqueos,
            Scenario::Mixed,
            Scenario::Rebuild,
            Scenario::AsOf,
            Scenario::Startup,
        ],
        target: Target::InProcess { database_url: None },
        connections: 4,
        duration: Duration::from_millis(1500),
        skew: 1.0,
        fleet: FleetSize {
            areas: 3,
            stations: 10,
            plates: 50,
            drivers: 20,
        },
        events: 5_000,
        lookup: LookupSize::default(),
        inspections: InspectionSize::default(),
        as_of_requests: 20,
        progress: false,
    };
    let report = bench::run(config).await.expect("every scenario runs");
    assert!(
        report.verified(),
        "the verification found differences:\n{report}"
    );

    let names: Vec<Scenario> = report.scenarios.iter().map(|s| s.scenario).collect();
    assert_eq!(names, Scenario::ALL.to_vec());
    for scenario in &report.scenarios {
        let name = scenario.scenario;
        assert!(scenario.elapsed_s > 0.0, "{name}: no time measured");
        assert_eq!(scenario.store, "sqlite");
        assert!(!scenario.target.checks.is_empty(), "{name}: no target");
        assert!(
            scenario.peak_rss_bytes.is_some_and(|b| b > 0),
            "{name}: no RSS"
        );
        match name {
            Scenario::Tanqueos | Scenario::Mixed => {
                assert!(scenario.requests > 0, "{name}: no requests");
                assert!(scenario.requests_per_s > 0.0, "{name}: no rate");
                assert!(
                    scenario.events > 0 && scenario.events_per_s > 0.0,
                    "{name}: no events"
                );
                let latency = scenario.latency_ms.expect("latencies");
                assert!(latency.p50_ms > 0.0 && latency.max_ms >= latency.p99_ms);
                assert_eq!(scenario.errors(), 0, "{name}: errors\n{report}");
                let verification = scenario.verification.as_ref().expect("verified");
                assert!(verification.records_acknowledged > 0);
                assert_eq!(verification.stations_checked, 10);
            }
            Scenario::Rebuild => {
                assert!(
                    scenario.events >= 5_000,
                    "rebuild folded {}",
                    scenario.events
                );
                assert!(scenario.events_per_s > 0.0);
                let verification = scenario.verification.as_ref().expect("verified");
                assert_eq!(verification.records_acknowledged, 5_000);
                assert!(verification.records_read_back > 0);
            }
            Scenario::AsOf => {
                assert!(scenario.requests > 0);
                assert!(scenario.latency_ms.is_some_and(|l| l.p99_ms > 0.0));
                assert_eq!(scenario.errors(), 0, "as-of errors\n{report}");
            }
            Scenario::Startup => {
                assert!(
                    scenario.events >= 5_000,
                    "startup on {} events",
                    scenario.events
                );
            }
            // Not asked for here: the vehicle checks' lookup has its own test below.
            Scenario::Lookup | Scenario::Inspecciones => {
                unreachable!("{name} was not asked for")
            }
        }
    }

    let json: serde_json::Value =
        serde_json::from_str(&report.to_json().expect("the report serializes")).expect("JSON");
    assert_eq!(json["scenarios"].as_array().map(Vec::len), Some(5));
    assert_eq!(json["scenarios"][4]["scenario"], "as-of");
    assert!(report.to_string().contains("met") || report.to_string().contains("missed"));
}

#[tokio::test]
async fn scenarios_that_write_the_log_directly_refuse_a_remote_service() {
    let config = BenchConfig {
        scenarios: vec![Scenario::Tanqueos, Scenario::Rebuild],
        target: Target::Remote {
            url: "http://127.0.0.1:9".to_string(),
            token: "unused".to_string(),
        },
        ..BenchConfig::default()
    };
    let refused = bench::run(config)
        .await
        .expect_err("rebuild needs the service in process");
    assert!(refused.to_string().contains("rebuild"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_lookup_scenario_runs_and_verifies_on_sqlite() {
    let config = BenchConfig {
        scenarios: vec![Scenario::Lookup],
        duration: Duration::from_millis(1000),
        // The lookup's own sizes: `events` and `connections` are the other scenarios'.
        lookup: LookupSize {
            results: 4_000,
            connections: 4,
        },
        progress: false,
        ..BenchConfig::default()
    };
    let report = bench::run(config).await.expect("the lookup scenario runs");
    assert!(
        report.verified(),
        "the verification found differences:\n{report}"
    );
    let [lookup] = report.scenarios.as_slice() else {
        panic!("one scenario ran:\n{report}");
    };
    assert_eq!(lookup.scenario, Scenario::Lookup);
    assert_eq!(lookup.store, "sqlite");
    assert!(lookup.requests > 0 && lookup.requests_per_s > 0.0);
    assert_eq!(lookup.errors(), 0, "errors\n{report}");
    assert_eq!(lookup.events, 4_000);
    assert!(lookup.latency_ms.is_some_and(|l| l.p99_ms > 0.0));
    let verification = lookup.verification.as_ref().expect("verified");
    assert_eq!(verification.records_acknowledged, 4_000);
    assert!(verification.records_read_back > 0);
    assert!(report.to_string().contains("p99 ≤ 20 ms"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_inspections_scenario_runs_and_verifies_on_sqlite() {
    let config = BenchConfig {
        scenarios: vec![Scenario::Inspecciones],
        inspections: InspectionSize {
            entries: 40,
            batches: 3,
            deliveries: 60,
        },
        progress: false,
        ..BenchConfig::default()
    };
    let report = bench::run(config)
        .await
        .expect("the inspections scenario runs");
    assert!(
        report.verified(),
        "the verification found differences:\n{report}"
    );
    let [run] = report.scenarios.as_slice() else {
        panic!("one scenario ran:\n{report}");
    };
    assert_eq!(run.scenario, Scenario::Inspecciones);
    assert_eq!(run.store, "sqlite");
    assert_eq!(run.errors(), 0, "errors\n{report}");
    // Three timed batches (the two for the 60 inspections whose webhooks are delivered are not).
    assert_eq!(run.requests, 3);
    assert_eq!(run.events, 120 + 60);
    assert!(run.latency_ms.is_some_and(|l| l.p99_ms > 0.0));
    let verification = run.verification.as_ref().expect("verified");
    assert_eq!(verification.records_acknowledged, 120);
    assert_eq!(verification.records_read_back, 120);
    let text = report.to_string();
    assert!(text.contains("batch p99 ≤ 200 ms"), "{text}");
    assert!(text.contains("webhooks: 60 deliveries"), "{text}");
}

#[tokio::test]
async fn an_inspections_batch_over_the_endpoint_s_limit_is_refused_up_front() {
    let config = BenchConfig {
        scenarios: vec![Scenario::Inspecciones],
        inspections: InspectionSize {
            entries: 1001,
            ..InspectionSize::default()
        },
        progress: false,
        ..BenchConfig::default()
    };
    let refused = bench::run(config)
        .await
        .expect_err("a batch takes at most 1,000 entries");
    assert_eq!(
        refused.to_string(),
        "invalid configuration: --inspection-entries must be from 1 to 1000 (one batch's limit)"
    );
}
