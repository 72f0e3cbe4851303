// The dashboard (/ui) in a real browser: Debian's headless Chromium driven by playwright-core.
// Run by .ci/browser against a running `fleet-ledger serve`: BASE_URL is the service, TOKEN an
// admin token, SCREENSHOTS the folder for one screenshot per page (docs/ in the repository).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const BASE_URL = process.env.BASE_URL;
const TOKEN = process.env.TOKEN;
const SCREENSHOTS = process.env.SCREENSHOTS ?? 'docs';
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
assert.ok(BASE_URL && TOKEN, 'BASE_URL and TOKEN are required');

/** A request to the API with the admin token; answers the parsed body, failing on a refusal. */
async function api(method, path, body) {
  const response = await fetch(BASE_URL + path, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Whole pesos as the dashboard writes them: `$ 1.100.000`, `-$ 80.000`. */
function cop(amount) {
  const digits = String(Math.abs(amount)).replace(/\B(?=(\d{3})+(?!\d))/g, '.');
  return `${amount < 0 ? '-' : ''}$ ${digits}`;
}

/** `YYYY-MM-DD` of the day before today in the service's zone (America/Bogota, UTC−5). */
function yesterdayInBogota() {
  return new Date(Date.now() - 5 * 3600e3 - 24 * 3600e3).toISOString().slice(0, 10);
}

let browser;
let page;

before(async () => {
  await api('POST', '/api/areas-operacion', { nombre: 'Logística' });
  await api('POST', '/api/bombas', { bomba: 'Estación Central', area_operacion_id: 1 });
  await api('POST', '/api/bombas', { bomba: 'Estación Norte', area_operacion_id: 1 });
  await api('POST', '/api/placas', { placa: 'ABC123' });
  await api('POST', '/api/placas', { placa: 'XYZ987' });
  await api('POST', '/api/conductores', { conductor: 'Juan Pérez', area_principal: 1 });
  await api('POST', '/api/flota/sync');
  await api('DELETE', '/vehiculo/2');
  await api('POST', '/api/misiones', {
    vehiculo_id: 1, conductor_id: 1, descripcion: 'Ruta norte', fecha_programada: '2026-03-01',
  });
  await api('POST', '/api/tanqueos', {
    fecha: '2024-03-15', bomba_id: 1, area_operacion_id: 1, tipo_operacion: 'ANTICIPO',
    valor_anticipo: 1250000, saldo_disponible: 1250000,
  });
  // The station reports 1.000.000 where the ledger computes 1.100.000: a red mark.
  await api('POST', '/api/tanqueos', {
    fecha: '2024-03-16', conductor_id: 1, placa_id: 1, bomba_id: 1, area_operacion_id: 1,
    tipo_combustible: 'ACPM', valor_tanqueo: 150000, cantidad_galones: 12.5, saldo_disponible: 1000000,
  });
  // A station below zero.
  await api('POST', '/api/tanqueos', {
    fecha: '2024-03-16', conductor_id: 1, placa_id: 1, bomba_id: 2, area_operacion_id: 1,
    valor_tanqueo: 80000, cantidad_galones: 6,
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--lang=es-CO'],
  });
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 }, locale: 'es-CO' });
  page = await context.newPage();
});

after(async () => {
  await browser?.close();
});

test('a bad token goes back to the login page with a message, never a 500', async () => {
  const response = await page.goto(`${BASE_URL}/ui`);
  assert.equal(new URL(page.url()).pathname, '/ui/login');
  assert.equal(response.status(), 200);
  await page.fill('textarea[name=token]', 'no.es.un-token');
  await page.click('button:has-text("Entrar")');
  assert.match(await page.textContent('#mensaje'), /Token no válido o vencido/);
  // Without --dev-login there is no role picker.
  assert.equal(await page.locator('#ingreso-desarrollo').count(), 0);
});

test('log in with a token and see every station, the odd ones marked', async () => {
  await page.goto(`${BASE_URL}/ui/login`);
  await page.screenshot({ path: `${SCREENSHOTS}/ui-login.png`, fullPage: true });
  await page.fill('textarea[name=token]', TOKEN);
  await page.click('button:has-text("Entrar")');
  assert.equal(new URL(page.url()).pathname, '/ui/estaciones');
  const rows = page.locator('#estaciones tbody tr');
  assert.equal(await rows.count(), 2);
  // Central: computed 1.100.000, reported 1.000.000. Norte: negative.
  assert.equal(await page.locator('#estaciones tr.alerta').count(), 2);
  assert.equal(await rows.nth(0).locator('td.saldo').textContent(), '$ 1.100.000');
  assert.equal(await rows.nth(1).locator('td.saldo').textContent(), '-$ 80.000');
  await page.screenshot({ path: `${SCREENSHOTS}/ui-estaciones.png`, fullPage: true });
  // On a phone's width the page does not scroll sideways: a wide table scrolls in its box.
  await page.setViewportSize({ width: 390, height: 800 });
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 390));
  await page.setViewportSize({ width: 1100, height: 800 });
});

