// The engine's JSON-lines protocol on stdio (see native/engine/torchtvm/engine.py).
import { z } from 'zod';
import { ErrorInfoSchema } from '../../contract/errors.js';

export const EngineReplySchema = z.union([
  z.object({ id: z.string().nullable(), error: ErrorInfoSchema }),
  z.object({ id: z.string().nullable(), result: z.unknown() }),
]);

export const EngineEventSchema = z.object({
  event: z.string(),
  job: z.string().nullable(),
  data: z.record(z.string(), z.unknown()),
});

export type EngineEvent = z.infer<typeof EngineEventSchema>;

export interface EngineRequest {
  id: string;
  method: string;
  params: Record<string, unknown>;
}
