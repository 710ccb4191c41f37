// The training page: state from the server's event stream (api/events:
// `init`, then `stats`, `grids`, `status`), drawn as SVG line charts, cards
// and the latest sample grid. Plain browser JavaScript, no build step.
'use strict';

const state = { name: '', dir: '', options: null, stats: [], grids: [], status: null, connected: false, everConnected: false, updatedAt: null, gridChoice: 'latest', grew: false };
const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';
const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2'];

// ---- numbers ------------------------------------------------------------------------------
function fmt(v, digits = 3) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (a >= 1e4) return Math.round(v).toLocaleString('en-US');
  if (a >= 100) return v.toFixed(0);
  if (a >= 0.01) return String(+v.toPrecision(digits));
  return v.toExponential(2).replace(/\.?0+e/, 'e');
}
function duration(sec) {
  if (!Number.isFinite(sec)) return '–';
  sec = Math.round(sec);
  const h = Math.floor(sec / 3600), m = Math.floor((sec % 3600) / 60), s = sec % 60;
  return h ? `${h}h ${String(m).padStart(2, '0')}m` : m ? `${m}m ${String(s).padStart(2, '0')}s` : `${s}s`;
}
function niceTicks(lo, hi, count = 5) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / count, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}
function logTicks(lo, hi) {
  const out = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++)
    for (const f of [1, 2, 5]) {
      const v = f * 10 ** e;
      if (v >= lo && v <= hi) out.push(v);
    }
  if (out.length > 8) return out.filter((v) => Math.abs(Math.log10(v) % 1) < 1e-9);
  return out.length >= 3 ? out : niceTicks(lo, hi, 4).filter((v) => v > 0);
}

// ---- charts ------------------------------------------------------------------------------
function el(name, attrs = {}, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (parent) parent.appendChild(node);
  return node;
}

/**
 * Line chart of `series` ([{ name, xs, ys }]) into an <svg>: axes with nice
 * ticks, one path per series (broken at non-finite values), dots for short
 * series, a legend for several, and a hover read-out.
 */
