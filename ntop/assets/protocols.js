// Protocols page (#/protocols): every protocol with traffic (per interface or summed), its
// share, its rate now, and the history of the one picked (hour, day, week, month).

import { api, query } from './api.js';
import { LineChart } from './chart.js';
import { bar, h, replace, say, select, syncRows, tableWrap, thead } from './dom.js';
import { bitRate, bits, bytes, count, percent, protocolLabel } from './format.js';
import { RANGES, historySeries, rangeButtons } from './host.js';

let iface = ''; // '' = all interfaces summed

/** The history `protocol=` value of a row: `ipv4:6`, or a non-IP class name. */
const protocolParam = (p) => (p.family ? `${p.family}:${p.number}` : p.name);
const keyOf = (p) => `${p.family ?? ''}/${p.name}`;

export function render(ctx) {
  document.title = 'ntop: protocols';
  let range = RANGES[0];
  let picked = null; // key of the protocol in the chart
  let rows = [];
  let interfaces = [];

  const ifaceSlot = h('span');
  const problem = h('div', { 'aria-live': 'polite' });
  const body = h('tbody');
  const chartTitle = h('h2', { id: 'pc-h' }, 'History');
  const chartBox = h('div', { class: 'chart-box', testid: 'protocol-chart' });
  const chart = new LineChart(chartBox, { label: 'Protocol history', yFormat: bitRate, emptyText: 'Pick a protocol' });
  ctx.cleanup(() => chart.destroy());
  const chartNote = h('div', { 'aria-live': 'polite' });

  replace(
    ctx.main,
    h('div', { class: 'page-head' }, h('h1', null, 'Protocols'), h('p', { class: 'subtitle' }, 'Totals since counting started; “Now” is the last poll.')),
    h('div', { class: 'controls' }, ifaceSlot),
    problem,
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'pt-h' },
      h('h2', { id: 'pt-h', class: 'sr-only' }, 'Protocol table'),
      tableWrap(
        'Protocols',
        h(
          'table',
          { class: 'data', testid: 'protocols-table' },
          h('caption', { class: 'sr-only' }, 'Protocols by bytes; pick one to see its history'),
          thead('Protocol', { num: 'Number' }, { num: 'Received' }, { num: 'Sent' }, { num: 'Packets' }, { num: 'Now in' }, { num: 'Now out' }, 'Share'),
          body,
        ),
      ),
    ),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'pc-h' },
      h(
        'div',
        { class: 'card-head' },
        chartTitle,
        rangeButtons(range.key, (r) => {
          range = r;
          loadHistory();
        }),
      ),
      chartNote,
      chartBox,
    ),
  );

  function showInterfaces(names) {
    if (names.join('\n') === interfaces.join('\n')) return;
    interfaces = names;
    if (iface && !names.includes(iface)) iface = '';
    if (names.length < 2) {
      ifaceSlot.replaceChildren();
      return;
    }
    replace(
      ifaceSlot,
      select('Interface', [['', 'All interfaces'], ...names.map((n) => [n, n])], iface, (v) => {
        iface = v;
        load();
        loadHistory();
      }),
    );
  }

  async function load() {
    let doc;
    try {
      doc = await api(`/api/v1/protocols${query({ interface: iface || null })}`);
    } catch (e) {
      if (ctx.active) say(problem, 'error', `Cannot read the protocols: ${e.message}`);
      return;
    }
    if (!ctx.active) return;
    say(problem);
    const sums = new Map();
    const seen = [];
    for (const p of doc.protocols) {
      if (!seen.includes(p.interface)) seen.push(p.interface);
      const k = keyOf(p);
      const r = sums.get(k) ?? { name: p.name, family: p.family, number: p.number, rx: 0, tx: 0, packets: 0, rxRate: 0, txRate: 0 };
      r.rx += p.rx.bytes;
      r.tx += p.tx.bytes;
      r.packets += p.rx.packets + p.tx.packets;
      r.rxRate += p.rx.bytes_per_sec;
      r.txRate += p.tx.bytes_per_sec;
      sums.set(k, r);
    }
    if (!iface && seen.length) showInterfaces(interfaces.length > seen.length ? interfaces : seen);
    rows = [...sums.values()].sort((a, b) => b.rx + b.tx - (a.rx + a.tx) || a.name.localeCompare(b.name));
    const total = rows.reduce((a, r) => a + r.rx + r.tx, 0);
    syncRows(
      body,
      rows.length
          ? rows.map((r) => {
              const k = keyOf(r);
              return h(
                'tr',
                { class: k === picked ? 'picked' : null, 'data-key': `row:${k}` },
                h(
                  'th',
                  { scope: 'row' },
                  h(
                    'button',
                    {
                      type: 'button',
                      class: 'link',
                      'data-key': k,
                      'aria-pressed': String(k === picked),
                      onclick: () => {
                        picked = k;
                        load();
                        loadHistory();
                      },
                    },
                    protocolLabel(r.name, r.family),
                  ),
                ),
                h('td', { class: 'num' }, r.number ?? ''),
                h('td', { class: 'num' }, bytes(r.rx)),
                h('td', { class: 'num' }, bytes(r.tx)),
                h('td', { class: 'num' }, count(r.packets)),
                h('td', { class: 'num' }, bits(r.rxRate)),
                h('td', { class: 'num' }, bits(r.txRate)),
                h('td', { class: 'share' }, bar(total ? (r.rx + r.tx) / total : 0), h('span', { class: 'muted' }, percent(total ? (r.rx + r.tx) / total : 0))),
              );
            })
        : [h('tr', null, h('td', { colspan: 8, class: 'muted' }, 'No traffic yet'))],
    );
    if (!picked && rows.length) {
      picked = keyOf(rows[0]);
      load();
      loadHistory();
    }
  }

  let seq = 0;
  async function loadHistory() {
    const row = rows.find((r) => keyOf(r) === picked);
    if (!row) return;
    const mine = (seq += 1);
    chartTitle.textContent = `History of ${protocolLabel(row.name, row.family)}`;
    chart.label = `History of ${protocolLabel(row.name, row.family)}, bits per second`;
    const to = Math.floor(Date.now() / 1000);
    const names = iface ? [iface] : interfaces;
    const results = await Promise.allSettled(
      names.map((name) =>
        api(
          `/api/v1/history${query({ interface: name, protocol: protocolParam(row), from: to - range.seconds, to, resolution: range.resolution })}`,
        ),
      ),
    );
    if (!ctx.active || mine !== seq) return;
    const docs = results.filter((r) => r.status === 'fulfilled').map((r) => r.value);
    if (!docs.length) {
      const failed = results.find((r) => r.status === 'rejected');
      chart.setData({ times: [], series: [] });
      say(chartNote, 'error', `History is not available${failed ? `: ${failed.reason.message}` : ''}`);
      return;
    }
    say(chartNote);
    const first = historySeries(docs[0]);
    for (const doc of docs.slice(1)) {
      const more = historySeries(doc);
      more.times.forEach((t, i) => {
        const j = first.times.indexOf(t);
        if (j >= 0) {
          first.rx[j] += more.rx[i];
          first.tx[j] += more.tx[i];
        }
      });
    }
    chart.setData({
      times: first.times,
      from: docs[0].from,
      to: docs[0].to,
      series: [
        { name: 'In', cls: 'series-in', values: first.rx },
        { name: 'Out', cls: 'series-out', values: first.tx },
      ],
    });
  }

  api('/api/v1/interfaces')
    .then((d) => {
      if (!ctx.active) return;
      showInterfaces(d.interfaces.map((i) => i.name));
      if (picked) loadHistory();
    })
    .catch(() => {});
  ctx.every(2000, load);
  ctx.every(60000, () => {
    if (range.key === 'hour' || range.key === 'day') loadHistory();
  });
  ctx.on((type) => {
    if (type === 'restart') {
      load();
      loadHistory();
    }
  });
  load();
}
