// The web console end to end, in Debian's headless chromium driven by
// playwright-core, against a real pampad and a real guest (started by
// tests/integration/test_web.py, which passes PAMPA_URL, PAMPA_TOKEN,
// PAMPA_CLI, PAMPA_SOCKET, PAMPA_GUEST, PAMPA_ROOT and PAMPA_SHOTS).
// The steps share one browser page and one VM, in the order a user goes.
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { openConsole, pampa, shoot } from './helpers.mjs';

const VM = 'e2e';
const env = process.env;

test('the web console, from sign-in to delete', async (t) => {
  const { browser, page, errors } = await openConsole();
  t.after(() => browser.close());
  const step = async (name, body) =>
    t.test(name, async () => {
      try {
        await body();
      } finally {
        await shoot(page, name);
      }
    });

  await step('a wrong token is refused', async () => {
    await page.goto(env.PAMPA_URL + '/');
    await page.fill('#token', 'f'.repeat(64));
    await page.click('button:has-text("Sign in")');
    await page.waitForSelector('[role=alert]');
    assert.match(await page.textContent('[role=alert]'), /token/i);
    assert.ok(!page.url().includes('f'.repeat(64)), 'the token never goes into the URL');
  });

  await step('sign in', async () => {
    errors.length = 0; // the refused sign-in's 401
    await page.fill('#token', env.PAMPA_TOKEN);
    await page.click('button:has-text("Sign in")');
    await page.waitForSelector('[data-testid=tree]');
    assert.ok(!page.url().includes(env.PAMPA_TOKEN));
  });

  await step('create a VM from the test guest', async () => {
    await page.click('button:has-text("Create VM")');
    const dialog = page.locator('form:has(input[name=cpus])');
    await dialog.locator('input[name=name]').fill(VM);
    await dialog.locator('input[name=cpus]').fill('1');
    await dialog.locator('input[name=memory]').fill('256M');
    await dialog.locator('input[name=disk_image]').fill(`${env.PAMPA_GUEST}/disk.qcow2`);
    await dialog.locator('summary:has-text("Direct kernel boot")').click();
    await dialog.locator('input[name=kernel]').fill(`${env.PAMPA_GUEST}/vmlinuz`);
    await dialog.locator('input[name=initrd]').fill(`${env.PAMPA_GUEST}/initrd.img`);
    await dialog.locator('input[name=append]').fill('console=ttyS0 quiet');
    await dialog.locator('button[type=submit]').click();
    await page.waitForSelector(`[data-testid=tree-vm-${VM}][data-state=stopped]`, { timeout: 60_000 });
  });

  await step('start it', async () => {
    await page.click(`[data-testid=tree-vm-${VM}]`);
    await page.click('button:text-is("Start")');
    await page.waitForSelector(`[data-testid=tree-vm-${VM}][data-state=running]`, { timeout: 30_000 });
  });

  // xterm.js draws only while it is in view, and draws spaces as no-break
  // spaces: the checks scroll to it and read its text with plain ones.
  await step('the serial console shows the guest booting', async () => {
    await page.click('button:text-is("Console"), a:text-is("Console")');
    await page.locator('[data-testid=serial]').scrollIntoViewIfNeeded();
    await page.waitForFunction(
      (text) => document.querySelector('[data-testid=serial]')?.textContent.replace(/\u00a0/g, ' ').includes(text),
      'pampa-guest: ready',
      { timeout: 120_000 },
    );
  });

  await step('typed text runs a command in the guest', async () => {
    // The keys land on the guest's screen (tty1); the command answers on the serial line.
    await page.fill('[data-testid=type-text] textarea, [data-testid=type-text] input', 'echo e2e-$((6*7)) > /dev/ttyS0\n');
    await page.click('[data-testid=type-text] button:has-text("Send")');
    await page.waitForFunction(
      (text) => document.querySelector('[data-testid=serial]')?.textContent.replace(/\u00a0/g, ' ').includes(text),
      'e2e-42',
      { timeout: 60_000 },
    );
  });

  await step('the graphical console draws', async () => {
    const canvas = page.locator('[data-testid=vnc] canvas');
    await canvas.first().waitFor({ timeout: 30_000 });
    const drawn = await page.waitForFunction(
      () => {
        const c = document.querySelector('[data-testid=vnc] canvas');
        if (!c || c.width < 100 || c.height < 100) return false;
        const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let lit = 0;
        for (let i = 0; i < data.length; i += 4) if (data[i] + data[i + 1] + data[i + 2] > 60) lit++;
        return lit > 100 ? lit : false;
      },
      null,
      { timeout: 60_000 },
    );
    assert.ok((await drawn.jsonValue()) > 100, 'the VNC canvas is not blank');
  });

  await step('take a snapshot and revert to it', async () => {
    await page.click('button:text-is("Snapshots"), a:text-is("Snapshots")');
    const form = page.locator('form:has(input[name=description])');
    await form.locator('input[name=name]').fill('before');
    await form.locator('button[type=submit]').click();
    await page.waitForSelector('[data-testid=snapshot-before]', { timeout: 60_000 });
    const row = page.locator('[data-testid=snapshot-before]');
    await row.locator('button:text-is("Revert")').click();
    await row.locator('button:has-text("Revert now")').click();
    await page.waitForSelector('[data-testid^=task-][data-state=succeeded]:has-text("revert")', { timeout: 90_000 });
    const snaps = JSON.parse(pampa('snapshot', 'list', VM, '--json'));
    assert.equal(snaps.current, 'before');
  });

  await step('a backup runs with live progress to 100%', async () => {
    pampa('repo', 'add', 'e2e-repo', '--url', `${env.PAMPA_ROOT}/e2e-repo`, '--no-encryption');
    await page.click('button:text-is("Backups"), a:text-is("Backups")');
    await page.waitForSelector('select[name=repo]');
    await page.selectOption('select[name=repo]', 'e2e-repo');
    const seen = [];
    const sampler = setInterval(async () => {
      const v = await page.getAttribute('[role=progressbar]', 'aria-valuenow', { timeout: 50 }).catch(() => null);
      if (v !== null) seen.push(Number(v));
    }, 100);
    try {
      await page.click('button:has-text("Back up now")');
      await page.waitForSelector('[data-testid^=task-][data-state=succeeded]:has-text("backup")', { timeout: 180_000 });
      await page.waitForSelector('text=/Backup \\S+ done in/');
    } finally {
      clearInterval(sampler);
    }
    assert.ok(seen.length > 0, 'a progress bar was shown while the backup ran');
    assert.ok(seen.every((v, i) => i === 0 || v >= seen[i - 1]), `progress went backwards: ${seen}`);
    const listed = JSON.parse(pampa('backup', 'list', '--json'));
    const backups = Array.isArray(listed) ? listed : listed.backups;
    assert.equal(backups.filter((b) => b.vm === VM).length, 1);
  });

  await step('restore it as a new VM', async () => {
    await page.click('button:has-text("Restore…")');
    const form = page.locator('form:has(input[name=as])');
    await form.locator('input[name=as]').fill(`${VM}-copy`);
    await form.locator('button[type=submit]:text-is("Restore")').click();
    await page.waitForSelector(`[data-testid=tree-vm-${VM}-copy]`, { timeout: 180_000 });
    await page.waitForSelector('[data-testid^=task-][data-state=succeeded]:has-text("restore")', { timeout: 180_000 });
  });

  // Alone, GET /api/v1/hosts lists this host: a pool of one, without maintenance.
  await step('the Hosts page shows this host and its VMs', async () => {
    const me = JSON.parse(pampa('host', 'info', '--json')).hostname;
    await page.click('[data-testid=tree] a:text-is("Hosts")');
    const row = page.locator(`[data-testid="host-${me}"]`);
    await row.waitFor();
    assert.equal(await row.getAttribute('data-state'), 'online');
    await row.locator(`a:text-is("${me}")`).click();
    await page.waitForSelector(`h1:text-is("Host ${me}")`);
    await page.waitForSelector(`table a:text-is("${VM}")`);
    assert.equal(await page.locator('button:has-text("Maintenance")').count(), 0, 'a host alone has no maintenance');
  });

  await step('the tree follows a change made from the CLI', async () => {
    pampa('vm', 'start', `${VM}-copy`);
    await page.waitForSelector(`[data-testid=tree-vm-${VM}-copy][data-state=running]`, { timeout: 30_000 });
    pampa('vm', 'stop', `${VM}-copy`);
    await page.waitForSelector(`[data-testid=tree-vm-${VM}-copy][data-state=stopped]`, { timeout: 30_000 });
  });

  await step('clone the stopped copy, then rename the clone', async () => {
    await page.click(`[data-testid=tree-vm-${VM}-copy]`);
    await page.click('[data-testid=vm-action-clone]');
    const form = page.locator('[data-testid=clone-form]');
    await form.locator('input[name=clone-name]').fill(`${VM}-clone`);
    await form.locator('button[type=submit]').click();
    await page.click('[data-testid=open-clone]', { timeout: 180_000 });
    await page.waitForSelector(`h1:has-text("${VM}-clone")`);
    // The clone's events schedule a refresh of it (150 ms, web/src/state.ts):
    // done before the rename, it cannot ask for the old name (a 404).
    await page.waitForTimeout(500);
    await page.click('[data-testid=vm-action-rename]');
    await page.fill('[data-testid=rename-form] input[name=new-name]', `${VM}-renamed`);
    await page.click('[data-testid=rename-form] button[type=submit]');
    await page.waitForSelector(`h1:has-text("${VM}-renamed")`, { timeout: 30_000 });
    await page.waitForSelector(`[data-testid=tree-vm-${VM}-clone]`, { state: 'detached', timeout: 30_000 });
    assert.equal(JSON.parse(pampa('vm', 'show', `${VM}-renamed`, '--json')).disks[0].volume, `${VM}-clone-disk0`);
  });

  await step('delete needs the typed name', async () => {
    await page.click(`[data-testid=tree-vm-${VM}-copy]`);
    await page.click('button:text-is("Delete")');
    const confirm = page.locator('[data-testid=confirm-name]');
    await confirm.fill('wrong-name');
    const go = page.locator('form:has([data-testid=confirm-name]) button[type=submit], [data-testid=confirm-name] ~ button');
    assert.ok(await go.first().isDisabled(), 'delete is refused until the name is typed');
    await confirm.fill(`${VM}-copy`);
    await go.first().click();
    await page.waitForSelector(`[data-testid=tree-vm-${VM}-copy]`, { state: 'detached', timeout: 30_000 });
  });

  await step('no errors in the browser console', async () => {
    assert.deepEqual(errors, []);
  });

  // What the steps made, for a rerun on the same pampad.
  for (const args of [['vm', 'stop', VM], ['vm', 'delete', VM], ['vm', 'delete', `${VM}-copy`], ['vm', 'delete', `${VM}-clone`], ['vm', 'delete', `${VM}-renamed`], ['repo', 'remove', 'e2e-repo']]) {
    try {
      execFileSync(env.PAMPA_CLI, ['--socket', env.PAMPA_SOCKET, ...args], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
  }
});
