//! After the load: does the service agree with what it acknowledged? Every station's balance must
//! be Σ anticipos − Σ tanqueos of the records it answered 201 for (a lost write, a write counted
//! twice, or a refused one that landed anyway all show here), and acknowledged records must read
//! back as they were sent.

use std::collections::HashMap;
use std::str::FromStr;

use aggregates::fuel::TipoOperacion;
use futures_util::stream::{self, StreamExt};
use hyper::{Method, StatusCode};
use rand::seq::SliceRandom;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;

use super::client::Api;
use super::load::Acknowledged;

/// Records read back at most: all balances are checked, a random sample of records is enough to
/// catch a projection that drops or garbles them.
pub(crate) const READ_BACK_MAX: usize = 3000;
/// Verification requests in flight at once.
const CONCURRENCY: usize = 16;
/// Differences kept in the report; the rest are only counted.
const DIFFERENCES_KEPT: usize = 50;

/// What the service should show.
#[derive(Debug, Default)]
pub(crate) struct Expected {
    /// Station id → balance. Every station of the fleet is checked; one absent here must be 0.
    pub balances: HashMap<i64, Decimal>,
    /// The records to read back (at most [`READ_BACK_MAX`]).
    pub read_back: Vec<Acknowledged>,
    /// How many records were acknowledged in all.
    pub acknowledged: usize,
}

impl Expected {
    /// From the records a load phase got 201 for.
    pub fn from_acknowledged(acknowledged: &[Acknowledged]) -> Self {
        let mut balances: HashMap<i64, Decimal> = HashMap::new();
        for record in acknowledged {
            *balances.entry(record.bomba_id).or_default() += record.effect();
        }
        let read_back = acknowledged
            .choose_multiple(&mut rand::thread_rng(), READ_BACK_MAX)
            .cloned()
            .collect();
        Self {
            balances,
            read_back,
            acknowledged: acknowledged.len(),
        }
    }
}

/// What the check found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verification {
    pub stations_checked: usize,
    pub records_acknowledged: usize,
    pub records_read_back: usize,
    /// How many checks failed.
    pub differences: usize,
    /// The first of them, each saying what differs.
    pub first_differences: Vec<String>,
}

impl Verification {
    pub fn passed(&self) -> bool {
        self.differences == 0
    }

    /// Counts `other`'s differences in this one.
    pub(crate) fn absorb(&mut self, other: Verification) {
        let unkept = other.differences - other.first_differences.len();
        for difference in other.first_differences {
            self.add(difference);
        }
        self.differences += unkept;
    }

    pub(crate) fn add(&mut self, difference: String) {
        self.differences += 1;
        if self.first_differences.len() < DIFFERENCES_KEPT {
            self.first_differences.push(difference);
        }
    }
}

/// Checks the balance of every station in `stations` and reads back `expected.read_back`.
pub(crate) async fn verify(api: &Api, stations: &[i64], expected: &Expected) -> Verification {
    let mut verification = Verification {
        stations_checked: stations.len(),
        records_acknowledged: expected.acknowledged,
        records_read_back: expected.read_back.len(),
        ..Default::default()
    };
    let balances = stream::iter(stations.iter().copied())
        .map(|bomba_id| {
            let want = expected
                .balances
                .get(&bomba_id)
                .copied()
                .unwrap_or_default();
            async move { check_balance(api, bomba_id, want).await }
        })
        .buffer_unordered(CONCURRENCY);
    let records = stream::iter(expected.read_back.iter())
        .map(|record| check_record(api, record))
        .buffer_unordered(CONCURRENCY);
    let mut differences: Vec<String> = balances
        .chain(records)
        .filter_map(|found| async move { found })
        .collect()
        .await;
    differences.sort();
    for difference in differences {
        verification.add(difference);
    }
    verification
}

/// `None` when the station's `saldo` is `want`; otherwise what differs.
pub(crate) async fn check_balance(api: &Api, bomba_id: i64, want: Decimal) -> Option<String> {
    let path = format!("/api/bombas/{bomba_id}/saldo");
    check_saldo(api, &path, want).await
}

