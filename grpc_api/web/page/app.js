// CityGrid 一张图: the district's grids coloured by events, live over Server-Sent Events.
// Everything comes from this server (/api/v1/...); MapLibre GL JS is vendored (/static/vendor/).
// Labels are HTML markers, not MapLibre symbol layers: symbols need a glyph server (PBF font
// ranges), and CJK glyph ranges for the demo's names would be megabytes to vendor; the browser's
// own fonts draw the ~120 area names.
import * as maplibregl from "/static/vendor/maplibre-gl/maplibre-gl.mjs";

// MapLibre's workers (and their 0.5 MB script) start now, while the page asks for a token, not
// after the map's WebGL set-up (about half a second on a CPU rasteriser) when the tiles need them
maplibregl.prewarm();

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "citygrid.token";
const COLORS = ["#1b3447", "#2c7fb8", "#41b6c4", "#a1dab4", "#fecc5c", "#fd8d3c", "#e31a1c"];
const GRADES = ["A", "B", "C", "D", "E"];

// What tests and curious users can read: window.citygrid.
const state = window.citygrid = {
  ready: false, gridsDrawn: 0, values: {}, tallies: { day: {}, week: {} }, alerts: new Map(),
  measure: "day", category: "", dayOffset: 0, me: null, map: null, grids: null, streamEvents: 0,
};

function token() { return sessionStorage.getItem(TOKEN_KEY); }

