// Shared pieces of the web UI: translations, DOM building (text only, never HTML from data), the API client
// (session cookie + CSRF header on writes, RFC 9457 problems as ApiError) and ECharts loading.

const LANG_KEY = 'shancheng.lang';
const LANGS = ['zh-CN', 'en'];
let messages = {};
let lang = 'zh-CN';

export function currentLang() { return lang; }

export async function loadLang(wanted) {
  const chosen = LANGS.includes(wanted) ? wanted : 'zh-CN';
  const resp = await fetch(`/static/i18n/${chosen}.json`, { credentials: 'same-origin' });
  messages = await resp.json();
  lang = chosen;
  localStorage.setItem(LANG_KEY, chosen);
  document.documentElement.lang = chosen;
  translateTree(document);
}

export function savedLang() {
  return localStorage.getItem(LANG_KEY) || 'zh-CN';
}

// t('rx.state.SIGNED') — a missing key shows as ⟦key⟧ so tests and eyes catch it
export function t(key, vars = {}) {
  const text = messages[key];
  if (typeof text !== 'string') return `⟦${key}⟧`;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

export function translateTree(root) {
  root.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
  root.querySelectorAll('[data-i18n-aria]').forEach((el) => { el.setAttribute('aria-label', t(el.dataset.i18nAria)); });
  root.querySelectorAll('[data-i18n-placeholder]').forEach((el) => {
    el.setAttribute('placeholder', t(el.dataset.i18nPlaceholder));
  });
}

// h('p', {class: 'x'}, 'text', child) — builds elements; strings become text nodes
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (name === 'i18n') { el.dataset.i18n = value; el.textContent = t(value); }
    else if (value === true) el.setAttribute(name, '');
    else el.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export class ApiError extends Error {
  constructor(status, problem) {
    const detail = problem && typeof problem === 'object' ? (problem.detail || problem.title) : problem;
    super(detail ? String(detail) : `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

let csrf = null;

export function forgetSession() { csrf = null; }

async function csrfToken() {
  if (csrf === null) {
    const data = await api('/api/v1/csrf');
    csrf = data.csrf_token || data.token || data.csrf || '';
  }
  return csrf;
}

// api(path, {method, json, form}) -> parsed JSON (or text); throws ApiError with the problem's detail
export async function api(path, { method = 'GET', json, form, raw = false } = {}) {
  const headers = { Accept: 'application/json, application/problem+json' };
  let body;
  if (json !== undefined) { headers['Content-Type'] = 'application/json'; body = JSON.stringify(json); }
  if (form !== undefined) body = form;
  if (method !== 'GET' && method !== 'HEAD' && path !== '/auth/token-login') {
    headers['X-CSRF-Token'] = await csrfToken();
  }
  const resp = await fetch(path, { method, headers, body, credentials: 'same-origin' });
  if (raw && resp.ok) return resp;
  const type = resp.headers.get('content-type') || '';
  const data = type.includes('json') ? await resp.json() : await resp.text();
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

export function items(data) {
  if (Array.isArray(data)) return data;
  if (data && Array.isArray(data.items)) return data.items;
  return [];
}

// a problem or error as one readable line, translated where the status has a usual meaning
export function errorText(err) {
  if (err instanceof ApiError) {
    const known = { 401: 'error.401', 403: 'error.403', 404: 'error.404', 413: 'error.413', 503: 'error.503' };
    const prefix = known[err.status] ? t(known[err.status]) : `HTTP ${err.status}`;
    return `${prefix}: ${err.message}`;
  }
  return String(err && err.message ? err.message : err);
}

export function showError(target, err) {
  target.replaceChildren(h('p', { class: 'error', role: 'alert' }, errorText(err)));
}

export function formatTime(value) {
  if (value === null || value === undefined || value === '') return '—';
  let date;
  if (typeof value === 'number') date = new Date(value > 1e12 ? value : value * 1000);
  else date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleString(lang, { hour12: false });
}

export function short(hex, keep = 10) {
  const s = String(hex ?? '');
  return s.length > keep * 2 + 1 ? `${s.slice(0, keep)}…${s.slice(-6)}` : s;
}

export function table(columns, rows, { caption } = {}) {
  // columns: [{key: i18n key, cell: (row) => node|string}]
  return h('div', { class: 'table-wrap' },
    h('table', {},
      caption ? h('caption', {}, caption) : null,
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', i18n: c.key })))),
      h('tbody', {}, rows.length === 0
        ? h('tr', {}, h('td', { colspan: columns.length, i18n: 'common.empty' }))
        : rows.map((row) => h('tr', {}, columns.map((c) => h('td', {}, c.cell(row))))))));
}

// ECharts is bundled by `make web`; the page says so clearly when it is missing
let config = null;
let echartsReady = null;

export async function uiConfig() {
  if (config === null) config = await (await fetch('/ui-config.json', { credentials: 'same-origin' })).json();
  return config;
}

export function loadECharts() {
  if (echartsReady === null) {
    echartsReady = uiConfig().then((cfg) => {
      if (!cfg.echarts) return null;
      if (window.echarts) return window.echarts;
      return new Promise((resolve) => {
        const script = document.createElement('script');
        script.src = '/static/vendor/echarts.min.js';
        script.onload = () => resolve(window.echarts || null);
        script.onerror = () => resolve(null);
        document.head.append(script);
      });
    });
  }
  return echartsReady;
}

// a chart in `box`; returns the ECharts instance or null (and a visible message) when ECharts is missing
export async function chart(box, option) {
  const echarts = await loadECharts();
  if (!echarts) {
    box.replaceChildren(h('p', { class: 'error', role: 'status', i18n: 'charts.missing' }));
    box.classList.add('chart-missing');
    return null;
  }
  const existing = echarts.getInstanceByDom(box);
  if (existing) existing.dispose();
  const instance = echarts.init(box, null, { renderer: 'canvas' });
  instance.setOption(option);
  return instance;
}

// dispose the charts under `root` before it is emptied: an instance left on a removed element keeps its
// animation and force layout running against a box that is gone
export function disposeCharts(root) {
  if (!window.echarts) return;
  root.querySelectorAll('.chart').forEach((box) => {
    const instance = window.echarts.getInstanceByDom(box);
    if (instance) instance.dispose();
  });
}

window.addEventListener('resize', () => {
  if (!window.echarts) return;
  document.querySelectorAll('.chart').forEach((box) => {
    const instance = window.echarts.getInstanceByDom(box);
    if (instance) instance.resize();
  });
});

// fetch `path` (with the session) and save the answer as `filename` through a temporary blob link
export async function download(path, filename) {
  const resp = await api(path, { raw: true });
  const blob = new Blob([await resp.text()], { type: 'application/json' });
  const href = URL.createObjectURL(blob);
  const link = h('a', { href, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10000);
}
