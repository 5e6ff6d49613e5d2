// Host detail page (#/hosts/<ip>, #/hosts/<ip>@<interface>): what the host does now (per
// interface), its throughput history (hour, day, week, month, from /api/v1/history), its
// traffic by protocol class, its top peers (/api/v1/hosts/{ip}/peers), and its
// daily/weekly/monthly usage (/api/v1/hosts/{ip}/usage, in the browser's UTC offset).

import { api, query } from './api.js';
import { LineChart } from './chart.js';
import { bar, h, replace, say, select, syncRows, tableWrap, thead } from './dom.js';
import { bitRate, bits, bytes, count, date, dateTime, month, percent, utcOffset, when } from './format.js';
import { hostHref } from './summary.js';

const RANGES = [
  { key: 'hour', label: 'Hour', seconds: 3600, resolution: 'minute' },
  { key: 'day', label: 'Day', seconds: 86400, resolution: 'minute' },
  { key: 'week', label: 'Week', seconds: 7 * 86400, resolution: 'hour' },
  { key: 'month', label: 'Month', seconds: 30 * 86400, resolution: 'hour' },
];
const CLASSES = [
  ['tcp', 'TCP'],
  ['udp', 'UDP'],
  ['icmp', 'ICMP'],
  ['icmpv6', 'ICMPv6'],
  ['other', 'Other'],
];
const PERIODS = [
  ['daily', 'Daily'],
  ['weekly', 'Weekly'],
  ['monthly', 'Monthly'],
];
/** Peers in the Top peers table. */
const PEERS = 10;

const packets = (n) => `${count(n)} ${n === 1 ? 'packet' : 'packets'}`;

