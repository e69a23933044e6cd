// Coinslot Arcade: a Cashu wallet in the page, in plain JavaScript (no build step).
//
// The crypto (BDHKE, DLEQ, tokens) comes from the top-up page's cashu.js (CoinslotCashu).
// This file keeps the player's proofs in localStorage and pays for games with them, or
// from a prepaid session (NUT-24 X-Cashu / X-Cashu-Session).
//
// Money safety, in the order things can go wrong:
// - before a swap, its blinded outputs are saved; if the answer is lost, the next load asks
//   the mint to restore their signatures (NUT-09);
// - before a paid request, the proofs it spends move to `pending` with the request, so a
//   reload never loses them: on load, unspent pending proofs go back to the wallet, and
//   spent ones are retried once with the same token (the server answers a retry without
//   charging again, or with the refund);
// - change and refunds from the X-Cashu response header go straight into the wallet.
(function () {
  'use strict';

  const Cashu = window.CoinslotCashu;
  const ORIGIN = window.location.origin;
  const UNIT = 'credit';
  const STORE = 'coinslot.arcade.v1';
  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------ state

  function load() {
    try {
      const s = JSON.parse(localStorage.getItem(STORE) || '{}');
      return {
        proofs: Array.isArray(s.proofs) ? s.proofs : [],
        pending: Array.isArray(s.pending) ? s.pending : [],
        swaps: Array.isArray(s.swaps) ? s.swaps : [],
        session: s.session || null,
        player: typeof s.player === 'string' ? s.player : '',
      };
    } catch (_) {
      return { proofs: [], pending: [], swaps: [], session: null, player: '' };
    }
  }

  const state = load();
  function save() {
    localStorage.setItem(STORE, JSON.stringify(state));
  }

  const sum = (proofs) => proofs.reduce((a, p) => a + p.amount, 0);

  function render() {
    $('balance').textContent = String(sum(state.proofs));
    $('session-line').hidden = !state.session;
    $('session-balance').textContent = state.session ? String(state.session.balance) : '0';
    $('close-session').disabled = !state.session;
  }

  function say(text, isError) {
    const m = $('message');
    m.textContent = text;
    m.className = isError ? 'error' : '';
  }

  // ------------------------------------------------------------------ mint API

  class MintError extends Error {
    constructor(status, body) {
      super((body && (body.detail || body.error)) || ('HTTP ' + status));
      this.status = status;
      this.code = body && body.code;
    }
  }

  async function api(method, path, body, headers) {
    const res = await fetch(path, {
      method,
      headers: Object.assign(body ? { 'Content-Type': 'application/json' } : {}, headers || {}),
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
    if (!res.ok) throw new MintError(res.status, json || { detail: text });
    return json;
  }

  let keysetCache = null;
  async function keysets() {
    if (keysetCache) return keysetCache;
    const all = (await api('GET', '/v1/keysets')).keysets || [];
    const mine = all.filter((k) => k.unit === UNIT);
    const active = mine.find((k) => k.active);
    if (!active) throw new Error('this arcade has no active keyset for ' + UNIT);
    const keys = await api('GET', '/v1/keys/' + encodeURIComponent(active.id));
    const set = (keys.keysets || []).find((k) => k.id === active.id);
    if (!set) throw new Error('the mint did not send the keys of keyset ' + active.id);
    keysetCache = { all: mine, active, keys: set.keys, byId: new Map() };
    keysetCache.byId.set(active.id, set.keys);
    return keysetCache;
  }

  async function keysOf(id) {
    const ks = await keysets();
    if (!ks.byId.has(id)) {
      const keys = await api('GET', '/v1/keys/' + encodeURIComponent(id));
      const set = (keys.keysets || []).find((k) => k.id === id);
      if (!set) throw new Error('unknown keyset ' + id);
      ks.byId.set(id, set.keys);
    }
    return ks.byId.get(id);
  }

  // Tokens may carry short keyset ids (NUT-02): expand them to the ids the mint lists.
  async function expandIds(proofs) {
    const ks = await keysets();
    return proofs.map((p) => {
      const full = ks.all.find((k) => k.id === p.id) || ks.all.find((k) => k.id.startsWith(p.id));
      if (!full) throw new Error('the token names keyset ' + p.id + ', which this arcade does not have');
      return Object.assign({}, p, { id: full.id });
    });
  }

  async function feeOf(proofs) {
    const ks = await keysets();
    const ppk = proofs.reduce((a, p) => {
      const k = ks.all.find((x) => x.id === p.id);
      return a + ((k && k.input_fee_ppk) || 0);
    }, 0);
    return Math.ceil(ppk / 1000);
  }

  function ys(proofs) {
    return proofs.map((p) => Cashu.hashToCurve(new TextEncoder().encode(p.secret)));
  }

  async function unspent(proofs) {
    if (proofs.length === 0) return [];
    const res = await api('POST', '/v1/checkstate', { Ys: ys(proofs) });
    const states = res.states || [];
    return proofs.filter((_, i) => states[i] && states[i].state === 'UNSPENT');
  }

  // ------------------------------------------------------------------ swaps

  function blindOutputs(amounts, keysetId) {
    return amounts.map((amount) => {
      const secret = Cashu.randomSecret();
      const b = Cashu.blind(secret);
      return { amount, secret, r: b.r, B_: b.B_ };
    });
  }

  async function unblindAll(outputs, keysetId, signatures) {
    const keys = await keysOf(keysetId);
    if (!Array.isArray(signatures) || signatures.length !== outputs.length) {
      throw new Error('the mint sent ' + (signatures ? signatures.length : 0) + ' signatures for ' + outputs.length + ' outputs');
    }
    return outputs.map((o, i) => {
      const sig = signatures[i];
      const K = keys[String(o.amount)];
      if (!K) throw new Error('no key for amount ' + o.amount);
      if (sig.dleq && !Cashu.verifyDleq(o.B_, sig.C_, sig.dleq.e, sig.dleq.s, K)) {
        throw new Error('the mint\'s DLEQ proof does not verify: refusing its signature');
      }
      return { id: sig.id || keysetId, amount: o.amount, secret: o.secret, C: Cashu.unblind(sig.C_, o.r, K) };
    });
  }

  // Swaps `inputs` for fresh proofs of `amounts` (each list of outputs in order). The
  // outputs are saved first, so a lost answer is recovered with NUT-09 restore.
  async function swap(inputs, amountLists) {
    const ks = await keysets();
    const lists = amountLists.map((amounts) => blindOutputs(amounts, ks.active.id));
    const record = { keyset: ks.active.id, outputs: lists.flat(), inputs: ys(inputs) };
    state.swaps.push(record);
    save();
    let signatures;
    try {
      const outputs = record.outputs.map((o) => ({ amount: o.amount, id: record.keyset, B_: o.B_ }));
      const clean = inputs.map((p) => {
        const q = { amount: p.amount, id: p.id, secret: p.secret, C: p.C };
        if (p.witness) q.witness = p.witness;
        return q;
      });
      signatures = (await api('POST', '/v1/swap', { inputs: clean, outputs })).signatures;
    } catch (err) {
      if (err instanceof MintError) {
        // The mint refused: nothing was signed, the inputs are as they were.
        state.swaps = state.swaps.filter((s) => s !== record);
        save();
      }
      throw err;
    }
    const proofs = await unblindAll(record.outputs, record.keyset, signatures);
    state.swaps = state.swaps.filter((s) => s !== record);
    let at = 0;
    return lists.map((list) => {
      const part = proofs.slice(at, at + list.length);
      at += list.length;
      return part;
    });
  }

  // NUT-09: signatures the mint already made for outputs whose answer was lost.
  async function recoverSwaps() {
    for (const record of state.swaps.slice()) {
      const outputs = record.outputs.map((o) => ({ amount: o.amount, id: record.keyset, B_: o.B_ }));
      const res = await api('POST', '/v1/restore', { outputs });
      const byB = new Map();
      (res.outputs || []).forEach((o, i) => byB.set(o.B_, res.signatures[i]));
      const found = record.outputs.filter((o) => byB.has(o.B_));
      if (found.length > 0) {
        const proofs = await unblindAll(found, record.keyset, found.map((o) => byB.get(o.B_)));
        state.proofs.push(...(await unspent(proofs)));
      }
      state.swaps = state.swaps.filter((s) => s !== record);
      save();
    }
  }

  function split(amount) {
    return amount > 0 ? Cashu.splitAmount(amount, Object.keys(keysetCache.keys).map(Number)) : [];
  }

  // Takes proofs worth exactly `amount` out of the wallet (swapping to make change first
  // when no exact set exists).
  async function take(amount) {
    await keysets();
    const sorted = state.proofs.slice().sort((a, b) => b.amount - a.amount);
    const chosen = [];
    let rest = amount;
    for (const p of sorted) {
      if (p.amount <= rest) {
        chosen.push(p);
        rest -= p.amount;
      }
    }
    if (rest === 0 && (await feeOf(chosen)) === 0) {
      state.proofs = state.proofs.filter((p) => !chosen.includes(p));
      save();
      return chosen;
    }
    const inputs = [];
    let total = 0;
    for (const p of state.proofs.slice().sort((a, b) => a.amount - b.amount)) {
      if (total >= amount + (await feeOf(inputs))) break;
      inputs.push(p);
      total += p.amount;
    }
    const fee = await feeOf(inputs);
    if (total < amount + fee) {
      throw new Error('not enough credit: ' + sum(state.proofs) + ' in this browser, ' + (amount + fee) + ' needed');
    }
    state.proofs = state.proofs.filter((p) => !inputs.includes(p));
    save();
    try {
      const [send, keep] = await swap(inputs, [split(amount), split(total - amount - fee)]);
      state.proofs.push(...keep);
      save();
      return send;
    } catch (err) {
      if (err instanceof MintError) {
        state.proofs.push(...inputs);
        save();
      }
      throw err;
    }
  }

  function receiveHeader(res) {
    const header = res.headers.get('X-Cashu');
    if (!header || !header.startsWith('cashu')) return 0;
    const token = Cashu.decodeToken(header);
    state.proofs.push(...token.proofs);
    save();
    return sum(token.proofs);
  }

  // ------------------------------------------------------------------ paying

  async function readJson(res) {
    const text = await res.text();
    try { return text ? JSON.parse(text) : {}; } catch (_) { return { detail: text }; }
  }

  function noteBalance(res) {
    const b = res.headers.get('X-Cashu-Balance');
    if (b && state.session) {
      state.session.balance = parseInt(b, 10) || 0;
      save();
    }
  }

  // One paid request with a token of exactly `price` (or the session); returns the answer.
  async function paid(path, price, body) {
    const init = { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body || {}) };
    if ($('mode-session').checked) {
      if (!state.session) throw new Error('open a session first, or pay from the wallet');
      init.headers['X-Cashu-Session'] = state.session.credential;
      const res = await fetch(path, init);
      noteBalance(res);
      const json = await readJson(res);
      if (res.status === 402) throw new Error('the session is empty: ' + (json.detail || 'top it up'));
      if (!res.ok) throw new MintError(res.status, json);
      return json;
    }
    const proofs = await take(price);
    const token = Cashu.encodeTokenV4(ORIGIN, UNIT, proofs);
    const entry = { path, init, token, proofs, at: Date.now() };
    state.pending.push(entry);
    save();
    return settle(entry);
  }

  // Sends a pending payment (again) and settles the wallet from the answer.
  async function settle(entry) {
    const init = Object.assign({}, entry.init, { headers: Object.assign({}, entry.init.headers, { 'X-Cashu': entry.token }) });
    const res = await fetch(entry.path, init); // a network error leaves it pending
    receiveHeader(res);
    const json = await readJson(res);
    let back = [];
    if (!res.ok && !res.headers.get('X-Cashu')) {
      // Refused before it was spent (bad token, wrong amount): the proofs are still ours.
      back = await unspent(entry.proofs);
    }
    state.proofs.push(...back);
    state.pending = state.pending.filter((p) => p.token !== entry.token);
    save();
    if (!res.ok) throw new MintError(res.status, json);
    return json;
  }

  async function resumePending() {
    for (const entry of state.pending.slice()) {
      const left = await unspent(entry.proofs);
      if (left.length === entry.proofs.length) {
        state.proofs.push(...left);
        state.pending = state.pending.filter((p) => p !== entry);
        save();
      } else {
        say('Finishing a game that was interrupted…');
        try {
          const json = await settle(entry);
          showResult(entry.path, json);
        } catch (err) {
          say('An interrupted game could not be finished: ' + err.message, true);
        }
      }
    }
  }

  // ------------------------------------------------------------------ actions

  async function redeem() {
    const text = $('voucher').value.trim();
    if (!text) throw new Error('paste a voucher or token first');
    const token = Cashu.decodeToken(text);
    if (token.mint !== ORIGIN) throw new Error('this token is from ' + token.mint + ', not from this arcade (' + ORIGIN + ')');
    if (token.unit !== UNIT) throw new Error('this token is in ' + token.unit + '; the arcade takes ' + UNIT);
    const inputs = await expandIds(token.proofs);
    const fee = await feeOf(inputs);
    const total = sum(inputs);
    if (total <= fee) throw new Error('the token is worth ' + total + ', less than the fee of ' + fee);
    const [fresh] = await swap(inputs, [split(total - fee)]);
    state.proofs.push(...fresh);
    save();
    $('voucher').value = '';
    say('Redeemed ' + sum(fresh) + ' credits' + (token.memo ? ' (' + token.memo + ')' : '') + '.');
  }

  async function openSession() {
    const amount = parseInt($('session-amount').value, 10);
    if (!Number.isSafeInteger(amount) || amount < 1) throw new Error('enter how many credits to load');
    const path = state.session ? '/cashu/session/topup' : '/cashu/session';
    const proofs = await take(amount);
    const token = Cashu.encodeTokenV4(ORIGIN, UNIT, proofs);
    const headers = { 'X-Cashu': token };
    if (state.session) headers['X-Cashu-Session'] = state.session.credential;
    const entry = { path, init: { method: 'POST', headers }, token, proofs, at: Date.now() };
    state.pending.push(entry);
    save();
    const json = await settle(entry);
    state.session = { credential: json.session, balance: json.balance };
    save();
    $('mode-session').checked = true;
    say('Session holds ' + json.balance + ' credits.');
  }

  async function closeSession() {
    if (!state.session) return;
    const res = await fetch('/cashu/session', { method: 'DELETE', headers: { 'X-Cashu-Session': state.session.credential } });
    const json = await readJson(res);
    // 401: the session is closed or unknown already; forget it either way.
    if (!res.ok && res.status !== 401) throw new MintError(res.status, json);
    let got = 0;
    if (json.token) {
      const token = Cashu.decodeToken(json.token);
      state.proofs.push(...token.proofs);
      got = sum(token.proofs);
    }
    state.session = null;
    $('mode-wallet').checked = true;
    save();
    say('Session closed: ' + got + ' credits back in this browser.');
  }

  function showResult(path, json) {
    if (path.indexOf('pinball') >= 0) {
      $('pinball-result').textContent = 'Score ' + json.score + (json.rank ? ' (#' + json.rank + ' on the board)' : '');
    } else if (path.indexOf('racer') >= 0) {
      $('race-result').textContent = 'Drove ' + json.minutes + ' min, charged ' + json.charged + ' ' + json.unit + '.';
    }
  }

  let catalogue = null;
  async function refreshCatalogue() {
    catalogue = await api('GET', '/games');
    const list = $('scores');
    list.textContent = '';
    for (const s of catalogue.scores || []) {
      const li = document.createElement('li');
      li.textContent = s.player + ' ' + s.score;
      list.appendChild(li);
    }
    const pin = catalogue.games.find((g) => g.id === 'pinball');
    const racer = catalogue.games.find((g) => g.id === 'racer');
    $('pinball-price').textContent = pin.price + ' credits per play';
    $('racer-price').textContent = racer.price + ' credit per minute';
    $('racer-terms').textContent = 'Starting reserves ' + racer.reserve + ' credits (' + racer.max_minutes +
      ' minutes); you pay each started minute and get the rest back when you stop.';
  }

  function game(id) {
    return catalogue.games.find((g) => g.id === id);
  }

  async function playPinball() {
    $('pinball-result').textContent = '…';
    const g = game('pinball');
    const json = await paid(g.path, g.price, { player: $('player').value });
    showResult(g.path, json);
    await refreshCatalogue();
  }

  let race = null;
  async function startRace() {
    const g = game('racer');
    const run = Cashu.randomHex(12);
    const started = Date.now();
    race = { run, timer: setInterval(() => {
      const s = Math.floor((Date.now() - started) / 1000);
      $('race-clock').textContent = Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0');
    }, 250) };
    $('race-start').disabled = true;
    $('race-stop').disabled = false;
    $('race-result').textContent = 'Driving…';
    try {
      const json = await paid(g.path + '?run=' + run, g.reserve);
      showResult(g.path, json);
    } finally {
      clearInterval(race.timer);
      race = null;
      $('race-start').disabled = false;
      $('race-stop').disabled = true;
    }
  }

  async function stopRace() {
    if (!race) return;
    await api('POST', game('racer').stop + '?run=' + race.run);
  }

  async function cashOut() {
    const proofs = state.proofs.slice();
    if (proofs.length === 0) throw new Error('there is no credit in this browser');
    const token = Cashu.encodeTokenV4(ORIGIN, UNIT, proofs);
    state.proofs = [];
    save();
    $('cashout-token').value = token;
    $('cashout-token').hidden = false;
    say('Copy this token now: it holds ' + sum(proofs) + ' credits and is no longer in this browser.');
  }

  function action(button, fn) {
    $(button).addEventListener('click', async () => {
      $(button).disabled = true;
      try {
        await fn();
      } catch (err) {
        say(err.message, true);
      } finally {
        if (button === 'race-stop') $(button).disabled = !race;
        else if (button === 'race-start') $(button).disabled = !!race;
        else $(button).disabled = false;
        render();
      }
    });
  }

  async function init() {
    $('player').value = state.player;
    $('player').addEventListener('change', () => {
      state.player = $('player').value;
      save();
    });
    action('redeem', redeem);
    action('open-session', openSession);
    action('close-session', closeSession);
    action('play-pinball', playPinball);
    action('race-start', startRace);
    action('race-stop', stopRace);
    action('cashout', cashOut);
    if (state.session) $('mode-session').checked = true;
    render();
    try {
      await refreshCatalogue();
      await recoverSwaps();
      await resumePending();
    } catch (err) {
      say(err.message, true);
    }
    render();
    document.body.dataset.ready = '1';
  }

  init();
})();
