#!/usr/bin/env node
// An independent implementation of Tasknet's canonical result archive, written from docs/FORMATS.md with
// Node's built-in modules only (no Python, no npm package). The tests run it against the worker's own packing
// (oracle.archive.pack_result) and against archives the worker pipeline published, and require the same bytes.
//
//   node scripts/result_archive.js pack --output DIR [--logs DIR] [--deterministic-file PATH] [--write FILE]
//       builds the archive of DIR (as output/...) and of the regular files of the logs folder (as logs/...);
//       prints {"archive_sha256", "archive_size", "digest", "digest_source", "files", "skipped"} as JSON and
//       writes the archive to FILE when asked
//   node scripts/result_archive.js status REASON EXIT_CODE [ERROR]
//       writes the bytes of logs/status.txt for that outcome to stdout (EXIT_CODE "" when there is none)
'use strict';
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');

const BLOCK = 512;
const RECORD = 20 * BLOCK; // 10240: the archive is padded with zeros to a multiple of this
const NAME_FIELD = 100;
const NAME_MAX = 255;
const SIZE_LIMIT = 8 ** 11; // sizes from here on do not fit 11 octal digits: a pax "size" record carries them
const SLASH = Buffer.from('/');

// -- names ---------------------------------------------------------------------------------------------------
/** The code points of `buf` read as UTF-8; a byte that does not start a well-formed sequence is {byte}. */
function decode(buf) {
  const out = [];
  let i = 0;
  while (i < buf.length) {
    const b = buf[i];
    let n = 0;
    let cp = 0;
    let lo = 0x80;
    let hi = 0xbf;
    if (b < 0x80) { out.push({ cp: b }); i += 1; continue; }
    if (b >= 0xc2 && b <= 0xdf) { n = 1; cp = b & 0x1f; }
    else if (b >= 0xe0 && b <= 0xef) {
      n = 2; cp = b & 0x0f;
      if (b === 0xe0) lo = 0xa0;
      if (b === 0xed) hi = 0x9f; // no UTF-16 surrogates
    } else if (b >= 0xf0 && b <= 0xf4) {
      n = 3; cp = b & 0x07;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f;
    }
    let ok = n > 0;
    if (ok) {
      for (let k = 1; k <= n; k++) {
        const c = buf[i + k];
        const min = k === 1 ? lo : 0x80;
        const max = k === 1 ? hi : 0xbf;
        if (c === undefined || c < min || c > max) { ok = false; break; }
        cp = (cp << 6) | (c & 0x3f);
      }
    }
    if (ok) { out.push({ cp }); i += n + 1; } else { out.push({ byte: b }); i += 1; }
  }
  return out;
}

const NON_PRINTABLE = /^[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]$/u;
const SHORT = { 0x0a: '\\n', 0x09: '\\t', 0x0d: '\\r', 0x5c: '\\\\' };
const hex = (n, width) => n.toString(16).padStart(width, '0');

/** A name made safe to print on one line (FORMATS.md, "Escaped names"). */
function escapeName(buf) {
  let out = '';
  for (const u of decode(buf)) {
    if (u.byte !== undefined) { out += '\\x' + hex(u.byte, 2); continue; }
    const ch = String.fromCodePoint(u.cp);
    if (SHORT[u.cp] !== undefined) out += SHORT[u.cp];
    else if (u.cp === 0x20 || !NON_PRINTABLE.test(ch)) out += ch;
    else if (u.cp < 0x100) out += '\\x' + hex(u.cp, 2);
    else if (u.cp < 0x10000) out += '\\u' + hex(u.cp, 4);
    else out += '\\U' + hex(u.cp, 8);
  }
  return out;
}

/** Why one name may not be archived, or null (FORMATS.md, "Name policy"). */
function unsafeName(buf) {
  for (const u of decode(buf)) {
    if (u.byte !== undefined) return 'bytes that are not UTF-8';
    if (u.cp === 0x5c) return 'a backslash';
    if (u.cp <= 0x1f || (u.cp >= 0x7f && u.cp <= 0x9f)) {
      return 'the control character ' + escapeName(Buffer.from(String.fromCodePoint(u.cp)));
    }
  }
  if (buf.length > NAME_MAX) return `a name longer than ${NAME_MAX} bytes`;
  return null;
}

function shown(buf, limit = 200) {
  const chars = Array.from(escapeName(buf));
  return chars.length > limit ? `'${chars.slice(0, limit).join('')}...'` : `'${chars.join('')}'`;
}

// -- tar -----------------------------------------------------------------------------------------------------
function octal(buf, offset, width, value) {
  buf.write(value.toString(8).padStart(width - 1, '0') + '\0', offset, 'ascii');
}