/// `None` when `GET path` answers a `saldo` equal to `want`.
pub(crate) async fn check_saldo(api: &Api, path: &str, want: Decimal) -> Option<String> {
    let body = match get_json(api, path).await {
        Ok(body) => body,
        Err(difference) => return Some(difference),
    };
    match decimal_field(&body, "saldo") {
        Some(saldo) if saldo == want => None,
        Some(saldo) => Some(format!(
            "GET {path}: saldo {saldo}, but the acknowledged records add up to {want} (off by {})",
            saldo - want
        )),
        None => Some(format!("GET {path}: no decimal saldo in {body}")),
    }
}

async fn check_record(api: &Api, record: &Acknowledged) -> Option<String> {
    let path = format!("/api/tanqueos/{}", record.id);
    let body = match get_json(api, &path).await {
        Ok(body) => body,
        Err(difference) => return Some(difference),
    };
    let valor_field = match record.tipo {
        TipoOperacion::Tanqueo => "valor_tanqueo",
        TipoOperacion::Anticipo => "valor_anticipo",
    };
    let mut wrong = Vec::new();
    if body["bomba_id"].as_i64() != Some(record.bomba_id) {
        wrong.push(format!(
            "bomba_id {} (sent {})",
            body["bomba_id"], record.bomba_id
        ));
    }
    if body["tipo_operacion"].as_str() != Some(record.tipo.as_str()) {
        wrong.push(format!(
            "tipo_operacion {} (sent {})",
            body["tipo_operacion"],
            record.tipo.as_str()
        ));
    }
    if decimal_field(&body, valor_field) != Some(record.valor) {
        wrong.push(format!(
            "{valor_field} {} (sent {})",
            body[valor_field], record.valor
        ));
    }
    if body["anulado"] == Value::Bool(true) {
        wrong.push("anulado true (never voided)".to_string());
    }
    (!wrong.is_empty()).then(|| format!("GET {path}: {}", wrong.join(", ")))
}

async fn get_json(api: &Api, path: &str) -> Result<Value, String> {
    let answer = api
        .send(Method::GET, path, None)
        .await
        .map_err(|e| format!("GET {path}: no answer: {e}"))?;
    if answer.status != StatusCode::OK {
        return Err(format!(
            "GET {path}: {} {}",
            answer.status.as_u16(),
            String::from_utf8_lossy(&answer.body)
        ));
    }
    answer
        .json()
        .ok_or_else(|| format!("GET {path}: the body is not JSON"))
}

/// An exact decimal from a JSON number or text, never through f64.
pub(crate) fn decimal_field(body: &Value, name: &str) -> Option<Decimal> {
    let text = match body.get(name)? {
        Value::Number(number) => number.to_string(),
        Value::String(text) => text.clone(),
        _ => return None,
    };
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_read_exactly_from_numbers_and_text() {
        let body: Value =
            serde_json::from_str(r#"{"a":-1234567.10,"b":"12.5","c":1.5e3,"d":true}"#).unwrap();
        assert_eq!(
            decimal_field(&body, "a"),
            Decimal::from_str("-1234567.10").ok()
        );
        assert_eq!(decimal_field(&body, "b"), Decimal::from_str("12.5").ok());
        assert_eq!(decimal_field(&body, "c"), Some(Decimal::from(1500)));
        assert_eq!(decimal_field(&body, "d"), None);
    }

    #[test]
    fn expected_balances_are_anticipos_minus_tanqueos() {
        let record = |id, bomba_id, tipo, valor: i64| Acknowledged {
            id,
            bomba_id,
            tipo,
            valor: Decimal::from(valor),
        };
        let expected = Expected::from_acknowledged(&[
            record(1, 7, TipoOperacion::Anticipo, 500_000),
            record(2, 7, TipoOperacion::Tanqueo, 150_000),
            record(3, 8, TipoOperacion::Tanqueo, 60_000),
        ]);
        assert_eq!(expected.balances[&7], Decimal::from(350_000));
        assert_eq!(expected.balances[&8], Decimal::from(-60_000));
        assert_eq!(expected.read_back.len(), 3);
        assert_eq!(expected.acknowledged, 3);
    }
}
