// Station charts: readings over time with the HJ 633 AQI colour bands, and each hour's anchoring status.
import { api, chart, currentLang, errorText, formatTime, h, items, short, t, table, uiConfig } from '../core.js';

function when(value) {
  if (typeof value === 'number') return value > 1e12 ? value : value * 1000;
  const parsed = Date.parse(value);
  return Number.isNaN(parsed) ? null : parsed;
}

// bands -> ECharts visualMap pieces (colours the AQI line) and markArea stripes (the bands behind it)
export function aqiBands(bands, lang) {
  const name = (b) => (lang === 'en' ? b.en : b.zh);
  const pieces = bands.map((b, i) => (i === bands.length - 1
    ? { gt: b.low - 1, color: b.colour, label: `${name(b)} >${b.low - 1}` }
    : { gt: i === 0 ? -1 : b.low - 1, lte: b.high, color: b.colour, label: `${name(b)} ${b.low}–${b.high}` }));
  const areas = bands.map((b) => [
    { yAxis: b.low, name: name(b), itemStyle: { color: b.colour, opacity: 0.12 } },
    { yAxis: b.high },
  ]);
  return { pieces, areas };
}

export async function stationsPage(main, { params, navigate }) {
  main.append(h('h2', { i18n: 'stations.title' }));
  const stations = items(await api('/api/v1/stations'));
  const select = h('select', { id: 'station' },
    h('option', { value: '', i18n: 'stations.choose' }),
    stations.map((s) => h('option', { value: s.mn }, `${s.name || s.mn} (${s.mn})`)));
  const chosen = params.get('mn') || (stations[0] && stations[0].mn) || '';
  select.value = chosen;
  select.addEventListener('change', () => navigate(`/ui/stations?mn=${encodeURIComponent(select.value)}`));
  main.append(h('div', { class: 'card inline' }, h('label', { for: 'station', i18n: 'stations.station' }), select));
  if (!chosen) { main.append(h('p', { class: 'hint', i18n: 'stations.none' })); return; }

  const out = h('section', { class: 'card', id: 'station-detail' });
  main.append(out);
  let readings;
  let hours;
  try {
    const mn = encodeURIComponent(chosen);
    [readings, hours] = await Promise.all([
      api(`/api/v1/stations/${mn}/readings?limit=500`), api(`/api/v1/stations/${mn}/hours?limit=500`)]);
  } catch (err) {
    out.append(h('p', { class: 'error', role: 'alert' }, errorText(err)));
    return;
  }
  readings = items(readings);
  hours = items(hours);
  const cfg = await uiConfig();
  const { pieces, areas } = aqiBands(cfg.aqi_bands, currentLang());

  const byCode = new Map();
  for (const r of readings) {
    const x = when(r.data_time);
    if (x === null) continue;
    // values: {code: {Rtd: …} | {Avg: …, Min: …, Max: …}} (HJ 212 field names)
    for (const [code, fields] of Object.entries(r.values || {})) {
      const value = Number(fields.Rtd ?? fields.Avg ?? fields.value);
      if (Number.isNaN(value)) continue;
      if (!byCode.has(code)) byCode.set(code, []);
      byCode.get(code).push([x, value]);
    }
  }
  const aqiPoints = hours.map((hr) => [when(hr.start), hr.aqi])
    .filter(([x, v]) => x !== null && typeof v === 'number').sort((a, b) => a[0] - b[0]);
  const series = [{
    type: 'line', name: 'AQI', yAxisIndex: 0, step: 'start', data: aqiPoints, symbolSize: 8,
    markArea: { silent: true, label: { position: 'insideRight' }, data: areas },
  }];
  for (const [code, points] of byCode) {
    series.push({ type: 'line', name: code, yAxisIndex: 1, showSymbol: false, data: points.sort((a, b) => a[0] - b[0]) });
  }
  const box = h('div', { class: 'chart tall', id: 'station-chart', role: 'img', 'aria-label': t('stations.chart') });
  out.append(h('h3', {}, t('stations.chart_for', { mn: chosen })), box);
  await chart(box, {
    animation: false,
    tooltip: { trigger: 'axis' },
    legend: { type: 'scroll', top: 0 },
    grid: { left: 50, right: 60, top: 40, bottom: 90 },
    xAxis: { type: 'time' },
    yAxis: [{ type: 'value', name: 'AQI', min: 0, max: (v) => Math.max(100, Math.ceil(v.max / 50) * 50) },
      { type: 'value', name: t('stations.concentration'), splitLine: { show: false } }],
    visualMap: { type: 'piecewise', seriesIndex: 0, dimension: 1, pieces, orient: 'horizontal', left: 'center', bottom: 0 },
    series,
  });

  out.append(h('h3', { i18n: 'stations.hours' }), table([
    { key: 'stations.hour', cell: (hr) => formatTime(hr.start) },
    { key: 'stations.aqi', cell: (hr) => String(hr.aqi ?? '—') },
    { key: 'stations.level', cell: (hr) => {
      const band = cfg.aqi_bands.find((b) => b.level === hr.level);
      return h('span', { class: 'band', 'data-colour': band ? band.colour : '' },
        band ? (currentLang() === 'en' ? band.en : band.zh) : '—');
    } },
    { key: 'stations.anchored', cell: (hr) => h('span', { class: hr.anchored ? 'good' : 'pending', 'data-status': hr.status },
      t(hr.anchored ? 'stations.anchored_yes' : 'stations.anchored_no'), hr.error ? ` (${hr.error})` : '') },
    { key: 'stations.tx', cell: (hr) => h('code', {}, short(hr.tx_hash || hr.tx || '', 8)) },
  ], hours));
  // the band swatches take their colour from data (a style attribute would need inline styles in the markup)
  out.querySelectorAll('.band[data-colour]').forEach((el) => { el.style.borderLeftColor = el.dataset.colour; });
}