/** The 512-byte ustar header block (FORMATS.md, "Header block"). `name` is already the ustar field's text. */
function ustar(name, mode, size, type) {
  const b = Buffer.alloc(BLOCK);
  name.copy(b, 0, 0, Math.min(name.length, NAME_FIELD));
  octal(b, 100, 8, mode);
  octal(b, 108, 8, 0); // uid
  octal(b, 116, 8, 0); // gid
  octal(b, 124, 12, size);
  octal(b, 136, 12, 0); // mtime
  b.fill(0x20, 148, 156); // the checksum counts its own field as spaces
  b.write(type, 156, 'ascii');
  b.write('ustar\0' + '00', 257, 'ascii'); // magic and version; uname, gname, dev numbers, prefix stay NUL
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(sum.toString(8).padStart(6, '0') + '\0', 148, 'ascii'); // byte 155 keeps its space
  return b;
}

function pad(data) {
  const rest = data.length % BLOCK;
  return rest ? Buffer.concat([data, Buffer.alloc(BLOCK - rest)]) : data;
}

/** One pax record "LEN keyword=value\n", LEN counting the whole record, its own digits included. */
function paxRecord(keyword, value) {
  const l = Buffer.byteLength(keyword) + value.length + 3;
  let p = 0;
  for (;;) {
    const n = l + String(p).length;
    if (n === p) break;
    p = n;
  }
  return Buffer.concat([Buffer.from(`${p} ${keyword}=`), value, Buffer.from('\n')]);
}

/** The header blocks of one member: a pax extended header first when the name or the size needs one. */
function memberHeader(name, mode, size, type) {
  const records = [];
  const ascii = name.every((byte) => byte < 0x80);
  if (!ascii || name.length > NAME_FIELD) records.push(paxRecord('path', name));
  if (size >= SIZE_LIMIT) records.push(paxRecord('size', Buffer.from(String(size))));
  // the ustar name field: the name with each non-ASCII character as one "?", cut to 100 bytes
  const field = Buffer.from(decode(name).map((u) => (u.cp !== undefined && u.cp < 0x80 ? String.fromCodePoint(u.cp) : '?')).join(''), 'ascii');
  const head = ustar(field, mode, size >= SIZE_LIMIT ? 0 : size, type);
  if (!records.length) return [head];
  const body = Buffer.concat(records);
  return [ustar(Buffer.from('././@PaxHeader'), 0, body.length, 'x'), pad(body), head];
}

class Archive {
  /** `sink(bytes)` receives the archive as it is made (null: only its length and sha256 are kept). */
  constructor(sink) { this.sink = sink; this.length = 0; this.hash = crypto.createHash('sha256'); }

  push(data) { if (this.sink) this.sink(data); this.length += data.length; this.hash.update(data); }

  dir(name) { for (const b of memberHeader(Buffer.concat([name, SLASH]), 0o755, 0, '5')) this.push(b); }

  file(name, file, size, executable) {
    for (const b of memberHeader(name, executable ? 0o755 : 0o644, size, '0')) this.push(b);
    const fd = fs.openSync(file, 'r');
    let read = 0;
    try {
      const chunk = Buffer.alloc(1 << 20);
      for (;;) {
        const n = fs.readSync(fd, chunk, 0, chunk.length, null);
        if (n === 0) break;
        read += n;
        if (read > size) break;
        this.push(chunk.subarray(0, n)); // the sink and the hash take it before the next read
      }
    } finally {
      fs.closeSync(fd);
    }
    if (read !== size) throw new Error(`${file} changed size while being archived; pack a finished folder`);
    if (size % BLOCK) this.push(Buffer.alloc(BLOCK - (size % BLOCK)));
  }

  finish() {
    this.push(Buffer.alloc(2 * BLOCK));
    const rest = this.length % RECORD;
    if (rest) this.push(Buffer.alloc(RECORD - rest));
    return this;
  }
}

// -- packing -------------------------------------------------------------------------------------------------
/** Adds the tree below `dir` (archive names under `prefix`) in canonical order; returns the files added. */
function addTree(archive, dir, prefix, skipped) {
  let files = 0;
  const names = fs.readdirSync(dir, { encoding: 'buffer' }).sort(Buffer.compare);
  for (const name of names) {
    const arcname = Buffer.concat([prefix, SLASH, name]);
    const why = unsafeName(name);
    if (why !== null) {
      skipped.push(`${escapeName(arcname)}: name not portable (${why}), not archived`);
      continue;
    }
    const full = Buffer.concat([dir, SLASH, name]);
    const st = fs.lstatSync(full);
    if (st.isSymbolicLink()) {
      skipped.push(`${escapeName(arcname)}: symbolic link to ${shown(fs.readlinkSync(full, { encoding: 'buffer' }))}, not followed`);
    } else if (st.isDirectory()) {
      archive.dir(arcname);
      files += addTree(archive, full, arcname, skipped);
    } else if (st.isFile()) {
      archive.file(arcname, full, st.size, (st.mode & 0o111) !== 0);
      files += 1;
    } else {
      skipped.push(`${escapeName(arcname)}: not a regular file or directory (mode 0o${st.mode.toString(8)})`);
    }
  }
  return files;
}