function lineChart(svg, series, { logY = false, xLabel = 'kimg', empty = 'no ticks yet' } = {}) {
  const W = svg.clientWidth || 400, H = svg.clientHeight || 230;
  const m = { l: 58, r: 12, t: series.length > 1 ? 26 : 10, b: 30 };
  svg.replaceChildren();
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const pts = series.map((s) => s.xs.map((x, i) => [x, s.ys[i]]).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!logY || y > 0)));
  const all = pts.flat();
  svg.dataset.points = String(pts[0] ? pts[0].length : 0);
  if (!all.length) {
    el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' }, svg).textContent = empty;
    svg.onmousemove = svg.onmouseleave = null;
    return;
  }
  let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (x1 === x0) [x0, x1] = [x0 - 0.5 * (Math.abs(x0) || 1), x1 + 0.5 * (Math.abs(x1) || 1)];
  if (logY) {
    [y0, y1] = y1 / y0 < 1.5 ? [y0 / 1.25, y1 * 1.25] : [y0 / 1.05, y1 * 1.05];
  } else {
    const pad = y1 === y0 ? Math.abs(y0) * 0.1 || 1 : (y1 - y0) * 0.06;
    [y0, y1] = [y0 - pad, y1 + pad];
    if (y0 < 0 && all.every((p) => p[1] >= 0)) y0 = 0;
  }
  const X = (x) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r);
  const Y = logY
    ? (y) => H - m.b - ((Math.log(y) - Math.log(y0)) / (Math.log(y1) - Math.log(y0))) * (H - m.t - m.b)
    : (y) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
  for (const t of logY ? logTicks(y0, y1) : niceTicks(y0, y1)) {
    el('line', { x1: m.l, x2: W - m.r, y1: Y(t), y2: Y(t), class: 'gridline' }, svg);
    el('text', { x: m.l - 6, y: Y(t) + 4, 'text-anchor': 'end' }, svg).textContent = fmt(t);
  }
  for (const t of niceTicks(x0, x1, Math.max(2, Math.floor((W - m.l) / 90)))) {
    el('line', { x1: X(t), x2: X(t), y1: H - m.b, y2: H - m.b + 4, class: 'axis' }, svg);
    el('text', { x: X(t), y: H - m.b + 16, 'text-anchor': 'middle' }, svg).textContent = fmt(t);
  }
  el('line', { x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b, class: 'axis' }, svg);
  el('line', { x1: m.l, x2: m.l, y1: m.t, y2: H - m.b, class: 'axis' }, svg);
  el('text', { x: W - m.r, y: H - 2, 'text-anchor': 'end' }, svg).textContent = xLabel;
  series.forEach((s, k) => {
    const color = s.color ?? COLORS[k % COLORS.length];
    let d = '', pen = false, n = 0;
    s.xs.forEach((x, i) => {
      const y = s.ys[i];
      if (!Number.isFinite(x) || !Number.isFinite(y) || (logY && y <= 0)) return void (pen = false);
      d += `${pen ? 'L' : 'M'}${X(x).toFixed(1)} ${Y(y).toFixed(1)}`;
      pen = true;
      n += 1;
    });
    el('path', { d, class: 'series', stroke: color, 'data-name': s.name, 'data-points': n }, svg);
    if (pts[k].length <= 60) for (const [x, y] of pts[k]) el('circle', { cx: X(x), cy: Y(y), r: 2.6, fill: color }, svg);
    if (series.length > 1) {
      const lx = m.l + 10 + k * 150;
      el('line', { x1: lx, x2: lx + 16, y1: 9, y2: 9, stroke: color, 'stroke-width': 2.5 }, svg);
      el('text', { x: lx + 20, y: 13 }, svg).textContent = s.name;
    }
  });
  // Hover: the values at the nearest tick.
  const cursor = el('line', { y1: m.t, y2: H - m.b, class: 'cursor', visibility: 'hidden' }, svg);
  const tip = $('tooltip');
  svg.onmousemove = (ev) => {
    const r = svg.getBoundingClientRect();
    const x = x0 + ((ev.clientX - r.left - m.l) / (W - m.l - m.r)) * (x1 - x0);
    let best = null;
    for (const p of all) if (!best || Math.abs(p[0] - x) < Math.abs(best[0] - x)) best = p;
    cursor.setAttribute('x1', X(best[0]));
    cursor.setAttribute('x2', X(best[0]));
    cursor.setAttribute('visibility', 'visible');
    const lines = series.map((s) => {
      const i = s.xs.indexOf(best[0]);
      return i >= 0 ? `${s.name}: ${fmt(s.ys[i], 4)}` : null;
    }).filter(Boolean);
    tip.textContent = `${xLabel} ${fmt(best[0], 4)}\n${lines.join('\n')}`;
    tip.hidden = false;
    tip.style.left = `${ev.clientX + 14}px`;
    tip.style.top = `${ev.clientY + 10}px`;
  };
  svg.onmouseleave = () => {
    cursor.setAttribute('visibility', 'hidden');
    tip.hidden = true;
  };
}

// ---- the page -----------------------------------------------------------------------------
const ticks = () => state.stats.filter((s) => typeof s['Progress/tick'] === 'number');
const column = (rows, key) => rows.map((r) => (typeof r[key] === 'number' ? r[key] : NaN));
const METRIC_SKIP = new Set(['Metrics/samples', 'Metrics/sampler_steps', 'Metrics/seeds']);

/** The run's length: --duration, or further if a resumed segment trained on (the options file keeps the first one). */
function totalKimg() {
  const d = state.options && state.options.duration;
  const rows = ticks();
  const reached = rows.length ? rows[rows.length - 1]['Progress/kimg'] : 0;
  return typeof d === 'number' ? Math.max(d * 1000, reached) : NaN;
}

