#include "resources/prometheus.h"

#include <gtest/gtest.h>

#include <cmath>

namespace pampa {
namespace {

TEST(PromTextTest, WritesFamiliesAndEscapedLabels) {
  PromText t;
  t.Family("pampa_vm_cpu_percent", "gauge", "CPU use.\nOf one core");
  t.Sample("pampa_vm_cpu_percent", {{"vm", "web \"1\"\\x"}}, 12.5);
  t.Sample("pampa_vm_cpu_percent", {{"vm", "db"}, {"host", "h1"}}, 3);
  t.Sample("pampa_up", {}, NAN);
  EXPECT_EQ(t.str(),
            "# HELP pampa_vm_cpu_percent CPU use.\\nOf one core\n"
            "# TYPE pampa_vm_cpu_percent gauge\n"
            "pampa_vm_cpu_percent{vm=\"web \\\"1\\\"\\\\x\"} 12.5\n"
            "pampa_vm_cpu_percent{vm=\"db\",host=\"h1\"} 3\n"
            "pampa_up NaN\n");
}

TEST(PromTextTest, NamesAreMadeValid) {
  EXPECT_EQ(PromName("disk.read-bytes"), "disk_read_bytes");
  EXPECT_EQ(PromName("9lives"), "_lives");
  EXPECT_EQ(PromName(""), "_");
  EXPECT_EQ(PromName("ok_name:1"), "ok_name:1");
}

}  // namespace
}  // namespace pampa
