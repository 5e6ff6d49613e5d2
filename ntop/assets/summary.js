// Summary page (#/): live throughput per interface (bit/s and packets/s, in and out, the last
// 5 minutes), top talkers local and remote, protocol distribution, current totals and the
// collector's health. Fed by the live summaries (live.js); the chart starts filled from the
// 1-second history (and live.js fills the time a page spent in the back/forward cache).

import { api, query } from './api.js';
import { LineChart } from './chart.js';
import { bar, h, replace, select, syncRows, tableWrap, thead } from './dom.js';
import { bitRate, bits, bytes, captureMode, clock, count, dateTime, millis, packetRate, percent, protocolLabel } from './format.js';
import { WINDOW, fillFromHistory, live } from './live.js';

let selected = ''; // interface shown in the charts; '' = all summed
const prefilled = new Set(); // `${started}/${interface}` already filled from the history

/** The route of a host's page: `#/hosts/<ip>` or `#/hosts/<ip>@<interface>`. */
export function hostHref(ip, iface) {
  const addr = /^[0-9A-Fa-f:.]+$/.test(ip) ? ip : encodeURIComponent(ip);
  return `#/hosts/${addr}${iface ? `@${encodeURIComponent(iface)}` : ''}`;
}

export function render(ctx) {
  document.title = 'ntop: summary';
  const bitsBox = h('div', { class: 'chart-box', testid: 'throughput-chart' });
  const packetsBox = h('div', { class: 'chart-box', testid: 'packets-chart' });
  const bitsChart = new LineChart(bitsBox, {
    label: 'Throughput in bits per second, last 5 minutes',
    yFormat: bitRate,
    emptyText: 'Waiting for the first polls…',
  });
  const packetsChart = new LineChart(packetsBox, {
    label: 'Packets per second, last 5 minutes',
    yFormat: packetRate,
    height: 160,
    emptyText: 'Waiting for the first polls…',
  });
  ctx.cleanup(() => {
    bitsChart.destroy();
    packetsChart.destroy();
  });

  const pickerSlot = h('div', { class: 'controls' });
  const polled = h('p', { class: 'subtitle', 'aria-live': 'off' });
  const topLocal = talkerTable('top-local', 'Top local hosts by throughput now');
  const topRemote = talkerTable('top-remote', 'Top remote hosts by throughput now');
  const protoBody = h('tbody');
  const totalsBody = h('tbody');
  const totalsNote = h('p', { class: 'muted' });
  const health = h('dl', { class: 'facts' });

  replace(
    ctx.main,
    h('div', { class: 'page-head' }, h('h1', null, 'Summary'), polled),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'tp-h' },
      h('div', { class: 'card-head' }, h('h2', { id: 'tp-h' }, 'Throughput, last 5 minutes'), pickerSlot),
      bitsBox,
      packetsBox,
    ),
    h(
      'div',
      { class: 'grid grid-wide' },
      h('section', { class: 'card', 'aria-labelledby': 'tl-h' }, h('h2', { id: 'tl-h' }, 'Top local hosts'), topLocal.wrap),
      h('section', { class: 'card', 'aria-labelledby': 'tr-h' }, h('h2', { id: 'tr-h' }, 'Top remote hosts'), topRemote.wrap),
    ),
    h(
      'div',
      { class: 'grid' },
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'pr-h' },
        h('h2', { id: 'pr-h' }, 'Protocols'),
        tableWrap(
          'Protocol distribution',
          h(
            'table',
            { class: 'data' },
            h('caption', { class: 'sr-only' }, 'The ten protocols with the most bytes, all interfaces'),
            h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Protocol'), h('th', { scope: 'col', class: 'num' }, 'Bytes'), h('th', { scope: 'col' }, 'Share'))),
            protoBody,
          ),
        ),
        h('p', null, h('a', { href: '#/protocols' }, 'All protocols')),
      ),
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'to-h' },
        h('h2', { id: 'to-h' }, 'Totals'),
        tableWrap(
          'Totals per interface',
          h(
            'table',
            { class: 'data' },
            thead('Interface', { num: 'Received' }, { num: 'Sent' }, { num: 'Packets in' }, { num: 'Packets out' }),
            totalsBody,
          ),
        ),
        totalsNote,
      ),
      h('section', { class: 'card', 'aria-labelledby': 'co-h' }, h('h2', { id: 'co-h' }, 'Collector'), health),
    ),
  );

  let names = [];
  function updatePicker(summary) {
    const now = summary.interfaces.map((i) => i.name);
    if (now.join('\n') === names.join('\n')) return;
    names = now;
    if (selected && !names.includes(selected)) selected = '';
    if (names.length < 2) {
      pickerSlot.replaceChildren();
      return;
    }
    const options = [['', 'All interfaces'], ...names.map((n) => [n, n])];
    replace(
      pickerSlot,
      select('Interface', options, selected, (v) => {
        selected = v;
        updateCharts();
      }),
    );
  }

  function updateCharts() {
    const chosen = selected ? [selected] : [...live.rates.keys()];
    const byT = new Map();
    for (const name of chosen) {
      for (const p of live.rates.get(name) ?? []) {
        const sum = byT.get(p.t) ?? { rx: 0, tx: 0, rxp: 0, txp: 0 };
        sum.rx += p.rx;
        sum.tx += p.tx;
        sum.rxp += p.rxp;
        sum.txp += p.txp;
        byT.set(p.t, sum);
      }
    }
    const times = [...byT.keys()].sort((a, b) => a - b);
    const to = times.length ? times[times.length - 1] : Date.now() / 1000;
    const from = to - WINDOW;
    const kept = times.filter((t) => t >= from);
    const pts = kept.map((t) => byT.get(t));
    bitsChart.setData({
      times: kept,
      from,
      to,
      series: [
        { name: 'In', cls: 'series-in', values: pts.map((p) => p.rx * 8) },
        { name: 'Out', cls: 'series-out', values: pts.map((p) => p.tx * 8) },
      ],
    });
    packetsChart.setData({
      times: kept,
      from,
      to,
      series: [
        { name: 'In', cls: 'series-in', values: pts.map((p) => p.rxp) },
        { name: 'Out', cls: 'series-out', values: pts.map((p) => p.txp) },
      ],
    });
  }

  let partialBusy = false;
  let partialAt = 0;
  async function fillPartial() {
    // Polling mode: the summaries carry no top talkers or protocols; ask the API (every 2 s).
    if (partialBusy || Date.now() - partialAt < 1900) return;
    partialBusy = true;
    partialAt = Date.now();
    try {
      const top = (scope) => api(`/api/v1/hosts${query({ sort: 'throughput', limit: 10, scope })}`);
      const [loc, rem, prot] = await Promise.all([top('local'), top('remote'), api('/api/v1/protocols')]);
      if (!ctx.active) return;
      const talker = (x) => ({
        ip: x.ip,
        interface: x.interface,
        name: x.name ?? null,
        bytes_per_sec: x.sent.bytes_per_sec + x.received.bytes_per_sec,
        sent_bytes: x.sent.bytes,
        received_bytes: x.received.bytes,
      });
      topLocal.fill(loc.hosts.map(talker));
      topRemote.fill(rem.hosts.map(talker));
      const sums = new Map();
      for (const p of prot.protocols) {
        const k = `${p.name}/${p.family}`;
        const t = sums.get(k) ?? { name: p.name, family: p.family, bytes: 0, packets: 0 };
        t.bytes += p.rx.bytes + p.tx.bytes;
        t.packets += p.rx.packets + p.tx.packets;
        sums.set(k, t);
      }
      fillProtocols([...sums.values()].sort((a, b) => b.bytes - a.bytes).slice(0, 10));
    } catch {
      // The banner says what is wrong; keep the last tables.
    } finally {
      partialBusy = false;
    }
  }

  function fillProtocols(list) {
    const total = list.reduce((a, p) => a + p.bytes, 0);
    const top = list.length ? list[0].bytes : 0;
    syncRows(
      protoBody,
      list.length
        ? list.map((p) =>
            h(
              'tr',
              { 'data-key': `${p.family}/${p.name}` },
              h('th', { scope: 'row' }, protocolLabel(p.name, p.family)),
              h('td', { class: 'num' }, bytes(p.bytes)),
              h('td', { class: 'share' }, bar(top ? p.bytes / top : 0), h('span', { class: 'muted' }, percent(total ? p.bytes / total : 0))),
            ),
          )
        : [h('tr', null, h('td', { colspan: 3, class: 'muted' }, 'No traffic yet'))],
    );
  }

  function update(summary) {
    updatePicker(summary);
    updateCharts();
    polled.textContent = `Last poll ${clock(summary.polled_at)} · ${
      live.mode === 'events' ? 'live' : 'polling every 2 s'
    }`;
    if (summary.partial) fillPartial();
    else {
      topLocal.fill(summary.top_local);
      topRemote.fill(summary.top_remote);
      fillProtocols(summary.protocols);
    }

    let rx = 0;
    let tx = 0;
    let rxp = 0;
    let txp = 0;
    const rows = summary.interfaces.map((i) => {
      rx += i.rx.bytes;
      tx += i.tx.bytes;
      rxp += i.rx.packets;
      txp += i.tx.packets;
      return h(
        'tr',
        null,
        h('th', { scope: 'row' }, i.name, ' ', h('span', { class: 'tag' }, captureMode(i.capture_mode))),
        h('td', { class: 'num' }, bytes(i.rx.bytes)),
        h('td', { class: 'num' }, bytes(i.tx.bytes)),
        h('td', { class: 'num' }, count(i.rx.packets)),
        h('td', { class: 'num' }, count(i.tx.packets)),
      );
    });
    if (summary.interfaces.length > 1) {
      rows.push(
        h(
          'tr',
          { class: 'total' },
          h('th', { scope: 'row' }, 'All'),
          h('td', { class: 'num' }, bytes(rx)),
          h('td', { class: 'num' }, bytes(tx)),
          h('td', { class: 'num' }, count(rxp)),
          h('td', { class: 'num' }, count(txp)),
        ),
      );
    }
    replace(totalsBody, rows);
    const since = live.status?.counting_since;
    totalsNote.textContent = since ? `Counting since ${dateTime(since)}.` : '';

    const c = summary.collector;
    replace(
      health,
      tableFact('Host table', c.host_table_used, c.host_table_capacity),
      c.pair_table_capacity
        ? tableFact('Pair table', c.pair_table_used, c.pair_table_capacity)
        : fact('Pair table', h('span', { class: 'muted' }, 'not counted (--no-peers)')),
      fact(
        'Other hosts (table full)',
        c.other_hosts_bytes ? h('span', { class: 'warn' }, bytes(c.other_hosts_bytes)) : bytes(0),
      ),
      fact(
        'Parse and map errors',
        c.errors ? h('a', { href: '#/interfaces', class: 'warn' }, count(c.errors)) : '0',
      ),
      fact('Last poll', `${clock(summary.polled_at)}, took ${millis(c.poll_duration_ms)}`),
      fact('History store', h('span', { class: c.store && c.store !== 'ok' ? 'warn' : null }, c.store ?? '–')),
    );
  }

  async function prefillCharts() {
    let list = live.last?.interfaces?.map((i) => i.name);
    if (!list) {
      try {
        list = (await api('/api/v1/interfaces')).interfaces.map((i) => i.name);
      } catch {
        return;
      }
    }
    // From this run's start at the earliest: the chart shows what this daemon counted.
    const started = live.status?.ntop?.started ?? 0;
    const to = Math.floor(Date.now() / 1000);
    const from = Math.max(to - WINDOW, started);
    if (to - from < 3) return;
    const names = list.filter((name) => !prefilled.has(`${started}/${name}`));
    for (const name of names) prefilled.add(`${started}/${name}`);
    // Not the last two seconds: the history may not have them complete yet.
    await fillFromHistory(names, from, to - 2);
    if (ctx.active) updateCharts();
  }

  ctx.on((type, data) => {
    if (type === 'summary') update(data);
    if (type === 'restart') prefillCharts();
    if (type === 'rates') updateCharts();
  });
  if (live.last) update(live.last);
  else updateCharts();
  prefillCharts();
}

