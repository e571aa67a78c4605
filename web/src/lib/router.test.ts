import { describe, expect, it } from 'vitest';
import { hostsHref, parseHash } from './router';

describe('parseHash: the pool pages', () => {
  it('reads #/hosts and #/hosts/NAME', () => {
    expect(parseHash('#/hosts')).toEqual({ page: 'hosts', host: undefined });
    expect(parseHash('#/hosts/node-2')).toEqual({ page: 'hosts', host: 'node-2' });
    expect(parseHash('#/host')).toEqual({ page: 'host' });
    expect(parseHash('#/ha')).toEqual({ page: 'ha' });
  });
  it('round-trips a host name through hostsHref', () => {
    expect(hostsHref()).toBe('#/hosts');
    expect(parseHash(hostsHref('a b')).host).toBe('a b');
  });
});
