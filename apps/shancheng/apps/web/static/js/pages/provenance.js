// Data provenance: the dataset's W3C PROV graph (entities, activities, agents: organisations and staff, plans: the
// authorisations) drawn with ECharts, a table of the same nodes, and the PROV-JSON download.
// API: routes/sharing.py — GET /api/v1/datasets/{id}/provenance -> {dataset_id, nodes: [{id, kind, label, ...}],
// edges: [{source, target, relation}]}; ?format=prov-json -> W3C PROV-JSON.
import { chart, api, download, errorText, h, t, table } from '../core.js';
import { orgLabel } from '../orgs.js';

// node kinds of shancheng.sdk.domain.prov.Provenance.to_graph, in legend order, with their symbols
export const KINDS = ['entity', 'activity', 'organisation', 'person', 'plan'];
const SYMBOLS = { entity: 'circle', activity: 'rect', organisation: 'diamond', person: 'triangle', plan: 'roundRect' };

// ECharts writes a tooltip formatter's string as HTML: data goes in escaped
function esc(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function kindOf(node) {
  return KINDS.includes(node.kind) ? node.kind : 'entity';
}

// an organisation by its Governance name ("hospital (#1)"); other nodes by the label the API gives them
function labelOf(node, me) {
  if (node.kind === 'organisation' && Number(node.org) > 0) return orgLabel(Number(node.org), me);
  return String(node.label ?? node.id);
}

export async function provenancePage(main, { params, me, navigate }) {
  main.append(h('h2', { i18n: 'prov.title' }));
  const input = h('input', { id: 'dataset-id', type: 'search', required: true, maxlength: 66,
    pattern: '0x[0-9a-fA-F]{64}', value: params.get('dataset') || '' });
  main.append(h('form', { class: 'card inline', id: 'prov-search', role: 'search', onsubmit: (event) => {
    event.preventDefault();
    navigate(`/ui/provenance?dataset=${encodeURIComponent(input.value.trim())}`);
  } }, h('label', { for: 'dataset-id', i18n: 'prov.dataset' }), input, h('button', { type: 'submit', i18n: 'common.search' })));
  const id = params.get('dataset');
  if (!id) return;
  const out = h('section', { class: 'card', id: 'prov-detail' });
  main.append(out);
  const base = `/api/v1/datasets/${encodeURIComponent(id)}/provenance`;
  let graph;
  try {
    graph = await api(base);
  } catch (err) {
    out.append(h('p', { class: 'error', role: 'alert' }, errorText(err)));
    return;
  }
  const nodes = graph.nodes || [];
  const edges = graph.edges || [];
  const button = h('button', { type: 'button', id: 'prov-download', i18n: 'prov.download' });
  button.addEventListener('click', () => {
    download(`${base}?format=prov-json`, `provenance-${id.slice(2, 18)}.json`).catch((err) => {
      out.append(h('p', { class: 'error', role: 'alert' }, errorText(err)));
    });
  });
  const box = h('div', { class: 'chart tall', id: 'prov-chart', role: 'img', 'aria-label': t('prov.chart') });
  out.append(h('p', { id: 'prov-counts' }, t('prov.counts', { nodes: nodes.length, edges: edges.length }), ' ', button), box,
    h('details', { id: 'prov-nodes' }, h('summary', { i18n: 'prov.node_list' }), table([
      { key: 'prov.kind', cell: (n) => t(`prov.kind.${kindOf(n)}`) },
      { key: 'prov.label', cell: (n) => labelOf(n, me) },
      { key: 'prov.node_id', cell: (n) => h('code', {}, String(n.id)) },
    ], nodes)));
  const labels = Object.fromEntries(nodes.map((n) => [String(n.id), labelOf(n, me)]));
  await chart(box, {
    animation: false,
    tooltip: {
      formatter: (p) => (p.dataType === 'edge'
        ? esc(`${labels[p.data.source]} —${p.data.relation}→ ${labels[p.data.target]}`)
        : esc(`${t(`prov.kind.${KINDS[p.data.category]}`)}: ${p.data.name}`)),
    },
    legend: { data: KINDS.map((k) => t(`prov.kind.${k}`)) },
    series: [{
      type: 'graph',
      layout: 'force',
      roam: true,
      draggable: true,
      force: { repulsion: 700, edgeLength: [90, 180], gravity: 0.06 },
      edgeSymbol: ['none', 'arrow'],
      edgeSymbolSize: 7,
      label: { show: true, position: 'right' },
      edgeLabel: { show: false, fontSize: 10 },
      emphasis: { focus: 'adjacency', edgeLabel: { show: true } },
      lineStyle: { curveness: 0.12, opacity: 0.7 },
      categories: KINDS.map((k) => ({ name: t(`prov.kind.${k}`), symbol: SYMBOLS[k] })),
      data: nodes.map((n) => ({ id: String(n.id), name: labelOf(n, me), category: KINDS.indexOf(kindOf(n)),
        symbolSize: kindOf(n) === 'entity' ? 30 : 24 })),
      links: edges.map((e) => ({ source: String(e.source), target: String(e.target), relation: String(e.relation),
        label: { formatter: String(e.relation) } })),
    }],
  });
}
