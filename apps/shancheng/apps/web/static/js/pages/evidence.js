// Evidence: verify an evidence package — uploaded, pasted, or fetched from this gateway's log by record id —
// optionally with the record and its salt. API: routes/evidence.py — POST /api/v1/evidence/verify {package,
// record?, salt?} -> VerifyOut {verified, summary: str|null, checks: [passed check names, in order], failed_check,
// reason}; GET /api/v1/evidence/records/{id} -> {status, salt, anchor, ...}; GET .../{id}/package.
import { api, errorText, h, t } from '../core.js';

const MAX_FILE = 1024 * 1024;
// the verifier's checks, in its order (routes/evidence.py CHECKS); each has a translated name
export const CHECKS = ['package', 'record signature', 'checkpoint signature', 'inclusion proof', 'chain anchor',
  'record content'];

function checkName(name) {
  return CHECKS.includes(name) ? t(`evidence.check.${name.replace(' ', '_')}`) : name;
}

function resultView(result) {
  const passed = Array.isArray(result.checks) ? result.checks : [];
  const box = h('div', { id: 'verify-result', class: result.verified ? 'result ok' : 'result failed', role: 'status',
    'data-verified': String(Boolean(result.verified)) });
  if (result.verified) {
    box.append(h('p', { class: 'verdict', i18n: 'evidence.verified' }));
    if (result.summary) box.append(h('p', { id: 'verify-summary', class: 'summary' }, String(result.summary)));
  } else {
    box.append(h('p', { class: 'verdict', i18n: 'evidence.not_verified' }));
    box.append(h('dl', {},
      h('dt', { i18n: 'evidence.failed_check' }),
      h('dd', { id: 'failed-check', 'data-check': result.failed_check ?? '' }, checkName(result.failed_check ?? '—')),
      h('dt', { i18n: 'evidence.reason' }), h('dd', { id: 'failed-reason' }, String(result.reason ?? '—'))));
  }
  const rows = passed.map((name) => h('li', { class: 'good', 'data-check': name }, `✓ ${checkName(name)}`));
  if (!result.verified && result.failed_check) {
    rows.push(h('li', { class: 'bad', 'data-check': result.failed_check }, `✗ ${checkName(result.failed_check)}`));
  }
  if (rows.length) box.append(h('h4', { i18n: 'evidence.checks' }), h('ol', { class: 'checks', id: 'verify-checks' }, rows));
  return box;
}

export async function evidencePage(main, { params }) {
  main.append(h('h2', { i18n: 'evidence.title' }));
  const output = h('div', { id: 'verify-output', 'aria-live': 'polite' });
  const file = h('input', { id: 'pkg-file', type: 'file', accept: '.json,application/json' });
  const text = h('textarea', { id: 'pkg-text', rows: 8, 'data-i18n-placeholder': 'evidence.paste_hint' });
  const record = h('textarea', { id: 'record-text', rows: 4, 'data-i18n-placeholder': 'evidence.record_hint' });
  const salt = h('input', { id: 'salt', type: 'text', autocomplete: 'off', maxlength: 130, pattern: '(0x)?([0-9a-fA-F]{2})+' });
  const recordId = h('input', { id: 'record-id', type: 'number', min: 0, step: 1, value: params.get('record') || '' });
  const details = h('details', {},
    h('summary', { i18n: 'evidence.optional' }),
    h('label', { for: 'record-text', i18n: 'evidence.record' }), record,
    h('label', { for: 'salt', i18n: 'evidence.salt' }), salt);
  file.addEventListener('change', async () => {
    const chosen = file.files && file.files[0];
    if (!chosen) return;
    if (chosen.size > MAX_FILE) { output.replaceChildren(h('p', { class: 'error', i18n: 'error.413' })); return; }
    text.value = await chosen.text();
    output.replaceChildren();
  });
  const load = async (event) => {
    event.preventDefault();
    const id = recordId.value.trim();
    output.replaceChildren(h('p', { class: 'hint', i18n: 'common.working' }));
    try {
      const status = await api(`/api/v1/evidence/records/${encodeURIComponent(id)}`);
      if (status.status !== 'anchored') {
        output.replaceChildren(h('p', { class: 'hint', id: 'record-pending' }, t('evidence.pending', { id })));
        return;
      }
      const pkg = await api(`/api/v1/evidence/records/${encodeURIComponent(id)}/package`);
      text.value = JSON.stringify(pkg, null, 2);
      if (status.salt) { salt.value = status.salt; details.open = true; }
      output.replaceChildren(h('p', { class: 'hint', id: 'record-loaded' }, t('evidence.loaded', { id })));
    } catch (err) {
      output.replaceChildren(h('p', { class: 'error', role: 'alert' }, errorText(err)));
    }
  };
  const submit = async (event) => {
    event.preventDefault();
    output.replaceChildren(h('p', { class: 'hint', i18n: 'common.working' }));
    let pkg;
    let rec;
    if (text.value.length > MAX_FILE) { output.replaceChildren(h('p', { class: 'error', i18n: 'error.413' })); return; }
    try {
      pkg = JSON.parse(text.value);
    } catch (err) {
      output.replaceChildren(h('p', { class: 'error', role: 'alert' }, `${t('evidence.bad_json')}: ${err.message}`));
      return;
    }
    if (record.value.trim()) {
      try { rec = JSON.parse(record.value); } catch (err) {
        output.replaceChildren(h('p', { class: 'error', role: 'alert' }, `${t('evidence.bad_record')}: ${err.message}`));
        return;
      }
    }
    const body = { package: pkg };
    if (rec !== undefined) body.record = rec;
    if (salt.value.trim()) body.salt = salt.value.trim();
    try {
      const result = await api('/api/v1/evidence/verify', { method: 'POST', json: body });
      output.replaceChildren(resultView(result));
    } catch (err) {
      output.replaceChildren(h('p', { class: 'error', role: 'alert' }, errorText(err)));
    }
  };
  main.append(h('form', { class: 'card inline', id: 'record-form', onsubmit: load },
    h('label', { for: 'record-id', i18n: 'evidence.record_id' }), recordId,
    h('button', { type: 'submit', id: 'record-load', i18n: 'evidence.load' })));
  main.append(h('form', { class: 'card', id: 'verify-form', onsubmit: submit },
    h('label', { for: 'pkg-file', i18n: 'evidence.file' }), file,
    h('label', { for: 'pkg-text', i18n: 'evidence.paste' }), text,
    details,
    h('button', { type: 'submit', id: 'verify-button', i18n: 'evidence.verify' })));
  main.append(output);
}
