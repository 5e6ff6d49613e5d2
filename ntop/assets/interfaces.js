// Interfaces page (#/interfaces): per-interface counters and rates, how ingress is counted
// (XDP native or generic, or TC), the "other hosts" of a full host table, and the parse and
// map error counters. Refreshed after every poll (at most every 2 s).

import { api } from './api.js';
import { bar, h, replace, say, syncRows, tableWrap, thead } from './dom.js';
import { bits, bytes, captureMode, count, dateTime, millis, packetRate, percent } from './format.js';

const ERRORS = {
  truncated_ethernet: 'Frames shorter than an Ethernet header',
  truncated_vlan: 'Frames that end inside a VLAN tag',
  vlan_depth: 'Frames with more than two VLAN tags',
  truncated_ipv4: 'Frames that end inside the IPv4 header',
  bad_ipv4_header: 'IPv4 headers with a bad version or length',
  truncated_ipv6: 'Frames that end inside the IPv6 headers',
  ipv6_ext_depth: 'IPv6 packets with too many extension headers',
  truncated_l4: 'Packets that end inside the TCP/UDP/SCTP/ICMP header',
  host_map_full: 'Packets of hosts that did not fit into the full host table',
  host_update_failed: 'Failed host table updates',
  unknown_interface: 'Packets on an interface ntop did not set up (not counted)',
  proto_lookup_failed: 'Failed protocol counter lookups',
  bad_ipv6_header: 'IPv6 EtherType with another IP version',
};

export function render(ctx) {
  document.title = 'ntop: interfaces';
  const problem = h('div', { 'aria-live': 'polite' });
  const body = h('tbody');
  const facts = h('dl', { class: 'facts' });
  const errorsBody = h('tbody');
  const HEAD = [
    ['Interface'],
    ['Index', true],
    ['Ingress counted by'],
    ['Received', true],
    ['Packets in', true],
    ['Now in', true],
    ['Sent', true],
    ['Packets out', true],
    ['Now out', true],
    ['Other hosts sent', true],
    ['Other hosts received', true],
    ['Hosts', true],
  ];
  replace(
    ctx.main,
    h(
      'div',
      { class: 'page-head' },
      h('h1', null, 'Interfaces'),
      h(
        'p',
        { class: 'subtitle' },
        'Ingress is counted by xdp-native (XDP in the driver), xdp-generic (XDP in the kernel’s generic path) or tc (TCX); egress always by TCX.',
      ),
    ),
    problem,
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'if-h' },
      h('h2', { id: 'if-h', class: 'sr-only' }, 'Interface counters'),
      tableWrap(
        'Interfaces',
        h(
          'table',
          { class: 'data', testid: 'interfaces-table' },
          thead(...HEAD.map(([l, num]) => (num ? { num: l } : l))),
          body,
        ),
      ),
    ),
    h(
      'div',
      { class: 'grid' },
      h('section', { class: 'card', 'aria-labelledby': 'ht-h' }, h('h2', { id: 'ht-h' }, 'Collector'), facts),
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'er-h' },
        h('h2', { id: 'er-h' }, 'Errors'),
        h('p', { class: 'muted small' }, 'Events since counting started. A counted error never changes what happens to the packet.'),
        tableWrap(
          'Error counters',
          h(
            'table',
            { class: 'data', testid: 'errors-table' },
            thead('Counter', { num: 'Count' }),
            errorsBody,
          ),
        ),
      ),
    ),
  );

  let busy = false;
  let last = 0;
  async function load(force = false) {
    if (busy || (!force && Date.now() - last < 1900)) return;
    busy = true;
    last = Date.now();
    let doc;
    try {
      doc = await api('/api/v1/interfaces');
    } catch (e) {
      if (ctx.active) say(problem, 'error', `Cannot read the interfaces: ${e.message}`);
      return;
    } finally {
      busy = false;
    }
    if (!ctx.active) return;
    say(problem);
    syncRows(
      body,
      doc.interfaces.length
        ? doc.interfaces.map((i) =>
            h(
              'tr',
              { 'data-key': i.name },
              h('th', { scope: 'row' }, i.name),
              h('td', { class: 'num' }, i.ifindex),
              h('td', { title: captureMode(i.capture_mode) }, h('code', null, i.capture_mode)),
              h('td', { class: 'num' }, bytes(i.rx.bytes)),
              h('td', { class: 'num' }, count(i.rx.packets)),
              h('td', { class: 'num' }, bits(i.rx.bytes_per_sec), h('br'), h('span', { class: 'muted small' }, packetRate(i.rx.packets_per_sec))),
              h('td', { class: 'num' }, bytes(i.tx.bytes)),
              h('td', { class: 'num' }, count(i.tx.packets)),
              h('td', { class: 'num' }, bits(i.tx.bytes_per_sec), h('br'), h('span', { class: 'muted small' }, packetRate(i.tx.packets_per_sec))),
              h('td', { class: 'num' }, bytes(i.other_hosts.sent.bytes)),
              h('td', { class: 'num' }, bytes(i.other_hosts.received.bytes)),
              h('td', { class: 'num' }, count(i.hosts)),
            ),
          )
        : [h('tr', null, h('td', { colspan: HEAD.length, class: 'muted' }, 'No poll yet'))],
    );
    const t = doc.host_table;
    const fill = t.capacity ? t.used / t.capacity : 0;
    replace(
      facts,
      h('dt', null, 'Host table'),
      h('dd', null, `${count(t.used)} of ${count(t.capacity)} entries (${percent(fill)})`, bar(fill, fill > 0.9 ? 'bar-warn' : '')),
      h('dt', null, 'Last poll'),
      h('dd', null, doc.polled_at ? `${dateTime(doc.polled_at)}, took ${millis(doc.poll_duration_ms)}` : 'not yet'),
    );
    syncRows(
      errorsBody,
      Object.entries(doc.errors).map(([name, n]) =>
        h(
          'tr',
          { class: n ? 'warn-row' : 'idle', 'data-key': name },
          h('th', { scope: 'row' }, ERRORS[name] ?? name, h('br'), h('code', { class: 'muted small' }, name)),
          h('td', { class: 'num' }, count(n)),
        ),
      ),
    );
  }

  ctx.on((type) => {
    if (type === 'summary') load();
    if (type === 'restart') load(true);
  });
  ctx.every(5000, () => load());
  load(true);
}
