// Shared by the end-to-end tests: Debian's chromium through playwright-core,
// the pampa CLI against the test's pampad, screenshots next to the log.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

const env = process.env;

// A headless chromium at 1280x720 on a fresh page; `errors` collects what
// the page logs as an error, what it throws, and every answer of 400 or more
// as "HTTP STATUS METHOD PATH: the server's message" (chromium's own "Failed
// to load resource" line does not say which request failed, so it is left out).
export async function openConsole({ width = 1280, height = 720 } = {}) {
  const browser = await chromium.launch({
    executablePath: env.PAMPA_CHROMIUM || '/usr/bin/chromium',
    // The tests run as root in CI: chromium's sandbox refuses root.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
  const page = await browser.newPage({ viewport: { width, height } });
  page.setDefaultTimeout(20_000);
  const errors = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
  });
  page.on('response', async (r) => {
    if (r.status() < 400) return;
    const head = `HTTP ${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`;
    errors.push(head);
    const body = await r.text().catch(() => '');
    const i = errors.indexOf(head); // gone when a test cleared the list meanwhile
    if (i >= 0) errors[i] = `${head}: ${body.slice(0, 300)}`;
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  return { browser, page, errors };
}

export function pampa(...args) {
  return execFileSync(env.PAMPA_CLI, ['--socket', env.PAMPA_SOCKET, ...args], { encoding: 'utf8', timeout: 180_000 });
}

let shots = 0;
export async function shoot(page, name) {
  if (!env.PAMPA_SHOTS) return;
  mkdirSync(env.PAMPA_SHOTS, { recursive: true });
  const file = `${String(++shots).padStart(2, '0')}-${name.replace(/[^a-z0-9]+/gi, '-')}.png`;
  await page.screenshot({ path: join(env.PAMPA_SHOTS, file) }).catch(() => {});
}
