// Targets (issue 25): "this machine", or an RPC tracker address plus a key whose servers measure a
// tune's trials and a bench. The tracker's figures are TVM's own (query_rpc_tracker: servers, free,
// pending per key); `probe` is a key's servers asked for their CPU (torchtvm/remote/fleet.py).
import { z } from 'zod';

/** TVM's RPC protocol has no authentication: said on the Targets page and in the CLI. */
export const NO_AUTH_NOTE =
  "TVM's RPC protocol has no authentication: anyone who can reach the tracker or a server can upload and run code on the servers. Use it on a network you trust; torchtvm rpc-server listens on 127.0.0.1 unless --host asks otherwise.";

export const TrackerAddressSchema = z.string().regex(/^[^\s:]+(:[^\s:]+)*:\d{1,5}$/, 'a tracker address is HOST:PORT').max(300);
export const RpcKeySchema = z.string().regex(/^[A-Za-z0-9_.-]+$/, 'a key is letters, digits, dots, dashes or underscores').max(100);

export const TrackerQueueSchema = z.looseObject({
  key: z.string(),
  servers: z.number().int(),
  free: z.number().int(),
  pending: z.number().int(),
  addresses: z.array(z.string()),
});

export const ServerCpuSchema = z.looseObject({
  name: z.string(),
  cpu_model: z.string().nullable().optional(),
  llvm_cpu: z.string().nullable().optional(),
  features: z.array(z.string()),
  cores: z.number().int().nullable().optional(),
});

export const TrackerQueuesSchema = z.looseObject({
  tracker: z.string(),
  keys: z.array(TrackerQueueSchema),
  note: z.string().optional(),
  /** With a key: its servers and the target a build for them gets. */
  probe: z.looseObject({ key: z.string(), servers: z.array(ServerCpuSchema), target: z.record(z.string(), z.unknown()) }).optional(),
});
export type TrackerQueues = z.output<typeof TrackerQueuesSchema>;
export type TrackerQueue = z.output<typeof TrackerQueueSchema>;

/** Where a tune measures: null is this machine. */
export interface RemoteTarget { tracker: string; key: string }

export const TrackerQueuesArgs = z.object({ tracker: TrackerAddressSchema, key: RpcKeySchema.optional() }).strict();
