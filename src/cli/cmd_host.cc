// pampa host ...: is this host ready to run VMs, the hosts of the pool, and
// a new host's joining of the pool (join-token on a pool host, join on the new
// one).
#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <iostream>

#include "base/fs.h"
#include "base/units.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "tls/pool_ca.h"

namespace pampa::cli {

namespace {

std::string Heartbeat(const nlohmann::json& h) {
  int64_t age = h.value("heartbeat_age_ms", int64_t{-1});
  if (age < 0) return "-";
  return std::to_string(age / 1000) + " s ago";
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "-" : out;
}

int PrintHost(const nlohmann::json& h) {
  std::cout << "name:       " << h.value("name", "") << "\n"
            << "state:      " << h.value("state", "") << "\n"
            << "address:    " << (h.value("url", "").empty() ? "-" : h.value("url", "")) << "\n"
            << "version:    " << h.value("version", "") << "\n"
            << "cpus:       " << h.value("cpus", 0) << " (" << h.value("cpus_committed", 0)
            << " given to running VMs)\n"
            << "memory:     " << HumanSize(h.value("memory_bytes", uint64_t{0})) << " ("
            << HumanSize(h.value("memory_committed", uint64_t{0})) << " given to running VMs)\n"
            << "vms:        " << h.value("vms", 0) << " (" << h.value("running", 0) << " running)\n"
            << "pools:      " << JoinNames(h.value("pools", std::vector<std::string>{})) << "\n"
            << "networks:   " << JoinNames(h.value("networks", std::vector<std::string>{})) << "\n"
            << "heartbeat:  " << Heartbeat(h) << "\n";
  return 0;
}

bool IsIpAddress(const std::string& s) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// "sha256:" and 64 hex digits, as tls::Fingerprint writes them.
bool IsFingerprint(const std::string& s) {
  return s.size() == 7 + 64 && s.rfind("sha256:", 0) == 0 &&
         s.find_first_not_of("0123456789abcdef", 7) == std::string::npos;
}

int ShowJoinToken(const nlohmann::json& t) {
  std::string url = t.value("url", "");
  std::cout << "token:    " << t.value("token", "") << "\n"
            << "pool CA:  " << t.value("ca_sha256", "") << "\n"
            << "expires:  " << FormatTime(t.value("expires_ms", int64_t{0})) << " (it works once)\n\n"
            << "on the new host, as root, with NEW its name and ADDR its IP address in the pool:\n"
            << "  pampa host join --url " << (url.empty() ? "https://THIS_HOST:8006" : url) << " --token "
            << t.value("token", "") << " --ca-sha256 " << t.value("ca_sha256", "") << " --name NEW --address ADDR\n";
  return 0;
}

struct JoinOptions {
  std::string url, token, ca_sha256, name, address;
  std::string data_dir = "/var/lib/pampa";
  bool as_json = false;
};

// `pampa host join`, on the new host: checks the pool's CA against the
// fingerprint the user brought from a pool host, spends the join token for
// this host's certificate, and writes DATA_DIR/tls. Everything that can be
// checked here is, before the token is spent. Returns what pampad needs to
// start in the pool.
Result<nlohmann::json> JoinPool(const JoinOptions& o) {
  Endpoint ep;
  PAMPA_RETURN_IF_ERROR(ParseUrl(o.url, &ep));
  if (!ep.tls) {
    return Status::Invalid("--url must be the https:// URL of a pool host, as pampa host join-token prints it (got '" +
                           o.url + "')");
  }
  std::string want = o.ca_sha256;
  std::transform(want.begin(), want.end(), want.begin(), [](unsigned char c) { return std::tolower(c); });
  if (!IsFingerprint(want)) {
    return Status::Invalid(
        "--ca-sha256 must be 'sha256:' and 64 hex digits, as pampa host join-token prints it (got '" + o.ca_sha256 +
        "')");
  }
  PAMPA_RETURN_IF_ERROR(ValidateName("host", o.name));
  if (!IsIpAddress(o.address)) {
    return Status::Invalid("--address must be the IP address the other hosts reach this one at (got '" + o.address +
                           "')");
  }
  const std::string data_dir = AbsolutePath(o.data_dir);
  const tls::TlsPaths paths(data_dir);
  if (Exists(paths.host())) {
    return Status::Conflict("this host is already in a pool: " + paths.host() + " exists (a host joins one pool)");
  }
  // A directory this user cannot write would fail only after the token is spent.
  PAMPA_RETURN_IF_ERROR(MakeDirs(paths.dir, 0700));
  if (access(paths.dir.c_str(), W_OK) != 0) {
    return Status::Unauthorized("cannot write to " + paths.dir + ": run pampa host join as root");
  }
  const std::string at = "the pool host at " + ep.where();

  // 1. The pool's CA, over TLS that checks nothing yet: its fingerprint decides.
  ep.no_verify = true;
  auto ca_answer = ApiClient(ep).Call("GET", "/api/v1/pool/ca");
  if (!ca_answer.ok()) {
    return Status(ca_answer.status().code(),
                  "asking " + at + " for the pool's CA failed: " + ca_answer.status().message());
  }
  std::string ca_pem = ca_answer->is_object() ? ca_answer->value("ca", "") : "";
  auto got = tls::Fingerprint(ca_pem);
  if (!got.ok()) return Status::Invalid(at + " sent a pool CA that does not load: " + got.status().message());
  if (*got != want) {
    return Status::Invalid("the pool's CA is " + *got + ", not the " + want +
                           " given: compare --ca-sha256 with what pampa host join-token printed; if they are the "
                           "same, something between this host and " +
                           ep.where() + " poses as the pool (nothing was sent to it)");
  }

  // 2. The join itself, trusting only that CA from here on.
  ep.no_verify = false;
  ep.ca_pem = ca_pem;
  auto joined =
      ApiClient(ep).Call("POST", "/api/v1/hosts/join", {{"token", o.token}, {"name", o.name}, {"address", o.address}});
  if (!joined.ok()) {
    return Status(joined.status().code(),
                  "joining the pool at " + ep.where() + " failed: " + joined.status().message());
  }
  if (!joined->is_object()) return Status::Internal(at + " answered the join with no certificate");
  const tls::Issued ca{joined->value("ca", ""), joined->value("ca_key", "")};
  const tls::Issued host{joined->value("cert", ""), joined->value("key", "")};
  const std::string etcd = joined->value("etcd", "");
  auto answered = tls::Fingerprint(ca.cert);
  if (!answered.ok() || *answered != want) {
    return Status::Internal(at + " answered the join with another CA than " + want +
                            ": nothing was written; ask a pool host for a new token (pampa host join-token)");
  }

  // 3. The files, checked as pampad will load them.
  const std::string spent =
      " (the pool accepted the join, so the token is spent: fix this, then ask a pool host for "
      "a new token with pampa host join-token)";
  if (Status st = tls::WriteHostFiles(paths, ca, host); !st.ok()) return Status(st.code(), st.message() + spent);
  auto loaded = tls::LoadHostFiles(paths);
  if (!loaded.ok()) return Status(loaded.status().code(), loaded.status().message() + spent);
  return nlohmann::json{{"data_dir", data_dir}, {"etcd", etcd}, {"ca_sha256", loaded->ca_sha256}, {"host", o.name}};
}

// The API's address for pampad's --listen: ADDR:8006, [ADDR]:8006 for IPv6.
std::string ListenAddress(const std::string& address) {
  return (address.find(':') == std::string::npos ? address : "[" + address + "]") + ":8006";
}

}  // namespace

void AddHostCommands(CLI::App& app, Globals& g) {
  auto host = app.add_subcommand("host", "this host and the pool of hosts");
  host->require_subcommand(1);
  {
    auto as_json = std::make_shared<bool>(false);
    auto cmd = host->add_subcommand("list", "the hosts of the pool, their state and what runs on them");
    cmd->add_flag("--json", *as_json, "print JSON");
    Bind(cmd, g, [&g, as_json] {
      auto r = g.client().Call("GET", "/api/v1/hosts");
      if (!r.ok()) return PrintError(r.status().message());
      if (*as_json) {
        PrintJson(*r);
        return 0;
      }
      std::vector<std::vector<std::string>> rows;
      for (auto& h : *r) {
        rows.push_back({h.value("name", ""), h.value("state", ""), std::to_string(h.value("cpus", 0)),
                        HumanSize(h.value("memory_bytes", uint64_t{0})),
                        HumanSize(h.value("memory_committed", uint64_t{0})),
                        std::to_string(h.value("running", 0)) + "/" + std::to_string(h.value("vms", 0)), Heartbeat(h),
                        h.value("url", "").empty() ? "-" : h.value("url", "")});
      }
      PrintTable({"NAME", "STATE", "CPUS", "MEMORY", "COMMITTED", "RUNNING/VMS", "HEARTBEAT", "ADDRESS"}, rows);
      return 0;
    });
  }
  {
    auto name = std::make_shared<std::string>();
    auto as_json = std::make_shared<bool>(false);
    auto cmd = host->add_subcommand("show", "one host of the pool");
    cmd->add_option("name", *name, "host name")->required();
    cmd->add_flag("--json", *as_json, "print JSON");
    Bind(cmd, g, [&g, name, as_json] {
      auto r = g.client().Call("GET", "/api/v1/hosts/" + *name);
      if (!r.ok()) return PrintError(r.status().message());
      if (*as_json) {
        PrintJson(*r);
        return 0;
      }
      return PrintHost(*r);
    });
  }
  AddDeleteCommand(host, g, "remove", "forget a host that left the pool for good (stopped, without VMs)", "the host",
                   "/api/v1/hosts/", [](const std::string& name) { return "host " + name + " removed from the pool"; });
  {
    auto name = std::make_shared<std::string>();
    auto mode = std::make_shared<std::string>();
    auto async = std::make_shared<bool>(false);
    auto cmd =
        host->add_subcommand("maintenance", "on: move every running VM away and take no new ones; off: take VMs again");
    cmd->add_option("name", *name, "host name")->required();
    cmd->add_option("mode", *mode, "on or off")->required()->check(CLI::IsMember({"on", "off"}));
    cmd->add_flag("--async", *async, "print the task id and return at once");
    Bind(cmd, g, [&g, name, mode, async] {
      auto r = g.client().Call("POST", "/api/v1/hosts/" + *name + "/maintenance", {{"on", *mode == "on"}});
      if (!r.ok()) return PrintError(r.status().message());
      if (*mode == "off") {
        std::cout << "host " << *name << " takes VMs again\n";
        return 0;
      }
      return FinishTask(g, (*r)["task"], *async, "host " + *name + " is in maintenance: its VMs moved away");
    });
  }
  {
    auto as_json = std::make_shared<bool>(false);
    auto cmd = host->add_subcommand("check", "check QEMU, KVM (with a probe boot), networking and cgroups");
    cmd->add_flag("--json", *as_json, "print JSON");
    Bind(cmd, g, [&g, as_json] {
      auto r = g.client().Call("GET", "/api/v1/host/check");
      if (!r.ok()) return PrintError(r.status().message());
      if (*as_json) {
        PrintJson(*r);
        return r->value("ok", false) ? 0 : 1;
      }
      for (auto& c : (*r)["checks"]) {
        std::string st = c.value("status", "");
        std::string mark = st == "ok" ? "ok  " : st == "warn" ? "WARN" : "FAIL";
        std::cout << "[" << mark << "] " << c.value("name", "") << ": " << c.value("detail", "") << "\n";
        if (!c.value("advice", "").empty()) std::cout << "       -> " << c.value("advice", "") << "\n";
      }
      return r->value("ok", false) ? 0 : 1;
    });
  }
  {
    auto as_json = std::make_shared<bool>(false);
    auto cmd = host->add_subcommand("info", "hostname, version, accelerator");
    cmd->add_flag("--json", *as_json, "print JSON");
    Bind(cmd, g, [&g, as_json] {
      auto r = g.client().Call("GET", "/api/v1/host");
      if (!r.ok()) return PrintError(r.status().message());
      if (*as_json)
        PrintJson(*r);
      else
        std::cout << "host:    " << r->value("hostname", "") << "\n"
                  << "version: " << r->value("version", "") << "\n"
                  << "accel:   " << r->value("accel", "") << " (" << r->value("accel_reason", "") << ")\n"
                  << "vms:     " << r->value("vms", 0) << "\n";
      return 0;
    });
  }
  {
    auto since = std::make_shared<std::string>("1h");
    auto as_json = std::make_shared<bool>(false);
    auto cmd = host->add_subcommand("stats", "this host's CPU, memory, load and KSM history");
    cmd->add_option("--since", *since, "how far back: 10m, 1h, 1d, 7w...")->capture_default_str();
    cmd->add_flag("--json", *as_json, "print JSON (every point)");
    Bind(cmd, g, [&g, since, as_json] {
      return PrintStats(g.client().Call("GET", "/api/v1/host/stats?since=" + *since), *as_json,
                        {{"cpu_percent", "CPU", "%"},
                         {"memory_used_bytes", "MEMORY USED", "B"},
                         {"memory_total_bytes", "OF", "B"},
                         {"load1", "LOAD", ""},
                         {"ksm_saved_bytes", "KSM SAVES", "B"}});
    });
  }
  {
    auto cpus = std::make_shared<int>(1);
    auto memory = std::make_shared<std::string>("256M");
    auto as_json = std::make_shared<bool>(false);
    auto cmd = host->add_subcommand(
        "capacity", "physical against committed CPU and memory, balloon and KSM savings, and how many more VMs fit");
    cmd->add_option("--cpus", *cpus, "the size of VM to count: vCPUs")->capture_default_str();
    cmd->add_option("--memory", *memory, "the size of VM to count: memory")->capture_default_str();
    cmd->add_flag("--json", *as_json, "print JSON");
    Bind(cmd, g, [&g, cpus, memory, as_json] {
      auto r = g.client().Call("GET", "/api/v1/host/capacity?cpus=" + std::to_string(*cpus) + "&memory=" + *memory);
      if (!r.ok()) return PrintError(r.status().message());
      if (*as_json) {
        PrintJson(*r);
        return 0;
      }
      const nlohmann::json& c = *r;
      const nlohmann::json& ksm = c["ksm"];
      auto bytes = [&](const char* key) { return HumanSize(c.value(key, uint64_t{0})); };
      std::cout << "cpus:      " << c.value("vcpus", 0) << " vCPUs of " << c.value("vms_running", 0)
                << " running VM(s) on " << c.value("cpus", 0) << " host CPUs (overcommit "
                << c.value("cpu_overcommit", 0.0) << "x)\n"
                << "memory:    " << bytes("memory_committed_bytes") << " committed ("
                << bytes("memory_min_committed_bytes") << " at the dynamic minimums) of " << bytes("memory_bytes")
                << " (overcommit " << c.value("memory_overcommit", 0.0) << "x)\n"
                << "available: " << bytes("free_bytes") << "; the balloon controller keeps " << bytes("reserve_bytes")
                << " free\n"
                << "balloon:   saves " << bytes("balloon_saved_bytes") << "\n"
                << "ksm:       " << (ksm.value("run", false) ? "on" : "off") << ", saves "
                << HumanSize(ksm.value("saved_bytes", uint64_t{0})) << "\n"
                << "fits:      " << c["fits"].value("count", 0) << " more VM(s) of " << c["fits"].value("cpus", 0)
                << " vCPU and " << HumanSize(c["fits"].value("memory_bytes", uint64_t{0})) << " (by memory)\n";
      return 0;
    });
  }
  {
    auto state = std::make_shared<std::string>();
    auto as_json = std::make_shared<bool>(false);
    auto cmd =
        host->add_subcommand("ksm", "kernel samepage merging: on or off, or without an argument what it saves now");
    cmd->add_option("state", *state, "on or off");
    cmd->add_flag("--json", *as_json, "print JSON");
    Bind(cmd, g, [&g, state, as_json] {
      if (!state->empty() && *state != "on" && *state != "off") return PrintError("host ksm takes on or off");
      auto r = state->empty() ? g.client().Call("GET", "/api/v1/host/ksm")
                              : g.client().Call("PUT", "/api/v1/host/ksm", {{"on", *state == "on"}});
      if (!r.ok()) return PrintError(r.status().message());
      if (*as_json) {
        PrintJson(*r);
        return 0;
      }
      std::cout << "ksm: " << (r->value("run", false) ? "on" : "off") << ", " << r->value("pages_sharing", 0)
                << " pages share " << r->value("pages_shared", 0) << ", saving "
                << HumanSize(r->value("saved_bytes", uint64_t{0})) << "\n";
      return 0;
    });
  }
  {
    auto ttl = std::make_shared<std::string>("1h");
    auto as_json = std::make_shared<bool>(false);
    auto cmd = host->add_subcommand(
        "join-token", "a one-time token that lets a new host join the pool, and the command to run there");
    cmd->add_option("--ttl", *ttl, "how long the token works, e.g. 30m, 2h (default 1h)");
    cmd->add_flag("--json", *as_json, "print JSON");
    Bind(cmd, g, [&g, ttl, as_json] {
      auto d = ParseDuration(*ttl);
      if (!d.ok()) return PrintError("--ttl: " + d.status().message());
      if (d->count() <= 0) return PrintError("--ttl must be longer than 0 s");
      auto r = g.client().Call("POST", "/api/v1/hosts/join-tokens", {{"ttl_s", d->count()}});
      if (!r.ok()) return PrintError(r.status().message());
      if (*as_json) {
        PrintJson(*r);
        return 0;
      }
      return ShowJoinToken(*r);
    });
  }
  {
    auto o = std::make_shared<JoinOptions>();
    auto cmd = host->add_subcommand(
        "join", "run on a new host: join the pool with a token from pampa host join-token (writes DATA_DIR/tls)");
    cmd->add_option("--url", o->url, "a pool host's API, https://HOST:PORT")->required();
    cmd->add_option("--token", o->token, "the join token (pampa host join-token on a pool host)")->required();
    cmd->add_option("--ca-sha256", o->ca_sha256, "the pool CA's fingerprint, sha256:HEX, as join-token printed it")
        ->required();
    cmd->add_option("--name", o->name, "this host's name in the pool")->required();
    cmd->add_option("--address", o->address, "this host's IP address, which the other hosts reach it at")->required();
    cmd->add_option("--data-dir", o->data_dir, "pampad's data directory on this host")->capture_default_str();
    cmd->add_flag("--json", o->as_json, "print JSON");
    Bind(cmd, g, [o] {
      auto r = JoinPool(*o);
      if (!r.ok()) return PrintError(r.status().message());
      if (o->as_json) {
        PrintJson(*r);
        return 0;
      }
      std::string data_dir = (*r)["data_dir"], etcd = (*r)["etcd"];
      std::cout << "host " << o->name << " joined the pool (CA " << (*r)["ca_sha256"].get<std::string>()
                << "): its certificate is in " << data_dir << "/tls\n"
                << "start pampad as a host of the pool:\n"
                << "  pampad --data-dir " << data_dir << " --host " << o->name << " --cluster etcd://"
                << (etcd.empty() ? "ADDR:PORT" : etcd) << " --listen " << ListenAddress(o->address) << "\n";
      return 0;
    });
  }
}

void AddHaCommands(CLI::App& app, Globals& g) {
  auto ha = app.add_subcommand("ha", "high availability: VMs that come back by themselves when their host is lost");
  ha->require_subcommand(1);
  auto as_json = std::make_shared<bool>(false);
  auto cmd = ha->add_subcommand("status", "the HA manager, each HA VM's state and the last decisions");
  cmd->add_flag("--json", *as_json, "print JSON");
  Bind(cmd, g, [&g, as_json] {
    auto r = g.client().Call("GET", "/api/v1/ha");
    if (!r.ok()) return PrintError(r.status().message());
    if (*as_json) {
      PrintJson(*r);
      return 0;
    }
    if (!r->value("enabled", false)) {
      std::cout << "HA needs a pool of hosts (pampad --cluster): this host is alone\n";
      return 0;
    }
    const auto& s = (*r)["settings"];
    std::string manager = r->value("manager", "");
    std::cout << "manager: " << (manager.empty() ? "none yet" : manager) << "  (lease " << s.value("lease_ms", 0) / 1000
              << " s, fencing after " << s.value("fence_after_ms", 0) / 1000.0 << " s, " << s.value("max_tries", 0)
              << " tries)\n\n";
    std::vector<std::vector<std::string>> rows;
    for (auto& v : (*r)["vms"]) {
      std::string state = v.value("state", "");
      if (v.contains("to")) state += " -> " + v.value("to", "");
      rows.push_back({v.value("name", ""), v.value("host", ""), std::to_string(v.value("priority", 0)), state,
                      v.value("reason", "")});
    }
    if (rows.empty())
      std::cout << "no HA VMs (pampa vm edit NAME --ha on)\n";
    else
      PrintTable({"VM", "HOST", "PRIORITY", "STATE", "REASON"}, rows);
    auto& events = (*r)["events"];
    if (!events.empty()) std::cout << "\nlast events:\n";
    for (auto& e : events) {
      std::cout << "  " << FormatTime(e.value("time_ms", int64_t{0})) << "  " << e.value("host", "") << "  "
                << (e.value("vm", "").empty() ? "" : "vm " + e.value("vm", "") + ": ") << e.value("message", "")
                << "\n";
    }
    return 0;
  });
}

}  // namespace pampa::cli
