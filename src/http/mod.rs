//! HTTP: one module per resource family. Handlers extract, call the domain, render.

pub mod alertas;
pub mod areas;
pub mod auditoria;
pub mod auto_inspecao;
pub mod bombas;
pub mod catalogos;
pub mod cierres;
pub mod conciliacion;
pub mod conductores;
pub mod contabilidad;
pub mod error;
pub mod eventos;
pub mod extract;
pub mod fields;
pub mod flota;
pub mod health;
pub mod idempotency;
pub mod import;
pub mod inspection_registry;
pub mod limits;
pub mod lookup;
pub mod middleware;
pub mod misiones;
pub mod openapi;
pub mod placas;
pub mod saldos;
pub mod scraping;
pub mod tanqueos;
pub mod ui;
pub mod vehiculo;
pub mod webhooks;

use aggregates::snapshot::Snapshotted;
use error::ApiError;
use extract::CommandContext;

use crate::commands::{CommandBus, Executed};
use crate::AppState;

/// Parses a numeric path id; anything else is a 400 naming what was expected (`what` with its
/// article: "la bomba", "el webhook").
pub fn parse_id(raw: &str, what: &str) -> Result<i64, ApiError> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            // Spanish contracts "de el" into "del".
            let of_what = match what.strip_prefix("el ") {
                Some(noun) => format!("del {noun}"),
                None => format!("de {what}"),
            };
            ApiError::BadRequest(format!(
                "El ID {of_what} debe ser un número entero positivo"
            ))
        })
}

/// Runs `command` on `stream_id` and answers once the read models its events touch show it, so a
/// read sent right after the response sees the write. When they lag (a stalled projection, or
/// more than the timeout), the answer still goes out, marked with `X-Read-Models-Lag`. The
/// aggregate's refusals become 4xx through `refused`.
pub async fn run_command<A>(
    state: &AppState,
    bus: &CommandBus<A>,
    stream_id: &str,
    command: A::Command,
    context: &CommandContext,
    refused: impl FnOnce(A::Error) -> ApiError,
) -> Result<Executed<A>, ApiError>
where
    A: Snapshotted + Clone + 'static,
    A::Command: Clone,
{
    let (executed, ()) =
        run_command_viewing(state, bus, stream_id, command, context, refused, |_| ()).await?;
    Ok(executed)
}

/// Runs `command` for a handler that renders its answer from the command's own events, so it
/// does not wait for the read models: a read sent after the answer waits for them instead
/// ([`AppState::read_barrier`]). `X-Read-Models-Lag` says when a read model the events touch is
/// stalled, and reads will not show the write until it is fixed.
pub async fn run_command_answering_from_events<A>(
    state: &AppState,
    bus: &CommandBus<A>,
    stream_id: &str,
    command: A::Command,
    context: &CommandContext,
    refused: impl FnOnce(A::Error) -> ApiError,
) -> Result<Executed<A>, ApiError>
where
    A: Snapshotted + Clone + 'static,
    A::Command: Clone,
{
    let (executed, ()) = execute(state, bus, stream_id, command, context, refused, |_| ()).await?;
    if !state.can_show(&executed.touched) {
        context.lag.mark();
    }
    Ok(executed)
}

/// [`run_command`], also answering `view` of the aggregate as the command left it.
pub async fn run_command_viewing<A, R>(
    state: &AppState,
    bus: &CommandBus<A>,
    stream_id: &str,
    command: A::Command,
    context: &CommandContext,
    refused: impl FnOnce(A::Error) -> ApiError,
    view: impl FnMut(&A) -> R,
) -> Result<(Executed<A>, R), ApiError>
where
    A: Snapshotted + Clone + 'static,
    A::Command: Clone,
{
    let (executed, viewed) =
        execute(state, bus, stream_id, command, context, refused, view).await?;
    if !state.settle(executed.position(), &executed.touched).await {
        context.lag.mark();
    }
    Ok((executed, viewed))
}

/// Executes `command` under the request's idempotency key, and tells the reference index when
/// the command appended to a stream it follows.
async fn execute<A, R>(
    state: &AppState,
    bus: &CommandBus<A>,
    stream_id: &str,
    command: A::Command,
    context: &CommandContext,
    refused: impl FnOnce(A::Error) -> ApiError,
    view: impl FnMut(&A) -> R,
) -> Result<(Executed<A>, R), ApiError>
where
    A: Snapshotted + Clone + 'static,
    A::Command: Clone,
{
    let (executed, viewed) = bus
        .execute_keyed(
            stream_id,
            command,
            &context.metadata,
            context.idempotency.as_deref(),
            view,
        )
        .await
        .map_err(|e| error::command_error(e, refused))?;
    if executed.appended.is_some() {
        state.references.appended_to(A::TYPE).await;
    }
    Ok((executed, viewed))
}

#[cfg(test)]
mod tests {
    use super::parse_id;

    #[test]
    fn a_bad_path_id_is_refused_naming_what_it_should_identify_in_spanish() {
        let message = |what| parse_id("abc", what).unwrap_err().to_string();
        assert_eq!(
            message("el webhook"),
            "El ID del webhook debe ser un número entero positivo"
        );
        assert_eq!(
            message("la bomba"),
            "El ID de la bomba debe ser un número entero positivo"
        );
        assert_eq!(parse_id(" 7 ", "la bomba").unwrap(), 7);
        assert!(parse_id("0", "la bomba").is_err());
    }
}
