//! Auditoría: the live event feed of `/api/eventos/stream`, read by the browser's native
//! `EventSource` from `/ui/auditoria/stream` (the same handler behind the session cookie, since
//! an `EventSource` cannot send an `Authorization` header), filtered by type and actor; a click
//! shows an event's data and metadata. Every role reads the feed, as on the API.

use aggregates::audit::EVENT_TYPES;
use axum::extract::State;
use axum::Extension;
use maud::{html, PreEscaped};

use super::{layout, Page, Section};
use crate::auth::Actor;
use crate::AppState;

pub const PATH: &str = "/ui/auditoria";
pub const STREAM_PATH: &str = "/ui/auditoria/stream";
/// Events of the past the feed opens with, before the live ones.
const RECENT_EVENTS: i64 = 50;

/// Listens for every event type (the feed names each event's type, and `EventSource` hands a
/// named event only to a listener of that name), adds each event as a row at the top, filters
/// the rows, and shows a clicked event's data and metadata. Text goes in with `textContent`:
/// nothing from an event is read as HTML.
const SCRIPT: &str = r#"
(function () {
  var feed = document.getElementById('feed');
  var tipo = document.getElementById('filtro-tipo');
  var actor = document.getElementById('filtro-actor');
  var estado = document.getElementById('estado');
  var detalle = document.getElementById('detalle');
  var ROWS_MAX = 500;
  // Times on the service's clock (--time-zone), as the other pages write them; the browser's
  // own clock when it does not know the zone.
  var clock;
  try {
    clock = new Intl.DateTimeFormat('en-GB', {
      timeZone: feed.dataset.zona, year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
  } catch (e) {
    clock = new Intl.DateTimeFormat('en-GB', {
      year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
  }
  function when(text) {
    var d = new Date(text);
    if (isNaN(d)) { return text; }
    var part = {};
    clock.formatToParts(d).forEach(function (p) { part[p.type] = p.value; });
    return part.day + '/' + part.month + '/' + part.year + ' ' +
      part.hour + ':' + part.minute + ':' + part.second;
  }
  function visible(row) {
    var wanted = actor.value.trim().toLowerCase();
    return (!tipo.value || row.dataset.tipo === tipo.value) &&
      (!wanted || row.dataset.actor.toLowerCase().indexOf(wanted) !== -1);
  }
  function refilter() {
    for (var i = 0; i < feed.rows.length; i++) { feed.rows[i].hidden = !visible(feed.rows[i]); }
  }
  tipo.addEventListener('change', refilter);
  actor.addEventListener('input', refilter);
  function show(row, event) {
    var chosen = feed.querySelector('tr.elegido');
    if (chosen) { chosen.classList.remove('elegido'); }
    row.classList.add('elegido');
    detalle.hidden = false;
    document.getElementById('detalle-titulo').textContent =
      event.event_type + ' · ' + event.stream_type + '/' + event.stream_id + ' · posición ' + event.position;
    document.getElementById('detalle-data').textContent = JSON.stringify(event.payload, null, 2);
    document.getElementById('detalle-metadata').textContent = JSON.stringify(event.metadata, null, 2);
  }
  function add(message) {
    var event;
    try { event = JSON.parse(message.data); } catch (e) { return; }
    var row = document.createElement('tr');
    row.className = 'evento';
    row.dataset.tipo = event.event_type;
    row.dataset.actor = (event.metadata && event.metadata.actor) || '';
    row.dataset.posicion = event.position;
    [String(event.position), when(event.recorded_at), event.event_type,
     event.stream_type + '/' + event.stream_id, row.dataset.actor].forEach(function (text) {
      var cell = document.createElement('td');
      cell.textContent = text;
      row.appendChild(cell);
    });
    row.addEventListener('click', function () { show(row, event); });
    row.hidden = !visible(row);
    feed.insertBefore(row, feed.firstChild);
    while (feed.rows.length > ROWS_MAX) { feed.deleteRow(feed.rows.length - 1); }
  }
  var source = new EventSource(feed.dataset.stream);
  source.addEventListener('open', function () { estado.textContent = 'En vivo'; });
  source.addEventListener('error', function () { estado.textContent = 'Reconectando…'; });
  source.addEventListener('message', add);
  JSON.parse(feed.dataset.tipos).forEach(function (name) { source.addEventListener(name, add); });
})();
"#;

/// `GET /ui/auditoria`.
pub async fn page(State(state): State<AppState>, Extension(actor): Extension<Actor>) -> Page {
    let head = state.log.head().await?;
    let desde = (head - RECENT_EVENTS + 1).max(1);
    let tipos = serde_json::to_string(EVENT_TYPES).unwrap_or_else(|_| "[]".into());
    let body = html! {
        h1 { "Auditoría" }
        p { "Eventos en vivo: " strong #estado { "Conectando…" } " (los últimos " (RECENT_EVENTS) " y cada uno nuevo, sin recargar)." }
        form.filtros onsubmit="return false" {
            label { "Tipo"
                select #filtro-tipo {
                    option value="" { "Todos" }
                    @for name in EVENT_TYPES { option value=(name) { (name) } }
                }
            }
            label { "Actor" input #filtro-actor type="search" placeholder="ana@flota.co"; }
        }
        div.tarjeta #detalle hidden {
            h2 #detalle-titulo {}
            h2 { "Datos" }
            pre #detalle-data {}
            h2 { "Metadatos" }
            pre #detalle-metadata {}
        }
        div.tabla {
            table {
                thead { tr { th { "Posición" } th { "Cuándo" } th { "Evento" } th { "Flujo" } th { "Actor" } } }
                tbody #feed data-stream={ (STREAM_PATH) "?desde_posicion=" (desde) } data-tipos=(tipos)
                    data-zona=(state.settings.time_zone.name) {}
            }
        }
        script { (PreEscaped(SCRIPT)) }
    };
    Ok(layout("Auditoría", Some(&actor), Section::Auditoria, body))
}