async function api(path, { raw = false } = {}) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${token()}` } });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (e) { /* not a problem body */ }
    const error = new Error(detail); error.status = response.status; throw error;
  }
  return raw ? response : response.json();
}

// ------------------------------------------------------------------ time

// Intl formatters are slow to make (hundreds of ms on a slow machine): one of each, made on first use
const formatters = {};
function formatter(name, options) {
  return formatters[name] || (formatters[name] = new Intl.DateTimeFormat(name === "offset" ? "en-US" : "en-CA",
    { timeZone: state.me.timezone, ...options }));
}

function localDay(offsetDays) {
  // midnight of (today - offsetDays) in the server's time zone, as an ISO time with offset
  const now = new Date(state.me.now);
  const fmt = formatter("day", { year: "numeric", month: "2-digit", day: "2-digit" });
  const base = new Date(`${fmt.format(now)}T00:00:00Z`);
  base.setUTCDate(base.getUTCDate() - offsetDays);
  const day = base.toISOString().slice(0, 10);
  return `${day}T00:00:00${zoneOffset(now)}`;
}

function zoneOffset(date) {
  const parts = formatter("offset", { timeZoneName: "longOffset" }).formatToParts(date);
  const name = parts.find((p) => p.type === "timeZoneName").value.replace("GMT", "");
  return name === "" ? "+00:00" : name;
}

function addDays(iso, days) {
  const d = new Date(iso.slice(0, 10) + "T00:00:00Z");
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10) + iso.slice(10);
}

function weekStart(dayIso) {
  const d = new Date(dayIso.slice(0, 10) + "T00:00:00Z");
  const monday = (d.getUTCDay() + 6) % 7;
  return addDays(dayIso, -monday);
}

function filterParam() { return state.category ? `&filter=${encodeURIComponent("class:" + state.category)}` : ""; }

// ------------------------------------------------------------------ colouring

function breaks(values) {
  const positive = values.filter((v) => v > 0).sort((a, b) => a - b);
  if (!positive.length) return [1, 2, 3, 4, 5, 6];
  const q = (p) => positive[Math.min(positive.length - 1, Math.floor(p * positive.length))];
  const raw = [q(0), q(0.3), q(0.55), q(0.75), q(0.9), q(0.97)];
  const out = [];
  for (const v of raw) {
    const r = state.measure === "per1000" ? Math.round(v * 100) / 100 : Math.ceil(v);
    out.push(out.length && r <= out[out.length - 1] ? out[out.length - 1] + (state.measure === "per1000" ? 0.01 : 1) : r);
  }
  return out;
}

function colourOf(value, steps) {
  if (!(value > 0)) return COLORS[0];
  let k = 0;
  while (k < steps.length - 1 && value >= steps[k + 1]) k++;
  return COLORS[k + 1];
}

const MEASURE_TITLE = { day: "事件数(日)", week: "事件数(周)", per1000: "每千人事件数(周)" };

function paint(values) {
  state.values = values;
  const map = state.map;
  const steps = breaks(Object.values(values));
  state.steps = steps;
  for (const code of state.grids) {
    map.setFeatureState({ source: "areas", sourceLayer: "grid", id: code }, { colour: colourOf(values[code] || 0, steps), value: values[code] || 0 });
  }
  const legend = $("legend");
  legend.innerHTML = "";
  const rows = [["0", COLORS[0]]];
  steps.forEach((s, k) => {
    const next = steps[k + 1];
    const unit = state.measure === "per1000" ? "" : " 件";
    const top = state.measure === "per1000" ? next : next - 1;
    const text = next === undefined ? `≥ ${s}` : (top === s ? `${s}` : `${s} – ${top}`);
    rows.push([text + unit, COLORS[k + 1]]);
  });
  for (const [text, colour] of rows) {
    const row = document.createElement("div");
    row.className = "row";
    row.innerHTML = `<span class="swatch" style="background:${colour}"></span><span>${text}</span>`;
    legend.appendChild(row);
  }
  const total = Object.values(values).reduce((a, b) => a + b, 0);
  $("legend-title").textContent = `图例 · ${MEASURE_TITLE[state.measure]}${state.category ? " · " + $("category").selectedOptions[0].text : ""}`;
  $("status").textContent = `${dayLabel()} · 合计 ${state.measure === "per1000" ? total.toFixed(1) : total} · ${state.grids.length} 个网格`;
  if (state.selected) refreshCardCount();
}

function dayLabel() { return state.dayOffset === 0 ? "今日(实时)" : localDay(state.dayOffset).slice(0, 10); }

async function recolour() {
  if (!state.grids) return;
  const day = localDay(state.dayOffset);
  if (state.measure === "per1000") {
    const start = weekStart(day), end = addDays(day, 1);
    const answer = await api(`/api/v1/aggregate?dimensions=grid&measures=reported_per_1000_residents&start=${enc(start)}&end=${enc(end)}${filterParam()}`);
    const values = {};
    answer.columns.grid.forEach((code, k) => { values[code] = answer.columns.reported_per_1000_residents[k] || 0; });
    paint(values);
  } else if (state.dayOffset === 0 && !state.category) {
    paint(state.measure === "day" ? state.tallies.day : state.tallies.week);
  } else {
    const start = state.measure === "day" ? day : weekStart(day);
    const answer = await api(`/api/v1/heatmap?start=${enc(start)}&end=${enc(addDays(day, 1))}${filterParam()}`);
    paint(answer.grids);
  }
  if ($("h3-on").checked) await drawH3();
}

const enc = encodeURIComponent;

// ------------------------------------------------------------------ the map

// The areas are drawn from vector tiles the server cuts once per layer version
// (/api/v1/layer/tiles/{z}/{x}/{y}: MVT layers grid, community and street, each feature with its
// code). Given GeoJSON, MapLibre's worker spent about a second indexing the 3,823 grids
// (geojson-vt) and another half before its first tile, on every load; the tiles are in the style
// from the start, so they are fetched while MapLibre starts.
const TILE_MAX_ZOOM = 14;  // deeper, the map overzooms zoom 14's tiles (about 0.6 m a tile unit)
const START = { center: [114.2, 22.7], zoom: 10 };  // before whoami says the caller's bounds

const BACKGROUND = { id: "background", type: "background", paint: { "background-color": "#0d1b26" } };
// The grids' outlines are the fill's own (1 px lines drawn from the fill's geometry): a line layer
// over 3,823 grids made MapLibre's worker build a second geometry of every ring (the longest part
// of a tile's preparation) for a 0.4 px line that drew the same picture.
const GRID_FILL_PAINT = { "fill-color": ["coalesce", ["feature-state", "colour"], COLORS[0]], "fill-opacity": 0.85,
  "fill-outline-color": "rgba(13, 27, 38, 0.5)" };
const line = (id, source, level, paint, extra = {}) => ({ id, type: "line", source, ...(level ? { "source-layer": level } : {}), paint, ...extra });
const COMMUNITY_LINE_PAINT = { "line-color": "#9fc3da", "line-width": 1 };

function style() {
  const version = state.me.layer_version ? `?layer_version=${enc(state.me.layer_version)}` : "";
  return { version: 8,
    sources: { areas: { type: "vector", tiles: [`${location.origin}/api/v1/layer/tiles/{z}/{x}/{y}${version}`],
      minzoom: 0, maxzoom: TILE_MAX_ZOOM, promoteId: { grid: "code" },
      ...(state.me.bounds ? { bounds: state.me.bounds } : {}) } },
    layers: [
      BACKGROUND,
      { id: "grid-fill", type: "fill", source: "areas", "source-layer": "grid", paint: GRID_FILL_PAINT },
      line("grid-selected", "areas", "grid", { "line-color": "#ffffff", "line-width": 3 }, { filter: ["==", ["get", "code"], ""] }),
      line("community-line", "areas", "community", COMMUNITY_LINE_PAINT),
      line("street-line", "areas", "street", { "line-color": "#ffe08a", "line-width": 2.2 }),
    ] };
}

// While the login form is shown, the map is made before the token is typed: making its WebGL
// context took 0.3-0.8 s of the page's start (a CPU rasteriser sets up the context in the GPU
// process while the page waits), and the first frame with grids compiled the fill, outline and line
// programs (SwiftShader turns each into machine code on the CPU, hundreds of ms each). The first
// style draws a square with the grids' fill and outline paint and the areas' line paint, in colours
// that cannot be seen (a transparent fill, outlines in the background's colour), so the programs
// are ready when the tiles come; the areas' style replaces it (a diff: sources and layers added in
// place). With a kept token nobody types: the map is made once whoami has answered, as before, and
// its programs are compiled while MapLibre's worker reads the tiles.
function warmStyle() {
  const [lng, lat] = START.center, d = 0.01;
  const square = { type: "Feature", properties: { colour: "rgba(0, 0, 0, 0)" }, geometry: { type: "Polygon",
    coordinates: [[[lng, lat], [lng + d, lat], [lng + d, lat + d], [lng, lat + d], [lng, lat]]] } };
  // (a colour per feature, as the grids' feature-state colour: the same program)
  const fill = { ...GRID_FILL_PAINT, "fill-color": ["coalesce", ["get", "colour"], COLORS[0]] };
  return { version: 8,
    sources: { warm: { type: "geojson", data: { type: "FeatureCollection", features: [square] } } },
    layers: [BACKGROUND,
      { id: "warm-fill", type: "fill", source: "warm", paint: fill },
      line("warm-line", "warm", null, { ...COMMUNITY_LINE_PAINT, "line-color": BACKGROUND.paint["background-color"] })] };
}

function fetchAreas() {
  // the areas' names, codes and label points (the shapes come in the tiles)
  return Promise.all(["grid", "community", "street"].map((level) => api(`/api/v1/layer/geometry?level=${level}&shapes=false`)));
}

function drawAreas([grids, communities, streets]) {
  const map = state.map;
  state.grids = grids.features.map((f) => f.properties.code);
  state.gridFeatures = new Map(grids.features.map((f) => [f.properties.code, f.properties]));
  for (const [collection, kind] of [[streets, "street"], [communities, "community"]]) {
    for (const f of collection.features) {
      const el = document.createElement("div");
      el.className = `area-label ${kind}`;
      el.textContent = f.properties.name || f.properties.code;
      const marker = new maplibregl.Marker({ element: el }).setLngLat(f.properties.label).addTo(map);
      if (kind === "community") state.communityLabels = (state.communityLabels || []).concat(marker);
    }
  }
  const showCommunities = () => {
    const show = map.getZoom() >= 11.5;
    for (const m of state.communityLabels || []) m.getElement().style.display = show ? "" : "none";
  };
  showCommunities();
  map.on("zoom", showCommunities);
  map.on("click", "grid-fill", (e) => selectGrid(e.features[0].properties.code));
  map.on("mouseenter", "grid-fill", () => { map.getCanvas().style.cursor = "pointer"; });
  map.on("mouseleave", "grid-fill", () => { map.getCanvas().style.cursor = ""; });
}

function countDrawn() {
  // grids the map holds as rendered features (each once, whatever the tiles)
  const seen = new Set();
  for (const f of state.map.querySourceFeatures("areas", { sourceLayer: "grid" })) seen.add(f.properties.code);
  return seen.size;
}

// ------------------------------------------------------------------ the grid card

async function selectGrid(code) {
  state.selected = code;
  state.map.setFilter("grid-selected", ["==", ["get", "code"], code]);
  const box = $("card");
  box.hidden = false;
  box.innerHTML = `<h2>网格 ${code}</h2><p class="muted">加载中…</p>`;
  try {
    const card = await api(`/api/v1/grids/${enc(code)}/card`);
    if (state.selected !== code) return;
    state.card = card;
    const workers = card.workers.length ? card.workers.map((w) => `${w.name || w.worker_id}`).join("、") : "—";
    const kpi = card.kpi;
    const grade = kpi && kpi.grade ? kpi.grade : "-";
    const score = kpi && kpi.score != null ? kpi.score.toFixed(1) : "—";
    box.innerHTML = `
      <h2 id="card-name">${card.name || card.code}</h2>
      <dl>
        <dt>编码</dt><dd id="card-code">${card.code}</dd>
        <dt>类型</dt><dd id="card-type">${card.type || "—"}</dd>
        <dt>社区</dt><dd>${card.community_name || card.community_code || "—"}</dd>
        <dt>街道</dt><dd>${card.street_name || card.street_code || "—"}</dd>
        <dt>网格员</dt><dd id="card-workers">${workers}</dd>
        <dt>在办案件</dt><dd id="card-open">${card.open_cases ?? "—"}${card.open_cases_more ? "+" : ""}</dd>
        <dt id="card-count-label">${MEASURE_TITLE[state.measure]}</dt><dd><span class="count" id="card-count">—</span></dd>
        <dt>考核</dt><dd><span class="grade grade-${grade}" id="card-grade">${grade}</span> ${score} 分</dd>
      </dl>
      <div>${card.trend ? sparkline(card.trend) : ""}</div>`;
    refreshCardCount();
  } catch (error) {
    box.innerHTML = `<h2>网格 ${code}</h2><p class="error">${error.message}</p>`;
  }
}

function refreshCardCount() {
  const el = $("card-count");
  if (!el || !state.selected) return;
  const v = state.values[state.selected] || 0;
  el.textContent = state.measure === "per1000" ? v.toFixed(2) : String(v);
  $("card-count-label").textContent = MEASURE_TITLE[state.measure];
}

function sparkline(trend) {
  const values = trend.reported, n = values.length, max = Math.max(1, ...values);
  const points = values.map((v, k) => `${(k / (n - 1)) * 100},${40 - (v / max) * 36}`).join(" ");
  return `<svg class="spark" viewBox="0 0 100 44" preserveAspectRatio="none" aria-label="近${n}天事件数">
    <polyline points="${points}" fill="none" stroke="#3fb1e3" stroke-width="1.5" vector-effect="non-scaling-stroke"/></svg>
    <div class="muted">近${n}天每日事件数 (最多 ${max}) ${trend.days[0]} – ${trend.days[n - 1]}</div>`;
}

// ------------------------------------------------------------------ alerts

function discPolygon(lng, lat, radiusM) {
  const ring = [];
  for (let k = 0; k <= 48; k++) {
    const a = (k / 48) * 2 * Math.PI;
    ring.push([lng + (radiusM / (111320 * Math.cos(lat * Math.PI / 180))) * Math.cos(a), lat + (radiusM / 110540) * Math.sin(a)]);
  }
  return { type: "Feature", properties: {}, geometry: { type: "Polygon", coordinates: [ring] } };
}

function showAlert(alert, fresh, { render = true } = {}) {
  // render: false while a batch is added (the list and the discs are then drawn once, by the caller)
  if (alert.lng == null || alert.lat == null) return;
  const known = state.alerts.get(alert.id);
  if (known) known.marker.remove();
  if (["dismissed", "closed", "resolved"].includes(alert.state)) {
    state.alerts.delete(alert.id);
    if (render) renderAlerts();
    return;
  }
  const el = document.createElement("div");
  el.className = fresh ? "alert-marker fresh" : "alert-marker";
  el.title = `预警 #${alert.id} ${alert.unit_code} ${alert.category_code}`;
  el.addEventListener("click", () => { if (alert.level === "grid") selectGrid(alert.unit_code); });
  const marker = new maplibregl.Marker({ element: el }).setLngLat([alert.lng, alert.lat]).addTo(state.map);
  state.alerts.set(alert.id, { alert, marker, fresh });
  if (render) renderAlerts();
}

