// Browser mode's access token. `torchtvm serve` prints http://127.0.0.1:PORT/#token=…: a URL
// fragment is never sent to any server, so loading the page hands the token to nobody. The page
// moves it into sessionStorage (scoped to this origin, port included, and to this tab) and takes it
// out of the address bar, so that history, bookmarks and other local ports never see it; a reload
// finds it in sessionStorage. It leaves the page only in the WebSocket handshake to this server,
// as the subprotocol `torchtvm.token.<token>` (app/server/server.ts checks it). No cookie is used:
// a cookie for 127.0.0.1 would be sent to every local port.

const KEY = 'torchtvm.token';
/** The subprotocol the server selects, and the prefix of the one carrying the token. */
const WS_PROTOCOL = 'torchtvm';
const TOKEN_PROTOCOL = 'torchtvm.token.';

/** The token from the URL fragment (then removed from the URL) or from this tab's sessionStorage; '' when neither has one. */
export function takeToken(): string {
  const hash = new URLSearchParams(location.hash.replace(/^#/, ''));
  const fromUrl = hash.get('token');
  if (fromUrl) {
    try {
      sessionStorage.setItem(KEY, fromUrl);
    } catch {
      /* storage disabled: the token lives only in this page */
    }
    hash.delete('token');
    const rest = hash.toString();
    history.replaceState(history.state, '', `${location.pathname}${location.search}${rest ? `#${rest}` : ''}`);
    return fromUrl;
  }
  try {
    return sessionStorage.getItem(KEY) ?? '';
  } catch {
    return '';
  }
}

/** The WebSocket subprotocols that carry `token` (a token that cannot be a subprotocol is left out: the server then refuses the socket with 4401). */
export function tokenProtocols(token: string): string[] {
  return /^[A-Za-z0-9_-]{1,200}$/.test(token) ? [WS_PROTOCOL, `${TOKEN_PROTOCOL}${token}`] : [WS_PROTOCOL];
}

/** Why a tab without a token is read-only (the page's banner says how to get a link that works). */
export const NO_TOKEN = 'This tab has no access token: it was not opened from the link that `torchtvm serve` printed (a typed address, a bookmark or a new tab carries none).';
/** Why a tab whose token the server refused is read-only. */
export const REFUSED_TOKEN = 'The server refused this tab\'s access token: it is from another run of `torchtvm serve` (each start makes a new one), or was mistyped.';
