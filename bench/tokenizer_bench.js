// Single-thread encode throughput of HF tokenizers (Rust, via @anush008/tokenizers):
//   RAYON_NUM_THREADS=1 node bench/tokenizer_bench.js TOKENIZER.json TEXT [RUNS]
// One JSON line like bench/tokenizer_bench.c's, including the same ids hash.
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require(path.join(__dirname, '..', 'tests', 'oracle', 'node_modules', '@anush008', 'tokenizers'));

async function main() {
  const [tokPath, textPath, runsArg] = process.argv.slice(2);
  const runs = Math.max(1, parseInt(runsArg || '5', 10));
  const tok = Tokenizer.fromFile(tokPath);
  const buf = fs.readFileSync(textPath);
  const text = buf.toString('utf8');
  const ts = [];
  let ids = [];
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint();
    const enc = await tok.encode(text, null, { addSpecialTokens: false });
    ids = enc.getIds();
    ts.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  ts.sort((a, b) => a - b);
  let h = 1469598103934665603n;
  const M = (1n << 64n) - 1n;
  for (const id of ids) { h ^= BigInt(id); h = (h * 1099511628211n) & M; }
  console.log(JSON.stringify({ impl: 'hf-tokenizers', bytes: buf.length, tokens: ids.length, best_s: +ts[0].toFixed(4),
    median_s: +ts[Math.floor(runs / 2)].toFixed(4), mb_per_s: +(buf.length / 1e6 / ts[0]).toFixed(2), ids_fnv: h.toString(16) }));
}
main().catch((e) => { console.error(e); process.exit(1); });
