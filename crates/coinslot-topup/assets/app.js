// Coinslot top-up page: the flow. Pick an amount → mint quote (a Lightning invoice) →
// watch it get paid (NUT-17 websocket, polling as a fall-back) → blind outputs, mint,
// unblind → a cashuB token, kept in localStorage until the user dismisses it.
//
// Money safety: the blinded outputs (secrets and blinding factors) are saved *before* they
// are sent to the mint, so a reload or a lost response never loses a paid top-up: the page
// resends the same outputs (NUT-19 replays the answer) or asks NUT-09 restore for their
// signatures.
(function () {
  'use strict';

  const Cashu = window.CoinslotCashu;
  const QR = window.CoinslotQR;
  const $ = (id) => document.getElementById(id);
  // The mint URL tokens name: the server's public URL, which may differ from the address
  // this page was opened at (a LAN address, say); the paywall only accepts its own.
  const MINT_URL = document.body.dataset.mint || location.origin;

  const STORE_TOKENS = 'coinslot.topup.tokens';
  const STORE_PENDING = 'coinslot.topup.pending';
  const POLL_MS = 2000;
  const SPENT_CHECK_MS = 5000;
  const WS_HANDSHAKE_MS = 5000;
  const CODE_QUOTE_ISSUED = 20002;
  const QR_MAX_PX = 360;

  const state = {
    units: [], // [{unit, min, max, keyset}]
    unit: null,
    pending: null,
    shownToken: null, // created timestamp of the token in the token panel
    watch: null,
    spentTimer: null,
    minting: false,
  };

  // ------------------------------------------------------------------ helpers

  class MintError extends Error {
    constructor(detail, code, status) {
      super(detail);
      this.code = code;
      this.status = status;
    }
  }

  async function api(method, path, body) {
    let res;
    try {
      res = await fetch(path, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
      });
    } catch (e) {
      throw new Error('Network error: could not reach the mint (' + e.message + ').');
    }
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    if (!res.ok) {
      if (data && typeof data.detail === 'string') throw new MintError(data.detail, data.code, res.status);
      throw new MintError('HTTP ' + res.status + (text ? ': ' + text.slice(0, 200) : ''), undefined, res.status);
    }
    if (data === null) throw new Error('The mint sent an unreadable answer for ' + path + '.');
    return data;
  }

  function describe(err) {
    if (err instanceof MintError) {
      return 'The mint said: ' + err.message + (err.code !== undefined ? ' (code ' + err.code + ')' : '');
    }
    return err && err.message ? err.message : String(err);
  }

  function showError(err) {
    $('error-text').textContent = typeof err === 'string' ? err : describe(err);
    $('error').hidden = false;
    $('error').scrollIntoView({ block: 'nearest' });
  }

  function clearError() {
    $('error').hidden = true;
    $('error-text').textContent = '';
  }

  function setStatus(el, text, kind) {
    el.textContent = text;
    el.className = 'status' + (kind ? ' ' + kind : '');
  }

  function fmt(amount, unit) {
    return Number(amount).toLocaleString('en-US') + ' ' + unit;
  }

  function qrWidth(canvas) {
    const box = canvas.parentElement.getBoundingClientRect().width || QR_MAX_PX;
    return Math.min(QR_MAX_PX, Math.floor(box));
  }

  // Invoices get level M; tokens level L, which keeps their (long) codes coarser and easier
  // to scan from a screen, where there is no dirt or damage to correct.
  function drawQr(canvas, text, noteEl, level) {
    try {
      QR.draw(canvas, QR.encode(text, level ? { level } : undefined), qrWidth(canvas));
      canvas.hidden = false;
      if (noteEl) noteEl.hidden = true;
    } catch (e) {
      canvas.hidden = true;
      if (noteEl) {
        noteEl.textContent = 'Too long for a QR code: copy the text instead.';
        noteEl.hidden = false;
      }
    }
  }

  async function copyText(textarea, button) {
    const text = textarea.value;
    let ok = false;
    // navigator.clipboard only exists in secure contexts; fall back to a selection copy.
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(text);
        ok = true;
      } catch (_) {
        ok = false;
      }
    }
    if (!ok) {
      textarea.focus();
      textarea.select();
      textarea.setSelectionRange(0, text.length);
      try {
        ok = document.execCommand('copy');
      } catch (_) {
        ok = false;
      }
    }
    const label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    button.textContent = ok ? 'Copied ✓' : 'Selected: copy it';
    setTimeout(() => {
      button.textContent = label;
    }, 2000);
  }

  // ------------------------------------------------------------------ storage

  let storageWorks = true;

  function load(key, fallback) {
    try {
      const raw = window.localStorage.getItem(key);
      return raw ? JSON.parse(raw) : fallback;
    } catch (_) {
      storageWorks = false;
      return fallback;
    }
  }

  function save(key, value) {
    try {
      if (value === null) window.localStorage.removeItem(key);
      else window.localStorage.setItem(key, JSON.stringify(value));
      return true;
    } catch (_) {
      storageWorks = false;
      return false;
    }
  }

  function tokens() {
    const list = load(STORE_TOKENS, []);
    return Array.isArray(list) ? list : [];
  }

  function keepToken(entry) {
    const list = tokens();
    list.push(entry);
    return save(STORE_TOKENS, list);
  }

  function dropToken(created) {
    save(STORE_TOKENS, tokens().filter((t) => t.created !== created));
  }

  // ------------------------------------------------------------------ mint info

  async function loadMint() {
    const [info, keysets] = await Promise.all([
      api('GET', '/v1/info').catch(() => null),
      api('GET', '/v1/keysets'),
    ]);
    if (info && info.name) $('mint-name').textContent = info.name + ' · buy ecash with Lightning, no account needed.';
    const active = (keysets.keysets || []).filter((k) => k.active);
    const nut4 = info && info.nuts && info.nuts['4'];
    let methods = null;
    if (nut4 && Array.isArray(nut4.methods)) {
      methods = nut4.disabled ? [] : nut4.methods.filter((m) => m.method === 'bolt11');
    }
    // Units in the mint's own order (NUT-04 settings), each needing an active keyset.
    const units = [];
    const candidates = methods === null ? active.map((k) => ({ unit: k.unit })) : methods;
    for (const m of candidates) {
      if (units.some((u) => u.unit === m.unit) || !active.some((k) => k.unit === m.unit)) continue;
      units.push({ unit: m.unit, min: m.min_amount, max: m.max_amount });
    }
    if (units.length === 0) throw new Error('This mint offers no Lightning top-ups right now.');
    state.units = units;
    state.unit = units[0].unit;
    renderUnits();
  }

  function unitInfo(unit) {
    return state.units.find((u) => u.unit === unit) || { unit };
  }

  function renderUnits() {
    const box = $('units');
    box.textContent = '';
    for (const u of state.units) {
      const b = document.createElement('button');
      b.type = 'button';
      b.setAttribute('role', 'radio');
      b.setAttribute('aria-checked', String(u.unit === state.unit));
      b.textContent = u.unit;
      b.addEventListener('click', () => {
        state.unit = u.unit;
        renderUnits();
      });
      box.appendChild(b);
    }
    box.hidden = state.units.length < 2;
    const info = unitInfo(state.unit);
    for (const b of document.querySelectorAll('#presets button')) {
      const amount = Number(b.dataset.amount);
      let unitSpan = b.querySelector('.unit');
      if (!unitSpan) {
        unitSpan = document.createElement('span');
        unitSpan.className = 'unit';
        b.appendChild(unitSpan);
      }
      unitSpan.textContent = state.unit;
      b.disabled = (info.min != null && amount < info.min) || (info.max != null && amount > info.max);
    }
    $('custom-amount').disabled = false;
    $('custom-submit').disabled = false;
    const limits = [];
    if (info.min != null) limits.push('at least ' + fmt(info.min, state.unit));
    if (info.max != null) limits.push('at most ' + fmt(info.max, state.unit));
    $('limits').textContent = limits.length ? 'One top-up is ' + limits.join(' and ') + '.' : '';
  }

  async function activeKeyset(unit) {
    const keysets = await api('GET', '/v1/keysets');
    const ks = (keysets.keysets || []).find((k) => k.active && k.unit === unit);
    if (!ks) throw new Error('The mint has no active keyset for ' + unit + '.');
    const keys = await api('GET', '/v1/keys/' + encodeURIComponent(ks.id));
    const set = (keys.keysets || []).find((k) => k.id === ks.id) || (keys.keysets || [])[0];
    if (!set || !set.keys) throw new Error('The mint sent no keys for keyset ' + ks.id + '.');
    return { id: ks.id, keys: set.keys };
  }

  // ------------------------------------------------------------------ prices

  async function loadPrices() {
    const url = document.body.dataset.prices;
    let data;
    try {
      data = await api('GET', url);
    } catch (_) {
      return; // the price list is a courtesy; the top-up works without it
    }
    const lines = Array.isArray(data.prices) ? data.prices : [];
    const body = $('prices').tBodies[0];
    body.textContent = '';
    for (const line of lines) {
      const tr = document.createElement('tr');
      const what = document.createElement('td');
      const method = document.createElement('span');
      method.className = 'method';
      method.textContent = line.method;
      const path = document.createElement('code');
      path.textContent = line.path;
      what.append(method, path);
      if (line.description) {
        const d = document.createElement('small');
        d.textContent = line.description;
        what.appendChild(d);
      }
      const price = document.createElement('td');
      price.className = 'price';
      if (line.metered) {
        price.textContent = 'up to ' + fmt(line.amount, line.unit);
        const s = document.createElement('small');
        s.textContent = 'metered';
        price.appendChild(s);
      } else {
        price.textContent = fmt(line.amount, line.unit);
      }
      tr.append(what, price);
      body.appendChild(tr);
    }
    $('prices-section').hidden = lines.length === 0;
  }

  // ------------------------------------------------------------------ top-up flow

  function showPanel(which) {
    $('invoice-panel').hidden = which !== 'invoice';
    $('amount-panel').hidden = which === 'invoice';
  }

  async function startTopup(amount) {
    clearError();
    if (state.pending) {
      showError('Finish or cancel the current top-up first.');
      return;
    }
    const unit = state.unit;
    const info = unitInfo(unit);
    if (!Number.isSafeInteger(amount) || amount <= 0) {
      showError('Enter a whole amount above zero.');
      return;
    }
    if ((info.min != null && amount < info.min) || (info.max != null && amount > info.max)) {
      showError($('limits').textContent || 'That amount is outside the mint\'s limits.');
      return;
    }
    setBusy(true);
    try {
      const quote = await api('POST', '/v1/mint/quote/bolt11', { amount, unit });
      if (!quote.quote || !quote.request) throw new Error('The mint sent a quote without an invoice.');
      state.pending = {
        quote: quote.quote,
        request: quote.request,
        amount,
        unit,
        expiry: quote.expiry || null,
        created: Date.now(),
        outputs: null,
      };
      save(STORE_PENDING, state.pending);
      showInvoice();
      onQuote(quote, 'create');
      if (state.pending && !state.pending.paidSeen) watchQuote();
    } catch (e) {
      showError(e);
    } finally {
      setBusy(false);
    }
  }

  function setBusy(busy) {
    for (const b of document.querySelectorAll('#presets button, #custom-submit')) {
      if (busy) b.dataset.wasDisabled = b.disabled ? '1' : '';
      b.disabled = busy ? true : b.dataset.wasDisabled === '1';
    }
  }

  function showInvoice() {
    const p = state.pending;
    showPanel('invoice');
    $('invoice-amount').textContent = fmt(p.amount, p.unit);
    $('invoice-text').value = p.request;
    $('invoice-open').href = 'lightning:' + p.request;
    drawQr($('invoice-qr'), p.request);
    setStatus($('invoice-status'), 'Waiting for payment…', 'wait');
    $('invoice-status').removeAttribute('data-paid-via');
    $('invoice-cancel').hidden = false;
    $('invoice-panel').scrollIntoView({ block: 'start' });
  }

  // A quote update from any source: creation, websocket, polling or a resume.
  function onQuote(q, via) {
    const p = state.pending;
    if (!p || !q || q.quote !== p.quote) return;
    const s = q.state || (q.paid ? 'PAID' : 'UNPAID');
    if (s === 'PAID' || s === 'ISSUED') {
      p.paidSeen = true;
      stopWatching();
      const status = $('invoice-status');
      setStatus(status, 'Paid ✓ Making your ecash…', 'ok');
      if (!status.dataset.paidVia) status.dataset.paidVia = via;
      $('invoice-cancel').hidden = true;
      mintPending(s === 'ISSUED');
    } else if (p.expiry && p.expiry * 1000 < Date.now()) {
      stopWatching();
      setStatus($('invoice-status'), 'This invoice expired unpaid. Cancel and start again.', 'warn');
    }
  }

  function stopWatching() {
    const w = state.watch;
    state.watch = null;
    if (!w) return;
    w.stopped = true;
    clearInterval(w.poll);
    clearTimeout(w.handshake);
    if (w.ws) {
      try {
        w.ws.close();
      } catch (_) {
        /* closing a dead socket */
      }
    }
  }

  // NUT-17: subscribe to the quote over the websocket; poll every 2 s if that fails.
  function watchQuote() {
    stopWatching();
    const p = state.pending;
    const w = { stopped: false, ws: null, poll: null, handshake: null, subscribed: false };
    state.watch = w;
    const fallBack = () => {
      if (w.stopped || w.poll) return;
      w.poll = setInterval(() => poll(w), POLL_MS);
      poll(w);
    };
    let ws;
    try {
      ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/v1/ws');
    } catch (_) {
      fallBack();
      return;
    }
    w.ws = ws;
    const subId = Cashu.randomHex(16);
    ws.onopen = () => {
      ws.send(JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'subscribe',
        params: { kind: 'bolt11_mint_quote', filters: [p.quote], subId },
      }));
    };
    ws.onmessage = (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (_) {
        return;
      }
      if (msg.error) {
        fallBack();
      } else if (msg.id === 1 && msg.result) {
        w.subscribed = true;
        clearTimeout(w.handshake);
      } else if (msg.method === 'subscribe' && msg.params && msg.params.subId === subId) {
        onQuote(msg.params.payload, 'websocket');
      }
    };
    ws.onerror = fallBack;
    ws.onclose = () => {
      if (!w.stopped) fallBack();
    };
    w.handshake = setTimeout(() => {
      if (!w.subscribed) fallBack();
    }, WS_HANDSHAKE_MS);
  }

  async function poll(w) {
    const p = state.pending;
    if (w.stopped || !p) return;
    try {
      const q = await api('GET', '/v1/mint/quote/bolt11/' + encodeURIComponent(p.quote));
      if (!w.stopped) onQuote(q, 'polling');
    } catch (e) {
      if (!w.stopped) setStatus($('invoice-status'), 'Waiting for payment… (' + describe(e) + ' Retrying.)', 'wait');
    }
  }

  async function mintPending(alreadyIssued) {
    const p = state.pending;
    if (!p || state.minting) return;
    state.minting = true;
    try {
      if (!p.outputs) {
        if (alreadyIssued) {
          throw new Error('This quote was already turned into ecash, but not by this page. ' +
            'Nothing can be recovered here.');
        }
        const ks = await activeKeyset(p.unit);
        const amounts = Cashu.splitAmount(p.amount, Object.keys(ks.keys).map(Number));
        p.keyset = ks.id;
        p.keys = ks.keys;
        p.outputs = amounts.map((amount) => {
          const secret = Cashu.randomSecret();
          const b = Cashu.blind(secret);
          return { amount, secret, r: b.r, Y: b.Y, B_: b.B_ };
        });
        // Saved before sending: from here on, a reload can always finish this top-up.
        save(STORE_PENDING, p);
      }
      const outputs = p.outputs.map((o) => ({ amount: o.amount, id: p.keyset, B_: o.B_ }));
      let signatures;
      if (alreadyIssued) {
        signatures = await restore(p, outputs);
      } else {
        try {
          signatures = (await api('POST', '/v1/mint/bolt11', { quote: p.quote, outputs })).signatures;
        } catch (e) {
          if (!(e instanceof MintError) || e.code !== CODE_QUOTE_ISSUED) throw e;
          signatures = await restore(p, outputs);
        }
      }
      finishMint(p, signatures);
    } catch (e) {
      setStatus($('invoice-status'), 'Paid, but the ecash is not made yet.', 'warn');
      showError(describe(e) + ' Your payment is safe: reload this page to try again.');
    } finally {
      state.minting = false;
    }
  }

  // NUT-09: the mint gives back its signatures on outputs it already signed.
  async function restore(p, outputs) {
    const res = await api('POST', '/v1/restore', { outputs });
    const sigs = res.signatures || res.promises || [];
    const byB = new Map();
    (res.outputs || []).forEach((o, i) => byB.set(Cashu.pointToHex(Cashu.pointFromHex(o.B_)), sigs[i]));
    return p.outputs.map((o) => {
      const sig = byB.get(o.B_);
      if (!sig) throw new Error('The mint does not know this top-up\'s ecash.');
      return sig;
    });
  }

  function finishMint(p, signatures) {
    if (!Array.isArray(signatures) || signatures.length !== p.outputs.length) {
      throw new Error('The mint sent ' + (signatures ? signatures.length : 0) + ' signatures for ' +
        p.outputs.length + ' outputs.');
    }
    let dleqChecked = true;
    const proofs = p.outputs.map((o, i) => {
      const sig = signatures[i];
      if (Number(sig.amount) !== o.amount) throw new Error('The mint signed a different amount.');
      const K = p.keys[String(o.amount)];
      if (!K) throw new Error('No mint key for amount ' + o.amount + '.');
      if (sig.dleq && sig.dleq.e && sig.dleq.s) {
        if (!Cashu.verifyDleq(o.B_, sig.C_, sig.dleq.e, sig.dleq.s, K)) {
          throw new Error('The mint\'s signature proof (NUT-12 DLEQ) is wrong: this ecash would not be valid.');
        }
      } else {
        dleqChecked = false;
      }
      return { amount: o.amount, id: sig.id || p.keyset, secret: o.secret, C: Cashu.unblind(sig.C_, o.r, K) };
    });
    const token = Cashu.encodeTokenV4(MINT_URL, p.unit, proofs);
    const entry = {
      token,
      amount: p.amount,
      unit: p.unit,
      mint: MINT_URL,
      created: Date.now(),
      ys: p.outputs.map((o) => o.Y),
      dleq: dleqChecked,
    };
    const kept = keepToken(entry);
    // Only once the token is stored does the pending top-up go.
    stopWatching();
    state.pending = null;
    if (kept) save(STORE_PENDING, null);
    showPanel('amount');
    showToken(entry);
    if (!kept) showError('This browser cannot store the token: copy it now, it exists nowhere else.');
  }

  async function cancelTopup() {
    const p = state.pending;
    if (!p) return;
    clearError();
    // Never forget a quote that got paid meanwhile.
    try {
      const q = await api('GET', '/v1/mint/quote/bolt11/' + encodeURIComponent(p.quote));
      const s = q.state || (q.paid ? 'PAID' : 'UNPAID');
      if (s !== 'UNPAID') {
        onQuote(q, 'polling');
        return;
      }
    } catch (e) {
      if (!(e instanceof MintError)) {
        showError(describe(e) + ' Not cancelled: the invoice may be paid.');
        return;
      }
    }
    stopWatching();
    state.pending = null;
    save(STORE_PENDING, null);
    showPanel('amount');
  }

  // ------------------------------------------------------------------ tokens

  function showToken(entry) {
    state.shownToken = entry.created;
    $('token-panel').hidden = false;
    $('token-amount').textContent = fmt(entry.amount, entry.unit);
    $('token-text').value = entry.token;
    $('token-open').href = 'cashu:' + entry.token;
    drawQr($('token-qr'), entry.token, $('token-qr-note'), 'L');
    setStatus($('token-state'), entry.dleq === false ? 'Not yet in a wallet.' : 'Not yet in a wallet. Signatures verified ✓', '');
    resetDismiss();
    renderTokenList();
    $('token-panel').scrollIntoView({ block: 'start' });
    checkSpent();
    clearInterval(state.spentTimer);
    state.spentTimer = setInterval(checkSpent, SPENT_CHECK_MS);
  }

  function hideToken() {
    state.shownToken = null;
    clearInterval(state.spentTimer);
    $('token-panel').hidden = true;
    renderTokenList();
  }

  // NUT-07: once every proof is spent, a wallet has received the token.
  async function checkSpent() {
    const entry = tokens().find((t) => t.created === state.shownToken);
    if (!entry || !Array.isArray(entry.ys) || entry.ys.length === 0) return;
    try {
      const res = await api('POST', '/v1/checkstate', { Ys: entry.ys });
      const states = (res.states || []).map((s) => s.state);
      const spent = states.filter((s) => s === 'SPENT').length;
      if (state.shownToken !== entry.created) return;
      if (spent === entry.ys.length) {
        entry.spent = true;
        setStatus($('token-state'), 'Received by a wallet ✓ You can dismiss it.', 'ok');
        $('token-state').dataset.spent = 'true';
        clearInterval(state.spentTimer);
      } else if (spent > 0) {
        setStatus($('token-state'), 'Partly spent: receive the rest in a wallet.', 'warn');
      }
    } catch (_) {
      /* informational only */
    }
  }

  let dismissTimer = null;
  function resetDismiss() {
    clearTimeout(dismissTimer);
    const b = $('token-dismiss');
    b.textContent = 'Dismiss…';
    b.classList.remove('danger');
    b.dataset.armed = '';
  }

  function dismissToken() {
    const b = $('token-dismiss');
    const spent = $('token-state').dataset.spent === 'true';
    if (!spent && b.dataset.armed !== '1') {
      b.dataset.armed = '1';
      b.textContent = 'I saved it: remove';
      b.classList.add('danger');
      clearTimeout(dismissTimer);
      dismissTimer = setTimeout(resetDismiss, 6000);
      return;
    }
    dropToken(state.shownToken);
    $('token-state').dataset.spent = '';
    hideToken();
  }

  function renderTokenList() {
    const list = tokens().filter((t) => t.created !== state.shownToken);
    const ul = $('tokens');
    ul.textContent = '';
    for (const t of list) {
      const li = document.createElement('li');
      const what = document.createElement('span');
      what.className = 'what';
      what.textContent = fmt(t.amount, t.unit);
      const when = document.createElement('small');
      when.textContent = 'made ' + new Date(t.created).toLocaleString();
      what.appendChild(when);
      const show = document.createElement('button');
      show.type = 'button';
      show.textContent = 'Show';
      show.addEventListener('click', () => showToken(t));
      li.append(what, show);
      ul.appendChild(li);
    }
    $('tokens-section').hidden = list.length === 0;
  }

  // ------------------------------------------------------------------ start

  async function resumePending() {
    const p = load(STORE_PENDING, null);
    if (!p || !p.quote) return;
    state.pending = p;
    showInvoice();
    setStatus($('invoice-status'), 'Checking your unfinished top-up…', 'wait');
    try {
      const q = await api('GET', '/v1/mint/quote/bolt11/' + encodeURIComponent(p.quote));
      const s = q.state || (q.paid ? 'PAID' : 'UNPAID');
      if (s === 'UNPAID') {
        setStatus($('invoice-status'), 'Waiting for payment…', 'wait');
        onQuote(q, 'polling');
        if (state.pending && !state.pending.paidSeen) watchQuote();
      } else {
        onQuote(q, 'polling');
      }
    } catch (e) {
      if (e instanceof MintError && e.status === 400 && !p.outputs) {
        // The mint does not know the quote (e.g. a different mint's data): nothing to finish.
        state.pending = null;
        save(STORE_PENDING, null);
        showPanel('amount');
        showError('An unfinished top-up could not be found at the mint (' + e.message + ').');
      } else {
        setStatus($('invoice-status'), 'Could not check the top-up; retrying…', 'warn');
        watchQuote();
      }
    }
  }

  function init() {
    $('error-close').addEventListener('click', clearError);
    for (const b of document.querySelectorAll('#presets button')) {
      b.addEventListener('click', () => startTopup(Number(b.dataset.amount)));
    }
    $('custom-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const raw = $('custom-amount').value.trim();
      startTopup(/^\d+$/.test(raw) ? Number(raw) : NaN);
    });
    $('invoice-copy').addEventListener('click', () => copyText($('invoice-text'), $('invoice-copy')));
    $('invoice-cancel').addEventListener('click', cancelTopup);
    $('token-copy').addEventListener('click', () => copyText($('token-text'), $('token-copy')));
    $('token-dismiss').addEventListener('click', dismissToken);
    $('token-again').addEventListener('click', () => {
      hideToken();
      $('amount-panel').scrollIntoView({ block: 'start' });
    });

    const saved = tokens();
    if (saved.length > 0) showToken(saved[saved.length - 1]);
    else renderTokenList();
    if (!storageWorks) showError('This browser does not let the page keep tokens: copy each one when it appears.');

    loadPrices();
    loadMint()
      .then(resumePending)
      .catch((e) => showError(e));
  }

  window.coinslotTopup = { state, tokens };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
