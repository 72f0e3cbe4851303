//! Upcasting: events are never edited, so a change of an event's schema is a new version plus a
//! pure function that turns a payload of the old version into one of the new. Readers only ever
//! see the current version of each type; the log keeps the bytes that were written (the chain
//! hash, `verify` and `export` cover those).
//!
//! The store applies [`REGISTRY`] to every event it reads, in one place, before any aggregate,
//! read model, feed or audit answer sees it. Steps chain: a v1 event reaches v3 through v1→v2
//! and v2→v3.

use serde_json::Value;

use crate::fuel::FuelRecord;

/// One step of one event type's schema: a payload of version `from` becomes one of `from + 1`.
#[derive(Debug, Clone, Copy)]
pub struct Upcaster {
    pub event_type: &'static str,
    pub from: i32,
    /// Pure: the payload in, the payload one version later out, or why this payload cannot be
    /// read at all (a stored event that breaks its own version's schema).
    pub upcast: fn(Value) -> Result<Value, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpcastError {
    #[error(
        "{event_type} version {stored} cannot be read: this release reads version {current} and \
         knows no step from version {missing}"
    )]
    NoPath {
        event_type: String,
        stored: i32,
        current: i32,
        missing: i32,
    },
    /// Written by a newer release than this one (after a rollback, say): reading it as an older
    /// version would misread it.
    #[error(
        "{event_type} version {stored} was written by a newer release: this one reads up to \
         version {current}"
    )]
    Newer {
        event_type: String,
        stored: i32,
        current: i32,
    },
    #[error("{event_type} version {from} could not be upcast: {reason}")]
    Invalid {
        event_type: String,
        from: i32,
        reason: String,
    },
}

/// The upcasters of the domain's event types; a type without any is at version 1.
#[derive(Debug, Clone, Copy)]
pub struct Registry {
    steps: &'static [Upcaster],
}

/// Every schema change the domain has made.
pub const REGISTRY: Registry = Registry::new(&[Upcaster {
    event_type: "TanqueoVoided",
    from: 1,
    upcast: tanqueo_voided_v1_to_v2,
}]);

impl Registry {
    pub const fn new(steps: &'static [Upcaster]) -> Self {
        Self { steps }
    }

    /// The version writers write and readers see: one past the newest step, 1 without steps.
    pub fn current_version(&self, event_type: &str) -> i32 {
        self.steps
            .iter()
            .filter(|step| step.event_type == event_type)
            .map(|step| step.from + 1)
            .max()
            .unwrap_or(1)
    }

    /// The payload of `event_type` stored at `version`, at the current version; answers that
    /// version and the payload. A payload already current comes back untouched.
    pub fn upcast(
        &self,
        event_type: &str,
        version: i32,
        mut payload: Value,
    ) -> Result<(i32, Value), UpcastError> {
        let current = self.current_version(event_type);
        if version > current {
            return Err(UpcastError::Newer {
                event_type: event_type.to_string(),
                stored: version,
                current,
            });
        }
        let mut at = version;
        while at < current {
            let step = self
                .steps
                .iter()
                .find(|step| step.event_type == event_type && step.from == at)
                .ok_or_else(|| UpcastError::NoPath {
                    event_type: event_type.to_string(),
                    stored: version,
                    current,
                    missing: at,
                })?;
            payload = (step.upcast)(payload).map_err(|reason| UpcastError::Invalid {
                event_type: event_type.to_string(),
                from: at,
                reason,
            })?;
            at += 1;
        }
        Ok((at, payload))
    }
}

