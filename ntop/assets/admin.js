// Admin page (#/admin): change the admin password, create and revoke API tokens, reset the
// statistics, and read the running configuration and the recent log lines. Every request that
// changes something carries the session's CSRF token (api.js). Routes this daemon does not
// have yet answer 404: the section says so instead of failing.

import { api, query } from './api.js';
import { h, notice, replace, tableWrap, uid } from './dom.js';
import { bytes, count, dateTime, when } from './format.js';

const LOG_LINES = 200;

function missing(e, what) {
  return e.status === 404 && (e.code === 'not_found' || e.code === 'http_404')
    ? `This ntop cannot ${what} from the dashboard yet.`
    : null;
}

function field(label, input, hint) {
  const id = input.id || uid('f');
  input.id = id;
  return h('div', { class: 'form-field' }, h('label', { for: id }, label), input, hint ? h('p', { class: 'muted small' }, hint) : null);
}

export function render(ctx) {
  document.title = 'ntop: admin';
  const auth = ctx.app.session?.auth;
  const who =
    auth === 'session'
      ? null
      : notice('info', auth === 'basic' ? 'Signed in with HTTP Basic.' : 'Log in to use the admin actions.');

  // ---- Password
  const pwCurrent = h('input', { type: 'password', testid: 'pw-current', autocomplete: 'current-password', required: true });
  const pwNew = h('input', { type: 'password', testid: 'pw-new', autocomplete: 'new-password', required: true });
  const pwResult = h('p', { testid: 'pw-result', role: 'status', class: 'result' });
  const pwButton = h('button', { type: 'submit', testid: 'pw-change' }, 'Change password');
  const pwForm = h(
    'form',
    { class: 'stack', novalidate: true },
    // For password managers: whose password this is.
    h('input', { type: 'text', name: 'username', autocomplete: 'username', value: 'admin', hidden: true, readonly: true }),
    field('Current password', pwCurrent),
    field('New password', pwNew, 'Other sessions end; you may have to log in again.'),
    h('div', null, pwButton),
    pwResult,
  );
  pwForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!pwCurrent.value || !pwNew.value) {
      show(pwResult, 'error', 'Give the current and the new password.');
      return;
    }
    pwButton.disabled = true;
    show(pwResult, 'info', 'Changing…');
    try {
      const done = await api('/api/v1/password', { method: 'POST', body: { current: pwCurrent.value, new: pwNew.value }, redirect401: false });
      pwCurrent.value = '';
      pwNew.value = '';
      const ended = done && Number.isFinite(done.sessions_ended) ? done.sessions_ended : null;
      show(pwResult, 'ok', ended === null ? 'Password changed.' : `Password changed; ${ended} other session${ended === 1 ? '' : 's'} ended.`);
    } catch (err) {
      show(pwResult, 'error', missing(err, 'change the password') ?? `Not changed: ${err.message}`);
    } finally {
      pwButton.disabled = false;
    }
  });

  // ---- Tokens
  const tokenName = h('input', { type: 'text', testid: 'token-name', maxlength: '64', placeholder: 'e.g. prometheus', autocomplete: 'off' });
  const tokenCreate = h('button', { type: 'submit', testid: 'token-create' }, 'Create token');
  const tokenOut = h('div', { 'aria-live': 'polite' });
  const tokenBody = h('tbody');
  const tokenForm = h('form', { class: 'inline-form' }, field('Name', tokenName), tokenCreate);
  tokenForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    tokenCreate.disabled = true;
    try {
      const name = tokenName.value.trim();
      const created = await api('/api/v1/tokens', { method: 'POST', body: name ? { name } : {} });
      tokenName.value = '';
      const secret = h('code', { testid: 'token-secret', class: 'secret' }, created.token);
      const copy = h('button', { type: 'button', class: 'small-button' }, 'Copy');
      copy.addEventListener('click', async () => {
        try {
          await navigator.clipboard.writeText(created.token);
          copy.textContent = 'Copied';
        } catch {
          const range = document.createRange();
          range.selectNodeContents(secret);
          const sel = getSelection();
          sel.removeAllRanges();
          sel.addRange(range);
          copy.textContent = 'Selected: copy it now';
        }
      });
      replace(
        tokenOut,
        h(
          'div',
          { class: 'notice notice-ok' },
          h('p', null, `Token “${created.name || created.id}” created. Copy it now: it is not shown again.`),
          h('p', { class: 'secret-row' }, secret, copy),
        ),
      );
      loadTokens();
    } catch (err) {
      replace(tokenOut, notice('error', `Not created: ${err.message}`));
    } finally {
      tokenCreate.disabled = false;
    }
  });

  async function loadTokens() {
    let doc;
    try {
      doc = await api('/api/v1/tokens', { redirect401: false });
    } catch (err) {
      if (!ctx.active) return;
      replace(tokenBody, h('tr', null, h('td', { colspan: 4, class: 'muted' }, `Cannot list the tokens: ${err.message}`)));
      return;
    }
    if (!ctx.active) return;
    replace(
      tokenBody,
      doc.tokens.length
        ? doc.tokens.map((t) =>
            h(
              'tr',
              { testid: 'token-row', 'data-id': t.id },
              h('th', { scope: 'row' }, t.name || h('span', { class: 'muted' }, '(no name)'), h('br'), h('code', { class: 'muted small' }, t.id)),
              h('td', { title: dateTime(t.created) }, when(t.created)),
              h('td', { title: t.last_used ? dateTime(t.last_used) : '' }, t.last_used ? when(t.last_used) : 'never'),
              h(
                'td',
                null,
                h(
                  'button',
                  {
                    type: 'button',
                    class: 'danger small-button',
                    testid: 'token-revoke',
                    'aria-label': `Revoke token ${t.name || t.id}`,
                    onclick: async (ev) => {
                      ev.currentTarget.disabled = true;
                      try {
                        await api(`/api/v1/tokens/${encodeURIComponent(t.id)}`, { method: 'DELETE' });
                        replace(tokenOut, notice('ok', `Token “${t.name || t.id}” revoked.`));
                      } catch (err) {
                        replace(tokenOut, notice('error', `Not revoked: ${err.message}`));
                      }
                      loadTokens();
                    },
                  },
                  'Revoke',
                ),
              ),
            ),
          )
        : h('tr', null, h('td', { colspan: 4, class: 'muted' }, 'No tokens')),
    );
  }

  // ---- Reset
  const resetResult = h('p', { testid: 'reset-result', role: 'status', class: 'result' });
  const resetButton = h('button', { type: 'button', class: 'danger', testid: 'reset-stats' }, 'Reset statistics…');
  resetButton.addEventListener('click', async () => {
    // eslint-disable-next-line no-alert
    if (!window.confirm('Reset every total (interfaces, protocols, hosts, errors) to zero? The history is kept.')) {
      show(resetResult, 'info', 'Not reset.');
      return;
    }
    resetButton.disabled = true;
    try {
      const done = await api('/api/v1/reset', { method: 'POST' });
      show(resetResult, 'ok', `Statistics reset: counting since ${dateTime(done.counting_since)}.`);
    } catch (err) {
      show(resetResult, 'error', `Not reset: ${err.message}`);
    } finally {
      resetButton.disabled = false;
    }
  });

  // ---- Configuration and log
  const config = h('div', { testid: 'config', class: 'config' }, h('p', { class: 'muted' }, 'Loading…'));
  const logLines = h('pre', { testid: 'log-lines', class: 'log', tabindex: '0', 'aria-label': 'Recent log lines' }, 'Loading…');
  const logRefresh = h('button', { type: 'button', class: 'small-button', onclick: () => loadLog() }, 'Refresh');

  async function loadConfig() {
    try {
      const doc = await api('/api/v1/config', { redirect401: false });
      if (!ctx.active) return;
      replace(config, renderConfig(doc));
    } catch (err) {
      if (!ctx.active) return;
      replace(config, notice(missing(err, 'show its configuration') ? 'info' : 'error', missing(err, 'show its configuration') ?? `Cannot read the configuration: ${err.message}`));
    }
  }

  async function loadLog() {
    try {
      const doc = await api(`/api/v1/log${query({ lines: LOG_LINES })}`, { redirect401: false });
      if (!ctx.active) return;
      const lines = Array.isArray(doc) ? doc : Array.isArray(doc?.lines) ? doc.lines : typeof doc === 'string' ? doc.split('\n') : [];
      logLines.textContent = lines.length ? lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') : '(no log lines)';
      logLines.scrollTop = logLines.scrollHeight;
    } catch (err) {
      if (!ctx.active) return;
      logLines.textContent = missing(err, 'show its log') ?? `Cannot read the log: ${err.message}`;
    }
  }

  replace(
    ctx.main,
    h('div', { class: 'page-head' }, h('h1', null, 'Admin')),
    who,
    h(
      'div',
      { class: 'grid' },
      h('section', { class: 'card', 'aria-labelledby': 'pw-h' }, h('h2', { id: 'pw-h' }, 'Change password'), pwForm),
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'rs-h' },
        h('h2', { id: 'rs-h' }, 'Reset statistics'),
        h('p', null, 'Sets every total to zero; counting goes on from there and the history is kept.'),
        resetButton,
        resetResult,
      ),
    ),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'tk-h' },
      h('h2', { id: 'tk-h' }, 'API tokens'),
      h('p', { class: 'muted small' }, 'For scripts and Prometheus: send Authorization: Bearer <token>. Tokens can read, not administer.'),
      tokenForm,
      tokenOut,
      tableWrap(
        'API tokens',
        h(
          'table',
          { class: 'data', testid: 'tokens-table' },
          h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Created'), h('th', { scope: 'col' }, 'Last used'), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
          tokenBody,
        ),
      ),
    ),
    h('section', { class: 'card', 'aria-labelledby': 'cf-h' }, h('h2', { id: 'cf-h' }, 'Running configuration'), config),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'lg-h' },
      h('div', { class: 'card-head' }, h('h2', { id: 'lg-h' }, 'Recent log lines'), logRefresh),
      logLines,
    ),
  );

  loadTokens();
  loadConfig();
  loadLog();
  ctx.every(10000, loadLog);
}