function renderHeader() {
  $('run-name').textContent = state.name;
  $('run-name').title = state.dir;
  const o = state.options;
  if (o) {
    const data = String(o.data ?? '').split('/').filter(Boolean).pop() ?? '';
    const parts = [data, `${o.arch}`, o.precond, o.cond ? 'conditional' : null, `batch ${o.batch}`,
      o.precond === 'pedm' ? `p(full size) ${o.realP}` : null, o.latents ? 'latent' : null, `${fmt(totalKimg())} kimg`, o.device === 'auto' ? null : o.device, o.precision];
    $('run-desc').textContent = parts.filter((p) => p !== null && p !== undefined && p !== '').join(' · ');
  }
  document.title = `${state.name || 'run'} · Patch Diffusion training`;
}

function renderStatus() {
  const pill = $('status');
  const st = state.status, prog = st && st.progress;
  let text, cls;
  if (!state.connected && state.everConnected) {
    [text, cls] = [prog && prog.finished ? 'finished · server stopped' : 'server stopped', ''];
  } else if (!state.connected) {
    [text, cls] = ['connecting…', ''];
  } else if (st && st.live) {
    [text, cls] = ['training', 'live'];
  } else {
    // progress.json is written when a training process ends; one older than the last tick is a resumed run's earlier segment.
    const rows = ticks();
    const lastNimg = rows.length ? Math.round(rows[rows.length - 1]['Progress/kimg'] * 1000) : 0;
    const current = prog && prog.curNimg >= lastNimg;
    if (current && prog.finished) [text, cls] = ['finished', 'finished'];
    else if (current) [text, cls] = [`stopped at ${fmt(prog.curNimg / 1000)} kimg · resumable`, 'stopped'];
    else if (state.grew) [text, cls] = ['training (another process)', 'live'];
    else [text, cls] = ['not finished', 'stopped'];
  }
  pill.textContent = text;
  pill.className = `pill ${cls}`;
  pill.dataset.state = cls || 'offline';
}

function renderSummary(rows) {
  const last = rows[rows.length - 1];
  const total = totalKimg();
  const kimg = last ? last['Progress/kimg'] : 0;
  const frac = Number.isFinite(total) && total > 0 ? Math.min(1, kimg / total) : 0;
  $('progress-bar').style.width = `${(frac * 100).toFixed(1)}%`;
  const secPerKimg = last ? last['Timing/sec_per_kimg'] : NaN;
  const eta = Number.isFinite(total) && Number.isFinite(secPerKimg) && state.status && state.status.live ? ` · about ${duration((total - kimg) * secPerKimg)} left` : '';
  $('progress-text').textContent = last ? `${fmt(kimg, 4)} of ${fmt(total, 4)} kimg (${(frac * 100).toFixed(1)}%)${eta}` : 'waiting for the first tick';
  const cards = [];
  if (last) {
    cards.push(['tick', String(last['Progress/tick'])], ['kimg', fmt(kimg, 4)], ['loss', fmt(last['Loss/loss'], 4)],
      ['img/s', fmt(last['Timing/images_per_sec'])], ['sec/kimg', fmt(secPerKimg)], ['learning rate', fmt(last['Schedule/lr'])],
      ['memory (RSS)', `${fmt(last['Resources/rss_gb'])} GB`], ['elapsed', duration(last['Timing/total_sec'])]);
  }
  const metric = [...state.stats].reverse().find((s) => Object.keys(s).some((k) => k.startsWith('Metrics/') && !METRIC_SKIP.has(k)));
  if (metric)
    for (const [k, v] of Object.entries(metric)) if (k.startsWith('Metrics/') && !METRIC_SKIP.has(k) && typeof v === 'number') cards.push([k.slice(8).replace(/_/g, ' '), fmt(v, 4)]);
  const box = $('summary');
  box.replaceChildren(...cards.map(([k, v]) => {
    const c = document.createElement('div');
    c.className = 'card';
    c.innerHTML = '<div class="k"></div><div class="v"></div>';
    c.firstChild.textContent = k;
    c.lastChild.textContent = v;
    return c;
  }));
}

