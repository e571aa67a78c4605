// The signed-in session: the token lives in sessionStorage only (gone when
// the tab closes, never in a URL), and the one ApiClient the app uses.
import { ApiClient } from './client';

const KEY = 'pampa-token';

let token: string | null = readToken();
let onSignOut: ((reason: string) => void) | null = null;

function readToken(): string | null {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function getToken(): string | null {
  return token;
}

export function setToken(t: string | null): void {
  token = t;
  try {
    if (t) sessionStorage.setItem(KEY, t);
    else sessionStorage.removeItem(KEY);
  } catch {
    /* storage disabled: the token lasts this page only */
  }
}

/** The app registers how to go back to the sign-in screen. */
export function onSessionEnd(f: (reason: string) => void): void {
  onSignOut = f;
}

export function signOut(reason = ''): void {
  setToken(null);
  onSignOut?.(reason);
}

export const api = new ApiClient({
  getToken,
  onUnauthorized: () => {
    if (token) signOut('wrong token: pampad refused it (was it changed?)');
  },
});
