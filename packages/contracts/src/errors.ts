/**
 * Custom errors of the Tasknet contracts, decoded by name and values.
 *
 * Every revert of the marketplace, the registry, TasknetClient, the example Dapps, the test token and the
 * OpenZeppelin code they use is a custom error carrying the offending values. {@link describeError} turns any
 * thrown error (viem, ethers, a raw JSON-RPC error, or the revert data itself) into one readable line such as
 * `TasknetClientInsufficientBalance(available: 500000000000000000, needed: 1100000000000000000)`, never `0x…`.
 * No dependency: the selector table is generated from the ABIs at build time.
 */
import { errorTable } from "./generated/errors.js";

/** One error of the table: its name and inputs (`enum` lists member names when the input is a Solidity enum). */
export interface ErrorEntry {
  readonly name: string;
  readonly inputs: readonly { readonly name: string; readonly type: string; readonly enum?: readonly string[] }[];
}

/** A decoded revert. */
export interface DecodedError {
  /** The error's name, e.g. `MarketplaceInsufficientBalance`. */
  readonly name: string;
  /** Its arguments in order, with their ABI types and decoded values. */
  readonly args: readonly { readonly name: string; readonly type: string; readonly value: ErrorValue }[];
  /** `Name(arg: value, ...)`. */
  readonly message: string;
}

/** A decoded argument: integers are bigints, addresses and fixed bytes hex strings. */
export type ErrorValue = bigint | boolean | string;

const HEX = /^0x([0-9a-fA-F]{2})*$/;

/** Decodes revert `data` (`0x` + selector + arguments) with the Tasknet error table; null if it is not one. */
export function decodeTasknetError(data: string): DecodedError | null {
  if (typeof data !== "string" || !HEX.test(data) || data.length < 10) return null;
  const entry = errorTable[data.slice(0, 10).toLowerCase()];
  if (!entry) return null;
  const body = data.slice(10);
  try {
    const args = entry.inputs.map((input, i) => ({ name: input.name, type: input.type,
      value: decodeWord(body, i, input.type) }));
    const shown = args.map((a, i) => {
      const members = entry.inputs[i].enum;
      const value = members && typeof a.value === "bigint" && a.value < BigInt(members.length)
        ? `${members[Number(a.value)]} (${a.value})` : format(a.value, a.type);
      return a.name ? `${a.name}: ${value}` : value;
    });
    return { name: entry.name, args, message: `${entry.name}(${shown.join(", ")})` };
  } catch {
    return null;
  }
}

/**
 * The revert data carried by a thrown error: viem's `BaseError` chain (`cause`, `data`, `raw`), ethers'
 * `data` / `info.error.data`, a JSON-RPC error object (`error.data`), or a hex string itself. Null when none.
 */
export function findRevertData(error: unknown): string | null {
  const seen = new Set<unknown>();
  const queue: unknown[] = [error];
  while (queue.length) {
    const e = queue.shift();
    if (e === null || e === undefined || seen.has(e)) continue;
    seen.add(e);
    if (typeof e === "string") {
      if (HEX.test(e) && e.length >= 10) return e;
      continue;
    }
    if (typeof e !== "object") continue;
    const o = e as Record<string, unknown>;
    for (const key of ["raw", "data", "cause", "error", "info", "revert", "originalError"]) {
      if (key in o) queue.push(o[key]);
    }
  }
  return null;
}

/**
 * One readable line for any error thrown by a Tasknet call: the decoded custom error when the revert data is
 * one of ours, else the library's short message (viem `shortMessage`, ethers `shortMessage`, `message`), with
 * any raw `0x…` revert data left out.
 */
export function describeError(error: unknown): string {
  const data = findRevertData(error);
  const decoded = data ? decodeTasknetError(data) : null;
  if (decoded) return decoded.message;
  const named = viemErrorName(error);
  if (named) return named;
  const o = (error ?? {}) as Record<string, unknown>;
  const text = String(o.shortMessage ?? o.message ?? error);
  const firstLine = text.split("\n")[0].replace(/0x[0-9a-fA-F]{10,}/g, "(undecodable revert data)");
  return data ? `${firstLine} (revert data of an unknown error, selector ${data.slice(0, 10)})` : firstLine;
}

/** viem already decoded it (the caller passed an ABI with the error): `errorName(args)`. */
function viemErrorName(error: unknown): string | null {
  let e = error as Record<string, unknown> | undefined;
  for (let depth = 0; e && depth < 8; depth++) {
    const d = e.data as { errorName?: string; args?: readonly unknown[] } | undefined;
    if (d && typeof d === "object" && typeof d.errorName === "string") {
      return `${d.errorName}(${(d.args ?? []).map((a) => format(a as ErrorValue, "")).join(", ")})`;
    }
    e = e.cause as Record<string, unknown> | undefined;
  }
  return null;
}

function format(value: ErrorValue, type: string): string {
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "string" && type === "string") return JSON.stringify(value);
  return String(value);
}

function word(body: string, index: number): string {
  const w = body.slice(64 * index, 64 * index + 64);
  if (w.length !== 64) throw new Error("revert data too short");
  return w;
}

function decodeWord(body: string, index: number, type: string): ErrorValue {
  const w = word(body, index);
  if (type === "address") return "0x" + w.slice(24);
  if (type === "bool") return BigInt("0x" + w) !== 0n;
  if (/^uint\d*$/.test(type)) return BigInt("0x" + w);
  if (/^int\d*$/.test(type)) {
    const v = BigInt("0x" + w);
    return v >= 1n << 255n ? v - (1n << 256n) : v;
  }
  const fixed = /^bytes(\d+)$/.exec(type);
  if (fixed) return "0x" + w.slice(0, 2 * Number(fixed[1]));
  if (type === "string" || type === "bytes") {
    const start = 2 * Number(BigInt("0x" + w));
    const length = Number(BigInt("0x" + body.slice(start, start + 64)));
    const hex = body.slice(start + 64, start + 64 + 2 * length);
    if (hex.length !== 2 * length) throw new Error("revert data too short");
    if (type === "bytes") return "0x" + hex;
    try {
      return decodeURIComponent(hex.replace(/../g, "%$&")); // UTF-8, without depending on TextDecoder's lib
    } catch {
      return "0x" + hex; // not UTF-8: shown as bytes
    }
  }
  throw new Error(`unsupported error argument type ${type}`);
}
