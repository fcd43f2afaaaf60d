// Oracle for ringlm's tokenizer tests: Hugging Face `tokenizers` (the Rust
// crate) through its Node binding @anush008/tokenizers.
// stdin: {"tokenizers": {name: {"file": path} | {"json": text}},
//         "encode": [[name, text, add_special_tokens], ...],
//         "decode": [[name, [ids], skip_special_tokens], ...]}
// stdout: {"version": ..., "encode": [ids | {"error": msg}], "decode": [text | {"error": msg}]}
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('@anush008/tokenizers');

function crateVersion() {
  try {
    const dir = path.dirname(require.resolve('@anush008/tokenizers/package.json'));
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
    const cargo = fs.readFileSync(path.join(dir, 'Cargo.toml'), 'utf8');
    const m = cargo.match(/^tokenizers\s*=\s*"([^"]+)"/m) || cargo.match(/tokenizers\s*=\s*\{[^}]*version\s*=\s*"([^"]+)"/m);
    return `@anush008/tokenizers ${pkg.version} (tokenizers crate ${m ? m[1] : '?'})`;
  } catch (e) {
    return 'unknown';
  }
}

async function main() {
  const job = JSON.parse(fs.readFileSync(0, 'utf8'));
  const toks = {};
  const loadErr = {};
  for (const [name, src] of Object.entries(job.tokenizers || {})) {
    try {
      toks[name] = src.file ? Tokenizer.fromFile(src.file) : Tokenizer.fromString(src.json);
    } catch (e) {
      loadErr[name] = String(e && e.message ? e.message : e);
    }
  }
  const out = { version: crateVersion(), load_errors: loadErr, encode: [], decode: [] };
  for (const [name, text, addSpecial] of job.encode || []) {
    if (!toks[name]) { out.encode.push({ error: 'load: ' + loadErr[name] }); continue; }
    try {
      const enc = await toks[name].encode(text, null, { addSpecialTokens: !!addSpecial });
      out.encode.push(Array.from(enc.getIds()));
    } catch (e) {
      out.encode.push({ error: String(e && e.message ? e.message : e) });
    }
  }
  for (const [name, ids, skip] of job.decode || []) {
    if (!toks[name]) { out.decode.push({ error: 'load: ' + loadErr[name] }); continue; }
    try {
      out.decode.push(await toks[name].decode(ids, !!skip));
    } catch (e) {
      out.decode.push({ error: String(e && e.message ? e.message : e) });
    }
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => { process.stderr.write(String(e && e.stack ? e.stack : e) + '\n'); process.exit(2); });
