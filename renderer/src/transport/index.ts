// The one place that decides how the renderer reaches app/core: Electron's preload bridge when it
// is there, otherwise the browser-mode WebSocket.
import { NO_TOKEN, takeToken, tokenProtocols } from './token.js';
import { createWsClient } from './ws-client.js';
import type { HostBridge } from './types.js';

/**
 * 'refused': this tab has no access token, or the server refused the one it has. Retrying cannot
 * fix that, so the page is read-only until it is opened through the URL `torchtvm serve` printed.
 */
export type ConnectionStatus = 'connecting' | 'open' | 'closed' | 'reconnecting' | 'refused';

export function connect(onStatus: (s: ConnectionStatus, why?: string) => void, onReconnect?: () => void): { api: HostBridge; mode: 'electron' | 'browser' } {
  if (window.workbench) {
    onStatus('open');
    return { api: window.workbench, mode: 'electron' };
  }
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api`;
  const token = takeToken();
  return { api: createWsClient(url, onStatus, onReconnect, tokenProtocols(token), token ? undefined : NO_TOKEN), mode: 'browser' };
}

export type { HostBridge, MenuAction } from './types.js';