const LEVEL_NAMES = { grid: "网格", community: "社区", street: "街道", district: "全区" };

function alertText(alert) {
  // A count alert says what was seen against what was expected; a house-registry (群租房) alert
  // says how many flagged houses the grid has, which has no expected count.
  const where = `${LEVEL_NAMES[alert.level] || alert.level} ${alert.unit_code}`;
  const what = alert.method === "group_renting"
    ? `群租房预警 · ${alert.observed} 处房屋`
    : `${alert.category_kind === "class" ? "大类" : "类别"} ${alert.category_code}${alert.category_name ? " " + alert.category_name : ""}`
      + ` · 观测 ${alert.observed} / 期望 ${Number(alert.expected).toFixed(1)}`;
  const days = alert.first_day === alert.last_day ? alert.last_day : `${alert.first_day}–${alert.last_day}`;
  return `#${alert.id} ${where} · ${what} · ${days}`;
}

function renderAlerts() {
  const list = $("alerts");
  list.innerHTML = "";
  const discs = [];
  const sorted = [...state.alerts.values()].sort((a, b) => b.alert.id - a.alert.id);
  for (const { alert, fresh } of sorted) {
    const li = document.createElement("li");
    li.dataset.alertId = alert.id;
    if (fresh) li.className = "new";
    li.textContent = alertText(alert);
    li.addEventListener("click", () => state.map.flyTo({ center: [alert.lng, alert.lat], zoom: 14 }));
    list.appendChild(li);
    discs.push(discPolygon(alert.lng, alert.lat, alert.radius_m || 150));
  }
  $("alert-count").textContent = String(state.alerts.size);
  const source = state.map.getSource("alert-discs");
  if (source) source.setData({ type: "FeatureCollection", features: discs });
}

