// Coinslot top-up page: the Cashu wallet crypto, in plain JavaScript.
//
// Why hand-written: `crypto.subtle` only exists in secure contexts (https or localhost). A
// phone on the LAN opening http://192.168.x.y:3338/ has no `crypto.subtle`, so SHA-256 and
// secp256k1 are done here with BigInt. `crypto.getRandomValues` *is* available everywhere
// and is the only randomness used. No third-party code: every line here is ours.
//
// What is here:
//   sha256                        FIPS 180-4
//   secp256k1 point arithmetic    Jacobian coordinates, affine at the edges
//   hashToCurve                   NUT-00
//   blind / unblind               NUT-00 BDHKE: B_ = Y + r·G, C = C_ − r·K
//   verifyDleq                    NUT-12 (the mint proves C_ = k·B_ for its published K)
//   splitAmount                   powers of two the keyset has keys for
//   encodeTokenV4                 NUT-00 "cashuB" (CBOR + base64url, no padding)
//   decodeToken                   NUT-00 "cashuB" and "cashuA" back into proofs
//
// Timing: BigInt arithmetic is not constant-time. The secrets handled here (blinding
// factors) live in one browser tab for a few milliseconds, which we accept.
(function (global) {
  'use strict';

  // ---------------------------------------------------------------- bytes and hex

  const utf8 = new TextEncoder();

  function hexToBytes(hex) {
    if (typeof hex !== 'string' || hex.length % 2 !== 0 || /[^0-9a-fA-F]/.test(hex)) {
      throw new Error('not a hex string: ' + String(hex).slice(0, 80));
    }
    const out = new Uint8Array(hex.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
    return out;
  }

  function bytesToHex(bytes) {
    let s = '';
    for (let i = 0; i < bytes.length; i++) s += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
    return s;
  }

  function concatBytes() {
    let len = 0;
    for (const a of arguments) len += a.length;
    const out = new Uint8Array(len);
    let off = 0;
    for (const a of arguments) {
      out.set(a, off);
      off += a.length;
    }
    return out;
  }

  function randomBytes(n) {
    const out = new Uint8Array(n);
    global.crypto.getRandomValues(out);
    return out;
  }

  function bigToHex32(x) {
    return x.toString(16).padStart(64, '0');
  }

  function bytesToBig(bytes) {
    return bytes.length === 0 ? 0n : BigInt('0x' + bytesToHex(bytes));
  }

  // ---------------------------------------------------------------- SHA-256 (FIPS 180-4)

  const K256 = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ]);

  /** SHA-256 of a Uint8Array (or a string, taken as UTF-8). Returns 32 bytes. */
  function sha256(input) {
    const msg = typeof input === 'string' ? utf8.encode(input) : input;
    // Padding: 0x80, zeros, then the bit length as a 64-bit big-endian number.
    const blocks = Math.ceil((msg.length + 9) / 64);
    const buf = new Uint8Array(blocks * 64);
    buf.set(msg);
    buf[msg.length] = 0x80;
    const bitLen = msg.length * 8;
    const view = new DataView(buf.buffer);
    view.setUint32(buf.length - 8, Math.floor(bitLen / 0x100000000));
    view.setUint32(buf.length - 4, bitLen >>> 0);

    const h = new Uint32Array([
      0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ]);
    const w = new Uint32Array(64);
    const rotr = (x, n) => (x >>> n) | (x << (32 - n));
    for (let off = 0; off < buf.length; off += 64) {
      for (let t = 0; t < 16; t++) w[t] = view.getUint32(off + t * 4);
      for (let t = 16; t < 64; t++) {
        const s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >>> 3);
        const s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >>> 10);
        w[t] = (w[t - 16] + s0 + w[t - 7] + s1) >>> 0;
      }
      let a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
      for (let t = 0; t < 64; t++) {
        const S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        const ch = (e & f) ^ (~e & g);
        const t1 = (k + S1 + ch + K256[t] + w[t]) >>> 0;
        const S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        const maj = (a & b) ^ (a & c) ^ (b & c);
        const t2 = (S0 + maj) >>> 0;
        k = g;
        g = f;
        f = e;
        e = (d + t1) >>> 0;
        d = c;
        c = b;
        b = a;
        a = (t1 + t2) >>> 0;
      }
      h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
    }
    const out = new Uint8Array(32);
    const outView = new DataView(out.buffer);
    for (let i = 0; i < 8; i++) outView.setUint32(i * 4, h[i]);
    return out;
  }

  // ---------------------------------------------------------------- secp256k1

  // y² = x³ + 7 over the prime field P; G generates a group of prime order N.
  const P = 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2fn;
  const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
  const G = {
    x: 0x79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798n,
    y: 0x483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8n,
  };

  function mod(a, m) {
    const r = a % m;
    return r < 0n ? r + m : r;
  }

  function powMod(base, exp, m) {
    let result = 1n;
    let b = mod(base, m);
    let e = exp;
    while (e > 0n) {
      if (e & 1n) result = (result * b) % m;
      b = (b * b) % m;
      e >>= 1n;
    }
    return result;
  }

  // Inverse by the extended Euclidean algorithm (a must be non-zero mod m).
  function invMod(a, m) {
    let [r0, r1] = [mod(a, m), m];
    let [s0, s1] = [1n, 0n];
    while (r1 !== 0n) {
      const q = r0 / r1;
      [r0, r1] = [r1, r0 - q * r1];
      [s0, s1] = [s1, s0 - q * s1];
    }
    if (r0 !== 1n) throw new Error('no inverse');
    return mod(s0, m);
  }

  // Affine points are {x, y} (BigInt); null is the point at infinity. Internally the
  // arithmetic runs in Jacobian coordinates [X, Y, Z] (x = X/Z², y = Y/Z³) to avoid an
  // inversion per step; Z = 0n is infinity.
  const INF = [0n, 1n, 0n];

  function toJacobian(pt) {
    return pt === null ? INF : [pt.x, pt.y, 1n];
  }

  function toAffine(j) {
    const [X, Y, Z] = j;
    if (Z === 0n) return null;
    const zi = invMod(Z, P);
    const zi2 = (zi * zi) % P;
    return { x: (X * zi2) % P, y: (Y * zi2 * zi) % P };
  }

  function jDouble(j) {
    const [X, Y, Z] = j;
    if (Z === 0n || Y === 0n) return INF;
    const YY = (Y * Y) % P;
    const S = (4n * X * YY) % P;
    const M = (3n * X * X) % P; // a = 0 on secp256k1
    const X3 = mod(M * M - 2n * S, P);
    const Y3 = mod(M * (S - X3) - 8n * YY * YY, P);
    const Z3 = (2n * Y * Z) % P;
    return [X3, Y3, Z3];
  }

  function jAdd(a, b) {
    if (a[2] === 0n) return b;
    if (b[2] === 0n) return a;
    const [X1, Y1, Z1] = a;
    const [X2, Y2, Z2] = b;
    const Z1Z1 = (Z1 * Z1) % P;
    const Z2Z2 = (Z2 * Z2) % P;
    const U1 = (X1 * Z2Z2) % P;
    const U2 = (X2 * Z1Z1) % P;
    const S1 = (Y1 * Z2 * Z2Z2) % P;
    const S2 = (Y2 * Z1 * Z1Z1) % P;
    if (U1 === U2) return S1 === S2 ? jDouble(a) : INF;
    const H = mod(U2 - U1, P);
    const R = mod(S2 - S1, P);
    const HH = (H * H) % P;
    const HHH = (HH * H) % P;
    const V = (U1 * HH) % P;
    const X3 = mod(R * R - HHH - 2n * V, P);
    const Y3 = mod(R * (V - X3) - S1 * HHH, P);
    const Z3 = (H * Z1 * Z2) % P;
    return [X3, Y3, Z3];
  }

  function pointAdd(a, b) {
    return toAffine(jAdd(toJacobian(a), toJacobian(b)));
  }

  function pointNeg(a) {
    return a === null ? null : { x: a.x, y: mod(-a.y, P) };
  }

  /** k·pt by double-and-add, most significant bit first. */
  function pointMul(pt, k) {
    const scalar = mod(k, N);
    let acc = INF;
    const base = toJacobian(pt);
    for (let i = BigInt(scalar.toString(2).length - 1); i >= 0n; i--) {
      acc = jDouble(acc);
      if ((scalar >> i) & 1n) acc = jAdd(acc, base);
    }
    return toAffine(acc);
  }

  // The square root of a mod P, or null. P ≡ 3 (mod 4), so a^((P+1)/4) is a root when one
  // exists; squaring it back tells whether it does.
  function sqrtModP(a) {
    const r = powMod(a, (P + 1n) / 4n, P);
    return (r * r) % P === mod(a, P) ? r : null;
  }

  function liftX(x, odd) {
    if (x >= P) return null;
    const y = sqrtModP((x * x * x + 7n) % P);
    if (y === null) return null;
    return { x, y: (y & 1n) === (odd ? 1n : 0n) ? y : P - y };
  }

  /** Parses a SEC1 public key (33-byte compressed or 65-byte uncompressed, hex). */
  function pointFromHex(hex) {
    const bytes = hexToBytes(hex);
    if (bytes.length === 33 && (bytes[0] === 2 || bytes[0] === 3)) {
      const pt = liftX(bytesToBig(bytes.subarray(1)), bytes[0] === 3);
      if (pt === null) throw new Error('not a point on secp256k1: ' + hex);
      return pt;
    }
    if (bytes.length === 65 && bytes[0] === 4) {
      const pt = { x: bytesToBig(bytes.subarray(1, 33)), y: bytesToBig(bytes.subarray(33)) };
      if (pt.x >= P || pt.y >= P || mod(pt.y * pt.y - pt.x * pt.x * pt.x - 7n, P) !== 0n) {
        throw new Error('not a point on secp256k1: ' + hex);
      }
      return pt;
    }
    throw new Error('not a public key: ' + String(hex).slice(0, 80));
  }

  /** Compressed SEC1 hex (66 chars). */
  function pointToHex(pt) {
    if (pt === null) throw new Error('the point at infinity has no encoding');
    return ((pt.y & 1n) === 1n ? '03' : '02') + bigToHex32(pt.x);
  }

  function pointToUncompressedHex(pt) {
    if (pt === null) throw new Error('the point at infinity has no encoding');
    return '04' + bigToHex32(pt.x) + bigToHex32(pt.y);
  }

  // ---------------------------------------------------------------- NUT-00 / NUT-12

  const DOMAIN_SEPARATOR = utf8.encode('Secp256k1_HashToCurve_Cashu_');

  /**
   * NUT-00 hash_to_curve: msg_hash = SHA256(domain || message); then for counter = 0, 1, …
   * the first SHA256(msg_hash || counter as uint32 little-endian) that is the x-coordinate
   * of a point gives the point with even y (prefix 02).
   */
  function hashToCurve(message) {
    const msgHash = sha256(concatBytes(DOMAIN_SEPARATOR, message));
    const counter = new Uint8Array(4);
    for (let i = 0; i < 65536; i++) {
      new DataView(counter.buffer).setUint32(0, i, true);
      const x = bytesToBig(sha256(concatBytes(msgHash, counter)));
      const pt = liftX(x, false);
      if (pt !== null) return pt;
    }
    throw new Error('hash_to_curve found no point');
  }

  /** A random scalar in [1, N-1]. */
  function randomScalar() {
    for (;;) {
      const k = bytesToBig(randomBytes(32));
      if (k > 0n && k < N) return k;
    }
  }

  /** A new proof secret: 64 lowercase hex characters from 32 random bytes. */
  function randomSecret() {
    return bytesToHex(randomBytes(32));
  }

  /** Random lowercase hex of `n` bytes (subscription ids and such). */
  function randomHex(n) {
    return bytesToHex(randomBytes(n));
  }

  /**
   * Blinds a secret (a string; its UTF-8 bytes are hashed). Returns hex strings:
   * Y = hash_to_curve(secret), r (the blinding factor, random unless given) and
   * B_ = Y + r·G, which is what the mint sees.
   */
  function blind(secret, rHex) {
    const Y = hashToCurve(utf8.encode(secret));
    const r = rHex === undefined ? randomScalar() : BigInt('0x' + rHex);
    if (r <= 0n || r >= N) throw new Error('blinding factor out of range');
    const B = pointAdd(Y, pointMul(G, r));
    return { Y: pointToHex(Y), r: bigToHex32(r), B_: pointToHex(B) };
  }

  /** Unblinds the mint's signature: C = C_ − r·K, with K the mint's key for the amount. */
  function unblind(cHex, rHex, kHex) {
    const C_ = pointFromHex(cHex);
    const K = pointFromHex(kHex);
    const rK = pointMul(K, BigInt('0x' + rHex));
    return pointToHex(pointAdd(C_, pointNeg(rK)));
  }

  /**
   * NUT-12: checks the mint's DLEQ proof (e, s) that C_ = a·B_ for the same a as A = a·G:
   * R1 = s·G − e·A, R2 = s·B_ − e·C_, and e must equal
   * SHA256(hex(R1) || hex(R2) || hex(A) || hex(C_)) over uncompressed hex strings.
   */
  function verifyDleq(bHex, cHex, eHex, sHex, aHex) {
    const B_ = pointFromHex(bHex);
    const C_ = pointFromHex(cHex);
    const A = pointFromHex(aHex);
    const e = BigInt('0x' + eHex);
    const s = BigInt('0x' + sHex);
    if (e <= 0n || e >= N || s <= 0n || s >= N) return false;
    const R1 = pointAdd(pointMul(G, s), pointNeg(pointMul(A, e)));
    const R2 = pointAdd(pointMul(B_, s), pointNeg(pointMul(C_, e)));
    if (R1 === null || R2 === null) return false;
    const digest = sha256(
      pointToUncompressedHex(R1) + pointToUncompressedHex(R2) +
      pointToUncompressedHex(A) + pointToUncompressedHex(C_),
    );
    return bytesToHex(digest) === bigToHex32(e);
  }

  /**
   * Splits `amount` into the fewest proofs the keyset can sign: greedily from the largest
   * key amount down (keyset amounts are powers of two, so this is the binary expansion).
   */
  function splitAmount(amount, keyAmounts) {
    if (!Number.isSafeInteger(amount) || amount <= 0) throw new Error('amount must be a positive integer');
    const sorted = keyAmounts.filter((a) => Number.isSafeInteger(a) && a > 0).sort((a, b) => b - a);
    const out = [];
    let rest = amount;
    for (const a of sorted) {
      while (rest >= a) {
        out.push(a);
        rest -= a;
        if (out.length > 1000) throw new Error('amount needs too many proofs');
      }
    }
    if (rest !== 0) throw new Error('the keyset cannot represent ' + amount);
    return out.sort((a, b) => a - b);
  }

  // ---------------------------------------------------------------- CBOR + token V4

  // The few CBOR (RFC 8949) items a token needs: unsigned ints, byte and text strings,
  // arrays and maps with text keys (kept in insertion order).
  function cborHead(major, n) {
    const m = major << 5;
    if (n < 24) return [m | n];
    if (n < 0x100) return [m | 24, n];
    if (n < 0x10000) return [m | 25, n >> 8, n & 0xff];
    if (n < 0x100000000) return [m | 26, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
    const big = BigInt(n);
    const out = [m | 27];
    for (let i = 7n; i >= 0n; i--) out.push(Number((big >> (i * 8n)) & 0xffn));
    return out;
  }

  function cborEncode(value) {
    const out = [];
    const push = (bytes) => {
      for (let i = 0; i < bytes.length; i++) out.push(bytes[i]);
    };
    (function enc(v) {
      if (typeof v === 'number') {
        if (!Number.isSafeInteger(v) || v < 0) throw new Error('CBOR: only unsigned integers');
        push(cborHead(0, v));
      } else if (v instanceof Uint8Array) {
        push(cborHead(2, v.length));
        push(v);
      } else if (typeof v === 'string') {
        const b = utf8.encode(v);
        push(cborHead(3, b.length));
        push(b);
      } else if (Array.isArray(v)) {
        push(cborHead(4, v.length));
        v.forEach(enc);
      } else if (v !== null && typeof v === 'object') {
        const keys = Object.keys(v).filter((k) => v[k] !== undefined);
        push(cborHead(5, keys.length));
        for (const k of keys) {
          enc(k);
          enc(v[k]);
        }
      } else {
        throw new Error('CBOR: unsupported value');
      }
    })(value);
    return new Uint8Array(out);
  }

  const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

  function base64UrlEncode(bytes) {
    let s = '';
    for (let i = 0; i < bytes.length; i += 3) {
      const n = (bytes[i] << 16) | ((bytes[i + 1] || 0) << 8) | (bytes[i + 2] || 0);
      const chars = Math.min(4, Math.ceil(((bytes.length - i) * 8) / 6));
      for (let j = 0; j < chars; j++) s += B64URL[(n >> (18 - 6 * j)) & 63];
    }
    return s;
  }

  function base64UrlDecode(text) {
    const clean = String(text).replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
    const out = [];
    let bits = 0;
    let value = 0;
    for (const ch of clean) {
      const v = B64URL.indexOf(ch);
      if (v < 0) throw new Error('not base64: unexpected character ' + JSON.stringify(ch));
      value = (value << 6) | v;
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out.push((value >> bits) & 0xff);
      }
    }
    return new Uint8Array(out);
  }

  // Decodes the CBOR items a token holds (the inverse of cborEncode, plus floats and simple
  // values skipped as null). Lengths are checked against the input, so garbage cannot make
  // it allocate or loop.
  function cborDecode(bytes) {
    let i = 0;
    const need = (n) => {
      if (i + n > bytes.length) throw new Error('CBOR: truncated');
    };
    const readN = (info) => {
      if (info < 24) return info;
      const size = { 24: 1, 25: 2, 26: 4, 27: 8 }[info];
      if (!size) throw new Error('CBOR: unsupported length encoding');
      need(size);
      let n = 0n;
      for (let k = 0; k < size; k++) n = (n << 8n) | BigInt(bytes[i++]);
      if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('CBOR: number too large');
      return Number(n);
    };
    const item = (depth) => {
      if (depth > 16) throw new Error('CBOR: nested too deeply');
      need(1);
      const head = bytes[i++];
      const major = head >> 5;
      const info = head & 31;
      if (major === 7) {
        if (info === 20) return false;
        if (info === 21) return true;
        if (info === 22 || info === 23) return null;
        throw new Error('CBOR: unsupported simple value');
      }
      const n = readN(info);
      switch (major) {
        case 0: return n;
        case 2: { need(n); const b = bytes.slice(i, i + n); i += n; return b; }
        case 3: { need(n); const t = new TextDecoder('utf-8', { fatal: true }).decode(bytes.slice(i, i + n)); i += n; return t; }
        case 4: { need(n); const a = []; for (let k = 0; k < n; k++) a.push(item(depth + 1)); return a; }
        case 5: {
          need(n);
          const o = {};
          for (let k = 0; k < n; k++) {
            const key = item(depth + 1);
            if (typeof key !== 'string') throw new Error('CBOR: map keys must be text');
            o[key] = item(depth + 1);
          }
          return o;
        }
        case 6: return item(depth + 1); // a tag: keep the tagged item
        default: throw new Error('CBOR: unsupported major type ' + major);
      }
    };
    const value = item(0);
    if (i !== bytes.length) throw new Error('CBOR: trailing bytes');
    return value;
  }

  /**
   * Reads a token (NUT-00 "cashuB" V4, or the older JSON "cashuA" V3 with one mint) into
   * { mint, unit, memo, proofs: [{ id, amount, secret, C, witness? }] }. Keyset ids stay as
   * the token has them (V4 ones are often short: expand them from /v1/keysets).
   */
  function decodeToken(text) {
    const token = String(text || '').trim().replace(/^cashu:/, '');
    if (token.startsWith('cashuB')) {
      const t = cborDecode(base64UrlDecode(token.slice(6)));
      if (!t || typeof t.m !== 'string' || typeof t.u !== 'string' || !Array.isArray(t.t)) {
        throw new Error('not a cashuB token: it needs a mint (m), a unit (u) and proofs (t)');
      }
      const proofs = [];
      for (const group of t.t) {
        if (!(group.i instanceof Uint8Array) || !Array.isArray(group.p)) throw new Error('cashuB token: bad keyset entry');
        for (const p of group.p) {
          if (!Number.isSafeInteger(p.a) || typeof p.s !== 'string' || !(p.c instanceof Uint8Array)) {
            throw new Error('cashuB token: bad proof');
          }
          const proof = { id: bytesToHex(group.i), amount: p.a, secret: p.s, C: bytesToHex(p.c) };
          if (typeof p.w === 'string') proof.witness = p.w;
          proofs.push(proof);
        }
      }
      return { mint: t.m.replace(/\/+$/, ''), unit: t.u, memo: typeof t.d === 'string' ? t.d : '', proofs };
    }
    if (token.startsWith('cashuA')) {
      const t = JSON.parse(new TextDecoder().decode(base64UrlDecode(token.slice(6))));
      const entries = Array.isArray(t.token) ? t.token : [];
      if (entries.length !== 1 || !Array.isArray(entries[0].proofs)) {
        throw new Error('cashuA token: only tokens from one mint are supported');
      }
      const proofs = entries[0].proofs.map((p) => {
        if (!Number.isSafeInteger(p.amount) || typeof p.secret !== 'string' || typeof p.C !== 'string' || typeof p.id !== 'string') {
          throw new Error('cashuA token: bad proof');
        }
        return { id: p.id, amount: p.amount, secret: p.secret, C: p.C };
      });
      return { mint: String(entries[0].mint || '').replace(/\/+$/, ''), unit: t.unit || 'sat', memo: t.memo || '', proofs };
    }
    throw new Error('not a Cashu token: it should start with cashuB (or cashuA)');
  }

  /**
   * A NUT-00 V4 token: "cashuB" + base64url(CBOR {m: mint url, u: unit,
   * t: [{i: keyset id bytes, p: [{a: amount, s: secret, c: C bytes}]}]}).
   * Keyset ids go in short form: their first 8 bytes (a v1 id is exactly that long; a v2 id
   * is shortened to its version byte and 7 bytes, which wallets expand from /v1/keysets).
   */
  function encodeTokenV4(mintUrl, unit, proofs, memo) {
    const byKeyset = new Map();
    for (const p of proofs) {
      if (!byKeyset.has(p.id)) byKeyset.set(p.id, []);
      byKeyset.get(p.id).push({ a: p.amount, s: p.secret, c: hexToBytes(p.C) });
    }
    const token = { m: mintUrl, u: unit };
    if (memo) token.d = memo;
    token.t = Array.from(byKeyset, ([id, ps]) => ({ i: hexToBytes(id.slice(0, 16)), p: ps }));
    return 'cashuB' + base64UrlEncode(cborEncode(token));
  }

  global.CoinslotCashu = {
    sha256,
    hexToBytes,
    bytesToHex,
    pointFromHex,
    pointToHex,
    pointAdd,
    pointMul,
    G,
    N,
    hashToCurve: (bytes) => pointToHex(hashToCurve(bytes)),
    hashToCurveHex: (hex) => pointToHex(hashToCurve(hexToBytes(hex))),
    blind,
    unblind,
    verifyDleq,
    splitAmount,
    randomSecret,
    randomHex,
    cborEncode,
    base64UrlEncode,
    base64UrlDecode,
    cborDecode,
    encodeTokenV4,
    decodeToken,
  };
})(window);
