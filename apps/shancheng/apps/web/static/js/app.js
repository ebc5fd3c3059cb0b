// The web UI's entry: language, sign-in (OIDC or demo token), and the page router for /ui/<page>.
import { api, disposeCharts, errorText, forgetSession, h, loadLang, savedLang, t, translateTree } from './core.js';
import { networkPage } from './pages/network.js';
import { evidencePage } from './pages/evidence.js';
import { rxPage } from './pages/prescriptions.js';
import { tracePage } from './pages/trace.js';
import { stationsPage } from './pages/stations.js';
import { provenancePage } from './pages/provenance.js';
import { forgetOrgs, loadOrgs } from './orgs.js';

const PAGES = {
  network: networkPage,
  evidence: evidencePage,
  prescriptions: rxPage,
  trace: tracePage,
  stations: stationsPage,
  provenance: provenancePage,
};

export const session = { me: null };

function banner(message) {
  const el = document.getElementById('banner');
  el.hidden = !message;
  el.textContent = message || '';
}

async function whoAmI() {
  try {
    session.me = await api('/api/v1/me');
  } catch (err) {
    session.me = null;
    if (err.status !== 401) banner(errorText(err));
  }
  const who = document.getElementById('who');
  const signin = document.getElementById('signin');
  const logout = document.getElementById('logout');
  if (session.me) await loadOrgs(); else forgetOrgs();
  if (session.me) {
    const role = t(`role.${session.me.role}`);
    who.textContent = t('auth.signed_in', { subject: session.me.subject, role, org: session.me.org });
  } else {
    who.textContent = '';
  }
  signin.hidden = Boolean(session.me);
  logout.hidden = !session.me;
}

function pageName() {
  const match = window.location.pathname.match(/^\/ui\/([a-z]+)/);
  return match && PAGES[match[1]] ? match[1] : 'network';
}

async function render() {
  const name = pageName();
  document.querySelectorAll('[data-nav]').forEach((a) => {
    if (a.closest('nav')) {
      const current = a.getAttribute('href') === `/ui/${name}`;
      if (current) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    }
  });
  const main = document.getElementById('main');
  disposeCharts(main);
  main.replaceChildren();
  main.dataset.page = name;
  if (!session.me) {
    main.append(h('p', { class: 'hint', i18n: 'auth.needed' }));
    return;
  }
  const params = new URLSearchParams(window.location.search);
  try {
    await PAGES[name](main, { params, me: session.me, navigate });
  } catch (err) {
    main.append(h('p', { class: 'error', role: 'alert' }, errorText(err)));
  }
  translateTree(main);
}

export function navigate(url, { replace = false } = {}) {
  if (replace) window.history.replaceState({}, '', url); else window.history.pushState({}, '', url);
  return render();
}

async function signInWithToken(event) {
  event.preventDefault();
  const input = document.getElementById('token');
  banner('');
  try {
    await api('/auth/token-login', { method: 'POST', json: { token: input.value.trim() } });
    input.value = '';
    forgetSession();
    await whoAmI();
    await render();
  } catch (err) {
    banner(errorText(err));
  }
}

async function signOut() {
  try {
    await api('/auth/logout', { method: 'POST' });
  } catch (err) {
    banner(errorText(err));
  }
  forgetSession();
  await whoAmI();
  await render();
}

async function start() {
  const select = document.getElementById('lang');
  const lang = savedLang();
  select.value = lang;
  await loadLang(lang);
  select.addEventListener('change', async () => {
    await loadLang(select.value);
    await whoAmI();
    await render();
  });
  document.getElementById('token-form').addEventListener('submit', signInWithToken);
  document.getElementById('logout').addEventListener('click', signOut);
  document.addEventListener('click', (event) => {
    const link = event.target.closest('a[data-nav]');
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    navigate(link.getAttribute('href'));
  });
  window.addEventListener('popstate', render);
  await whoAmI();
  await render();
  document.body.dataset.ready = 'true';
}

start().catch((err) => banner(errorText(err)));