function decode(s) {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Points of a history document with the empty intervals filled in: `{times, rx, tx}` in bit/s. */
export function historySeries(doc) {
  const res = doc.resolution_seconds;
  const byT = new Map(doc.points.map((p) => [p.t, p]));
  const times = [];
  const rx = [];
  const tx = [];
  for (let t = doc.from; t < doc.to; t += res) {
    const p = byT.get(t);
    times.push(t);
    rx.push(p ? (p.rx_bytes * 8) / res : 0);
    tx.push(p ? (p.tx_bytes * 8) / res : 0);
  }
  return { times, rx, tx };
}

/** Range buttons (`range-hour`, …) that call `onpick(range)`; returns the group element. */
export function rangeButtons(current, onpick) {
  const group = h('div', { class: 'segmented', role: 'group', 'aria-label': 'Time range' });
  const show = (key) => {
    for (const b of group.children) b.setAttribute('aria-pressed', String(b.dataset.key === key));
  };
  for (const r of RANGES) {
    group.append(
      h(
        'button',
        {
          type: 'button',
          testid: `range-${r.key}`,
          'data-key': r.key,
          onclick: () => {
            show(r.key);
            onpick(r);
          },
        },
        r.label,
      ),
    );
  }
  show(current);
  return group;
}

export { RANGES };

export function render(ctx) {
  const raw = ctx.match[1];
  const at = raw.indexOf('@');
  const ip = decode(at < 0 ? raw : raw.slice(0, at));
  let iface = at < 0 ? '' : decode(raw.slice(at + 1));
  // Whether the route names the interface (`@iface`, or picked on the page): only then are the
  // peers those of that interface (`iface` alone may be the one the history chart defaulted to).
  let ifaceInRoute = at >= 0;
  let range = RANGES[0];
  let period = 'daily';
  let entries = [];
  // Whether the host API knows the address: null before its first answer, false after a 404
  // `host_not_found`. The peers are not asked for while it does not (they would 404 too).
  let known = null;
  document.title = `ntop: ${ip}`;

  const title = h('h1', null, `Host ${ip}`);
  const subtitle = h('p', { class: 'subtitle' });
  const problem = h('div', { 'aria-live': 'polite' });
  const nowBody = h('tbody');
  const ifaceSlot = h('span');
  const chartBox = h('div', { class: 'chart-box', testid: 'host-history-chart' });
  const chart = new LineChart(chartBox, { label: `Throughput of ${ip}`, yFormat: bitRate, emptyText: 'Loading…' });
  ctx.cleanup(() => chart.destroy());
  const historyNote = h('div', { 'aria-live': 'polite' });
  const protoBody = h('tbody');
  const usageBody = h('tbody');
  const usageNote = h('div', { 'aria-live': 'polite' });
  const usageHead = h('th', { scope: 'col' }, 'Day');
  const peersBody = h('tbody');
  const peersNote = h('div');
  const peersWrap = tableWrap(
    'Top peers',
    h(
      'table',
      { class: 'data' },
      h('caption', { class: 'sr-only' }, `The hosts ${ip} exchanged the most bytes with`),
      thead('Peer', 'Name', 'Interface', { num: 'Sent to it' }, { num: 'Received from it' }, { hidden: 'Bytes, relative to the top peer' }),
      peersBody,
    ),
  );
  peersWrap.hidden = true;
  const peersSince = h('p', { class: 'muted small' });

  const root = h(
    'div',
    { testid: 'host-detail', 'data-ip': ip },
    h('div', { class: 'page-head' }, title, subtitle),
    problem,
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'hn-h' },
      h('h2', { id: 'hn-h' }, 'Now'),
      tableWrap(
        'Traffic per interface',
        h(
          'table',
          { class: 'data' },
          thead(
            'Interface',
            'MAC',
            ...['Sent', 'Received', 'Packets sent', 'Packets received', 'Now in', 'Now out'].map((l) => ({ num: l })),
            'First seen',
            'Last seen',
          ),
          nowBody,
        ),
      ),
    ),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'hh-h' },
      h(
        'div',
        { class: 'card-head' },
        h('h2', { id: 'hh-h' }, 'History'),
        h('div', { class: 'controls' }, ifaceSlot, rangeButtons(range.key, (r) => {
          range = r;
          loadHistory();
        })),
      ),
      historyNote,
      chartBox,
    ),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'hpeer-h', testid: 'host-peers' },
      h('h2', { id: 'hpeer-h' }, 'Top peers'),
      peersNote,
      peersWrap,
      peersSince,
    ),
    h(
      'div',
      { class: 'grid' },
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'hp-h' },
        h('h2', { id: 'hp-h' }, 'Protocols'),
        tableWrap(
          'Traffic by protocol class',
          h(
            'table',
            { class: 'data' },
            thead('Protocol', { num: 'Sent' }, { num: 'Received' }, { num: 'Packets' }, 'Share'),
            protoBody,
          ),
        ),
      ),
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'hu-h' },
        h(
          'div',
          { class: 'card-head' },
          h('h2', { id: 'hu-h' }, 'Usage'),
          periodButtons(),
        ),
        usageNote,
        tableWrap(
          'Usage per period',
          h(
            'table',
            { class: 'data', testid: 'usage-table' },
            h(
              'thead',
              null,
              h(
                'tr',
                null,
                usageHead,
                h('th', { scope: 'col', class: 'num' }, 'Received'),
                h('th', { scope: 'col', class: 'num' }, 'Sent'),
                h('th', { scope: 'col', class: 'num' }, 'Total'),
                h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Relative')),
              ),
            ),
            usageBody,
          ),
        ),
        h('p', { class: 'muted small' }, `Periods start at midnight in your browser's UTC offset (${utcOffset()}).`),
      ),
    ),
  );
  replace(ctx.main, root);

  function periodButtons() {
    const group = h('div', { class: 'segmented', role: 'group', 'aria-label': 'Usage period' });
    const show = () => {
      for (const b of group.children) b.setAttribute('aria-pressed', String(b.dataset.key === period));
    };
    for (const [key, label] of PERIODS) {
      group.append(
        h(
          'button',
          {
            type: 'button',
            'data-key': key,
            testid: `usage-${key}`,
            onclick: () => {
              period = key;
              show();
              renderUsage();
            },
          },
          label,
        ),
      );
    }
    show();
    return group;
  }

  async function loadNow() {
    let doc;
    try {
      doc = await api(`/api/v1/hosts/${encodeURIComponent(ip)}`);
    } catch (e) {
      if (!ctx.active) return;
      if (e.code === 'host_not_found') {
        if (known !== false) {
          known = false;
          renderPeers(null, null);
        }
        say(problem, 'info', 'ntop has not seen this address on any interface since counting started. Its history, if any, is below.');
        entries = [];
        replace(nowBody, h('tr', null, h('td', { colspan: 10, class: 'muted' }, 'Not seen now')));
        fillProtocols();
      } else if (e.code === 'invalid_address') {
        say(problem, 'error', `“${ip}” is not an IP address.`);
      } else {
        say(problem, 'error', `Cannot read this host: ${e.message}`);
      }
      return;
    }
    if (!ctx.active) return;
    // First seen (or first answer): the peers now.
    if (!known) {
      known = true;
      loadPeers();
    }
    say(problem);
    entries = doc.entries;
    root.setAttribute('data-ip', doc.ip);
    const name = entries.find((e) => e.name)?.name;
    title.textContent = `Host ${doc.ip}`;
    subtitle.textContent = [name, entries.some((e) => e.local) ? 'local' : 'remote'].filter(Boolean).join(' · ');
    replace(
      nowBody,
      entries.map((e) =>
        h(
          'tr',
          { class: iface && e.interface !== iface ? 'idle' : null },
          h('th', { scope: 'row' }, e.interface),
          h('td', { class: 'mono' }, e.mac ?? ''),
          h('td', { class: 'num' }, bytes(e.sent.bytes)),
          h('td', { class: 'num' }, bytes(e.received.bytes)),
          h('td', { class: 'num' }, count(e.sent.packets)),
          h('td', { class: 'num' }, count(e.received.packets)),
          h('td', { class: 'num' }, bits(e.received.bytes_per_sec)),
          h('td', { class: 'num' }, bits(e.sent.bytes_per_sec)),
          h('td', { title: dateTime(e.first_seen) }, when(e.first_seen)),
          h('td', { title: dateTime(e.last_seen) }, when(e.last_seen)),
        ),
      ),
    );
    showInterfaces();
    fillProtocols();
  }

  let shownIfaces = '';
  function showInterfaces() {
    const names = entries.map((e) => e.interface);
    if (iface && !names.includes(iface)) names.unshift(iface);
    if (names.join('\n') === shownIfaces) return;
    shownIfaces = names.join('\n');
    if (!iface && names.length) {
      iface = names[0];
      loadHistory();
    }
    if (names.length < 2) {
      ifaceSlot.replaceChildren();
      return;
    }
    replace(
      ifaceSlot,
      select(
        'Interface',
        names.map((n) => [n, n]),
        iface,
        (v) => {
          iface = v;
          ifaceInRoute = true;
          const hash = `#/hosts/${encodeURIComponent(ip)}@${encodeURIComponent(v)}`;
          history.replaceState(null, '', hash);
          loadHistory();
          loadUsage();
          loadNow();
          if (known) loadPeers();
        },
      ),
    );
  }

  function fillProtocols() {
    const chosen = iface ? entries.filter((e) => e.interface === iface) : entries;
    const rows = CLASSES.map(([key, label]) => {
      let sent = 0;
      let received = 0;
      let packets = 0;
      for (const e of chosen) {
        const c = e.protocols[key];
        sent += c.sent.bytes;
        received += c.received.bytes;
        packets += c.sent.packets + c.received.packets;
      }
      return { label, sent, received, packets };
    });
    const total = rows.reduce((a, r) => a + r.sent + r.received, 0);
    replace(
      protoBody,
      rows.map((r) =>
        h(
          'tr',
          { class: r.sent + r.received ? null : 'idle' },
          h('th', { scope: 'row' }, r.label),
          h('td', { class: 'num' }, bytes(r.sent)),
          h('td', { class: 'num' }, bytes(r.received)),
          h('td', { class: 'num' }, count(r.packets)),
          h(
            'td',
            { class: 'share' },
            bar(total ? (r.sent + r.received) / total : 0),
            h('span', { class: 'muted' }, percent(total ? (r.sent + r.received) / total : 0)),
          ),
        ),
      ),
    );
  }

  let historySeq = 0;
  async function loadHistory() {
    const mine = (historySeq += 1);
    const to = Math.floor(Date.now() / 1000);
    const params = { host: ip, interface: iface || null, from: to - range.seconds, to, resolution: range.resolution };
    let doc;
    try {
      doc = await api(`/api/v1/history${query(params)}`);
    } catch (e) {
      if (!ctx.active || mine !== historySeq) return;
      chart.setData({ times: [], series: [] });
      const text =
        e.code === 'host_not_found'
          ? 'No history for this host on this interface yet (hosts are recorded per minute).'
          : e.code === 'missing_parameter'
            ? 'Pick an interface.'
            : `History is not available: ${e.message}`;
      say(historyNote, e.code === 'host_not_found' ? 'info' : 'error', text);
      return;
    }
    if (!ctx.active || mine !== historySeq) return;
    say(historyNote);
    const { times, rx, tx } = historySeries(doc);
    chart.setData({
      times,
      from: doc.from,
      to: doc.to,
      series: [
        { name: 'Received', cls: 'series-in', values: rx },
        { name: 'Sent', cls: 'series-out', values: tx },
      ],
    });
  }

  let usage = null;
  async function loadUsage() {
    try {
      usage = await api(`/api/v1/hosts/${encodeURIComponent(ip)}/usage${query({ tz: utcOffset(), interface: iface || null })}`);
      if (!ctx.active) return;
      say(usageNote);
    } catch (e) {
      if (!ctx.active) return;
      usage = null;
      say(
        usageNote,
        e.code === 'host_not_found' ? 'info' : 'error',
        e.code === 'host_not_found' ? 'No usage recorded for this host.' : `Usage is not available: ${e.message}`,
      );
    }
    renderUsage();
  }

  function renderUsage() {
    usageHead.textContent = { daily: 'Day', weekly: 'Week of', monthly: 'Month' }[period];
    const list = usage ? [...usage[period]].reverse() : [];
    const label = period === 'monthly' ? month : date;
    const max = list.reduce((a, p) => Math.max(a, p.rx_bytes + p.tx_bytes), 0);
    replace(
      usageBody,
      list.length
        ? list.map((p) =>
            h(
              'tr',
              { class: p.rx_bytes + p.tx_bytes ? null : 'idle' },
              h('th', { scope: 'row' }, label(p.start)),
              h('td', { class: 'num' }, bytes(p.rx_bytes)),
              h('td', { class: 'num' }, bytes(p.tx_bytes)),
              h('td', { class: 'num' }, bytes(p.rx_bytes + p.tx_bytes)),
              h('td', { class: 'share' }, bar(max ? (p.rx_bytes + p.tx_bytes) / max : 0)),
            ),
          )
        : h('tr', null, h('td', { colspan: 5, class: 'muted' }, usage ? 'No periods' : '–')),
    );
  }

  let peersSeq = 0;
  let peersBusy = false;
  let peersAfter = 0; // `Date.now()` before which the regular refresh leaves the peers alone
  /**
   * The top peers, once the host API knows the host (`loadNow` asks for them when it first
   * does). The regular refresh (`force` false) skips a turn while a request is under way, and
   * backs off after a 404: an interface not monitored (or an address not seen there) is asked
   * again every 30 s, a daemon without the route (`not_found`, an older ntop) or that does not
   * count peers (`peers_not_counted`) only after it restarts.
   */
  async function loadPeers(force = true) {
    if (!known) return;
    if (!force && (peersBusy || Date.now() < peersAfter)) return;
    const mine = (peersSeq += 1);
    peersBusy = true;
    const params = { limit: PEERS, interface: ifaceInRoute && iface ? iface : null };
    let doc = null;
    let failure = null;
    try {
      doc = await api(`/api/v1/hosts/${encodeURIComponent(ip)}/peers${query(params)}`);
      peersAfter = 0;
    } catch (e) {
      failure = e;
      // Not again before a restart: no such route (an older ntop), or peers not counted
      // (`--no-peers`).
      const never = e.code === 'not_found' || e.code === 'peers_not_counted';
      if (e.status === 404) peersAfter = never ? Infinity : Date.now() + 30000;
    } finally {
      if (mine === peersSeq) peersBusy = false;
    }
    if (!ctx.active || mine !== peersSeq) return;
    renderPeers(doc, failure);
  }

  function renderPeers(doc, failure) {
    const peers = Array.isArray(doc?.peers) ? doc.peers : [];
    if (!peers.length) {
      peersWrap.hidden = true;
      peersBody.replaceChildren();
      peersSince.textContent = doc?.since ? `Peers are counted since ${dateTime(doc.since)}.` : '';
      // An empty list (a host without peers, on this interface), or a 404 (an address never
      // seen, an interface not monitored, a daemon without the route): nothing to show. Other
      // failures say why, quietly: the rest of the page does not depend on the peers.
      const why = failure && failure.status !== 404 ? ` (${failure.message})` : '';
      const text =
        failure?.code === 'peers_not_counted'
          ? `${failure.message.charAt(0).toUpperCase()}${failure.message.slice(1)}`.replace(/\.?$/, '.')
          : `No peers counted yet${why}.`;
      replace(peersNote, h('p', { class: 'muted' }, text), incomplete(doc));
      return;
    }
    replace(peersNote, incomplete(doc));
    const largest = peers.reduce((a, p) => Math.max(a, p.sent.bytes + p.received.bytes), 0);
    syncRows(
      peersBody,
      peers.map((p) =>
        h(
          'tr',
          { testid: 'host-peer-row', 'data-peer': p.ip, 'data-interface': p.interface, 'data-key': `${p.ip}@${p.interface}` },
          h(
            'th',
            { scope: 'row' },
            h('a', { href: hostHref(p.ip, p.interface) }, p.ip),
            p.local ? h('span', { class: 'tag' }, 'local') : null,
          ),
          h('td', null, p.name ?? ''),
          h('td', null, p.interface),
          h('td', { class: 'num' }, bytes(p.sent.bytes), h('br'), h('span', { class: 'muted small' }, packets(p.sent.packets))),
          h('td', { class: 'num' }, bytes(p.received.bytes), h('br'), h('span', { class: 'muted small' }, packets(p.received.packets))),
          h('td', { class: 'share' }, bar(largest ? (p.sent.bytes + p.received.bytes) / largest : 0)),
        ),
      ),
    );
    peersWrap.hidden = false;
    const total = Number.isFinite(doc.total) ? doc.total : peers.length;
    peersSince.textContent = [
      total > peers.length ? `The top ${count(peers.length)} of ${count(total)} peers.` : null,
      doc.since ? `Counted since ${dateTime(doc.since)}.` : null,
    ]
      .filter(Boolean)
      .join(' ');
  }

  /** The note when the kernel's pair table overflowed (some peers were not counted), or null. */
  function incomplete(doc) {
    if (!doc || doc.complete !== false) return null;
    const t = doc.pair_table;
    const full = t && Number.isFinite(t.capacity) ? ` (${count(t.used)} of ${count(t.capacity)} pairs in use)` : '';
    return h(
      'p',
      { class: 'notice notice-warn' },
      `Not every peer was counted: the kernel's table of host pairs ran full${full}, so peers may be missing from this list.`,
    );
  }

  ctx.every(3000, () => {
    loadNow();
    loadPeers(false);
  });
  ctx.every(60000, () => {
    if (range.key === 'hour' || range.key === 'day') loadHistory();
  });
  ctx.on((type) => {
    if (type === 'restart') {
      // The peers follow when the host API answers (the host may be gone after a restart).
      known = null;
      loadNow();
      loadHistory();
      loadUsage();
    }
  });
  loadNow(); // and the peers, once it knows the host
  if (iface) loadHistory();
  loadUsage();
  // Without an interface in the route, the history waits for the entries (it needs one when
  // several are monitored); if the host is not seen now, ask without one.
  setTimeout(() => {
    if (ctx.active && !iface) loadHistory();
  }, 1500);
}
