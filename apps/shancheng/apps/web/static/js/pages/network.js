// Network health: nodes and heights, validators, latest blocks and which validators signed each certificate.
import { api, chart, formatTime, h, short, t, table } from '../core.js';

function blockTime(block) {
  const ts = block.timestamp ?? block.time;
  if (typeof ts === 'number') return ts > 1e12 ? ts / 1000 : ts;
  const parsed = Date.parse(ts);
  return Number.isNaN(parsed) ? null : parsed / 1000;
}

function signerNames(block, validators) {
  if (Array.isArray(block.signer_names)) return block.signer_names;
  const signers = block.signers || [];
  return signers.map((s) => {
    if (typeof s === 'object' && s !== null) return s.name || s.address || JSON.stringify(s);
    const known = validators.find((v) => v.address === s || v.id === s);
    return known && known.name ? known.name : short(s, 6);
  });
}

// The gateway verifies each certificate against its block's validator set: a refused one says why, a block whose
// certificate the node does not hold yet (stored once the next block commits) is pending.
function signedBy(block, validators) {
  if (block.certificate_error) {
    return h('span', { class: 'bad cert-refused', title: block.certificate_error }, t('network.cert_refused'));
  }
  if (block.certified === false) return h('span', { class: 'cert-pending' }, t('network.cert_pending'));
  const names = signerNames(block, validators).join(', ') || '—';
  return typeof block.signed_power === 'number' ? `${names} (${block.signed_power}/${block.total_power})` : names;
}

// A block's time and transaction count are shown as verified only when the gateway proved them: the time from a
// header whose hash the verified certificate signs, the count when that header proves it. Anything else is the
// node's word, labelled so (the reason is the label's title).
function unverified(reason) {
  return h('span', { class: 'unverified', title: reason || t('network.unverified_hint') }, t('network.unverified'));
}

function blockTimeCell(block) {
  const time = formatTime(block.timestamp ?? block.time);
  if (block.header_verified === true) return time;
  return h('span', {}, `${time} `, unverified(block.header_error));
}

function transactionsCell(block) {
  const count = String(block.transactions ?? '—');
  if (block.transactions_verified === true) return count;
  const reason = block.header_verified === true ? t('network.count_unproven') : block.header_error;
  return h('span', {}, `${count} `, unverified(reason));
}

export async function networkPage(main) {
  main.append(h('h2', { i18n: 'network.title' }));
  const data = await api('/api/v1/network');
  const nodes = data.nodes || [];
  const validators = data.validators || [];
  const blocks = data.blocks || data.latest_blocks || [];

  main.append(h('section', { class: 'card', 'aria-labelledby': 'nodes-h' },
    h('h3', { id: 'nodes-h', i18n: 'network.nodes' }),
    table([
      { key: 'network.node', cell: (n) => n.url || n.name || '—' },
      { key: 'network.status', cell: (n) => h('span', { class: n.reachable === false || n.error ? 'bad' : 'good' },
        t(n.reachable === false || n.error ? 'network.down' : 'network.up')) },
      { key: 'network.height', cell: (n) => String(n.height ?? '—') },
      { key: 'network.detail', cell: (n) => n.error || n.chain_id || n.version || '' },
    ], nodes)));

  main.append(h('section', { class: 'card', 'aria-labelledby': 'validators-h' },
    h('h3', { id: 'validators-h', i18n: 'network.validators' }),
    table([
      { key: 'network.validator', cell: (v) => v.name || v.org || '—' },
      { key: 'network.address', cell: (v) => h('code', {}, short(v.public_key || v.address || '')) },
      { key: 'network.power', cell: (v) => String(v.power ?? v.voting_power ?? '—') },
    ], validators)));

  const chartBox = h('div', { class: 'chart', id: 'block-times-chart', role: 'img', 'aria-label': t('network.chart') });
  main.append(h('section', { class: 'card', 'aria-labelledby': 'blocks-h' },
    h('h3', { id: 'blocks-h', i18n: 'network.blocks' }),
    table([
      { key: 'network.height', cell: (b) => String(b.number ?? b.height ?? '—') },
      { key: 'network.time', cell: blockTimeCell },
      { key: 'network.hash', cell: (b) => h('code', {}, short(b.hash)) },
      { key: 'network.txs', cell: transactionsCell },
      { key: 'network.signed_by', cell: (b) => signedBy(b, validators) },
    ], blocks),
    h('h4', { i18n: 'network.chart' }),
    chartBox));

  const ordered = [...blocks].sort((a, b) => (a.number ?? a.height) - (b.number ?? b.height));
  const xs = [];
  const ys = [];
  for (let i = 1; i < ordered.length; i += 1) {
    const prev = blockTime(ordered[i - 1]);
    const cur = blockTime(ordered[i]);
    if (prev === null || cur === null) continue;
    xs.push(String(ordered[i].number ?? ordered[i].height));
    ys.push(Math.max(0, Number((cur - prev).toFixed(3))));
  }
  await chart(chartBox, {
    animation: false,
    tooltip: { trigger: 'axis' },
    xAxis: { type: 'category', name: t('network.height'), data: xs },
    yAxis: { type: 'value', name: t('network.seconds') },
    series: [{ type: 'bar', name: t('network.block_time'), data: ys }],
  });
}
