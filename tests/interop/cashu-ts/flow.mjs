// A new user's flow with the cashu-ts wallet against a running coinslotd:
// top up, send, receive, double spend refused, checkstate, restore from seed.
// Usage: node flow.mjs http://127.0.0.1:PORT   (exits non-zero on any failure)
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Wallet, getEncodedToken } from '@cashu/cashu-ts';

const url = process.argv[2];
assert.ok(url, 'usage: node flow.mjs MINT_URL');
const total = (proofs) => proofs.reduce((sum, p) => sum + Number(p.amount), 0);
const seed = randomBytes(64);

const alice = new Wallet(url, { unit: 'sat', bip39seed: seed });
await alice.loadMint();
const quote = await alice.createMintQuoteBolt11(64);
assert.equal(quote.state, 'PAID', 'the fake backend pays at once');
const proofs = await alice.mintProofsBolt11(64, quote.quote);
assert.equal(total(proofs), 64);

const { keep, send } = await alice.send(21, proofs);
assert.equal(total(send), 21);
assert.equal(total(keep), 43);
const token = getEncodedToken({ mint: url, proofs: send, unit: 'sat' });
assert.ok(token.startsWith('cashuB'));

const bob = new Wallet(url, { unit: 'sat' });
await bob.loadMint();
assert.equal(total(await bob.receive(token)), 21);
await assert.rejects(bob.receive(token), (e) => e.code === 11001, 'double spend must fail with 11001');

const states = await alice.checkProofsStates(send);
assert.deepEqual(states.map((s) => s.state), send.map(() => 'SPENT'));

const restoredWallet = new Wallet(url, { unit: 'sat', bip39seed: seed });
await restoredWallet.loadMint();
const restored = await restoredWallet.batchRestore();
const restoredStates = await restoredWallet.checkProofsStates(restored.proofs);
const unspent = restored.proofs.filter((_, i) => restoredStates[i].state === 'UNSPENT');
assert.equal(total(unspent), 43, 'restore finds the unspent change');

console.log('cashu-ts flow ok');
