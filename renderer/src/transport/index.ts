// The one place that decides how the renderer reaches app/core: Electron's preload bridge when it
// is there, otherwise the browser-mode WebSocket.
import { takeToken, tokenProtocols } from './token.js';
import { createWsClient } from './ws-client.js';
import type { HostBridge } from './types.js';

export type ConnectionStatus = 'connecting' | 'open' | 'closed' | 'reconnecting';

export function connect(onStatus: (s: ConnectionStatus, why?: string) => void, onReconnect?: () => void): { api: HostBridge; mode: 'electron' | 'browser' } {
  if (window.workbench) {
    onStatus('open');
    return { api: window.workbench, mode: 'electron' };
  }
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api`;
  return { api: createWsClient(url, onStatus, onReconnect, tokenProtocols(takeToken())), mode: 'browser' };
}

export type { HostBridge, MenuAction } from './types.js';