function fact(term, ...value) {
  return [h('dt', null, term), h('dd', null, ...value)];
}

/** A kernel table's fill: `used of capacity (percent)` and a bar, marked above 90%. */
function tableFact(term, used, capacity) {
  const fill = capacity ? used / capacity : 0;
  const full = fill > 0.9;
  return fact(
    term,
    h('span', { class: full ? 'warn' : null }, `${count(used)} of ${count(capacity)} (${percent(fill)})`),
    bar(fill, full ? 'bar-warn' : ''),
  );
}

/** A top-talker table; `fill(talkers)` renders its rows. */
function talkerTable(testid, caption) {
  const body = h('tbody');
  const table = h(
    'table',
    { class: 'data', testid },
    h('caption', { class: 'sr-only' }, caption),
    thead('Host', { num: 'Now' }, { num: 'Sent' }, { num: 'Received' }),
    body,
  );
  return {
    wrap: tableWrap(caption, table),
    fill(talkers) {
      syncRows(
        body,
        talkers.length
          ? talkers.map((t) =>
              h(
                'tr',
                { class: t.bytes_per_sec ? null : 'idle', 'data-key': `${t.ip}@${t.interface}` },
                h(
                  'th',
                  { scope: 'row' },
                  h('a', { href: hostHref(t.ip, t.interface), testid: 'host-link', 'data-ip': t.ip }, t.ip),
                  t.name ? h('span', { class: 'host-name' }, t.name) : null,
                  h('span', { class: 'muted small' }, ` ${t.interface}`),
                ),
                h('td', { class: 'num' }, bits(t.bytes_per_sec)),
                h('td', { class: 'num' }, bytes(t.sent_bytes)),
                h('td', { class: 'num' }, bytes(t.received_bytes)),
              ),
            )
          : [h('tr', null, h('td', { colspan: 4, class: 'muted' }, 'No hosts yet'))],
      );
    },
  };
}

