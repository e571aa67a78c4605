#include "jobs/p2v.h"

#include <gtest/gtest.h>

namespace pampa {
namespace {

TEST(P2v, SshUrlsAndDevicePaths) {
  auto loc = ParseSshUrl("ssh://root@server.lan:2222");
  ASSERT_TRUE(loc.ok()) << loc.status().message();
  EXPECT_EQ(loc->user, "root");
  EXPECT_EQ(loc->host, "server.lan");
  EXPECT_EQ(loc->port, 2222);
  EXPECT_TRUE(ParseSshUrl("ssh://admin@10.0.0.5").ok());
  for (const char* bad :
       {"root@server", "ssh://server", "ssh://root@server/dev/sda", "sftp://root@h/x", "ssh://a b@h"}) {
    EXPECT_FALSE(ParseSshUrl(bad).ok()) << bad;
  }
  EXPECT_TRUE(CheckDevicePath("/dev/sda").ok());
  EXPECT_TRUE(CheckDevicePath("/dev/disk/by-id/ata-QEMU_HARDDISK_QM00001").ok());
  EXPECT_TRUE(CheckDevicePath("/dev/mapper/vg0-root").ok());
  for (const char* bad : {"/etc/shadow", "/dev/sda;reboot", "/dev/sda b", "/dev/../etc/passwd", "/dev/$(id)",
                          "/dev/'x'", "dev/sda", "/dev/"}) {
    EXPECT_FALSE(CheckDevicePath(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace pampa
