// Coinslot top-up page: a QR code encoder (ISO/IEC 18004), written for this page.
//
// Byte mode only (invoices and tokens are ASCII), error correction L, M, Q or H,
// versions 1–40, Reed–Solomon over GF(256), all eight masks scored by the standard penalty
// rules, format and version information. `draw` paints the result on a <canvas> with a
// whole number of device pixels per module, so it stays sharp and scannable.
(function (global) {
  'use strict';

  // Error correction levels: `row` indexes the tables below, `bits` is the format field.
  const LEVELS = {
    L: { row: 0, bits: 1 },
    M: { row: 1, bits: 0 },
    Q: { row: 2, bits: 3 },
    H: { row: 3, bits: 2 },
  };

  // Error correction codewords per block, by level and version (index 0 unused).
  const ECC_PER_BLOCK = [
    [0, 7, 10, 15, 20, 26, 18, 20, 24, 30, 18, 20, 24, 26, 30, 22, 24, 28, 30, 28, 28, 28, 28, 30, 30, 26, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30],
    [0, 10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26, 26, 26, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28],
    [0, 13, 22, 18, 26, 18, 24, 18, 22, 20, 24, 28, 26, 24, 20, 30, 24, 28, 28, 26, 30, 28, 30, 30, 30, 30, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30],
    [0, 17, 28, 22, 16, 22, 28, 26, 26, 24, 28, 24, 28, 22, 24, 24, 30, 28, 28, 26, 28, 30, 24, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30],
  ];

  // Number of error correction blocks, by level and version (index 0 unused).
  const BLOCKS = [
    [0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 4, 6, 6, 6, 6, 7, 8, 8, 9, 9, 10, 12, 12, 12, 13, 14, 15, 16, 17, 18, 19, 19, 20, 21, 22, 24, 25],
    [0, 1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16, 17, 17, 18, 20, 21, 23, 25, 26, 28, 29, 31, 33, 35, 37, 38, 40, 43, 45, 47, 49],
    [0, 1, 1, 2, 2, 4, 4, 6, 6, 8, 8, 8, 10, 12, 16, 12, 17, 16, 18, 21, 20, 23, 23, 25, 27, 29, 34, 34, 35, 38, 40, 43, 45, 48, 51, 53, 56, 59, 62, 65, 68],
    [0, 1, 1, 2, 4, 4, 4, 5, 6, 8, 8, 11, 11, 16, 16, 18, 16, 19, 21, 25, 25, 25, 34, 30, 32, 35, 37, 40, 42, 45, 48, 51, 54, 57, 60, 63, 66, 70, 74, 77, 81],
  ];

  // ---------------------------------------------------------------- GF(256), Reed–Solomon

  // Field with the primitive polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11d), generator 2.
  const EXP = new Uint8Array(512);
  const LOG = new Uint8Array(256);
  (function () {
    let x = 1;
    for (let i = 0; i < 255; i++) {
      EXP[i] = x;
      LOG[x] = i;
      x <<= 1;
      if (x & 0x100) x ^= 0x11d;
    }
    for (let i = 255; i < 512; i++) EXP[i] = EXP[i - 255];
  })();

  function gfMul(a, b) {
    return a === 0 || b === 0 ? 0 : EXP[LOG[a] + LOG[b]];
  }

  // Generator polynomial (x − α^0)(x − α^1)…(x − α^(degree−1)), highest coefficient first.
  const generators = new Map();
  function generator(degree) {
    if (generators.has(degree)) return generators.get(degree);
    let g = [1];
    for (let i = 0; i < degree; i++) {
      const next = new Array(g.length + 1).fill(0);
      for (let j = 0; j < g.length; j++) {
        next[j] ^= g[j];
        next[j + 1] ^= gfMul(g[j], EXP[i]);
      }
      g = next;
    }
    generators.set(degree, g);
    return g;
  }

  // The remainder of data(x)·x^degree divided by the generator: the ECC codewords.
  function rsRemainder(data, degree) {
    const gen = generator(degree);
    const rem = new Array(degree).fill(0);
    for (const byte of data) {
      const factor = byte ^ rem[0];
      rem.shift();
      rem.push(0);
      for (let j = 0; j < degree; j++) rem[j] ^= gfMul(gen[j + 1], factor);
    }
    return rem;
  }

  // ---------------------------------------------------------------- the symbol grid

  function alignmentPositions(version) {
    if (version === 1) return [];
    const count = Math.floor(version / 7) + 2;
    const last = version * 4 + 10;
    const step = version === 32 ? 26 : Math.ceil((last - 6) / (count - 1) / 2) * 2;
    const out = [6];
    for (let pos = last - step * (count - 2); pos <= last; pos += step) out.push(pos);
    return out;
  }

  function formatBits(level, mask) {
    const data = (LEVELS[level].bits << 3) | mask;
    let rem = data;
    for (let i = 0; i < 10; i++) rem = (rem << 1) ^ ((rem >>> 9) * 0x537);
    return ((data << 10) | (rem & 0x3ff)) ^ 0x5412;
  }

  function versionBits(version) {
    let rem = version;
    for (let i = 0; i < 12; i++) rem = (rem << 1) ^ ((rem >>> 11) * 0x1f25);
    return (version << 12) | (rem & 0xfff);
  }

  class Grid {
    constructor(version) {
      this.version = version;
      this.size = version * 4 + 17;
      this.dark = new Uint8Array(this.size * this.size);
      this.fixed = new Uint8Array(this.size * this.size); // function patterns: not data
    }

    set(x, y, dark) {
      const i = y * this.size + x;
      this.dark[i] = dark ? 1 : 0;
      this.fixed[i] = 1;
    }

    drawFunctionPatterns() {
      const n = this.size;
      for (let i = 0; i < n; i++) {
        this.set(6, i, i % 2 === 0);
        this.set(i, 6, i % 2 === 0);
      }
      for (const [cx, cy] of [[3, 3], [n - 4, 3], [3, n - 4]]) {
        // 7×7 finder (rings: dark, light, dark 3×3 core) plus a light separator.
        for (let dy = -4; dy <= 4; dy++) {
          for (let dx = -4; dx <= 4; dx++) {
            const x = cx + dx;
            const y = cy + dy;
            if (x < 0 || y < 0 || x >= n || y >= n) continue;
            const ring = Math.max(Math.abs(dx), Math.abs(dy));
            this.set(x, y, ring !== 2 && ring !== 4);
          }
        }
      }
      const pos = alignmentPositions(this.version);
      const last = pos.length - 1;
      for (let i = 0; i <= last; i++) {
        for (let j = 0; j <= last; j++) {
          if ((i === 0 && j === 0) || (i === 0 && j === last) || (i === last && j === 0)) continue;
          for (let dy = -2; dy <= 2; dy++) {
            for (let dx = -2; dx <= 2; dx++) {
              this.set(pos[i] + dx, pos[j] + dy, Math.max(Math.abs(dx), Math.abs(dy)) !== 1);
            }
          }
        }
      }
      this.drawFormat(0); // reserves the area; drawn for real after choosing the mask
      if (this.version >= 7) {
        const bits = versionBits(this.version);
        for (let i = 0; i < 18; i++) {
          const bit = (bits >>> i) & 1;
          const a = n - 11 + (i % 3);
          const b = Math.floor(i / 3);
          this.set(a, b, bit);
          this.set(b, a, bit);
        }
      }
    }

    drawFormat(bits) {
      const n = this.size;
      const bit = (i) => (bits >>> i) & 1;
      // Copy 1, around the top-left finder.
      for (let i = 0; i <= 5; i++) this.set(8, i, bit(i));
      this.set(8, 7, bit(6));
      this.set(8, 8, bit(7));
      this.set(7, 8, bit(8));
      for (let i = 9; i < 15; i++) this.set(14 - i, 8, bit(i));
      // Copy 2, split between the top-right and bottom-left finders.
      for (let i = 0; i < 8; i++) this.set(n - 1 - i, 8, bit(i));
      for (let i = 8; i < 15; i++) this.set(8, n - 15 + i, bit(i));
      this.set(8, n - 8, 1); // the dark module
    }

    // Data bits go in two-module columns from the right edge, snaking up then down,
    // stepping over the vertical timing pattern at x = 6.
    placeData(codewords) {
      const n = this.size;
      const total = codewords.length * 8;
      let i = 0;
      for (let right = n - 1; right >= 1; right -= 2) {
        if (right === 6) right = 5;
        const upward = ((right + 1) & 2) === 0;
        for (let step = 0; step < n; step++) {
          const y = upward ? n - 1 - step : step;
          for (let dx = 0; dx < 2; dx++) {
            const idx = y * n + (right - dx);
            if (this.fixed[idx]) continue;
            if (i < total) {
              this.dark[idx] = (codewords[i >>> 3] >>> (7 - (i & 7))) & 1;
              i++;
            } // remainder bits stay 0
          }
        }
      }
    }

    applyMask(mask) {
      const n = this.size;
      for (let y = 0; y < n; y++) {
        for (let x = 0; x < n; x++) {
          const idx = y * n + x;
          if (!this.fixed[idx] && maskBit(mask, x, y)) this.dark[idx] ^= 1;
        }
      }
    }

    dataModules() {
      let count = 0;
      for (const f of this.fixed) if (!f) count++;
      return count;
    }
  }

  // Mask conditions with i = row (y) and j = column (x).
  function maskBit(mask, j, i) {
    switch (mask) {
      case 0: return (i + j) % 2 === 0;
      case 1: return i % 2 === 0;
      case 2: return j % 3 === 0;
      case 3: return (i + j) % 3 === 0;
      case 4: return (Math.floor(i / 2) + Math.floor(j / 3)) % 2 === 0;
      case 5: return ((i * j) % 2) + ((i * j) % 3) === 0;
      case 6: return (((i * j) % 2) + ((i * j) % 3)) % 2 === 0;
      default: return (((i + j) % 2) + ((i * j) % 3)) % 2 === 0;
    }
  }

  // Penalty score (lower is better): long runs, 2×2 blocks, finder look-alikes, imbalance.
  const FINDER_A = [1, 0, 1, 1, 1, 0, 1, 0, 0, 0, 0];
  const FINDER_B = [0, 0, 0, 0, 1, 0, 1, 1, 1, 0, 1];
  function penalty(grid) {
    const n = grid.size;
    const d = grid.dark;
    let score = 0;
    const line = new Uint8Array(n);
    for (let horizontal = 0; horizontal < 2; horizontal++) {
      for (let a = 0; a < n; a++) {
        for (let b = 0; b < n; b++) line[b] = horizontal ? d[a * n + b] : d[b * n + a];
        let run = 1;
        for (let b = 1; b <= n; b++) {
          if (b < n && line[b] === line[b - 1]) {
            run++;
          } else {
            if (run >= 5) score += 3 + (run - 5);
            run = 1;
          }
        }
        for (let b = 0; b + 11 <= n; b++) {
          let isA = true;
          let isB = true;
          for (let k = 0; k < 11 && (isA || isB); k++) {
            if (line[b + k] !== FINDER_A[k]) isA = false;
            if (line[b + k] !== FINDER_B[k]) isB = false;
          }
          if (isA) score += 40;
          if (isB) score += 40;
        }
      }
    }
    let darkCount = 0;
    for (let y = 0; y < n; y++) {
      for (let x = 0; x < n; x++) {
        const v = d[y * n + x];
        darkCount += v;
        if (x + 1 < n && y + 1 < n && v === d[y * n + x + 1] && v === d[(y + 1) * n + x] && v === d[(y + 1) * n + x + 1]) {
          score += 3;
        }
      }
    }
    const percent = (darkCount * 100) / (n * n);
    score += Math.floor(Math.abs(percent - 50) / 5) * 10;
    return score;
  }

  // ---------------------------------------------------------------- capacity

  const dataModuleCache = new Map();
  function rawCodewords(version) {
    if (!dataModuleCache.has(version)) {
      const g = new Grid(version);
      g.drawFunctionPatterns();
      dataModuleCache.set(version, g.dataModules());
    }
    return Math.floor(dataModuleCache.get(version) / 8);
  }

  function dataCodewords(version, level) {
    const row = LEVELS[level].row;
    return rawCodewords(version) - ECC_PER_BLOCK[row][version] * BLOCKS[row][version];
  }

  function countBits(version) {
    return version <= 9 ? 8 : 16;
  }

  /** Most bytes a symbol of this version and level holds in byte mode. */
  function capacity(version, level) {
    return Math.floor((dataCodewords(version, level) * 8 - 4 - countBits(version)) / 8);
  }

  // ---------------------------------------------------------------- encoding

  function toBytes(data) {
    return typeof data === 'string' ? new TextEncoder().encode(data) : data;
  }

  /**
   * Encodes `data` (string as UTF-8, or Uint8Array). Options: `level` ('L', 'M', 'Q', 'H';
   * default 'M', dropping to 'L' when the data only fits that way), `version` (force one).
   * Returns {version, level, mask, size, modules(x, y) → bool, bits: Uint8Array row-major}.
   */
  function encode(data, options) {
    const opts = options || {};
    const bytes = toBytes(data);
    const levels = opts.level ? [opts.level] : ['M', 'L'];
    let version = 0;
    let level = null;
    search: for (const lv of levels) {
      if (!LEVELS[lv]) throw new Error('unknown error correction level ' + lv);
      const versions = opts.version ? [opts.version] : Array.from({ length: 40 }, (_, i) => i + 1);
      for (const v of versions) {
        if (bytes.length <= capacity(v, lv)) {
          version = v;
          level = lv;
          break search;
        }
      }
    }
    if (!version) throw new Error('too long for a QR code (' + bytes.length + ' bytes)');

    // Bit stream: mode 0100 (byte), count, data, terminator, pad to bytes, pad codewords.
    const capacityBits = dataCodewords(version, level) * 8;
    const bits = [];
    const put = (value, len) => {
      for (let i = len - 1; i >= 0; i--) bits.push((value >>> i) & 1);
    };
    put(0b0100, 4);
    put(bytes.length, countBits(version));
    for (const b of bytes) put(b, 8);
    put(0, Math.min(4, capacityBits - bits.length));
    put(0, (8 - (bits.length % 8)) % 8);
    const codewords = [];
    for (let i = 0; i < bits.length; i += 8) {
      let b = 0;
      for (let k = 0; k < 8; k++) b = (b << 1) | bits[i + k];
      codewords.push(b);
    }
    for (let pad = 0xec; codewords.length < capacityBits / 8; pad ^= 0xec ^ 0x11) codewords.push(pad);

    // Split into blocks (short ones first), append each block's ECC, interleave.
    const row = LEVELS[level].row;
    const numBlocks = BLOCKS[row][version];
    const eccLen = ECC_PER_BLOCK[row][version];
    const shortLen = Math.floor(codewords.length / numBlocks);
    const numLong = codewords.length % numBlocks;
    const blocks = [];
    let off = 0;
    for (let b = 0; b < numBlocks; b++) {
      const len = shortLen + (b >= numBlocks - numLong ? 1 : 0);
      const block = codewords.slice(off, off + len);
      off += len;
      blocks.push({ data: block, ecc: rsRemainder(block, eccLen) });
    }
    const out = [];
    for (let i = 0; i <= shortLen; i++) {
      for (const blk of blocks) if (i < blk.data.length) out.push(blk.data[i]);
    }
    for (let i = 0; i < eccLen; i++) {
      for (const blk of blocks) out.push(blk.ecc[i]);
    }

    // Try every mask; keep the one with the lowest penalty.
    let best = null;
    for (let mask = 0; mask < 8; mask++) {
      const g = new Grid(version);
      g.drawFunctionPatterns();
      g.placeData(out);
      g.applyMask(mask);
      g.drawFormat(formatBits(level, mask));
      const score = penalty(g);
      if (best === null || score < best.score) best = { grid: g, mask, score };
    }
    const g = best.grid;
    return {
      version,
      level,
      mask: best.mask,
      size: g.size,
      bits: g.dark,
      modules: (x, y) => g.dark[y * g.size + x] === 1,
    };
  }

  /**
   * Paints `qr` on `canvas`: black modules on white, a 4-module quiet zone, at most
   * `maxCssPx` CSS pixels wide, with a whole number of device pixels per module.
   */
  function draw(canvas, qr, maxCssPx) {
    const dpr = Math.max(1, Math.round(global.devicePixelRatio || 1));
    const quiet = 4;
    const n = qr.size + quiet * 2;
    const scale = Math.max(1, Math.floor((maxCssPx * dpr) / n));
    const px = scale * n;
    canvas.width = px;
    canvas.height = px;
    canvas.style.width = px / dpr + 'px';
    canvas.style.height = px / dpr + 'px';
    const ctx = canvas.getContext('2d');
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, px, px);
    ctx.fillStyle = '#000000';
    for (let y = 0; y < qr.size; y++) {
      for (let x = 0; x < qr.size; x++) {
        if (qr.bits[y * qr.size + x]) ctx.fillRect((x + quiet) * scale, (y + quiet) * scale, scale, scale);
      }
    }
  }

  /** The module matrix as rows of '0'/'1' (for tests). */
  function toText(qr) {
    const rows = [];
    for (let y = 0; y < qr.size; y++) {
      let s = '';
      for (let x = 0; x < qr.size; x++) s += qr.bits[y * qr.size + x] ? '1' : '0';
      rows.push(s);
    }
    return rows;
  }

  global.CoinslotQR = { encode, draw, capacity, toText };
})(window);
