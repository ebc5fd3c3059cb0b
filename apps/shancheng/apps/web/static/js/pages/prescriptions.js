// Prescription timeline: search by id (or pick one of this organisation's), the states and transitions with actors
// and times, a doctor's form to issue one, and the actions the signed-in staff member may take next (the chain
// enforces the rules; the buttons offer what the gateway's roles allow from the current state).
// API: routes/prescriptions.py — PrescriptionOut {rx_id, state, hospital_org, pharmacy_org, delivery_org,
// fills_used, fills_allowed, next_fill_at, timeline:
// [{kind: transition|terms|extended, transition, from_state, to_state, acting_org, staff, block_time, tx_hash, ...}]},
// StepOut {rx_id, transition, state, staff, salt, tx_hash, block_number, pickup_code}, Page[{rx_id, state, last_block}].
// The patient's choice binds the claim: circulate and recall answer with a pickup code that this page shows the
// hospital's staff once, to hand to the patient; the pharmacist the patient shows it to types it into the claim form.
import { api, errorText, formatTime, h, items, short, t, table } from '../core.js';
import { orgLabel } from '../orgs.js';

// state -> the transitions offered from it: [path segment (the API's transition name), gateway roles that may
// press it (routes/prescriptions.py ROLES_OF), fields of its form]
const REVIEW = ['phar_prac_cert_no', 'rx_chk_stas_codg', 'rx_chk_opnn'];
// the doctor revokes only before any fill (the contract: "cannot revoke after dispensing"); see actionsFor
const REVOKE = ['revoke', ['doctor']];
// the prescribing doctor extends validity while the prescription waits for its fill (the contract's waiting states)
const EXTEND = ['extend', ['doctor'], ['valid_days']];
// the issuing hospital takes a claim back (no fill under way), or replaces a leaked code: a new pickup code
const RECALL = ['recall', ['doctor', 'pharmacist']];
// a repeat prescription with fills left, after a fill (DISPENSED or DELIVERED): the claiming pharmacy starts the next
// fill or releases it to circulation, and the doctor may extend validity; offered only while fills are left
const NEXT_FILL = [['dispense', ['pharmacist', 'dispenser']], ['release', ['pharmacist', 'pharmacy']], RECALL, EXTEND];
export const TRANSITIONS = {
  SIGNED: [['approve', ['pharmacist'], REVIEW], ['reject', ['pharmacist'], REVIEW], EXTEND, REVOKE],
  REJECTED: [['reissue', ['doctor'], ['prescription']], EXTEND, REVOKE],
  APPROVED: [['circulate', ['doctor', 'pharmacist']], EXTEND, REVOKE],
  CIRCULATED: [['claim', ['pharmacist', 'pharmacy'], ['pickup_code']], RECALL, EXTEND, REVOKE],
  CLAIMED: [['dispense', ['pharmacist', 'dispenser']], ['release', ['pharmacist', 'pharmacy']], RECALL, EXTEND,
    REVOKE],
  DISPENSING: [['check', ['pharmacist', 'dispenser']]],
  // consign names the logistics org (CHECKED stays CHECKED); its courier picks up: CHECKED -> DELIVERING
  CHECKED: [['hand_over', ['pharmacist', 'dispenser']], ['consign', ['pharmacist', 'dispenser'], ['logistics_org']],
    ['pick_up', ['courier']]],
  DELIVERING: [['deliver', ['courier']]],
  DISPENSED: NEXT_FILL,
  DELIVERED: NEXT_FILL,
};
const AFTER_A_FILL = new Set(['DISPENSED', 'DELIVERED']);
const TEXT_FIELDS = new Set(['prescription']);

// the JSON body of a transition from its form fields (TransitionIn)
export function bodyFor(name, values) {
  if (name === 'approve' || name === 'reject') return { review: values };
  if (name === 'consign') return { logistics_org: Number(values.logistics_org) };
  if (name === 'extend') return { valid_days: Number(values.valid_days) };
  if (name === 'reissue') return { prescription: JSON.parse(values.prescription || 'null') };
  return values;
}

// fills started so far and fills the prescription allows (1 unless it is a repeat prescription)
function fillsOf(rx) {
  return { used: Number(rx.fills_used) || 0, allowed: Number(rx.fills_allowed) || 1 };
}

function actionsFor(rx, me) {
  const fills = fillsOf(rx);
  if (AFTER_A_FILL.has(rx.state) && fills.used >= fills.allowed) return []; // every fill used: terminal
  return (TRANSITIONS[rx.state] || []).filter(([name, roles]) => roles.includes(me.role)
    && !(name === 'revoke' && fills.used > 0)
    && !(name === 'recall' && me.org_id !== rx.hospital_org)); // only the issuing hospital recalls
}

