// Hash routing (#/vm/NAME/console, #/storage, #/hosts/NAME, #/ha, ...): pampad
// serves only index.html at /, and the token never appears in a URL.
import { useEffect, useState } from 'preact/hooks';

export interface Route {
  page: 'home' | 'vm' | 'storage' | 'networks' | 'repos' | 'host' | 'hosts' | 'ha' | 'notfound';
  vm?: string;
  tab?: string;
  pool?: string;
  /** A host of the pool (#/hosts/NAME); none: every host. */
  host?: string;
}

export function parseHash(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  switch (parts[0]) {
    case undefined:
      return { page: 'home' };
    case 'vm':
      return parts[1] ? { page: 'vm', vm: parts[1], tab: parts[2] ?? 'summary' } : { page: 'home' };
    case 'storage':
      return { page: 'storage', pool: parts[1] };
    case 'networks':
      return { page: 'networks' };
    case 'repos':
    case 'repositories':
      return { page: 'repos' };
    case 'host':
      return { page: 'host' };
    case 'hosts':
      return { page: 'hosts', host: parts[1] };
    case 'ha':
      return { page: 'ha' };
    default:
      return { page: 'notfound' };
  }
}

export function vmHref(name: string, tab?: string): string {
  return `#/vm/${encodeURIComponent(name)}${tab && tab !== 'summary' ? '/' + tab : ''}`;
}

/** #/hosts, or one host of the pool. */
export function hostsHref(name?: string): string {
  return name ? `#/hosts/${encodeURIComponent(name)}` : '#/hosts';
}

export function navigate(href: string): void {
  if (location.hash !== href) location.hash = href;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseHash(location.hash));
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}
