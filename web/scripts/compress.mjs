#!/usr/bin/env node
// Writes FILE.gz and FILE.br next to every .js/.css/.html/.svg file over
// 1 KiB under DIR, so pampad can send them precompressed
// (usage: node scripts/compress.mjs DIR).
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node scripts/compress.mjs DIR');
  process.exit(2);
}

const wanted = /\.(js|css|html|svg)$/;
let files = 0, raw = 0, gz = 0, br = 0;

function walk(d) {
  for (const name of readdirSync(d)) {
    const path = join(d, name);
    const st = statSync(path);
    if (st.isDirectory()) { walk(path); continue; }
    if (!wanted.test(name) || st.size <= 1024) continue;
    const data = readFileSync(path);
    const g = gzipSync(data, { level: 9 });
    const b = brotliCompressSync(data, {
      params: {
        [constants.BROTLI_PARAM_QUALITY]: 11,
        [constants.BROTLI_PARAM_SIZE_HINT]: data.length,
      },
    });
    writeFileSync(path + '.gz', g);
    writeFileSync(path + '.br', b);
    files++; raw += data.length; gz += g.length; br += b.length;
  }
}

walk(dir);
const kib = (n) => (n / 1024).toFixed(1) + ' KiB';
console.log(`compressed ${files} file(s): ${kib(raw)} -> gzip ${kib(gz)}, brotli ${kib(br)}`);
