// Cloud-init: the settings (checked, the password hashed at once) and the
// NoCloud seed a VM gets as a CD labelled "cidata": meta-data, user-data and
// network-config, written as JSON (a subset of YAML, so no quoting of our
// own), made into an ISO 9660 image by genisoimage at each start.
#include "vm/cloud_init.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "base/process.h"
#include "base/units.h"

namespace pampa {
namespace {

using json = nlohmann::json;

Status CheckIpv4(const std::string& field, const std::string& ip) {
  in_addr a{};
  if (inet_pton(AF_INET, ip.c_str(), &a) != 1) {
    return Status::Invalid("cloud-init " + field + " '" + ip + "' is not an IPv4 address (such as 10.0.0.1)");
  }
  return Status::Ok();
}

Status CheckCidr(const std::string& ip) {
  if (ip == "dhcp") return Status::Ok();
  auto slash = ip.find('/');
  std::string bits = slash == std::string::npos ? "" : ip.substr(slash + 1);
  if (bits.empty() || bits.size() > 2 || !std::all_of(bits.begin(), bits.end(), ::isdigit) || std::stoi(bits) > 32 ||
      !CheckIpv4("ip", ip.substr(0, slash)).ok()) {
    return Status::Invalid("cloud-init ip '" + ip +
                           "' must be 'dhcp' or an IPv4 address with its prefix (10.0.0.5/24)");
  }
  return Status::Ok();
}

Status CheckKey(const std::string& key) {
  static const std::regex kKey(
      "(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\\.com) "
      "[A-Za-z0-9+/]+={0,3}( [\\x20-\\x7e]*)?");
  if (key.size() > 8192 || !std::regex_match(key, kKey)) {
    return Status::Invalid("ssh key '" + key.substr(0, 40) + (key.size() > 40 ? "…" : "") +
                           "' is not an OpenSSH public key line (such as 'ssh-ed25519 AAAA... user@host')");
  }
  return Status::Ok();
}

Result<std::string> HashPassword(const std::string& password) {
  if (password.size() > 256 || password.find_first_of(std::string("\n\r\0", 3)) != std::string::npos) {
    return Status::Invalid("cloud-init password must be one line of at most 256 characters");
  }
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn("$6$", 0, nullptr, 0, setting, sizeof setting) == nullptr) {
    return Status::Internal("cannot make a password salt");
  }
  crypt_data data{};
  const char* hash = crypt_r(password.c_str(), setting, &data);
  if (hash == nullptr || hash[0] == '*') return Status::Internal("cannot hash the password");
  return std::string(hash);
}

Result<std::string> StringField(const json& body, const std::string& key) {
  if (!body[key].is_string()) return Status::Invalid("field 'cloud_init." + key + "' must be a string");
  return body[key].get<std::string>();
}

}  // namespace

Status ApplyCloudInit(const json& body, CloudInit* ci) {
  if (!body.is_object()) return Status::Invalid("field 'cloud_init' must be an object");
  static const std::set<std::string> kFields = {"user", "ssh_keys", "password", "ip", "gateway", "dns", "hostname"};
  for (auto& [k, v] : body.items()) {
    if (!kFields.count(k)) {
      return Status::Invalid("unknown field 'cloud_init." + k +
                             "' (known: user, ssh_keys, password, ip, gateway, dns, hostname)");
    }
  }
  CloudInit c = *ci;
  if (body.contains("user")) {
    PAMPA_ASSIGN_OR_RETURN(c.user, StringField(body, "user"));
    static const std::regex kUser("[a-z_][a-z0-9_-]{0,31}");
    if (!c.user.empty() && (!std::regex_match(c.user, kUser) || c.user == "root")) {
      return Status::Invalid("cloud-init user '" + c.user +
                             "' must be 1-32 of a-z, 0-9, '_' and '-', starting with a letter or '_', and not root");
    }
  }
  if (body.contains("ssh_keys")) {
    const json& keys = body["ssh_keys"];
    if (!keys.is_array() || keys.size() > 32) {
      return Status::Invalid("field 'cloud_init.ssh_keys' must be a list of at most 32 keys");
    }
    c.ssh_keys.clear();
    for (const json& k : keys) {
      if (!k.is_string()) return Status::Invalid("field 'cloud_init.ssh_keys' must hold strings");
      PAMPA_RETURN_IF_ERROR(CheckKey(k.get<std::string>()));
      c.ssh_keys.push_back(k.get<std::string>());
    }
  }
  if (body.contains("password")) {
    PAMPA_ASSIGN_OR_RETURN(std::string password, StringField(body, "password"));
    c.password_hash.clear();
    if (!password.empty()) {
      PAMPA_ASSIGN_OR_RETURN(c.password_hash, HashPassword(password));
    }
  }
  if (body.contains("ip")) {
    PAMPA_ASSIGN_OR_RETURN(c.ip, StringField(body, "ip"));
    if (!c.ip.empty()) PAMPA_RETURN_IF_ERROR(CheckCidr(c.ip));
  }
  for (auto [key, field] : {std::pair{"gateway", &c.gateway}, std::pair{"dns", &c.dns}}) {
    if (!body.contains(key)) continue;
    PAMPA_ASSIGN_OR_RETURN(*field, StringField(body, key));
    if (!field->empty()) PAMPA_RETURN_IF_ERROR(CheckIpv4(key, *field));
  }
  if (body.contains("hostname")) {
    PAMPA_ASSIGN_OR_RETURN(c.hostname, StringField(body, "hostname"));
    static const std::regex kHost("[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*");
    if (!c.hostname.empty() && (c.hostname.size() > 253 || !std::regex_match(c.hostname, kHost))) {
      return Status::Invalid("cloud-init hostname '" + c.hostname +
                             "' must be DNS labels of a-z, 0-9 and '-' joined by dots (at most 253 characters)");
    }
  }
  if (!c.password_hash.empty() && c.user.empty()) {
    return Status::Invalid("a cloud-init password is for a user: name one (--ci-user)");
  }
  if ((!c.gateway.empty() || !c.dns.empty()) && (c.ip.empty() || c.ip == "dhcp")) {
    return Status::Invalid("a cloud-init gateway or DNS server goes with a static address (--ci-ip 10.0.0.5/24)");
  }
  *ci = std::move(c);
  return Status::Ok();
}