function show(el, kind, text) {
  el.className = `result result-${kind}`;
  el.textContent = text;
}

/** The configuration as a definition list (nested objects indented, arrays joined). */
function renderConfig(doc) {
  if (doc === null || typeof doc !== 'object') return h('pre', null, String(doc));
  const items = [];
  for (const [key, value] of Object.entries(doc)) {
    let shown;
    if (value === null || value === undefined) shown = h('span', { class: 'muted' }, '–');
    else if (Array.isArray(value)) shown = value.length ? value.map((v) => (typeof v === 'object' ? JSON.stringify(v) : String(v))).join(', ') : h('span', { class: 'muted' }, 'none');
    else if (typeof value === 'object') shown = renderConfig(value);
    else if (typeof value === 'number' && key.endsWith('_bytes')) shown = `${bytes(value)} (${count(value)} bytes)`;
    else if (typeof value === 'number' && key.endsWith('_ms')) shown = `${count(value)} ms`;
    else if (typeof value === 'number' && key === 'started') shown = dateTime(value);
    else shown = String(value);
    const label = key.replace(/_(bytes|ms)$/, '').replace(/_/g, ' ');
    items.push(h('dt', null, label), h('dd', { class: 'mono' }, shown));
  }
  return h('dl', { class: 'facts config-list' }, items);
}