async function loadAlerts() {
  if (!state.me.parts.alerts) return;
  $("alerts-box").hidden = false;
  state.map.addSource("alert-discs", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
  // the grids' fill program (a colour per feature; no outline, which is another program): SwiftShader
  // compiles every program variant on the CPU, hundreds of ms each, before the first frame that needs it
  state.map.addLayer({ id: "alert-disc", type: "fill", source: "alert-discs",
    paint: { "fill-color": ["coalesce", ["feature-state", "colour"], "#ff3b30"], "fill-opacity": 0.25, "fill-antialias": false } });
  state.map.addLayer({ id: "alert-disc-line", type: "line", source: "alert-discs", paint: { "line-color": "#ff3b30", "line-width": 1.5 } });
  const answer = await api("/api/v1/alerts?limit=200");
  // one list and one setData for the lot: per alert, 200 alerts rebuilt the list 200 times and sent
  // the discs to MapLibre's worker 200 times, where the grids' tiles waited behind them
  for (const alert of answer.alerts.reverse()) showAlert(alert, false, { render: false });
  renderAlerts();
}

// ------------------------------------------------------------------ live stream (SSE over fetch, so the token stays in a header)

async function stream() {
  if (!state.me.parts.analytics && !state.me.parts.alerts) return;
  while (token()) {
    try {
      const response = await api("/api/v1/stream?interval=1", { raw: true });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          handleEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (error) {
      $("status").textContent = `实时连接中断: ${error.message}; 重连中…`;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function handleEvent(text) {
  let event = "message", data = "";
  for (const line of text.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data += line.slice(5).trim();
  }
  if (!data) return;
  const payload = JSON.parse(data);
  state.streamEvents++;
  if (event === "tallies") {
    state.tallies = { day: payload.day, week: payload.week };
    state.me.now = payload.now;
    if (state.dayOffset === 0 && !state.category && state.measure !== "per1000") recolour();
  } else if (event === "alert") {
    showAlert(payload.alert, true);
  }
}

// ------------------------------------------------------------------ H3 and KPIs

async function drawH3() {
  const map = state.map;
  const day = localDay(state.dayOffset);
  const start = state.measure === "day" ? day : weekStart(day);
  const cells = await api(`/api/v1/heatmap?resolution=${$("h3-res").value}&start=${enc(start)}&end=${enc(addDays(day, 1))}${filterParam()}`);
  const max = Math.max(1, ...cells.features.map((f) => f.properties.reported));
  for (const f of cells.features) f.properties.share = f.properties.reported / max;
  if (map.getSource("h3")) map.getSource("h3").setData(cells);
  else {
    map.addSource("h3", { type: "geojson", data: cells });
    map.addLayer({ id: "h3-fill", type: "fill", source: "h3", paint: {
      "fill-color": ["interpolate", ["linear"], ["get", "share"], 0, "#ffffb2", 0.5, "#fd8d3c", 1, "#bd0026"],
      "fill-opacity": 0.75, "fill-outline-color": "#00000055" } }, "community-line");
  }
  map.setLayoutProperty("h3-fill", "visibility", "visible");
}

async function loadKpis() {
  if (!state.me.parts.analytics) return;
  $("kpi-box").hidden = false;
  const unit = $("kpi-unit").value;
  const end = addDays(localDay(0), 1), start = addDays(end, -30);
  const answer = await api(`/api/v1/kpis?unit=${unit}&start=${enc(start)}&end=${enc(end)}`);
  const names = await areaNames(unit);
  const rows = answer.rows.sort((a, b) => (b.score ?? -1) - (a.score ?? -1));
  const pct = (v) => (v == null ? "—" : `${(v * 100).toFixed(0)}%`);
  $("kpi").innerHTML = `<table class="kpi"><thead><tr><th>${unit === "street" ? "街道" : "社区"}</th><th>按期处置</th><th>结案</th><th>返工</th><th>超期</th><th>得分</th><th>等级</th></tr></thead><tbody>${
    rows.map((r) => `<tr><td>${names[r[unit]] || r[unit]}</td><td>${pct(r.on_time_disposal_rate)}</td><td>${pct(r.closure_rate)}</td><td>${pct(r.rework_rate)}</td><td>${r.overdue_now ?? 0}</td><td>${r.score == null ? "—" : r.score.toFixed(1)}</td><td><span class="grade grade-${r.grade || "-"}">${r.grade || "-"}</span></td></tr>`).join("")
  }</tbody></table>`;
}

async function areaNames(level) {
  state.names = state.names || {};
  if (!state.names[level]) {
    const answer = await api(`/api/v1/layer/geometry?level=${level}`);
    state.names[level] = Object.fromEntries(answer.features.map((f) => [f.properties.code, f.properties.name]));
  }
  return state.names[level];
}

// ------------------------------------------------------------------ start

async function start() {
  try {
    state.me = await api("/api/v1/whoami");
  } catch (error) {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin(error.status === 401 ? "令牌无效或已吊销" : error.message);
    return;
  }
  $("login").hidden = true;
  $("controls").hidden = false;
  $("legend-box").hidden = false;
  const scope = state.me.jurisdiction.includes("*") ? "全区" : state.me.jurisdiction.join("、");
  $("who").textContent = `${state.me.name} · ${state.me.role} · 范围 ${scope}`;
  const t0 = performance.now();
  state.timings = {};
  const mark = (name) => { state.timings[name] = Math.round(performance.now() - t0); performance.mark(`citygrid:${name}`); };
  // what the first picture needs is asked for now, while MapLibre starts (it was asked for after)
  const areas = fetchAreas();
  const day = localDay(0);
  const tallies = state.me.parts.analytics ? Promise.all([
    api(`/api/v1/heatmap?start=${enc(day)}&end=${enc(addDays(day, 1))}`),
    api(`/api/v1/heatmap?start=${enc(weekStart(day))}&end=${enc(addDays(day, 1))}`)]) : null;
  areas.then(() => mark("areas_fetched"), () => {});  // (awaited below: no unhandled rejection meanwhile)
  if (tallies) tallies.catch(() => {});
  const camera = state.me.bounds ? { bounds: state.me.bounds, fitBoundsOptions: { padding: 20 } } : START;
  let map = state.map;
  if (map) {  // made while the login form was shown
    if (camera.bounds) map.fitBounds(camera.bounds, { padding: 20, animate: false });
    map.setStyle(style(), { diff: true });
  } else {
    map = createMap(style(), camera);
  }
  map.on("sourcedata", (e) => {
    if (e.sourceId !== "areas") return;
    if (e.tile && !state.timings.first_grid_tile) mark("first_grid_tile");
  });
  state.frames = 0;
  map.on("render", () => { state.frames++; });
  // the grids are drawn and every tile in view is loaded: the alerts, KPIs and the stream come after
  // (the alerts' discs go to the same worker as the grids' tiles)
  const loaded = new Promise((resolve) => map.once("idle", resolve));
  // (a diff adds the source in place; a style still loading is replaced whole and loads first)
  await new Promise((resolve) => {
    const check = () => (map.getSource("areas") ? resolve() : setTimeout(check, 5));
    check();
  });
  mark("style_loaded");
  drawAreas(await areas);
  mark("areas_added");
  if (tallies) {
    const [today, week] = await tallies;
    state.tallies = { day: today.grids, week: week.grids };
  }
  paint(state.tallies.day);
  mark("painted");
  const drawn = () => {
    if (!map.isSourceLoaded("areas")) return;
    const n = countDrawn();
    if (n < state.grids.length) return;
    mark("grids_drawn");
    state.timings.grids_drawn_since_navigation = Math.round(performance.now());
    state.timings.frames_until_drawn = state.frames;
    state.gridsDrawn = n;
    state.drawnMs = state.timings.grids_drawn;
    map.off("render", drawn);
  };
  map.on("render", drawn);
  map.once("idle", () => {
    mark("idle");
    state.gridsDrawn = countDrawn();
    state.ready = true;
    document.body.dataset.ready = "true";
  });
  map.triggerRepaint();
  await loaded;
  await loadAlerts().catch((e) => { $("alerts").textContent = e.message; });
  loadKpis().catch((e) => { $("kpi").textContent = e.message; });
  if (state.me.parts.intake) {
    api("/api/v1/categories").then((answer) => {
      for (const c of answer.classes) $("category").add(new Option(`${c.code} ${c.name}`, c.code));
    }).catch(() => {});
  }
  stream();
}

function showLogin(message) {
  $("login").hidden = false;
  $("login-error").textContent = message || "";
}

$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  start();
});
$("logout").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); location.reload(); });
$("measure").addEventListener("change", () => { state.measure = $("measure").value; recolour(); });
$("category").addEventListener("change", () => { state.category = $("category").value; recolour(); });
$("day").addEventListener("input", () => { state.dayOffset = Number($("day").value); $("day-label").textContent = dayLabel(); });
$("day").addEventListener("change", () => recolour());
$("h3-on").addEventListener("change", () => {
  if ($("h3-on").checked) drawH3();
  else if (state.map.getLayer("h3-fill")) state.map.setLayoutProperty("h3-fill", "visibility", "none");
});
$("h3-res").addEventListener("change", () => { if ($("h3-on").checked) drawH3(); });
$("kpi-unit").addEventListener("change", () => loadKpis());
state.selectGrid = selectGrid;
state.countDrawn = () => countDrawn();

function createMap(mapStyle, camera) {
  const map = state.map = new maplibregl.Map({ container: "map", style: mapStyle, ...camera,
    attributionControl: false, fadeDuration: 0,
    // the tiles need the token (MapLibre fetches them): the same header as every other request
    transformRequest: (url) => (url.startsWith(`${location.origin}/api/`) ? { url, headers: { Authorization: `Bearer ${token()}` } } : { url }) });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-left");
  map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-left");
  return map;
}

if (token()) start();
else {
  createMap(warmStyle(), START);
  showLogin("");
}
