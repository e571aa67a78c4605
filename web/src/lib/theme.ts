// Light or dark: follows prefers-color-scheme until the user picks one with
// the toggle; the pick is kept in localStorage.
const KEY = 'pampa-theme';

export type Theme = 'light' | 'dark';

export function systemTheme(): Theme {
  return window.matchMedia?.('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

export function currentTheme(): Theme {
  const t = document.documentElement.dataset.theme;
  return t === 'light' || t === 'dark' ? t : systemTheme();
}

export function setTheme(t: Theme): void {
  document.documentElement.dataset.theme = t;
  try {
    localStorage.setItem(KEY, t);
  } catch {
    /* private mode: the pick lasts this page only */
  }
}
