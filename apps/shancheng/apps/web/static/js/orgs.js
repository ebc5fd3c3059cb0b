// Organisation names: the member organisations as Governance holds them (GET /api/v1/orgs, routes/orgs.py), read
// once per sign-in, so that pages name an organisation — "pharmacy (#2)" — instead of showing only its number.
import { api, t } from './core.js';

let names = new Map();

// read the organisations' names; a failure leaves the numbers shown (the pages still work)
export async function loadOrgs() {
  try {
    const orgs = await api('/api/v1/orgs');
    names = new Map((Array.isArray(orgs) ? orgs : []).map((o) => [Number(o.id), String(o.name)]));
  } catch {
    names = new Map();
  }
}

export function forgetOrgs() { names = new Map(); }

// the name Governance gives organisation `id`, or null when it is not known
export function orgName(id) {
  return names.get(Number(id)) ?? null;
}

// "hospital (#1)" for a known organisation (the signed-in one by its own name), "机构 #7" otherwise; 0 is none
export function orgLabel(id, me) {
  if (id === null || id === undefined) return '—';
  if (id === 0) return t('common.none');
  const name = me && id === me.org_id ? me.org : orgName(id);
  return name ? t('common.org_named', { name, id }) : t('common.org_id', { id });
}
