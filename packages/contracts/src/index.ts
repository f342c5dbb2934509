/**
 * @tasknet/contracts: the Tasknet marketplace for Dapp developers.
 *
 * - typed ABIs (`marketplaceAbi`, `marketplaceRegistryAbi`, `tasknetClientAbi`, `fileHasherAbi`, ...), `as const`
 *   so viem and wagmi type every call, event and error;
 * - addresses per network (`networks.devnet`, `networkFromProfile`);
 * - `describeError` / `decodeTasknetError`: any revert as `Name(arg: value, ...)`;
 * - Solidity: `@tasknet/contracts/contracts/IMarketplace.sol`, `.../client/TasknetClient.sol`;
 * - artifacts: `@tasknet/contracts/artifacts/hardhat/<source>/<Name>.json`, `.../artifacts/truffle/<Name>.json`.
 */
export * from "./generated/abis.js";
export { errorTable } from "./generated/errors.js";
export { decodeTasknetError, describeError, findRevertData } from "./errors.js";
export type { DecodedError, ErrorEntry, ErrorValue } from "./errors.js";
export { addressOf, devnet, networkFromProfile, networks } from "./networks.js";
export type { Address, TasknetNetwork } from "./networks.js";

/** `ITaskCallback.FailureReason`: why tasks ended without a result (the `reason` of the failure hooks). */
export const FailureReason = { NoConsensus: 0, FailureReports: 1, Cancelled: 2, Expired: 3 } as const;

/** Task id of task `index` of job `jobId`: `(jobId << 32) | index`. */
export function taskId(jobId: bigint, index: bigint | number): bigint {
  return (jobId << 32n) | BigInt(index);
}

/** `[jobId, index]` of a task id. */
export function splitTaskId(id: bigint): readonly [bigint, bigint] {
  return [id >> 32n, id & 0xffffffffn] as const;
}
