"""Writes XenServer exports (XVA) as xapi's `xe vm-export` does, for the import tests.

The archive is a tar: first ova.xml, an XML-RPC value listing the exported objects (the VM, its VBDs,
VDIs and VIFs with their records), then each disk's blocks: "Ref:N/00000000" upwards, N the VDI's id,
1 MiB each (the last may be shorter), each followed by "<name>.checksum", the SHA-1 of the block in hex.
All-zero blocks are left out, except the first and the last of a disk, which are always there."""
import hashlib
import io
import os
import tarfile
from xml.sax.saxutils import escape

BLOCK = 1 << 20


def _value(v):
    if isinstance(v, bool):
        return f"<value><boolean>{int(v)}</boolean></value>"
    if isinstance(v, dict):
        members = "".join(f"<member><name>{escape(k)}</name>{_value(x)}</member>" for k, x in v.items())
        return f"<value><struct>{members}</struct></value>"
    if isinstance(v, list):
        return "<value><array><data>" + "".join(_value(x) for x in v) + "</data></array></value>"
    return f"<value>{escape(str(v))}</value>"  # xapi writes strings (int64s too) as bare text


def ova_xml(label, vcpus, memory, disk_sizes, macs, hvm=True, firmware=None):
    """ova.xml for a VM with one disk per size (VDIs Ref:10, Ref:11, ...) and one VIF per MAC."""
    vbds = [f"Ref:{2 + i}" for i in range(len(disk_sizes))]
    vifs = [f"Ref:{30 + i}" for i in range(len(macs))]
    params = {"order": "dc"}
    if firmware:
        params["firmware"] = firmware
    vm = {
        "uuid": "6d834684-f97e-0488-1f76-70bf72df34ac", "name_label": label, "power_state": "Halted",
        "is_a_template": False, "is_a_snapshot": False, "is_control_domain": False,
        "memory_static_max": str(memory), "memory_dynamic_max": str(memory), "memory_static_min": str(16 << 20),
        "VCPUs_max": str(vcpus), "VCPUs_at_startup": str(vcpus),
        "PV_bootloader": "" if hvm else "pygrub", "PV_kernel": "", "PV_args": "",
        "HVM_boot_policy": "BIOS order" if hvm else "", "HVM_boot_params": params if hvm else {},
        "platform": {"acpi": "1", "apic": "true", "viridian": "true"},
        "VBDs": vbds + ["Ref:29"], "VIFs": vifs, "other_config": {"mac_seed": ""},
    }
    objects = [{"class": "VM", "id": "Ref:0", "snapshot": vm}]
    for i, size in enumerate(disk_sizes):
        objects.append({"class": "VBD", "id": vbds[i], "snapshot": {
            "VM": "Ref:0", "VDI": f"Ref:{10 + i}", "userdevice": str(i), "bootable": i == 0, "mode": "RW",
            "type": "Disk"}})
        objects.append({"class": "VDI", "id": f"Ref:{10 + i}", "snapshot": {
            "name_label": f"{label} disk {i}", "virtual_size": str(size), "type": "user", "read_only": False,
            "SR": "Ref:40"}})
    objects.append({"class": "VBD", "id": "Ref:29", "snapshot": {  # an empty CD drive
        "VM": "Ref:0", "VDI": "OpaqueRef:NULL", "userdevice": "3", "type": "CD", "empty": True}})
    for i, mac in enumerate(macs):
        objects.append({"class": "VIF", "id": vifs[i], "snapshot": {
            "VM": "Ref:0", "device": str(i), "MAC": mac, "MTU": "1500", "network": "Ref:50"}})
    version = {"hostname": "xen1", "product_brand": "XCP-ng", "product_version": "8.2.1", "xapi_major": "1",
               "xapi_minor": "20", "export_vsn": "2"}
    return _value({"version": version, "objects": objects})


def _add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def write_xva(path, raw_images, label="guest", vcpus=1, memory=256 << 20, macs=(), hvm=True, firmware=None,
              corrupt_block=None):
    """Writes an XVA of raw disk images (one VDI each). corrupt_block=(disk, block number): that block's
    checksum file holds a wrong digest (a block damaged after export)."""
    sizes = [os.path.getsize(r) for r in raw_images]
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        _add(tar, "ova.xml", ova_xml(label, vcpus, memory, sizes, list(macs), hvm, firmware).encode())
        zero = bytes(BLOCK)
        for d, (raw, size) in enumerate(zip(raw_images, sizes)):
            last = (size - 1) // BLOCK
            with open(raw, "rb") as f:
                for n in range(last + 1):
                    data = f.read(BLOCK)
                    if n not in (0, last) and data == zero[:len(data)]:
                        continue
                    name = f"Ref:{10 + d}/{n:08d}"
                    digest = hashlib.sha1(data).hexdigest()
                    if corrupt_block == (d, n):
                        digest = hashlib.sha1(data + b"damaged").hexdigest()
                    _add(tar, name, data)
                    _add(tar, name + ".checksum", digest.encode())
