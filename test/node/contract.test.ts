// The allow-list that IPC and WebSocket enforce: validateCall accepts the documented calls only.
import { describe, expect, it } from 'vitest';
import { API_ARGS, API_METHODS, validateCall } from '../../app/contract/api.js';

describe('validateCall', () => {
  it('accepts well-formed calls', () => {
    expect(validateCall('info', []).method).toBe('info');
    expect(validateCall('cancelJob', [{ job: 'compile-1' }]).args).toEqual([{ job: 'compile-1' }]);
    const { args } = validateCall('startJob', [{ kind: 'compile', model: '/m.pt', inputs: [{ name: 'x', dims: [1, { name: 'batch', min: 1, max: 8 }], dtype: 'float32' }] }]);
    expect((args[0] as { target: string }).target).toBe('llvm');
  });

  it('lists exactly the WorkbenchApi methods', () => {
    expect([...API_METHODS].sort()).toEqual(['cancelJob', 'getRun', 'info', 'listJobs', 'listRuns', 'readTuningLog', 'recentModels', 'startJob', 'trackerQueues', 'waitJob']);
    expect(Object.keys(API_ARGS)).not.toContain('onEvent');
  });

  it.each([
    ['unknown method', 'deleteEverything', []],
    ['non-string method', 42, []],
    ['prototype key', '__proto__', []],
    ['inherited key', 'constructor', []],
    ['inherited key', 'toString', []],
    ['args not an array', 'info', { 0: 1 }],
    ['extra argument', 'info', [1]],
    ['missing argument', 'cancelJob', []],
    ['extra property', 'cancelJob', [{ job: 'a', evil: true }]],
    ['wrong type', 'cancelJob', [{ job: 7 }]],
    ['empty job id', 'waitJob', [{ job: '' }]],
    ['unknown job kind', 'startJob', [{ kind: 'shell', command: 'rm -rf /' }]],
    ['bad dtype', 'startJob', [{ kind: 'compile', model: 'm.pt', inputs: [{ name: 'x', dims: [1], dtype: 'float128' }] }]],
    ['zero-sized dim', 'startJob', [{ kind: 'compile', model: 'm.pt', inputs: [{ name: 'x', dims: [0], dtype: 'float32' }] }]],
    ['negative trials', 'startJob', [{ kind: 'tune', model: 'm.pt', inputs: [{ name: 'x', dims: [1], dtype: 'float32' }], trials: -1 }]],
    ['huge path', 'readTuningLog', [{ dir: 'x'.repeat(5000) }]],
    ['null payload', 'readTuningLog', [null]],
  ])('rejects %s', (_why, method, args) => {
    expect(() => validateCall(method, args)).toThrow();
  });
});

describe('input count', () => {
  it('takes as many inputs as the engine does (1,024), and says the limit past it', async () => {
    const { JobRequestSchema, MAX_INPUTS } = await import('../../app/contract/jobs.js');
    const specs = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `x${i}`, dims: [1], dtype: 'float32' }));
    expect(MAX_INPUTS).toBe(1024);
    expect(JobRequestSchema.safeParse({ kind: 'compile', model: 'm.pt', inputs: specs(200) }).success).toBe(true);
    const r = JobRequestSchema.safeParse({ kind: 'compile', model: 'm.pt', inputs: specs(1025) });
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error?.issues)).toContain('at most 1024 inputs can be described');
  });
});