// "fill 1 of 2" (a fill under way counts: it has started), "no fill yet (2 allowed)"; and, with fills left after one,
// when the next may start
function fillsView(rx) {
  const { used, allowed } = fillsOf(rx);
  const text = used ? t('rx.fill_of', { n: used, total: allowed }) : t('rx.fill_none', { total: allowed });
  return [
    h('dt', { i18n: 'rx.fills' }),
    h('dd', { id: 'rx-fills', 'data-used': String(used), 'data-allowed': String(allowed) }, text),
    used && rx.next_fill_at ? h('dt', { i18n: 'rx.next_fill_at' }) : null,
    used && rx.next_fill_at ? h('dd', { id: 'rx-next-fill' }, formatTime(rx.next_fill_at)) : null,
  ].filter(Boolean);
}

function eventTitle(e) {
  if (e.kind === 'terms') return t('rx.kind.terms', { version: e.version ?? '—' });
  if (e.kind === 'extended') return t('rx.kind.extended', { days: e.valid_days ?? '—' });
  return t(`rx.do.${e.transition}`);
}

function timelineView(rx, me) {
  const events = rx.timeline || [];
  return h('ol', { class: 'timeline', id: 'rx-timeline' }, events.map((e) => {
    const to = e.kind === 'transition' ? e.to_state : null;
    return h('li', { class: `event kind-${e.kind}`, 'data-kind': e.kind, 'data-transition': e.transition || null,
      'data-state': to },
    h('span', { class: 'step' }, eventTitle(e)),
    to ? h('span', { class: `state state-${String(to).toLowerCase()}` }, ` → ${t(`rx.state.${to}`)}`) : null,
    e.kind !== 'transition' && e.valid_end ? h('span', {}, ` · ${t('rx.valid_end')}: ${formatTime(e.valid_end)}`) : null,
    h('div', { class: 'meta' }, [
      e.staff ? h('span', {}, `${t('rx.actor')}: `, h('code', { title: e.staff }, short(e.staff, 8))) : null,
      e.acting_org ? h('span', {}, `${t('rx.org')}: ${orgLabel(e.acting_org, me)}`) : null,
      h('span', {}, formatTime(e.block_time)),
      h('span', {}, `${t('rx.block')} ${e.block_number} `, h('code', { title: e.tx_hash }, short(e.tx_hash, 8))),
    ].filter(Boolean).flatMap((part, i) => (i ? [' · ', part] : [part]))));
  }));
}

// the outcome of the last step taken on this page (kept across the re-render that follows it)
let lastStep = null;

function stepNote(step) {
  return h('p', { id: 'rx-last-step', class: 'hint', role: 'status' },
    t('rx.step_done', { step: t(`rx.do.${step.transition}`), state: t(`rx.state.${step.state}`) }), ' ',
    h('code', { title: step.tx_hash }, short(step.tx_hash, 8)),
    step.salt ? h('span', {}, ` · ${t('rx.salt')}: `, h('code', { class: 'salt' }, step.salt)) : null);
}

// the pickup code of a circulate or recall, shown once: the gateway keeps no copy
function pickupNote(step) {
  return h('div', { class: 'card pickup', id: 'rx-pickup', role: 'status' },
    h('h4', { i18n: 'rx.pickup_code' }),
    h('p', {}, h('code', { id: 'rx-pickup-code', class: 'pickup-code' }, step.pickup_code)),
    h('p', { class: 'hint', i18n: 'rx.pickup_hint' }));
}

function issueForm(navigate) {
  const doc = h('textarea', { id: 'rx-new-doc', rows: 8, maxlength: 100000, 'data-i18n-placeholder': 'rx.new_hint' });
  const status = h('p', { id: 'rx-new-status', role: 'status' });
  const button = h('button', { type: 'submit', id: 'rx-issue', i18n: 'rx.do.issue' });
  return h('details', { class: 'card', id: 'rx-new' },
    h('summary', { i18n: 'rx.new' }),
    h('form', { onsubmit: async (event) => {
      event.preventDefault();
      let prescription;
      try { prescription = JSON.parse(doc.value); } catch (err) {
        status.textContent = `${t('rx.bad_json')}: ${err.message}`;
        status.className = 'error';
        return;
      }
      button.disabled = true;
      status.className = '';
      status.textContent = t('common.working');
      try {
        lastStep = await api('/api/v1/prescriptions', { method: 'POST', json: { prescription } });
        await navigate(`/ui/prescriptions?rx=${encodeURIComponent(lastStep.rx_id)}`);
      } catch (err) {
        status.textContent = errorText(err);
        status.className = 'error';
        button.disabled = false;
      }
    } },
    h('label', { for: 'rx-new-doc', i18n: 'rx.new_doc' }), doc, button, status));
}

