// Hosts page (#/hosts): every host, one server-side page at a time (sorted, searched and
// filtered by /api/v1/hosts, so it stays fast with 100k hosts), refreshed every 5 s. The view
// (sort, order, page, search, scope, interface) lives in the hash, so reload and back work.

import { api, query } from './api.js';
import { h, replace, say, select, syncRows, tableWrap, uid } from './dom.js';
import { bits, bytes, count, dateTime, when } from './format.js';
import { live } from './live.js';
import { hostHref } from './summary.js';

const LIMITS = ['25', '50', '100', '200'];
const DEFAULT_LIMIT = 50;

/** The columns; `sort` is the API's sort key of sortable ones. */
const COLUMNS = [
  { label: 'Host', sort: 'ip' },
  { label: 'Name' },
  { label: 'MAC' },
  { label: 'Interface' },
  { label: 'Total', sort: 'total_bytes', num: true },
  { label: 'Sent', sort: 'sent_bytes', num: true },
  { label: 'Received', sort: 'received_bytes', num: true },
  { label: 'Packets', sort: 'total_packets', num: true },
  { label: 'Packets sent', sort: 'sent_packets', num: true },
  { label: 'Packets received', sort: 'received_packets', num: true },
  { label: 'Now', sort: 'throughput', num: true },
  { label: 'First seen', sort: 'first_seen' },
  { label: 'Last seen', sort: 'last_seen' },
];
const SORTS = COLUMNS.filter((c) => c.sort).map((c) => c.sort);
const defaultOrder = (sort) => (sort === 'ip' ? 'asc' : 'desc');

function viewFrom(params) {
  const sort = SORTS.includes(params.get('sort')) ? params.get('sort') : 'total_bytes';
  const order = ['asc', 'desc'].includes(params.get('order')) ? params.get('order') : defaultOrder(sort);
  const limit = LIMITS.includes(params.get('limit')) ? Number(params.get('limit')) : DEFAULT_LIMIT;
  const offset = Math.max(0, Math.floor(Number(params.get('offset')) || 0));
  const scope = ['local', 'remote'].includes(params.get('scope')) ? params.get('scope') : 'all';
  return { sort, order, limit, offset, scope, q: params.get('q') ?? '', iface: params.get('interface') ?? '' };
}

