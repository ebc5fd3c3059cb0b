// Drug custody trail: a trace code (and its maker) -> current custody and the ordered events of the unit, with
// the EPCIS 2.0 export. API: routes/trace.py — TrailOut {code, unit_key, maker_org, owner, custody: {own,
// effective, holder}, trail: [{kind: unit|refused|aggregation|batch, bill_type, acting_org, counterparty, reason,
// parent, child, added, block_number, block_time, tx_hash}], next_cursor, source}.
import { api, download, errorText, formatTime, h, short, t, table } from '../core.js';
import { orgLabel } from '../orgs.js';

// DrugTrace.Refusal names, by number (shancheng.sdk.domain.drugtrace.Refusal)
const REFUSALS = ['NONE', 'UNKNOWN_CODE', 'ALREADY_REGISTERED', 'ALREADY_DISPENSED', 'TERMINAL', 'IN_TRANSIT',
  'PACKED_IN_PARENT', 'NOT_HOLDER', 'REMOVED_CHILD_INSIDE', 'NOT_RECEIVER', 'NOT_IN_TRANSIT', 'HAS_CHILDREN',
  'LEVEL_NOT_BELOW_PARENT', 'NOT_A_CHILD', 'RETURN_TO_SENDER_ONLY', 'NOT_AUTHORISED', 'TOO_MANY_CHILDREN', 'ZERO_CODE'];

function eventLabel(e) {
  if (e.kind === 'unit') return t(`trace.bill.${e.bill_type}`);
  if (e.kind === 'refused') {
    return t('trace.refused', { bill: t(`trace.bill.${e.bill_type}`), reason: REFUSALS[e.reason] || String(e.reason) });
  }
  return t(e.added ? 'trace.packed' : 'trace.unpacked', { parent: short(e.parent, 8) });
}

export async function tracePage(main, { params, me, navigate }) {
  main.append(h('h2', { i18n: 'trace.title' }));
  const code = h('input', { id: 'trace-code', type: 'search', required: true, maxlength: 128, value: params.get('code') || '' });
  const maker = h('input', { id: 'trace-maker', type: 'number', min: 1, step: 1, value: params.get('maker') || '' });
  main.append(h('form', { class: 'card inline', id: 'trace-search', role: 'search', onsubmit: (event) => {
    event.preventDefault();
    const q = new URLSearchParams({ code: code.value.trim() });
    if (maker.value.trim()) q.set('maker', maker.value.trim());
    navigate(`/ui/trace?${q}`);
  } },
  h('label', { for: 'trace-code', i18n: 'trace.code' }), code,
  h('label', { for: 'trace-maker', i18n: 'trace.maker' }), maker,
  h('button', { type: 'submit', i18n: 'common.search' })));
  if (!params.get('code')) return;
  const out = h('section', { class: 'card', id: 'trace-detail' });
  main.append(out);
  const base = `/api/v1/trace/codes/${encodeURIComponent(params.get('code'))}`;
  const query = new URLSearchParams({ limit: '500' });
  if (params.get('maker')) query.set('maker', params.get('maker'));
  let trail;
  try {
    trail = await api(`${base}?${query}`);
  } catch (err) {
    out.append(h('p', { class: 'error', role: 'alert' }, errorText(err)));
    return;
  }
  const events = (trail.trail || []).filter((e) => e.kind !== 'batch');
  const epcis = h('button', { type: 'button', id: 'trace-epcis', i18n: 'trace.epcis' });
  epcis.addEventListener('click', () => {
    const q = new URLSearchParams({ maker: String(trail.maker_org) });
    download(`${base}/epcis?${q}`, `epcis-${trail.code}.json`).catch((err) => {
      out.append(h('p', { class: 'error', role: 'alert' }, errorText(err)));
    });
  });
  out.append(h('dl', { class: 'summary' },
    h('dt', { i18n: 'trace.code' }), h('dd', { id: 'trace-normal' }, trail.code),
    h('dt', { i18n: 'trace.maker' }), h('dd', {}, orgLabel(trail.maker_org, me)),
    h('dt', { i18n: 'trace.state' }), h('dd', { id: 'trace-state', 'data-state': trail.custody.effective },
      t(`trace.unit.${trail.custody.effective}`)),
    h('dt', { i18n: 'trace.holder' }), h('dd', { id: 'trace-holder', 'data-org': trail.custody.holder },
      orgLabel(trail.custody.holder, me)),
    h('dt', { i18n: 'trace.owner' }), h('dd', {}, orgLabel(trail.owner, me))), epcis);
  const rows = h('div', { id: 'trace-events' });
  const more = h('button', { type: 'button', id: 'trace-more', i18n: 'common.more', hidden: !trail.next_cursor });
  let cursor = trail.next_cursor;
  const draw = () => rows.replaceChildren(table([
    { key: 'trace.step', cell: (e) => String(events.indexOf(e) + 1) },
    { key: 'trace.event', cell: (e) => h('span', { 'data-kind': e.kind, 'data-bill': e.bill_type ?? null }, eventLabel(e)) },
    { key: 'trace.actor', cell: (e) => orgLabel(e.acting_org, me) },
    { key: 'trace.counterparty', cell: (e) => (e.kind === 'unit' ? orgLabel(e.counterparty, me) : '—') },
    { key: 'trace.time', cell: (e) => formatTime(e.block_time) },
    { key: 'trace.tx', cell: (e) => h('code', { title: e.tx_hash }, short(e.tx_hash || '', 8)) },
  ], events));
  more.addEventListener('click', async () => {
    try {
      const next = await api(`${base}?${new URLSearchParams({ ...Object.fromEntries(query), cursor })}`);
      events.push(...(next.trail || []).filter((e) => e.kind !== 'batch'));
      cursor = next.next_cursor;
      more.hidden = !cursor;
      draw();
    } catch (err) {
      out.append(h('p', { class: 'error', role: 'alert' }, errorText(err)));
    }
  });
  draw();
  out.append(h('h4', { i18n: 'trace.events' }), rows, more);
}
