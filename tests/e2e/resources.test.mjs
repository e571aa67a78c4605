// A VM's resources in the web console, in Debian's headless chromium driven
// by playwright-core, against a real pampad and a real guest (started by
// tests/integration/test_web.py, which passes PAMPA_URL, PAMPA_TOKEN,
// PAMPA_CLI, PAMPA_SOCKET and PAMPA_GUEST): the Performance tab draws the
// CPU history pampad samples every 5 s (uPlot); the Configuration tab's
// Resources section saves a CPU weight and a dynamic memory minimum with
// PATCH /api/v1/vms/{name}, which the CLI then shows, and refuses invalid
// values without changing anything; the Host page shows the capacity card
// and the KSM control.
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { openConsole, pampa, shoot } from './helpers.mjs';

const VM = `e2e-res-${process.pid}`;
const env = process.env;

const show = () => JSON.parse(pampa('vm', 'show', VM, '--json'));

function removeVm() {
  for (const args of [['vm', 'stop', VM], ['vm', 'delete', VM]]) {
    try {
      execFileSync(env.PAMPA_CLI, ['--socket', env.PAMPA_SOCKET, ...args], { stdio: 'ignore', timeout: 120_000 });
    } catch {
      /* not running, or already gone */
    }
  }
}

test('a VM\'s resources: performance graphs, CPU weight and dynamic memory, host capacity', async (t) => {
  const { browser, page, errors } = await openConsole();
  t.after(() => browser.close());
  t.after(() => removeVm());
  const step = async (name, body) =>
    t.test(name, async () => {
      try {
        await body();
      } finally {
        await shoot(page, `resources ${name}`);
      }
    });

  // Every PATCH of the VM the page sends, to tell that a refused value never left the form.
  const patches = [];
  page.on('request', (r) => {
    if (r.method() === 'PATCH' && new URL(r.url()).pathname === `/api/v1/vms/${VM}`) patches.push(r.postData());
  });

  await step('sign in', async () => {
    await page.goto(env.PAMPA_URL + '/');
    await page.fill('#token', env.PAMPA_TOKEN);
    await page.click('button:has-text("Sign in")');
    await page.waitForSelector('[data-testid=tree]');
  });

  await step('create and start a guest with the CLI', async () => {
    pampa('vm', 'create', VM, '--cpus', '1', '--memory', '256M',
      '--disk-image', `${env.PAMPA_GUEST}/disk.qcow2`,
      '--kernel', `${env.PAMPA_GUEST}/vmlinuz`, '--initrd', `${env.PAMPA_GUEST}/initrd.img`,
      '--append', 'console=ttyS0 quiet');
    pampa('vm', 'start', VM);
    await page.waitForSelector(`[data-testid=tree-vm-${VM}][data-state=running]`, { timeout: 30_000 });
  });

  await step('the Performance tab draws the CPU history', async () => {
    await page.click(`[data-testid=tree-vm-${VM}]`);
    await page.waitForSelector(`h1:has-text("${VM}")`);
    await page.click('button:text-is("Performance")');
    const chart = page.locator('[data-testid=chart-cpu]');
    await chart.locator('canvas').waitFor({ timeout: 30_000 });
    // The legend shows each line's latest point while the pointer is off the
    // chart: "—" until pampad has sampled the VM (every 5 s).
    const value = chart.locator('.u-legend .u-series:nth-child(2) .u-value');
    await page.waitForFunction(
      () => {
        const fig = document.querySelector('[data-testid=chart-cpu]');
        const v = fig?.querySelector('.u-legend .u-series:nth-child(2) .u-value')?.textContent.trim();
        return !!v && v !== '—' && v !== '–' && !fig.querySelector('.time-chart-empty');
      },
      null,
      { timeout: 30_000, polling: 250 },
    );
    assert.match(await value.textContent(), /\d.*%/, 'the CPU legend shows a percentage');
    const size = await chart.locator('canvas').first().evaluate((c) => [c.width, c.height]);
    assert.ok(size[0] >= 200 && size[1] > 100, `the CPU chart's canvas is ${size}`);
  });

  await step('set a CPU weight of 300 and a memory minimum of 128 MiB', async () => {
    await page.click('button:text-is("Configuration")');
    const form = page.locator('form.config');
    await form.locator('fieldset.resources').waitFor();
    assert.equal(await form.locator('input[name=cpu_weight]').inputValue(), '100', 'the default weight');
    await form.locator('input[name=cpu_weight]').fill('300');
    await form.locator('input[name=memory_min]').fill('128M');
    const answered = page.waitForResponse((r) => r.request().method() === 'PATCH' && r.url().endsWith(`/api/v1/vms/${VM}`));
    await form.locator('button[type=submit]:text-is("Save")').click();
    const res = await answered;
    assert.equal(res.status(), 200, `pampad answered the PATCH ${res.status()}: ${await res.text()}`);
    assert.deepEqual(JSON.parse(patches.at(-1)), { cpu_weight: 300, memory_min_mib: 128 }, 'only what changed is sent');
    assert.match(await form.locator('[data-testid=config-saved]').textContent(), /cpu_weight.*memory_min_mib/);
    const vm = show();
    assert.equal(vm.cpu_weight, 300);
    assert.equal(vm.memory_min_mib, 128);
    // The form shows what pampad now has.
    assert.equal(await form.locator('input[name=cpu_weight]').inputValue(), '300');
    assert.equal(await form.locator('input[name=memory_min]').inputValue(), '128M');
  });

  await step('invalid values are refused and change nothing', async () => {
    const form = page.locator('form.config');
    const sent = patches.length;
    // A weight of 0: the field's own check (min 1) stops the form.
    const weight = form.locator('input[name=cpu_weight]');
    await weight.fill('0');
    await form.locator('button[type=submit]:text-is("Save")').click();
    const message = await weight.evaluate((i) => (i.validity.valid ? '' : i.validationMessage));
    assert.ok(message, 'the browser says what is wrong with a weight of 0');
    // A minimum above the VM's memory: the form's own message, in its alert.
    await weight.fill('300');
    await form.locator('input[name=memory_min]').fill('1G');
    await form.locator('button[type=submit]:text-is("Save")').click();
    const alert = form.locator('[role=alert]');
    await alert.waitFor();
    assert.match(await alert.textContent(), /more than the VM's memory/);
    assert.equal(patches.length, sent, 'nothing was sent to pampad');
    await form.locator('button:text-is("Revert changes")').click();
    assert.equal(await form.locator('input[name=memory_min]').inputValue(), '128M');
    assert.equal(await form.locator('[role=alert]').count(), 0, 'reverting clears the error');
    const vm = show();
    assert.equal(vm.cpu_weight, 300);
    assert.equal(vm.memory_min_mib, 128);
  });

  await step('the Performance tab says the new share', async () => {
    await page.click('button:text-is("Performance")');
    await page.waitForSelector('.perf dd:has-text("weight 300")');
    await page.waitForSelector('.perf dd:has-text("dynamic: at least 128 MiB")');
  });

  await step('the Host page shows capacity and the KSM control', async () => {
    await page.click('[data-testid=tree] a[href="#/host"]');
    const card = page.locator('[data-testid=capacity]');
    await card.locator('[data-testid=capacity-cpu]').waitFor();
    const cpu = await card.locator('[data-testid=capacity-cpu]').textContent();
    const memory = await card.locator('[data-testid=capacity-memory]').textContent();
    // The running guest: 1 vCPU and 256 MiB committed, of what the host has.
    assert.match(cpu, /\d+ vCPUs? of \d+ CPUs?/);
    assert.match(memory, /\d.* of \d/);
    // Another test's guest may run beside this one: only that one is dynamic is sure.
    assert.doesNotMatch(await card.textContent(), /no running VM has dynamic memory/);
    const ksm = await card.locator('[data-testid=ksm-state]').textContent();
    assert.ok(ksm.trim(), 'the KSM state is said');
    if (!/not available/.test(ksm)) {
      assert.match(await card.locator('[data-testid=ksm-toggle]').textContent(), /Turn KSM (on|off)/);
    }
    // The host's own graphs draw too.
    await page.locator('[data-testid=chart-cpu] canvas').first().waitFor({ timeout: 30_000 });
  });

  await step('no errors in the browser console', async () => {
    assert.deepEqual(errors, []);
  });
});
