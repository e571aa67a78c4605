#include "vm/cloud_init.h"

#include <gtest/gtest.h>

namespace pampa {
namespace {

using json = nlohmann::json;

const char* kKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBnJ7f0tUuE0Rg3rV1mJq9z8y7x6w5v4u3t2s1r0q9p8 ana@desk";

TEST(CloudInit, APasswordIsKeptOnlyAsAHash) {
  CloudInit ci;
  ASSERT_TRUE(ApplyCloudInit({{"user", "ana"}, {"password", "s3cret"}, {"ssh_keys", {kKey}}}, &ci).ok());
  EXPECT_EQ(ci.user, "ana");
  EXPECT_EQ(ci.password_hash.rfind("$6$", 0), 0u);
  EXPECT_EQ(ci.password_hash.find("s3cret"), std::string::npos);
  EXPECT_EQ(ci.ssh_keys, std::vector<std::string>{kKey});
  // A field given replaces, "" clears, the others stay.
  ASSERT_TRUE(ApplyCloudInit({{"hostname", "web1"}, {"ssh_keys", json::array()}}, &ci).ok());
  EXPECT_EQ(ci.hostname, "web1");
  EXPECT_TRUE(ci.ssh_keys.empty());
  EXPECT_EQ(ci.user, "ana");
}

TEST(CloudInit, RefusesWhatIsMalformedAndLeavesTheSettingsAsTheyWere) {
  CloudInit ci;
  ci.hostname = "kept";
  auto msg = [&](const json& body) { return ApplyCloudInit(body, &ci).message(); };
  EXPECT_NE(msg({{"ip", "10.0.0.5"}}).find("10.0.0.5/24"), std::string::npos);
  EXPECT_NE(msg({{"ip", "10.0.0.300/24"}}).find("must be 'dhcp'"), std::string::npos);
  EXPECT_NE(msg({{"gateway", "10.0.0.1"}}).find("static address"), std::string::npos);
  EXPECT_NE(msg({{"ssh_keys", {"not a key"}}}).find("not an OpenSSH public key"), std::string::npos);
  EXPECT_NE(msg({{"ssh_keys", {std::string(kKey) + "\nssh-rsa AAAA"}}}).find("OpenSSH"), std::string::npos);
  EXPECT_NE(msg({{"password", "x"}}).find("--ci-user"), std::string::npos);
  EXPECT_NE(msg({{"user", "root"}}).find("not root"), std::string::npos);
  EXPECT_NE(msg({{"hostname", "Bad_Host"}}).find("DNS labels"), std::string::npos);
  EXPECT_NE(msg({{"shell", "/bin/sh"}}).find("unknown field 'cloud_init.shell'"), std::string::npos);
  EXPECT_NE(msg("dhcp").find("must be an object"), std::string::npos);
  EXPECT_EQ(ci.hostname, "kept");
}

TEST(CloudInit, TheSeedNamesTheFirstNicByItsMacAndChangesItsIdWithTheSettings) {
  VmSpec spec;
  spec.name = "web";
  spec.uuid = "6f1c0b8e-0000-4000-8000-000000000001";
  spec.nics = {{"default", "52:54:00:12:34:56"}};
  ASSERT_TRUE(ApplyCloudInit({{"user", "ana"},
                              {"ssh_keys", {kKey}},
                              {"ip", "10.0.0.5/24"},
                              {"gateway", "10.0.0.1"},
                              {"dns", "10.0.0.2"},
                              {"hostname", "web1"}},
                             &spec.cloud_init)
                  .ok());
  CloudInitSeed seed = CloudInitFiles(spec);
  ASSERT_EQ(seed.user_data.rfind("#cloud-config\n", 0), 0u);
  json user = json::parse(seed.user_data.substr(seed.user_data.find('\n') + 1));
  EXPECT_EQ(user["hostname"], "web1");
  EXPECT_EQ(user["users"][1]["name"], "ana");
  EXPECT_EQ(user["users"][1]["ssh_authorized_keys"][0], kKey);
  json net = json::parse(seed.network_config);
  EXPECT_EQ(net["ethernets"]["eth0"]["match"]["macaddress"], "52:54:00:12:34:56");
  EXPECT_EQ(net["ethernets"]["eth0"]["addresses"][0], "10.0.0.5/24");
  EXPECT_EQ(net["ethernets"]["eth0"]["gateway4"], "10.0.0.1");
  json meta = json::parse(seed.meta_data);
  EXPECT_EQ(meta["local-hostname"], "web1");
  std::string id = meta["instance-id"];
  EXPECT_EQ(json::parse(CloudInitFiles(spec).meta_data)["instance-id"], id);  // the same settings, the same id
  ASSERT_TRUE(ApplyCloudInit({{"hostname", "web2"}}, &spec.cloud_init).ok());
  EXPECT_NE(json::parse(CloudInitFiles(spec).meta_data)["instance-id"], id);
}

}  // namespace
}  // namespace pampa