/// `TanqueoVoided` v2 states what the void did to the station's balance (`efecto_saldo`: the
/// record's own effect taken back, `+valor_tanqueo` for a refuel, `-valor_anticipo` for an
/// advance), as decided when it was recorded. v1 left every reader to derive it again from the
/// record's type and amounts; here it is derived once, by the rule v1's readers used.
fn tanqueo_voided_v1_to_v2(mut payload: Value) -> Result<Value, String> {
    let Value::Object(fields) = &mut payload else {
        return Err("the payload is not an object".to_string());
    };
    let record = fields
        .get("record")
        .ok_or_else(|| "it names no record".to_string())?;
    // Through the text, as the codec reads events: a decimal beyond u64 does not survive a
    // `Value` on its way to `rust_decimal`.
    let record: FuelRecord =
        serde_json::from_str(&record.to_string()).map_err(|e| format!("record: {e}"))?;
    let efecto = serde_json::to_value(record.effect_of_void()).map_err(|e| e.to_string())?;
    fields.insert("efecto_saldo".to_string(), efecto);
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A type that only tests have, at version 3.
    const CHAINED: Registry = Registry::new(&[
        Upcaster {
            event_type: "Sampled",
            from: 2,
            upcast: |mut p| {
                p["c"] = json!(3);
                Ok(p)
            },
        },
        Upcaster {
            event_type: "Sampled",
            from: 1,
            upcast: |mut p| {
                p["b"] = json!(2);
                Ok(p)
            },
        },
    ]);

    #[test]
    fn steps_chain_from_any_old_version_to_the_current_one() {
        assert_eq!(CHAINED.current_version("Sampled"), 3);
        assert_eq!(
            CHAINED.upcast("Sampled", 1, json!({ "a": 1 })),
            Ok((3, json!({ "a": 1, "b": 2, "c": 3 })))
        );
        assert_eq!(
            CHAINED.upcast("Sampled", 2, json!({ "a": 1, "b": 2 })),
            Ok((3, json!({ "a": 1, "b": 2, "c": 3 })))
        );
        let current = json!({ "a": 1, "b": 2, "c": 3 });
        assert_eq!(
            CHAINED.upcast("Sampled", 3, current.clone()),
            Ok((3, current))
        );
    }

    #[test]
    fn a_type_without_steps_is_at_version_one_and_read_as_stored() {
        let payload = json!({ "id": 1, "nombre": "Norte" });
        assert_eq!(
            REGISTRY.upcast("OperationAreaRegistered", 1, payload.clone()),
            Ok((1, payload))
        );
    }

    #[test]
    fn a_version_without_a_path_is_an_error_naming_the_missing_step() {
        const GAP: Registry = Registry::new(&[Upcaster {
            event_type: "Sampled",
            from: 2,
            upcast: Ok,
        }]);
        let error = GAP.upcast("Sampled", 1, json!({})).unwrap_err();
        assert_eq!(
            error,
            UpcastError::NoPath {
                event_type: "Sampled".into(),
                stored: 1,
                current: 3,
                missing: 1
            }
        );
        assert_eq!(
            error.to_string(),
            "Sampled version 1 cannot be read: this release reads version 3 and knows no step \
             from version 1"
        );
        assert_eq!(
            GAP.upcast("Sampled", 0, json!({})).unwrap_err().to_string(),
            "Sampled version 0 cannot be read: this release reads version 3 and knows no step \
             from version 0"
        );
        assert_eq!(
            REGISTRY
                .upcast("TanqueoVoided", 7, json!({}))
                .unwrap_err()
                .to_string(),
            "TanqueoVoided version 7 was written by a newer release: this one reads up to \
             version 2"
        );
    }

    #[test]
    fn a_v1_void_reads_with_the_effect_it_had_on_the_balance() {
        // From text: `json!` would take 150000.50 through an f64.
        let record: Value = serde_json::from_str(
            r#"{"id": 4, "fecha": "2024-03-15", "bomba_id": 1, "area_operacion_id": 1,
            "concepto": "OPERATIVO", "tipo_operacion": "TANQUEO", "observacion": null,
            "saldo_disponible": null, "conductor_id": null, "placa_id": null,
            "tipo_combustible": null, "valor_tanqueo": 150000.50, "cantidad_galones": null,
            "costo_por_galon": null, "horometro": null, "valor_anticipo": null}"#,
        )
        .unwrap();
        let v1 = json!({ "id": 4, "motivo": "Duplicado", "record": record.clone() });
        let (version, v2) = REGISTRY.upcast("TanqueoVoided", 1, v1).unwrap();
        assert_eq!(version, 2);
        assert_eq!(v2.to_string(), {
            let mut want = json!({ "id": 4, "motivo": "Duplicado", "record": record });
            want["efecto_saldo"] = serde_json::from_str("150000.50").unwrap();
            want.to_string()
        });

        let mut anticipo = v2["record"].clone();
        anticipo["tipo_operacion"] = json!("ANTICIPO");
        anticipo["valor_tanqueo"] = Value::Null;
        anticipo["valor_anticipo"] = serde_json::from_str("150000000000000000000").unwrap();
        let v1 = json!({ "id": 4, "motivo": "Duplicado", "record": anticipo });
        let (_, v2) = REGISTRY.upcast("TanqueoVoided", 1, v1).unwrap();
        assert_eq!(v2["efecto_saldo"].to_string(), "-150000000000000000000");
    }

    #[test]
    fn a_v1_void_that_breaks_its_own_schema_is_an_error_not_a_panic() {
        for payload in [
            json!(null),
            json!({ "id": 4 }),
            json!({ "record": { "id": "x" } }),
        ] {
            let error = REGISTRY.upcast("TanqueoVoided", 1, payload).unwrap_err();
            assert!(
                matches!(error, UpcastError::Invalid { from: 1, .. }),
                "{error}"
            );
        }
    }
}
