// For the API client's unit tests: a fetch that answers from a list and
// records what was asked, and the pieces the tests build answers with.
import { vi } from 'vitest';
import type { ApiError } from './client';

export type Call = { url: string; init: RequestInit };

export function mockFetch(responses: (Response | Error)[]) {
  const calls: Call[] = [];
  const f = vi.fn(async (url: RequestInfo | URL, init?: RequestInit) => {
    calls.push({ url: String(url), init: init ?? {} });
    const next = responses.shift();
    if (!next) throw new Error('no more responses');
    if (next instanceof Error) throw next;
    return next;
  });
  return { f: f as unknown as typeof fetch, calls };
}

/** The ApiError a call fails with (the test fails if it succeeds). */
export const failure = (p: Promise<unknown>): Promise<ApiError> =>
  p.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (e: ApiError) => e,
  );

export const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
