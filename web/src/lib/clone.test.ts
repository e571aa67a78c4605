import { describe, expect, it } from 'vitest';
import type { Vm } from '../api/types';
import { cloneRequest, cloneSummary, renameRequest, runsNow, vmNameProblem } from './clone';

const vm = (extra: Partial<Vm> = {}): Pick<Vm, 'name' | 'state' | 'template'> => ({ name: 'web', state: 'stopped', ...extra });
const form = (extra = {}) => ({ name: 'web2', linked: false, snapshot: '', pool: '', ...extra });

describe('vmNameProblem', () => {
  it("takes what pampad takes: 1-63 of a-z, 0-9 and '-', not starting with '-'", () => {
    expect(vmNameProblem('web-2')).toBe('');
    expect(vmNameProblem('0a')).toBe('');
    expect(vmNameProblem('a'.repeat(63))).toBe('');
  });
  it('says what is wrong with anything else', () => {
    expect(vmNameProblem('')).toMatch(/name/);
    expect(vmNameProblem('a'.repeat(64))).toMatch(/63/);
    expect(vmNameProblem('Web')).toMatch(/a-z/);
    expect(vmNameProblem('-web')).toMatch(/starting/);
    expect(vmNameProblem('web_2')).toMatch(/a-z/);
  });
});

describe('cloneRequest', () => {
  it('asks for a full copy of a stopped VM with only the fields given', () => {
    expect(cloneRequest(form({ name: ' web2 ' }), vm())).toEqual({ body: { name: 'web2' } });
    expect(cloneRequest(form({ snapshot: 's1', pool: 'fast' }), vm())).toEqual({ body: { name: 'web2', snapshot: 's1', pool: 'fast' } });
  });

  it("needs a snapshot of a running or paused VM, whose disks QEMU holds", () => {
    for (const state of ['running', 'paused']) {
      const r = cloneRequest(form(), vm({ state }));
      expect(r).toEqual({ error: `web is ${state}: pick one of its snapshots to copy, or stop it first` });
      expect(cloneRequest(form({ snapshot: 's1' }), vm({ state }))).toEqual({ body: { name: 'web2', snapshot: 's1' } });
    }
    expect(runsNow({ state: 'crashed' })).toBe(false);
  });

  it("links a template's clone without snapshot or pool (pampad refuses them together)", () => {
    const r = cloneRequest(form({ linked: true, snapshot: 's1', pool: 'fast' }), vm({ template: true }));
    expect(r).toEqual({ body: { name: 'web2', linked: true } });
  });

  it('never asks for a linked clone of a VM that is no template', () => {
    expect(cloneRequest(form({ linked: true }), vm())).toEqual({ body: { name: 'web2' } });
  });

  it("refuses a bad name or the source's own", () => {
    expect(cloneRequest(form({ name: '' }), vm())).toEqual({ error: 'give the new VM a name' });
    expect(cloneRequest(form({ name: 'web' }), vm())).toEqual({ error: "a clone needs a name of its own, not 'web'" });
    expect('error' in cloneRequest(form({ name: 'Web 2' }), vm())).toBe(true);
  });
});

describe('renameRequest', () => {
  it('takes a new valid name', () => {
    expect(renameRequest(' db ', vm())).toEqual({ body: { name: 'db' } });
  });
  it('refuses the same name or a bad one', () => {
    expect(renameRequest('web', vm())).toEqual({ error: 'web already has that name' });
    expect('error' in renameRequest('db!', vm())).toBe(true);
  });
});

describe('cloneSummary', () => {
  it("says how the vm-clone task's result made the VM", () => {
    expect(cloneSummary({ vm: 'l1', source: 'base', linked: true })).toBe("Linked clone l1 made from base: its disks read from the template's.");
    expect(cloneSummary({ vm: 'c1', source: 'web', linked: false })).toBe('Clone c1 made from web, with its own copy of the disks.');
  });
  it('copes with no result (a task seen only through its events)', () => {
    expect(cloneSummary(undefined, 'c1')).toBe('Clone c1 made, with its own copy of the disks.');
    expect(cloneSummary(null)).toBe('Clone made, with its own copy of the disks.');
  });
});