function renderCharts(rows) {
  const kimg = column(rows, 'Progress/kimg');
  lineChart($('chart-loss'), [{ name: 'loss', xs: kimg, ys: column(rows, 'Loss/loss') }], { logY: true });
  lineChart($('chart-speed'), [{ name: 'img/s', xs: kimg, ys: column(rows, 'Timing/images_per_sec') }]);
  const memKeys = [...new Set(rows.flatMap((r) => Object.keys(r)).filter((k) => k.startsWith('Resources/') && k.endsWith('_gb')))];
  lineChart($('chart-memory'), memKeys.map((k) => ({ name: k.slice(10, -3).replace(/_/g, ' '), xs: kimg, ys: column(rows, k) })));
  lineChart($('chart-lr'), [{ name: 'lr', xs: kimg, ys: column(rows, 'Schedule/lr') }]);
  const mrows = state.stats.filter((s) => Object.keys(s).some((k) => k.startsWith('Metrics/') && !METRIC_SKIP.has(k)));
  $('panel-metrics').hidden = mrows.length === 0;
  if (mrows.length) {
    const keys = [...new Set(mrows.flatMap((r) => Object.keys(r)).filter((k) => k.startsWith('Metrics/') && !METRIC_SKIP.has(k)))];
    const last = mrows[mrows.length - 1];
    $('metrics-note').textContent = `${last['Metrics/samples'] ?? '?'} samples, ${last['Metrics/sampler_steps'] ?? '?'} sampler steps, log scale`;
    lineChart($('chart-metrics'), keys.map((k) => ({ name: k.slice(8).replace(/_/g, ' '), xs: column(mrows, 'Progress/kimg'), ys: column(mrows, k) })), { logY: true });
  }
}

function renderGrid() {
  const sel = $('grid-select');
  const grids = state.grids;
  const wanted = ['latest', ...grids.map((g) => g.name)];
  if (sel.options.length !== wanted.length || [...sel.options].some((o, i) => o.value !== wanted[i])) {
    sel.replaceChildren(...wanted.map((name) => {
      const o = document.createElement('option');
      o.value = name;
      o.textContent = name === 'latest' ? 'latest' : `kimg ${Number(/\d+/.exec(name)[0])}`;
      return o;
    }));
  }
  sel.value = wanted.includes(state.gridChoice) ? state.gridChoice : 'latest';
  sel.hidden = grids.length < 2;
  const g = sel.value === 'latest' ? grids[grids.length - 1] : grids.find((x) => x.name === sel.value);
  const img = $('grid');
  $('grid-empty').hidden = !!g;
  if (!g) {
    img.classList.remove('shown');
    return;
  }
  const src = `files/${encodeURIComponent(g.name)}?v=${encodeURIComponent(g.version)}`;
  if (img.getAttribute('src') !== src) {
    img.onload = () => {
      img.classList.add('shown');
      img.dataset.loaded = g.version;
    };
    img.setAttribute('src', src);
    img.dataset.name = g.name;
    img.dataset.version = g.version;
  }
  const written = new Date(Number(g.version.split('-')[0]));
  $('grid-caption').textContent = `${g.name} · written ${written.toLocaleTimeString()}`;
}

let pending = false;
function render() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    const rows = ticks();
    renderHeader();
    renderStatus();
    renderSummary(rows);
    renderCharts(rows);
    renderGrid();
    document.body.dataset.ticks = String(rows.length);
    $('footer-left').textContent = state.dir;
    $('footer-right').textContent = state.updatedAt ? `updated ${state.updatedAt.toLocaleTimeString()}` : '';
  });
}

function connect() {
  const es = new EventSource('api/events');
  const on = (name, fn) => es.addEventListener(name, (ev) => {
    fn(JSON.parse(ev.data));
    state.updatedAt = new Date();
    render();
  });
  on('init', (d) => Object.assign(state, { name: d.name, dir: d.dir, options: d.options, stats: d.stats, grids: d.grids, status: d.status, connected: true, everConnected: true }));
  on('stats', (rows) => {
    state.stats.push(...rows);
    state.grew = true;
  });
  on('grids', (grids) => (state.grids = grids));
  on('status', (status) => (state.status = status));
  es.onerror = () => {
    state.connected = false;
    renderStatus();
  };
}

$('grid-select').addEventListener('change', (ev) => {
  state.gridChoice = ev.target.value;
  renderGrid();
});
window.addEventListener('resize', render);
connect();