CloudInitSeed CloudInitFiles(const VmSpec& spec) {
  const CloudInit& c = spec.cloud_init;
  json user_data = json::object();
  if (!c.hostname.empty()) user_data["hostname"] = c.hostname;
  if (!c.user.empty()) {
    json u = {{"name", c.user}, {"sudo", "ALL=(ALL) NOPASSWD:ALL"}, {"shell", "/bin/bash"}, {"groups", "sudo"}};
    if (!c.ssh_keys.empty()) u["ssh_authorized_keys"] = c.ssh_keys;
    if (!c.password_hash.empty()) {
      u["passwd"] = c.password_hash;
      u["lock_passwd"] = false;
      user_data["ssh_pwauth"] = true;
    }
    user_data["users"] = json::array({"default", u});
  } else if (!c.ssh_keys.empty()) {
    user_data["ssh_authorized_keys"] = c.ssh_keys;  // the image's default user
  }
  json network = {{"version", 2}, {"ethernets", json::object()}};
  if (!c.ip.empty() && !spec.nics.empty()) {
    json nic = {{"match", {{"macaddress", spec.nics[0].mac}}}, {"set-name", "eth0"}};
    if (c.ip == "dhcp") {
      nic["dhcp4"] = true;
    } else {
      nic["addresses"] = json::array({c.ip});
      if (!c.gateway.empty()) nic["gateway4"] = c.gateway;
      if (!c.dns.empty()) nic["nameservers"] = {{"addresses", json::array({c.dns})}};
    }
    network["ethernets"]["eth0"] = nic;
  }
  CloudInitSeed seed;
  seed.user_data = "#cloud-config\n" + user_data.dump(2) + "\n";
  seed.network_config = network.dump(2) + "\n";
  // A new instance id whenever the settings change: cloud-init applies them again.
  std::string settings = seed.user_data + seed.network_config;
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a: the same id for the same settings, in every build
  for (unsigned char ch : settings) h = (h ^ ch) * 0x100000001b3ull;
  char digest[17];
  snprintf(digest, sizeof digest, "%016llx", static_cast<unsigned long long>(h));
  json meta = {{"instance-id", "iid-" + spec.uuid + "-" + digest},
               {"local-hostname", c.hostname.empty() ? spec.name : c.hostname}};
  seed.meta_data = meta.dump(2) + "\n";
  return seed;
}

Status WriteCloudInitSeed(const VmSpec& spec, const std::string& iso) {
  CloudInitSeed seed = CloudInitFiles(spec);
  std::string dir = iso + ".d";
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::Internal("cannot make " + dir + ": " + ec.message());
  for (auto [name, text] : {std::pair{"meta-data", &seed.meta_data}, std::pair{"user-data", &seed.user_data},
                            std::pair{"network-config", &seed.network_config}}) {
    std::ofstream out(dir + "/" + name, std::ios::trunc);
    out << *text;
    if (!out.good()) return Status::Internal("cannot write " + dir + "/" + name);
  }
  std::string tmp = iso + ".creating";
  auto r = RunChecked({"genisoimage", "-quiet", "-output", tmp, "-volid", "cidata", "-joliet", "-rock",
                       dir + "/meta-data", dir + "/user-data", dir + "/network-config"});
  std::filesystem::remove_all(dir, ec);
  if (r.ok() && rename(tmp.c_str(), iso.c_str()) != 0) r = Status::Internal("cannot create " + iso);
  if (!r.ok()) {
    unlink(tmp.c_str());
    return r.status().Context("making the cloud-init seed (apt-get install genisoimage)");
  }
  return Status::Ok();
}

}  // namespace pampa
