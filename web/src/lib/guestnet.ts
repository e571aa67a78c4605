// Reads a guest's addresses from `ip -o link; ip -o addr` run through the
// guest agent (pampad has no address query of its own yet), keyed by MAC.

export function parseIpOutput(out: string): Map<string, string[]> {
  const macOf = new Map<string, string>();
  const addrsOf = new Map<string, string[]>();
  for (const line of out.split('\n')) {
    const link = /^\d+:\s+([^:@\s]+)[^]*?link\/ether\s+([0-9a-f:]{17})/i.exec(line);
    if (link) {
      macOf.set(link[1], link[2].toLowerCase());
      continue;
    }
    const addr = /^\d+:\s+(\S+)\s+inet6?\s+(\S+)/.exec(line);
    if (addr && !addr[2].startsWith('fe80:')) {
      const list = addrsOf.get(addr[1]) ?? [];
      list.push(addr[2]);
      addrsOf.set(addr[1], list);
    }
  }
  const byMac = new Map<string, string[]>();
  for (const [ifname, mac] of macOf) byMac.set(mac, addrsOf.get(ifname) ?? []);
  return byMac;
}
