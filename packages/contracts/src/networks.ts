/**
 * Where the Tasknet contracts are on each network.
 *
 * The devnet's addresses are deterministic (`tasknet up` deploys from anvil's first dev account on a fresh chain)
 * and built in. Any other network is described by its Tasknet network profile, the JSON file
 * `tasknet network deploy` writes (`~/.tasknet/networks/NAME.json`): load it at run time with
 * {@link networkFromProfile}, or turn it into a typed module once with the `tasknet-network` command of this
 * package (`npx tasknet-network ~/.tasknet/networks/NAME.json > src/tasknet-network.ts`).
 */
import { devnet } from "./generated/networks.js";

/** A `0x`-prefixed address. */
export type Address = `0x${string}`;

/** What a Dapp needs to know about a network. */
export interface TasknetNetwork {
  readonly name: string;
  readonly chainId: number;
  /** JSON-RPC endpoints, in order of preference. */
  readonly rpcUrls: readonly string[];
  /** The first block holding Tasknet events (read logs from there). */
  readonly deployBlock: number;
  /** Contract name -> address: `Marketplace`, `MarketplaceRegistry`, the libraries, the token when deployed. */
  readonly contracts: { readonly Marketplace: Address; readonly MarketplaceRegistry: Address } &
    Readonly<Record<string, Address>>;
  /** The payment token (the ERC-20 the marketplace was deployed with). */
  readonly token?: Address;
  /** An HTTP IPFS gateway of the network, if its profile names one. */
  readonly ipfsGateway?: string;
}

export { devnet };

/** The networks built into this package (add yours with {@link networkFromProfile}). */
export const networks = { devnet } as const;

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

/**
 * A {@link TasknetNetwork} from a Tasknet network profile (the parsed JSON of `~/.tasknet/networks/NAME.json`,
 * snake_case as the Python side writes it, or an object already in this package's camelCase shape).
 * Throws an Error naming the field that is missing or malformed.
 */
export function networkFromProfile(profile: unknown): TasknetNetwork {
  if (typeof profile !== "object" || profile === null) throw new Error("a network profile must be a JSON object");
  const p = profile as Record<string, unknown>;
  const name = p.name;
  if (typeof name !== "string" || !name) throw new Error("the network profile has no 'name'");
  const chainId = Number(p.chain_id ?? p.chainId);
  if (!Number.isInteger(chainId) || chainId < 1) throw new Error(`network ${name}: 'chain_id' must be a positive integer`);
  const rpcUrls = (p.rpc_urls ?? p.rpcUrls ?? []) as unknown[];
  if (!Array.isArray(rpcUrls) || !rpcUrls.length || !rpcUrls.every((u) => typeof u === "string")) {
    throw new Error(`network ${name}: 'rpc_urls' must list at least one JSON-RPC URL`);
  }
  const contracts = (p.contracts ?? {}) as Record<string, unknown>;
  for (const [k, v] of Object.entries(contracts)) {
    if (typeof v !== "string" || !ADDRESS.test(v)) throw new Error(`network ${name}: contract ${k} has no valid address`);
  }
  for (const required of ["Marketplace", "MarketplaceRegistry"]) {
    if (!(required in contracts)) throw new Error(`network ${name}: the profile has no ${required} address`);
  }
  const token = p.token ?? contracts.TestToken;
  if (token !== undefined && token !== null && (typeof token !== "string" || !ADDRESS.test(token))) {
    throw new Error(`network ${name}: 'token' is not an address`);
  }
  const gateway = p.ipfs_gateway ?? p.ipfsGateway;
  return {
    name,
    chainId,
    rpcUrls: rpcUrls as string[],
    deployBlock: Number(p.deploy_block ?? p.deployBlock ?? 0),
    contracts: contracts as TasknetNetwork["contracts"],
    ...(typeof token === "string" ? { token: token as Address } : {}),
    ...(typeof gateway === "string" && gateway ? { ipfsGateway: gateway } : {}),
  };
}

/** The address of contract `name` on `network`; throws naming the network when it has none. */
export function addressOf(network: TasknetNetwork, name: string): Address {
  const address = network.contracts[name];
  if (!address) throw new Error(`network ${network.name} has no ${name} address`);
  return address;
}