export function render(ctx) {
  document.title = 'ntop: hosts';
  const view = viewFrom(ctx.params);

  const searchId = uid('search');
  const search = h('input', {
    id: searchId,
    type: 'search',
    testid: 'hosts-search',
    value: view.q,
    placeholder: 'Address or name',
    autocomplete: 'off',
    spellcheck: 'false',
    maxlength: '256',
  });
  let debounce = null;
  search.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      view.q = search.value.trim();
      view.offset = 0;
      load(true);
    }, 200);
  });
  ctx.cleanup(() => clearTimeout(debounce));

  const scope = select(
    'Scope',
    [
      ['all', 'All hosts'],
      ['local', 'Local'],
      ['remote', 'Remote'],
    ],
    view.scope,
    (v) => {
      view.scope = v;
      view.offset = 0;
      load(true);
    },
    { testid: 'hosts-scope' },
  );
  const ifaceSlot = h('span');
  const limit = select(
    'Rows',
    LIMITS.map((l) => [l, l]),
    String(view.limit),
    (v) => {
      view.limit = Number(v);
      view.offset = 0;
      load(true);
    },
  );

  const total = h('span', { testid: 'hosts-total', 'data-total': '0' }, '0');
  const shown = h('span', { class: 'muted' });
  const error = h('div', { 'aria-live': 'polite' });
  // What a search, a filter, a sort or a page step found, for screen readers: said once per
  // action of the user, not at every refresh.
  const announce = h('p', { class: 'sr-only', role: 'status' });

  const headRow = h('tr');
  const buttons = new Map();
  for (const col of COLUMNS) {
    const th = h('th', { scope: 'col', class: col.num ? 'num' : null });
    if (col.sort) {
      const button = h(
        'button',
        {
          type: 'button',
          class: 'sort',
          testid: `sort-${col.sort}`,
          onclick: () => {
            if (view.sort === col.sort) view.order = view.order === 'asc' ? 'desc' : 'asc';
            else {
              view.sort = col.sort;
              view.order = defaultOrder(col.sort);
            }
            view.offset = 0;
            load(true);
          },
        },
        col.label,
      );
      th.append(button);
      buttons.set(col.sort, { th, button });
    } else {
      th.append(col.label);
    }
    headRow.append(th);
  }
  const body = h('tbody');
  const table = h(
    'table',
    { class: 'data hosts', testid: 'hosts-table' },
    h('caption', { class: 'sr-only' }, 'Hosts; the column headers sort the table'),
    h('thead', null, headRow),
    body,
  );
  const prev = h('button', { type: 'button', testid: 'prev-page', onclick: () => page(-1) }, '← Previous');
  const next = h('button', { type: 'button', testid: 'next-page', onclick: () => page(1) }, 'Next →');
  const pageInfo = h('span', { class: 'muted' });

  replace(
    ctx.main,
    h('div', { class: 'page-head' }, h('h1', null, 'Hosts'), h('p', { class: 'subtitle' }, total, ' hosts', shown)),
    h(
      'div',
      { class: 'controls' },
      h('label', { class: 'field', for: searchId }, h('span', null, 'Search'), search),
      scope,
      ifaceSlot,
      limit,
    ),
    error,
    tableWrap('Hosts table', table),
    h('nav', { class: 'pager', 'aria-label': 'Pages' }, prev, pageInfo, next),
    announce,
  );

  function page(step) {
    view.offset = Math.max(0, view.offset + step * view.limit);
    load(true);
  }

  // `aria-sort` belongs to the header cell (a column header's state); the arrow drawn after the
  // button's label follows it (app.css). Only the sorted column has one.
  function showSort() {
    for (const [key, { th }] of buttons) {
      if (key === view.sort) th.setAttribute('aria-sort', view.order === 'asc' ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
    }
  }

  function syncHash() {
    const params = {
      sort: view.sort === 'total_bytes' ? null : view.sort,
      order: view.order === defaultOrder(view.sort) ? null : view.order,
      limit: view.limit === DEFAULT_LIMIT ? null : view.limit,
      offset: view.offset || null,
      q: view.q || null,
      scope: view.scope === 'all' ? null : view.scope,
      interface: view.iface || null,
    };
    const hash = `#/hosts${query(params)}`;
    if (location.hash !== hash) history.replaceState(null, '', hash);
  }

  let interfaces = [];
  function showInterfaces(names) {
    if (names.join('\n') === interfaces.join('\n')) return;
    interfaces = names;
    if (names.length < 2 && !view.iface) {
      ifaceSlot.replaceChildren();
      return;
    }
    replace(
      ifaceSlot,
      select(
        'Interface',
        [['', 'All interfaces'], ...names.map((n) => [n, n])],
        view.iface,
        (v) => {
          view.iface = v;
          view.offset = 0;
          load(true);
        },
      ),
    );
  }

  let controller = null;
  let seq = 0;
  let announceNext = false;
  /** Loads the page of the view; `said`: the user asked for it (announce what it found). */
  async function load(said = false) {
    if (said) announceNext = true;
    showSort();
    syncHash();
    if (controller) controller.abort();
    controller = new AbortController();
    const mine = (seq += 1);
    const params = {
      sort: view.sort,
      order: view.order,
      limit: view.limit,
      offset: view.offset,
      interface: view.iface || null,
      q: view.q || null,
      scope: view.scope === 'all' ? null : view.scope,
    };
    let doc;
    try {
      doc = await api(`/api/v1/hosts${query(params)}`, { signal: controller.signal });
    } catch (e) {
      if (e.name === 'AbortError' || mine !== seq || !ctx.active) return;
      say(error, 'error', `Cannot list the hosts: ${e.message}`);
      return;
    }
    if (mine !== seq || !ctx.active) return;
    say(error);
    if (doc.hosts.length === 0 && view.offset > 0 && doc.total > 0) {
      // The list shrank under us (a reset, a narrower search): go to its last page.
      view.offset = Math.floor((doc.total - 1) / view.limit) * view.limit;
      load();
      return;
    }
    total.textContent = String(doc.total);
    total.setAttribute('data-total', String(doc.total));
    shown.textContent = doc.hosts.length
      ? ` · showing ${count(view.offset + 1)}–${count(view.offset + doc.hosts.length)}`
      : '';
    const pages = Math.max(1, Math.ceil(doc.total / view.limit));
    pageInfo.textContent = `Page ${count(Math.floor(view.offset / view.limit) + 1)} of ${count(pages)}`;
    prev.disabled = view.offset === 0;
    next.disabled = view.offset + view.limit >= doc.total;
    if (announceNext) {
      announceNext = false;
      const sorted = COLUMNS.find((c) => c.sort === view.sort)?.label ?? view.sort;
      announce.textContent = `${count(doc.total)} ${doc.total === 1 ? 'host' : 'hosts'}${
        doc.hosts.length ? `, showing ${count(view.offset + 1)} to ${count(view.offset + doc.hosts.length)}` : ''
      }, sorted by ${sorted} ${view.order === 'asc' ? 'ascending' : 'descending'}.`;
    }
    syncRows(
      body,
      doc.hosts.length
        ? doc.hosts.map(row)
        : [
            h(
              'tr',
              null,
              h('td', { colspan: COLUMNS.length, class: 'muted' }, view.q || view.scope !== 'all' ? 'No host matches.' : 'No hosts yet.'),
            ),
          ],
    );
  }

  if (live.last) showInterfaces(live.last.interfaces.map((i) => i.name));
  else {
    api('/api/v1/interfaces')
      .then((d) => ctx.active && showInterfaces(d.interfaces.map((i) => i.name)))
      .catch(() => {});
  }
  ctx.on((type, data) => {
    if (type === 'summary') showInterfaces(data.interfaces.map((i) => i.name));
    if (type === 'restart') load();
  });
  ctx.every(5000, () => load());
  ctx.cleanup(() => controller && controller.abort());
  load();
}

function row(x) {
  const rate = x.sent.bytes_per_sec + x.received.bytes_per_sec;
  return h(
    'tr',
    { testid: 'host-row', 'data-ip': x.ip, 'data-interface': x.interface, 'data-key': `${x.ip}@${x.interface}` },
    h(
      'th',
      { scope: 'row' },
      h('a', { href: hostHref(x.ip, x.interface) }, x.ip),
      x.local ? h('span', { class: 'tag' }, 'local') : null,
    ),
    h('td', null, x.name ?? ''),
    h('td', { class: 'mono' }, x.mac ?? ''),
    h('td', null, x.interface),
    h('td', { class: 'num' }, bytes(x.sent.bytes + x.received.bytes)),
    h('td', { class: 'num' }, bytes(x.sent.bytes)),
    h('td', { class: 'num' }, bytes(x.received.bytes)),
    h('td', { class: 'num' }, count(x.sent.packets + x.received.packets)),
    h('td', { class: 'num' }, count(x.sent.packets)),
    h('td', { class: 'num' }, count(x.received.packets)),
    h('td', { class: ['num', rate ? null : 'muted'] }, bits(rate)),
    h('td', { title: dateTime(x.first_seen) }, when(x.first_seen)),
    h('td', { title: dateTime(x.last_seen) }, when(x.last_seen)),
  );
}