async function listView(main) {
  const out = h('section', { class: 'card', id: 'rx-list' }, h('h3', { i18n: 'rx.list' }));
  main.append(out);
  let page;
  try {
    page = await api('/api/v1/prescriptions?limit=50');
  } catch (err) {
    out.append(h('p', { class: 'error', role: 'alert' }, errorText(err)));
    return;
  }
  out.append(table([
    { key: 'rx.id', cell: (r) => h('a', { href: `/ui/prescriptions?rx=${r.rx_id}`, 'data-nav': true }, short(r.rx_id, 12)) },
    { key: 'rx.current', cell: (r) => t(`rx.state.${r.state}`) },
    { key: 'rx.block', cell: (r) => String(r.last_block) },
  ], items(page)));
}

export async function rxPage(main, { params, me, navigate }) {
  main.append(h('h2', { i18n: 'rx.title' }));
  const input = h('input', { id: 'rx-id', name: 'rx', type: 'search', required: true, maxlength: 66,
    pattern: '0x[0-9a-fA-F]{64}', value: params.get('rx') || '' });
  main.append(h('form', { class: 'card inline', id: 'rx-search', role: 'search', onsubmit: (event) => {
    event.preventDefault();
    lastStep = null;
    navigate(`/ui/prescriptions?rx=${encodeURIComponent(input.value.trim())}`);
  } },
  h('label', { for: 'rx-id', i18n: 'rx.id' }), input, h('button', { type: 'submit', i18n: 'common.search' })));
  if (me.role === 'doctor') main.append(issueForm(navigate));
  const rxId = params.get('rx');
  if (!rxId) {
    await listView(main);
    return;
  }
  const out = h('section', { class: 'card', id: 'rx-detail', 'aria-live': 'polite' });
  main.append(out);
  let rx;
  try {
    rx = await api(`/api/v1/prescriptions/${encodeURIComponent(rxId)}`);
  } catch (err) {
    out.append(h('p', { class: 'error', role: 'alert' }, errorText(err)));
    return;
  }
  out.append(h('h3', {}, `${t('rx.id')}: `, h('code', { id: 'rx-shown-id' }, rx.rx_id)));
  if (lastStep && lastStep.rx_id === rx.rx_id) {
    out.append(stepNote(lastStep));
    if (lastStep.pickup_code) out.append(pickupNote(lastStep));
  }
  out.append(
    h('p', {}, `${t('rx.current')}: `, h('strong', { id: 'rx-state', 'data-state': rx.state }, t(`rx.state.${rx.state}`))),
    h('dl', { class: 'summary' },
      h('dt', { i18n: 'rx.hospital' }), h('dd', {}, orgLabel(rx.hospital_org, me)),
      h('dt', { i18n: 'rx.pharmacy' }), h('dd', { id: 'rx-pharmacy' }, orgLabel(rx.pharmacy_org, me)),
      h('dt', { i18n: 'rx.valid_end' }), h('dd', {}, formatTime(rx.valid_end)),
      fillsView(rx)),
    h('h4', { i18n: 'rx.timeline' }),
    timelineView(rx, me));
  const actions = actionsFor(rx, me);
  if (!actions.length) return;
  const status = h('p', { id: 'rx-action-status', role: 'status' });
  const box = h('div', { class: 'actions', id: 'rx-actions' }, h('h4', { i18n: 'rx.actions' }));
  for (const [name, , fields] of actions) {
    const extras = (fields || []).map((field) => h(TEXT_FIELDS.has(field) ? 'textarea' : 'input', {
      type: TEXT_FIELDS.has(field) ? null : 'text', maxlength: TEXT_FIELDS.has(field) ? 100000 : 500, name: field,
      id: `rx-${name}-${field}`, 'aria-label': t(`rx.field.${field}`), 'data-i18n-placeholder': `rx.field.${field}` }));
    const button = h('button', { type: 'submit', 'data-transition': name, i18n: `rx.do.${name}` });
    box.append(h('form', { class: 'inline', onsubmit: async (event) => {
      event.preventDefault();
      button.disabled = true;
      status.className = '';
      status.textContent = t('common.working');
      const values = {};
      extras.forEach((el) => { if (el.value.trim()) values[el.name] = el.value.trim(); });
      try {
        lastStep = await api(`/api/v1/prescriptions/${encodeURIComponent(rx.rx_id)}/${name}`,
          { method: 'POST', json: bodyFor(name, values) });
        await navigate(`/ui/prescriptions?rx=${encodeURIComponent(rx.rx_id)}`, { replace: true });
      } catch (err) {
        status.textContent = errorText(err);
        status.className = 'error';
        button.disabled = false;
      }
    } }, extras, button));
  }
  box.append(status);
  out.append(box);
}
