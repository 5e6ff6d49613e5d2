// The dashboard's entry point: the shell (navigation, logout, status banner), the hash router
// and the live connection. Pages are modules that render into <main> (docs/DASHBOARD.md lists
// them and the test hooks they must keep).

import { api, setCsrf, toLogin } from './api.js';
import { h, replace } from './dom.js';
import { clock } from './format.js';
import { live, refreshStatus, start, subscribe } from './live.js';
import * as summary from './summary.js';
import * as hosts from './hosts.js';
import * as host from './host.js';
import * as protocols from './protocols.js';
import * as interfaces from './interfaces.js';
import * as admin from './admin.js';

const ROUTES = [
  { re: /^\/?$/, page: summary, nav: 'nav-summary' },
  { re: /^\/hosts\/?$/, page: hosts, nav: 'nav-hosts' },
  { re: /^\/hosts\/(.+)$/, page: host, nav: 'nav-hosts' },
  { re: /^\/protocols\/?$/, page: protocols, nav: 'nav-protocols' },
  { re: /^\/interfaces\/?$/, page: interfaces, nav: 'nav-interfaces' },
  { re: /^\/admin\/?$/, page: admin, nav: 'nav-admin' },
];

const main = document.getElementById('main');
const banner = document.querySelector('[data-testid="status-banner"]');
const app = { session: null };
let current = null;
let firstRoute = true;

/** What a page gets: where to render, the route's parts, and helpers whose effects end when the
 * page is left (subscriptions, timers, charts). */
function context(match, params) {
  const cleanups = [];
  const ctx = {
    main,
    match,
    params,
    app,
    live,
    active: true,
    /** `fn(type, data)` on live events while the page is shown. */
    on(fn) {
      cleanups.push(subscribe(fn));
    },
    /** `fn()` every `ms` while the page is shown and the tab visible. */
    every(ms, fn) {
      const id = setInterval(() => {
        if (!document.hidden) fn();
      }, ms);
      cleanups.push(() => clearInterval(id));
    },
    /** Runs `fn` when the page is left. */
    cleanup(fn) {
      cleanups.push(fn);
    },
    dispose() {
      ctx.active = false;
      for (const fn of cleanups.splice(0)) {
        try {
          fn();
        } catch (e) {
          console.error(e);
        }
      }
    },
  };
  return ctx;
}

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
  return { path: path.startsWith('/') ? path : `/${path}`, params };
}

function route() {
  if (current) current.dispose();
  const { path, params } = parseHash();
  const found = ROUTES.map((r) => ({ r, m: path.match(r.re) })).find((x) => x.m);
  for (const a of document.querySelectorAll('.nav a')) {
    if (found && a.dataset.testid === found.r.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const ctx = context(found ? found.m : null, params);
  current = ctx;
  main.replaceChildren();
  if (!found) {
    document.title = 'ntop: not found';
    replace(
      main,
      h('h1', { tabindex: '-1' }, 'Page not found'),
      h('p', null, 'There is no such page. ', h('a', { href: '#/' }, 'Go to the summary'), '.'),
    );
  } else {
    try {
      found.r.page.render(ctx);
    } catch (e) {
      console.error(e);
      replace(main, h('h1', { tabindex: '-1' }, 'Something went wrong'), h('p', null, String(e)));
    }
  }
  if (!firstRoute) {
    // Move the focus to the new page's heading, as a page load would (screen readers).
    const heading = main.querySelector('h1');
    if (heading) {
      heading.setAttribute('tabindex', '-1');
      heading.focus({ preventScroll: false });
    }
    window.scrollTo(0, 0);
  }
  firstRoute = false;
}

/** The status banner: what is wrong now, or hidden. */
function updateBanner() {
  const lines = [];
  if (live.mode === 'down') {
    lines.push('ntop is not answering. Retrying every 2 seconds; the page recovers by itself.');
  } else if (live.mode === 'polling') {
    lines.push('Live events are not available: updating every 2 seconds instead.');
  }
  const status = live.status;
  const store = live.last?.collector?.store ?? status?.store?.state;
  if (store && store !== 'ok') {
    const why = status?.store?.error ? `: ${status.store.error}` : '';
    lines.push(`History store ${store}${why}. Counting goes on in memory.`);
  }
  const refresh = status?.ntop?.refresh_interval_ms ?? 1000;
  const stallMs = Math.max(10000, 10 * refresh);
  if (live.mode !== 'down' && live.lastAt && Date.now() - live.lastAt > stallMs) {
    // A fixed text while the stall lasts: the banner is a live region, and a count of seconds
    // would be read out again every second.
    lines.push(`No new counts from the collector since ${clock(live.lastAt / 1000)}.`);
  } else if (status?.collector?.state === 'stalled' && !live.lastAt) {
    lines.push('The collector is stalled: the kernel counters are not being read.');
  }
  const text = lines.join('\n');
  if (banner.dataset.text === text) return;
  banner.dataset.text = text;
  replace(banner, ...lines.map((l) => h('p', null, l)));
  banner.hidden = lines.length === 0;
}

async function logout() {
  try {
    await api('/logout', { method: 'POST', redirect401: false });
  } catch {
    // Logged out or not: the login page is where to go.
  }
  try {
    sessionStorage.removeItem('ntop.return');
  } catch {
    // ignore
  }
  location.assign('/login');
}

async function boot() {
  try {
    const back = sessionStorage.getItem('ntop.return');
    sessionStorage.removeItem('ntop.return');
    if (back && (!location.hash || location.hash === '#' || location.hash === '#/')) {
      history.replaceState(null, '', back);
    }
  } catch {
    // Storage may be disabled.
  }
  document.querySelector('[data-testid="logout"]').addEventListener('click', logout);
  // The skip link moves the focus past the navigation without touching the hash (the router's).
  document.querySelector('a.skip').addEventListener('click', (e) => {
    e.preventDefault();
    const heading = main.querySelector('h1');
    if (heading) heading.setAttribute('tabindex', '-1');
    (heading ?? main).focus();
  });

  // The session's CSRF token; none with HTTP Basic or --web-public-read (then the admin
  // actions answer 401 and send the browser to the login page).
  try {
    app.session = await api('/api/v1/session', { redirect401: false });
    setCsrf(app.session?.csrf_token);
  } catch (e) {
    if (e.status === 0) app.session = null;
  }
  let status = null;
  try {
    status = await api('/api/v1/status');
  } catch (e) {
    if (e.status === 401) return;
  }
  start(status);
  subscribe((type, data) => {
    if (type === 'restart') route();
    if (type === 'summary' && data.collector?.store && live.status?.store?.state !== data.collector.store) {
      refreshStatus();
    }
    if (type === 'mode' || type === 'status' || type === 'summary') updateBanner();
  });
  setInterval(updateBanner, 1000);
  setInterval(() => {
    if (!document.hidden) refreshStatus();
  }, 30000);
  window.addEventListener('hashchange', route);
  route();
  updateBanner();
}

boot().catch((e) => {
  console.error(e);
  if (e && e.status === 401) toLogin();
});
