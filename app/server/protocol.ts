// The WebSocket wire format of browser mode (renderer/src/transport/ws-client.ts speaks it):
//   client → server  {type:'call', id, method, args} | {type:'subscribe'} | {type:'unsubscribe'}
//   server → client  {type:'result', id, ok:true, result} | {type:'result', id, ok:false, error}
//                    | {type:'event', event}
// The envelope is checked here; method and args are checked by validateCall.
import { z } from 'zod';
import type { ErrorInfo } from '../contract/errors.js';
import type { JobEvent } from '../contract/jobs.js';

export const wireProtocol = z.discriminatedUnion('type', [
  z.object({ type: z.literal('call'), id: z.number().int().nonnegative(), method: z.string().max(64), args: z.array(z.unknown()).max(8) }).strict(),
  z.object({ type: z.literal('subscribe') }).strict(),
  z.object({ type: z.literal('unsubscribe') }).strict(),
]);
export type ClientMessage = z.infer<typeof wireProtocol>;

export type ServerMessage =
  | { type: 'result'; id: number; ok: true; result: unknown }
  | { type: 'result'; id: number; ok: false; error: ErrorInfo }
  | { type: 'event'; event: JobEvent };
