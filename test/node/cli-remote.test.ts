// The CLI's side of issue 25 without a tracker: what is refused before anything starts (usage), and
// a tracker that is down is a sentence with a non-zero exit. The tracker, servers and remote tunes
// are tested on loopback in test/python/remote/test_fleet.py and test/e2e/targets.e2e.test.ts.
import { describe, expect, it } from 'vitest';
import { closedPort, runCli } from './helpers.js';

describe('torchtvm rpc-server, targets, --tracker', () => {
  it('refuses what cannot work before starting anything', async () => {
    let r = await runCli(['rpc-server', '--key', 'k']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/needs --tracker HOST:PORT and --key KEY/);
    r = await runCli(['rpc-server', '--tracker', 'nohost', '--key', 'k']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--tracker must be HOST:PORT/);
    // Without --trials they verify and time there a build this machine cannot run: a key is still needed.
    r = await runCli(['compile', 'm.pt', '--input', 'x:1,4:float32', '--tracker', '127.0.0.1:9190']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--tracker HOST:PORT and --key KEY go together: a build this machine cannot run is verified and timed on a server of the key/);
    r = await runCli(['bench', 'm.pt', '--tracker', '127.0.0.1:9190']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--tracker HOST:PORT and --key KEY go together/);
  });

  it('says so when no tracker answers', async () => {
    const port = await closedPort();
    const r = await runCli(['targets', '--tracker', `127.0.0.1:${port}`, '--json']);
    expect(r.code).toBe(1);
    const last = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(last.error.code).toBe('tracker_unreachable');
    expect(last.error.message).toMatch(/No RPC tracker answers at 127\.0\.0\.1:\d+/);
    const s = await runCli(['rpc-server', '--tracker', `127.0.0.1:${port}`, '--key', 'k', '--host', '0.0.0.0']);
    expect(s.code).not.toBe(0);
    expect(s.stderr).toMatch(/no authentication/);
    expect(s.stderr).toMatch(/no RPC tracker answers/);
  }, 120_000);
});
