// Driven by bench/web_bench.py: loads the web console in Debian's headless
// chromium with an empty browser cache, RUNS times, and prints one JSON line:
// per run, the first load (navigation to the sign-in screen usable), the time
// to interactive with every VM in the tree (signed in, navigation to the
// last of EXPECT_VMS tree nodes drawn), and the bytes shipped over the wire.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../tests/e2e/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const { PAMPA_URL: url, PAMPA_TOKEN: token } = process.env;
const runs = Number(process.env.RUNS || 5);
const expect = Number(process.env.EXPECT_VMS || 500);
const dropCaches = () => {
  try {
    execFileSync('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches']);
  } catch {
    /* not root: the page cache stays warm */
  }
};

const browser = await chromium.launch({
  executablePath: process.env.PAMPA_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});
const out = [];
for (let i = 0; i < runs; i++) {
  const result = {};
  for (const signedIn of [false, true]) {
    dropCaches();
    const context = await browser.newContext({ viewport: { width: 1280, height: 720 } }); // empty HTTP cache
    if (signedIn) await context.addInitScript((t) => sessionStorage.setItem('pampa-token', t), token);
    const page = await context.newPage();
    let bytes = 0;
    page.on('requestfinished', async (req) => {
      if (new URL(req.url()).pathname.startsWith('/api/')) return;
      const sizes = await req.sizes().catch(() => null);
      if (sizes) bytes += sizes.responseBodySize + sizes.responseHeadersSize;
    });
    const t0 = Date.now();
    await page.goto(url + '/', { waitUntil: 'commit' });
    if (!signedIn) {
      await page.waitForSelector('#token:not([disabled])', { timeout: 30_000 });
      result.first_load_ms = Date.now() - t0;
      await page.waitForLoadState('networkidle');
      result.first_load_bytes = bytes;
    } else {
      await page.waitForFunction((n) => document.querySelectorAll('[data-testid^=tree-vm-]').length >= n, expect, {
        timeout: 60_000,
        polling: 'raf',
      });
      result.interactive_ms = Date.now() - t0;
      // Interactive: a click on the last VM opens its page (timed inside the
      // page, from the click to the frame that shows the VM's tabs).
      result.open_vm_ms = await page.evaluate(
        () =>
          new Promise((resolve) => {
            const nodes = document.querySelectorAll('[data-testid^=tree-vm-]');
            const last = nodes[nodes.length - 1];
            last.scrollIntoView();
            const t1 = performance.now();
            last.click();
            const check = () => {
              const tabs = [...document.querySelectorAll('button, a')].some((b) => b.textContent === 'Summary');
              if (tabs) resolve(performance.now() - t1);
              else requestAnimationFrame(check);
            };
            requestAnimationFrame(check);
          }),
      );
    }
    await context.close();
  }
  out.push(result);
}
await browser.close();
console.log(JSON.stringify(out));