test('a station shows its chart and the balance the API answers, now and as of a date', async () => {
  await page.click('a:has-text("Estación Central")');
  assert.equal(new URL(page.url()).pathname, '/ui/estaciones/1');
  const chart = page.locator('svg#grafica-saldo');
  assert.ok(await chart.isVisible());
  assert.equal(await chart.locator('circle').count(), 2);
  const now = await api('GET', '/api/bombas/1/saldo');
  assert.equal(await page.locator('#saldo').getAttribute('data-saldo'), String(now.saldo));
  assert.equal(await page.textContent('#saldo'), cop(now.saldo));
  assert.equal(await page.locator('#extracto tbody tr').count(), 2);
  await page.screenshot({ path: `${SCREENSHOTS}/ui-estacion.png`, fullPage: true });

  // Yesterday the ledger knew nothing of the station's movements (they were recorded today).
  const yesterday = yesterdayInBogota();
  await page.fill('#as-of', yesterday);
  await page.click('button:has-text("Ver")');
  assert.equal(new URL(page.url()).searchParams.get('as_of'), yesterday);
  const then = await api('GET', `/api/bombas/1/saldo?as_of=${yesterday}`);
  assert.equal(then.saldo, 0);
  assert.equal(await page.textContent('#saldo'), cop(then.saldo));
  assert.equal(await page.inputValue('#as-of'), yesterday);
  assert.equal(await page.locator('svg#grafica-saldo').count(), 0);
});

test('vehicles, live and deleted, and a vehicle with its refuels and history', async () => {
  await page.click('header a:has-text("Vehículos")');
  assert.equal(new URL(page.url()).pathname, '/ui/vehiculos');
  assert.equal(await page.locator('#vehiculos tbody tr').count(), 2);
  assert.equal(await page.locator('#vehiculos tr.eliminado').count(), 1);
  await page.screenshot({ path: `${SCREENSHOTS}/ui-vehiculos.png`, fullPage: true });
  await page.click('a:has-text("ABC123")');
  assert.equal(new URL(page.url()).pathname, '/ui/vehiculos/1');
  assert.match(await page.textContent('main'), /Misiones activas: 1/);
  assert.equal(await page.locator('#tanqueos tbody tr').count(), 2);
  assert.ok((await page.locator('#historial tbody tr').count()) >= 1);
  await page.screenshot({ path: `${SCREENSHOTS}/ui-vehiculo.png`, fullPage: true });
});

test('the reconciliation highlights the differing movement and downloads as CSV', async () => {
  await page.click('header a:has-text("Conciliación")');
  assert.equal(new URL(page.url()).pathname, '/ui/conciliacion');
  assert.equal(await page.locator('tr.discrepancia').count(), 1);
  await page.screenshot({ path: `${SCREENSHOTS}/ui-conciliacion.png`, fullPage: true });
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.click('#descargar-csv'),
  ]);
  assert.equal(download.suggestedFilename(), 'conciliacion.csv');
  const csv = await page.request.get(`${BASE_URL}/ui/conciliacion.csv`);
  assert.equal(csv.status(), 200);
  assert.match(csv.headers()['content-type'], /^text\/csv/);
  assert.match(await csv.text(), /^bomba_id,nombre_bomba,saldo_calculado/);
});

test('a refuel posted through the API appears in the live feed without reloading', async () => {
  await page.click('header a:has-text("Auditoría")');
  assert.equal(new URL(page.url()).pathname, '/ui/auditoria');
  await page.waitForFunction(() => document.getElementById('estado').textContent === 'En vivo');
  await page.waitForFunction(() => document.querySelectorAll('#feed tr').length > 0);
  await page.evaluate(() => { window.sinRecargar = true; });
  const seen = await page.evaluate(() =>
    Math.max(...[...document.querySelectorAll('#feed tr')].map((row) => Number(row.dataset.posicion))));
  await api('POST', '/api/tanqueos', {
    fecha: '2024-03-17', conductor_id: 1, placa_id: 1, bomba_id: 1, area_operacion_id: 1,
    valor_tanqueo: 98765, cantidad_galones: 8,
  });
  const posted = await page.waitForFunction((seen) => [...document.querySelectorAll('#feed tr')]
    .find((row) => row.dataset.tipo === 'TanqueoRecorded' && Number(row.dataset.posicion) > seen)
    ?.dataset.posicion, seen, { timeout: 10_000 });
  const row = page.locator(`#feed tr[data-posicion="${await posted.jsonValue()}"]`);
  assert.equal(await page.evaluate(() => window.sinRecargar), true, 'the page was not reloaded');
  assert.match(await row.locator('td').nth(1).textContent(), /^\d{2}\/\d{2}\/\d{4} \d{2}:\d{2}:\d{2}$/);
  await row.click();
  assert.ok(await page.locator('#detalle').isVisible());
  assert.match(await page.textContent('#detalle-titulo'), /^TanqueoRecorded · fuel-station\/1/);
  assert.match(await page.textContent('#detalle-data'), /98765/);
  assert.match(await page.textContent('#detalle-metadata'), /"actor"/);
  // Filtered by type, the refuels leave; by an actor nobody is, everything does.
  await page.selectOption('#filtro-tipo', 'AnticipoPaid');
  assert.equal(await page.locator('#feed tr[data-tipo=TanqueoRecorded]:visible').count(), 0);
  assert.equal(
    await page.locator('#feed tr:visible').count(),
    await page.locator('#feed tr[data-tipo=AnticipoPaid]').count(),
  );
  await page.selectOption('#filtro-tipo', '');
  await page.fill('#filtro-actor', 'nadie@ninguna.parte');
  assert.equal(await page.locator('#feed tr:visible').count(), 0);
  await page.fill('#filtro-actor', '');
  await page.screenshot({ path: `${SCREENSHOTS}/ui-auditoria.png`, fullPage: true });
});

test('logging out ends the session', async () => {
  await page.click('button:has-text("Salir")');
  assert.equal(new URL(page.url()).pathname, '/ui/login');
  assert.match(await page.textContent('#mensaje'), /Sesión cerrada/);
  await page.goto(`${BASE_URL}/ui/estaciones`);
  assert.equal(new URL(page.url()).pathname, '/ui/login');
});
