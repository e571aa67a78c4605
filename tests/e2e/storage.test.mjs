// Uploading a disk image from the browser on the Storage page, in Debian's
// headless chromium driven by playwright-core, against a real pampad
// (started by tests/integration/test_web.py, which passes PAMPA_URL,
// PAMPA_TOKEN, PAMPA_CLI, PAMPA_SOCKET and PAMPA_GUEST): the file goes up
// with PUT /api/v1/pools/default/upload/uploaded, its import task ends in
// the tasks panel, the CLI lists the volume; the same name again is refused.
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { openConsole, pampa, shoot } from './helpers.mjs';

const POOL = 'default';
const VOLUME = 'uploaded';
const env = process.env;

// The volume, by `pampa volume delete POOL NAME`; false when there was none.
function deleteVolume() {
  try {
    execFileSync(env.PAMPA_CLI, ['--socket', env.PAMPA_SOCKET, 'volume', 'delete', POOL, VOLUME], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const volumes = () => JSON.parse(pampa('volume', 'list', POOL, '--json'));

test('uploading a disk image on the storage page', async (t) => {
  deleteVolume(); // left by an earlier run on the same pampad
  const { browser, page, errors } = await openConsole();
  t.after(() => browser.close());
  t.after(() => deleteVolume());
  const step = async (name, body) =>
    t.test(name, async () => {
      try {
        await body();
      } finally {
        await shoot(page, `storage ${name}`);
      }
    });

  const isUpload = (r) => r.request().method() === 'PUT' && r.url().includes(`/api/v1/pools/${POOL}/upload/${VOLUME}`);
  const form = page.locator('form:has([data-testid=upload-file])');

  // Picks the file (which proposes a volume name, when none is typed) and names the volume.
  const pick = async ({ proposes } = {}) => {
    await page.setInputFiles('[data-testid=upload-file]', `${env.PAMPA_GUEST}/disk.qcow2`);
    if (proposes) {
      assert.equal(await form.locator('input[name=volume]').inputValue(), 'disk', 'the name proposed from disk.qcow2');
    }
    await form.locator('input[name=volume]').fill(VOLUME);
  };

  await step('sign in', async () => {
    await page.goto(env.PAMPA_URL + '/');
    await page.fill('#token', env.PAMPA_TOKEN);
    await page.click('button:has-text("Sign in")');
    await page.waitForSelector('[data-testid=tree]');
  });

  await step('open the default pool', async () => {
    await page.click(`[data-testid=tree] a[href="#/storage/${POOL}"]`);
    await page.waitForSelector(`h2:has-text("Volumes in ${POOL}")`);
    await form.waitFor();
  });

  await step('upload the test guest disk; its import task succeeds', async () => {
    await pick({ proposes: true });
    const answered = page.waitForResponse(isUpload, { timeout: 120_000 });
    await form.locator('button:text-is("Upload")').click();
    const res = await answered;
    assert.equal(res.status(), 202, `pampad answered the upload ${res.status()}`);
    const row = page.locator(`[data-testid^=task-]:has-text("${POOL}/${VOLUME}")`).first();
    await row.waitFor({ timeout: 30_000 });
    await page.waitForSelector(`[data-testid^=task-]:has-text("${POOL}/${VOLUME}"):not([data-state=running])`, {
      timeout: 180_000,
    });
    const state = await row.getAttribute('data-state');
    assert.equal(state, 'succeeded', `the import ${state}: ${await row.textContent()}`);
    assert.match(await row.textContent(), /import/);
    // The page lists the new volume once the task has ended.
    await page.waitForSelector(`td:text-is("${VOLUME}")`, { timeout: 30_000 });
  });

  await step('the CLI lists the volume', async () => {
    const listed = volumes();
    const vols = Array.isArray(listed) ? listed : listed.volumes;
    const v = vols.find((x) => x.name === VOLUME);
    assert.ok(v, `no volume ${VOLUME} in ${JSON.stringify(vols.map((x) => x.name))}`);
    assert.equal(v.format, 'qcow2');
    assert.ok(v.size > 0);
  });

  await step('the same name again is refused with pampad\'s message', async () => {
    await pick();
    const answered = page.waitForResponse(isUpload, { timeout: 60_000 });
    await form.locator('button:text-is("Upload")').click();
    const res = await answered;
    assert.equal(res.status(), 409);
    const alert = form.locator('[role=alert]');
    await alert.waitFor();
    assert.match(await alert.textContent(), new RegExp(`volume '${VOLUME}' already exists in pool '${POOL}'`));
    // The upload is over: the button works again, no progress bar is left.
    await form.locator('button:text-is("Upload"):enabled').waitFor();
    assert.equal(await form.locator('[role=progressbar]').count(), 0);
  });

  await step('no errors in the browser console', async () => {
    // The 409 above was expected.
    assert.deepEqual(
      errors.filter((e) => !e.startsWith(`HTTP 409 PUT /api/v1/pools/${POOL}/upload/`)),
      [],
    );
  });

  await step('the volume can be deleted', async () => {
    assert.ok(deleteVolume(), `pampa volume delete ${POOL} ${VOLUME}`);
    const listed = volumes();
    const vols = Array.isArray(listed) ? listed : listed.volumes;
    assert.ok(!vols.some((x) => x.name === VOLUME));
  });
});