/** The declared deterministic file inside `output`, checked as the worker checks it, or an error. */
function deterministicPath(output, declared) {
  const parts = declared.split('/').filter((p) => p !== '' && p !== '.');
  if (declared.startsWith('/') || declared.split('/').includes('..') || !parts.length) {
    throw new Error(`deterministic file ${JSON.stringify(declared)} must be a relative path inside the output folder`);
  }
  const file = path.join(output, ...parts);
  let st = null;
  try { st = fs.lstatSync(file); } catch { /* missing */ }
  if (st === null || !st.isFile()) throw new Error(`the output has no regular file ${JSON.stringify(declared)}`);
  return file;
}

function pack(output, logs, deterministicFile, dest) {
  if (!fs.statSync(output).isDirectory()) throw new Error(`${output} is not a folder`);
  const fd = dest ? fs.openSync(dest, 'w') : null;
  const write = (data) => {
    for (let done = 0; done < data.length;) done += fs.writeSync(fd, data, done, data.length - done);
  };
  const archive = new Archive(fd === null ? null : write);
  try {
    return packInto(archive, output, logs, deterministicFile);
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}

function packInto(archive, output, logs, deterministicFile) {
  const skipped = [];
  const outputName = Buffer.from('output');
  archive.dir(outputName);
  let files = addTree(archive, Buffer.from(output), outputName, skipped);
  const logNames = logs ? fs.readdirSync(logs, { encoding: 'buffer' }).sort(Buffer.compare) : [];
  if (logNames.length) {
    const logsName = Buffer.from('logs');
    archive.dir(logsName);
    for (const name of logNames) {
      const full = Buffer.concat([Buffer.from(logs), SLASH, name]);
      const st = fs.statSync(full);
      if (!st.isFile()) throw new Error(`${full} is not a regular file: a logs folder holds files only`);
      archive.file(Buffer.concat([logsName, SLASH, name]), full, st.size, (st.mode & 0o111) !== 0);
      files += 1;
    }
  }
  archive.finish();
  const archiveSha = archive.hash.digest('hex');
  let digest = archiveSha;
  let source = 'archive';
  if (deterministicFile !== null) {
    digest = crypto.createHash('sha256').update(fs.readFileSync(deterministicPath(output, deterministicFile))).digest('hex');
    source = 'file';
  }
  return {
    archive_sha256: archiveSha, archive_size: archive.length, digest, digest_source: source, files, skipped,
  };
}

/** The bytes of logs/status.txt (FORMATS.md, "logs/status.txt"). */
function statusText(reason, exitCode, error) {
  let text = `reason: ${reason}\nexit_code: ${exitCode}\n`;
  if (error) text += 'error: ' + error.replaceAll('\r', '\\r').replaceAll('\n', '\\n') + '\n';
  return Buffer.from(text, 'utf8');
}

/** Reads JSON lines {"name": hex, "size": n, "type": "0"|"5", "mode": n} and writes each member's header
 * blocks as hex, one line each (the tests compare them with Python's for sizes no disk should hold). */
function headers() {
  const out = [];
  for (const line of fs.readFileSync(0, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const m = JSON.parse(line);
    let name = Buffer.from(m.name, 'hex');
    if (m.type === '5') name = Buffer.concat([name, SLASH]);
    out.push(Buffer.concat(memberHeader(name, m.mode, m.size, m.type)).toString('hex'));
  }
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}

function main(argv) {
  const [command, ...rest] = argv;
  if (command === 'headers') return headers();
  if (command === 'status' && rest.length >= 2) {
    process.stdout.write(statusText(rest[0], rest[1], rest[2] || ''));
    return 0;
  }
  if (command !== 'pack') {
    process.stderr.write('usage: result_archive.js pack --output DIR [--logs DIR] [--deterministic-file PATH] '
      + '[--write FILE] | status REASON EXIT_CODE [ERROR]\n');
    return 2;
  }
  const opts = { '--output': null, '--logs': null, '--deterministic-file': null, '--write': null };
  for (let i = 0; i < rest.length; i += 2) {
    if (!(rest[i] in opts) || rest[i + 1] === undefined) {
      process.stderr.write(`result_archive.js: unknown or incomplete option ${rest[i]}\n`);
      return 2;
    }
    opts[rest[i]] = rest[i + 1];
  }
  if (opts['--output'] === null) {
    process.stderr.write('result_archive.js: --output DIR is required\n');
    return 2;
  }
  try {
    const result = pack(opts['--output'], opts['--logs'], opts['--deterministic-file'], opts['--write']);
    process.stdout.write(JSON.stringify(result) + '\n');
    return 0;
  } catch (err) {
    process.stderr.write(`result_archive.js: ${err.message}\n`);
    return 1;
  }
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));

module.exports = { pack, statusText, escapeName, unsafeName, memberHeader };
