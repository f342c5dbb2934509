// A minimal reader of the tar archives Tasknet workers publish (oracle/archive.py: pax, regular files and
// folders only). Enough to show a result and to hash the app's deterministic file in the browser.

const decoder = new TextDecoder();

function text(bytes, start, length) {
  const raw = bytes.subarray(start, start + length);
  const end = raw.indexOf(0);
  return decoder.decode(end === -1 ? raw : raw.subarray(0, end));
}

function octal(bytes, start, length) {
  const s = text(bytes, start, length).trim();
  return s ? parseInt(s, 8) : 0;
}

/** The pax records of an extended header ("<len> key=value\n" ...). */
function paxRecords(bytes) {
  const out = {};
  let i = 0;
  while (i < bytes.length) {
    const space = bytes.indexOf(0x20, i);
    if (space === -1) break;
    const length = parseInt(decoder.decode(bytes.subarray(i, space)), 10);
    if (!length) break;
    const record = decoder.decode(bytes.subarray(space + 1, i + length - 1));
    const eq = record.indexOf("=");
    out[record.slice(0, eq)] = record.slice(eq + 1);
    i += length;
  }
  return out;
}

/**
 * The regular files of a tar archive: `Map(path -> Uint8Array)`. Throws on a malformed archive.
 * @param {ArrayBuffer | Uint8Array} buffer
 */
export function readTar(buffer) {
  const bytes = buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer);
  const files = new Map();
  let offset = 0;
  let pax = {};
  while (offset + 512 <= bytes.length) {
    const header = bytes.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break; // end of archive
    const size = octal(header, 124, 12);
    const type = String.fromCharCode(header[156] || 0x30);
    const prefix = text(header, 345, 155);
    const name = pax.path ?? (prefix ? `${prefix}/${text(header, 0, 100)}` : text(header, 0, 100));
    const start = offset + 512;
    if (start + size > bytes.length) throw new Error(`the archive is truncated in ${name}`);
    const body = bytes.subarray(start, start + size);
    offset = start + Math.ceil(size / 512) * 512;
    if (type === "x") {
      pax = paxRecords(body);
      continue;
    }
    if (type === "g") continue;
    if (type === "0" || type === "\0") files.set(name.replace(/^\.\//, ""), body);
    pax = {};
  }
  return files;
}
