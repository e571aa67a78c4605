// pampad: the host daemon. Wires the components together, serves the API and
// waits for a signal. VMs (QEMU) and dnsmasq outlive it; a restart re-attaches.
#include <execinfo.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <random>
#include <sstream>
#include <thread>

#include "api/api.h"
#include "api/http_server.h"
#include "api/static_files.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/units.h"
#include "cluster/cluster.h"
#include "cluster/fence_agent.h"
#include "cluster/ha.h"
#include "cluster/join.h"
#include "tls/tls_context.h"

using namespace pampa;

namespace {

constexpr const char* kVersion = "0.1.0";

Result<std::string> LoadOrCreateToken(const std::string& path) {
  auto existing = ReadFile(path);
  if (existing.ok()) {
    std::string t = *existing;
    while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
    if (t.size() >= 32) return t;
  }
  std::random_device rd;
  std::string token;
  const char* hex = "0123456789abcdef";
  for (int i = 0; i < 64; ++i) token.push_back(hex[rd() & 15]);
  PAMPA_RETURN_IF_ERROR(WriteFileAtomic(path, token + "\n", 0600));
  return token;
}

std::string Hostname() {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

// "etcd://a:2379,b:2379" (the scheme on any or every address) -> "a:2379,b:2379".
std::string EtcdEndpoints(const std::string& flag) {
  std::string out, item;
  std::stringstream in(flag);
  while (std::getline(in, item, ',')) {
    if (item.rfind("etcd://", 0) == 0) item = item.substr(7);
    out += (out.empty() ? "" : ",") + item;
  }
  return out;
}

// --listen's address as peers reach it; "" when it names no one address.
std::string AdvertiseFromListen(const std::string& listen, bool tls) {
  if (listen.empty() || listen.rfind("0.0.0.0:", 0) == 0 || listen.rfind("[::]:", 0) == 0) return "";
  return (tls ? "https://" : "http://") + listen;
}

// `pampad form-pool`: makes the pool's CA and the first host's certificates
// (offline, before pampad starts in the pool), and says how to go on.
int FormPool(const std::string& data_dir, const std::string& host, const std::vector<std::string>& addresses,
             const std::vector<std::string>& etcd_addresses) {
  tls::TlsPaths paths(data_dir);
  if (Status st = tls::FormPool(paths, host, addresses, etcd_addresses); !st.ok()) {
    log::Error("{}", st.message());
    return 1;
  }
  auto loaded = tls::LoadHostFiles(paths);
  if (!loaded.ok()) {
    log::Error("{}", loaded.status().message());
    return 1;
  }
  std::printf("pool CA %s\nfiles in %s\n", loaded->ca_sha256.c_str(), paths.dir.c_str());
  if (!etcd_addresses.empty()) {
    std::printf(
        "start etcd with: --cert-file %s --key-file %s --client-cert-auth --trusted-ca-file %s "
        "(https:// in --listen-client-urls and --advertise-client-urls)\n",
        paths.etcd_cert().c_str(), paths.etcd_key().c_str(), paths.ca().c_str());
  }
  std::printf(
      "then: pampad --data-dir %s --host %s --cluster etcd://ADDR:PORT; other hosts join with "
      "'pampa host join-token' here and 'pampa host join' there\n",
      data_dir.c_str(), host.c_str());
  return 0;
}

int Fail(const Status& st) {
  log::Error("{}", st.message());
  return 1;
}

// An exception nothing caught ends pampad (its VMs run on): say which, and
// where, before it does.
[[noreturn]] void OnTerminate() {
  std::string what = "no exception";
  if (auto e = std::current_exception()) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      what = ex.what();
    } catch (...) {
      what = "an exception of unknown type";
    }
  }
  log::Error("pampad is ending on an uncaught exception: {}; backtrace:", what);
  void* frames[64];
  backtrace_symbols_fd(frames, backtrace(frames, 64), 2);
  std::abort();
}

}  // namespace

int main(int argc, char** argv) {
  std::set_terminate(OnTerminate);
  CLI::App app{"pampad: the Pampa host daemon"};
  std::string data_dir = "/var/lib/pampa", socket_path = "/run/pampa/pampa.sock", listen = "127.0.0.1:8006";
  std::string run_dir, guest_dir, appliance_dir, default_subnet = "10.88.0.0/24";
  std::string cluster_endpoints, host_name = Hostname(), advertise;
  std::vector<std::string> allow_paths;
  std::string memory_reserve;
  bool no_default_network = false, debug = false;
  app.add_option("--data-dir", data_dir, "state, token, default pool")->capture_default_str();
  app.add_option("--socket", socket_path, "unix socket of the API (root only); '' for none")->capture_default_str();
  app.add_option("--listen", listen, "TCP address of the API (token required); port 0 picks one; '' for none")
      ->capture_default_str();
  app.add_option("--memory-reserve", memory_reserve,
                 "host memory the balloon controller keeps available, taking it from idle VMs with dynamic memory "
                 "(default: a tenth of the host's memory, at least 512M)");
  app.add_option("--run-dir", run_dir, "VM sockets and console logs (default: the socket's directory)");
  app.add_option("--guest-dir", guest_dir, "the test guest from tools/mkguest (for the KVM probe)");
  app.add_option("--appliance", appliance_dir,
                 "where tools/mkguest put the file-restore appliance (vmlinuz, appliance.img); default: the guest "
                 "directory, else guest/ beside pampad");
  app.add_option("--allow-path", allow_paths, "a directory VM images, kernels and ISOs may be read from (repeatable)");
  app.add_option("--default-subnet", default_subnet, "subnet of the default NAT network")->capture_default_str();
  app.add_flag("--no-default-network", no_default_network, "do not create the default NAT network");
  std::string ui_dir;
  app.add_option("--ui-dir", ui_dir,
                 "the built web console (default: BINARY_DIR/web, else /usr/share/pampa/web); '' for none");
  app.add_option("--cluster", cluster_endpoints,
                 "etcd://HOST:PORT[,HOST:PORT...]: be a host of the pool whose shared state is in this etcd");
  app.add_option("--host", host_name, "this host's name in the pool")->capture_default_str();
  app.add_option("--advertise", advertise,
                 "the API address other hosts of the pool use, https://ADDR:PORT (http:// in a pool without "
                 "certificates; default: from --listen)");
  app.add_flag("--debug", debug, "verbose logging");
  app.set_version_flag("--version", kVersion);
  auto* form = app.add_subcommand("form-pool",
                                  "make a new pool's certificate authority and this host's certificates in "
                                  "DATA_DIR/tls, then exit (before the pool's first start)");
  std::vector<std::string> form_addresses, etcd_addresses;
  form->add_option("--address", form_addresses, "an address other hosts reach this one at (repeatable)");
  form->add_option("--etcd-address", etcd_addresses,
                   "an address etcd listens on (repeatable): also makes etcd's certificate");
  CLI11_PARSE(app, argc, argv);
  if (*form) {
    if (Status st = ValidateName("host", host_name); !st.ok()) return Fail(st.Context("--host"));
    return FormPool(data_dir, host_name, form_addresses, etcd_addresses);
  }
  if (debug) log::SetLevel(log::Level::kDebug);

  if (geteuid() != 0) log::Warn("pampad is not running as root: bridges, taps and /run/pampa will not work");
  if (run_dir.empty()) {
    run_dir = socket_path.empty() ? data_dir + "/run" : std::filesystem::path(socket_path).parent_path().string();
  }
  for (auto& d : {data_dir, run_dir, data_dir + "/images"}) {
    if (Status st = MakeDirs(d, 0700); !st.ok()) return Fail(st);
  }
  auto canon = CanonicalPath(data_dir);
  if (!canon.ok()) return Fail(canon.status());
  data_dir = *canon;

  // One pampad per data directory.
  int lock_fd = open((data_dir + "/pampad.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    return Fail(Status::Conflict("another pampad is already using " + data_dir));
  }

  // Signals are taken by sigwait below; block them before any thread starts.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  if (Status st = ValidateName("host", host_name); !st.ok()) return Fail(st.Context("--host"));
  const bool pooled = !cluster_endpoints.empty();
  auto token = LoadOrCreateToken(data_dir + "/token");
  if (!token.ok()) return Fail(token.status());
  // A host of a pool with certificates speaks TLS to etcd, to the other
  // hosts and to its API clients.
  std::shared_ptr<tls::PoolTls> pool_tls;
  tls::TlsPaths tls_paths(data_dir);
  if (pooled) {
    auto loaded = tls::PoolTls::Load(tls_paths);
    if (loaded.ok()) {
      pool_tls = *loaded;
      log::Info("pool certificate for {} (CA {}), valid until {}", pool_tls->files().name, pool_tls->files().ca_sha256,
                pool_tls->files().not_after);
      if (pool_tls->files().name != host_name) {
        return Fail(Status::Invalid("the pool certificate in " + tls_paths.dir + " is host " + pool_tls->files().name +
                                    "'s, not " + host_name + "'s (--host)"));
      }
    } else if (loaded.status().code() == ErrorCode::kNotFound) {
      log::Warn(
          "no pool certificate in {}: calls between hosts, etcd and migrations are NOT encrypted "
          "(pampad form-pool, or pampa host join, makes one)",
          tls_paths.dir);
    } else {
      return Fail(loaded.status());
    }
  }
  StoreOptions store_options;
  if (pool_tls) store_options.tls = {tls_paths.ca(), tls_paths.host(), tls_paths.host_key()};
  auto store = pooled ? OpenEtcdStore(EtcdEndpoints(cluster_endpoints), "/pampa/", store_options)
                      : OpenSqliteStore(data_dir + "/state.db");
  if (!store.ok()) return Fail(store.status().Context(pooled ? "--cluster" : "state store"));
  Store& db = **store;
  if (pooled) {
    if (pool_tls) {
      if (Status st = CheckPoolCa(db, pool_tls->files().ca.cert); !st.ok()) return Fail(st);
    }
    // Every host of a pool answers with the pool's token.
    auto pool_token = PoolToken(db, *token);
    if (!pool_token.ok()) return Fail(pool_token.status());
    if (*pool_token != *token) {
      if (Status st = WriteFileAtomic(data_dir + "/token", *pool_token + "\n", 0600); !st.ok()) return Fail(st);
      token = pool_token;
    }
    if (advertise.empty()) advertise = AdvertiseFromListen(listen, pool_tls != nullptr);
    std::string h, p;
    bool secure = false;
    if (Status st = ParsePeerUrl(advertise, &h, &p, &secure); !st.ok()) {
      return Fail(st.Context("--advertise (a pool needs the address other hosts reach this one at)"));
    }
    if (secure != (pool_tls != nullptr)) {
      return Fail(Status::Invalid(pool_tls ? "--advertise must be https://...: this host has the pool's certificate"
                                           : "--advertise must be http://...: this host has no pool certificate"));
    }
  }

  EventBus events;
  Tasks tasks(db, events, host_name, pooled);
  tasks.RecoverInterrupted();

  std::vector<std::string> allowed = {data_dir + "/images"};
  for (auto& p : allow_paths) {
    auto c = CanonicalPath(p);
    if (!c.ok()) return Fail(Status::Invalid("--allow-path " + p + ": no such directory"));
    allowed.push_back(*c);
  }
  Storage storage(db, allowed, pooled ? "hosts/" + host_name + "/pools/" : "pools/");
  if (Status st = storage.EnsurePool("default", data_dir + "/pools/default"); !st.ok()) return Fail(st);

  Networks networks(db, run_dir);
  if (!no_default_network && !networks.Get("default").ok()) {
    // Pick the first free /24 from the default subnet on, so two hosts' worth
    // of pampad (or a test instance) on one machine do not collide.
    uint32_t net;
    int len;
    Status st = ParseCidr(default_subnet, &net, &len);
    if (!st.ok()) return Fail(st.Context("--default-subnet"));
    for (int i = 0; i < 32; ++i) {
      std::string subnet = FormatIpv4(net + (uint32_t(i) << (32 - len))) + "/" + std::to_string(len);
      st = networks.Create("default", "nat", subnet, "").status();
      if (st.code() != ErrorCode::kConflict) break;
    }
    if (!st.ok()) log::Warn("default network not created: {}", st.message());
  }
  if (auto nets = networks.List(); nets.ok()) {
    for (auto& n : *nets) {
      if (Status st = networks.Activate(n); !st.ok()) log::Warn("network {}: {}", n.name, st.message());
    }
  }

  AccelProbe accel(data_dir + "/accel.json", guest_dir, run_dir);
  AccelVerdict verdict = accel.Current();
  if (!verdict.forced && !verdict.probed) {
    std::thread([&accel] {
      auto v = accel.Probe();
      log::Info("accelerator: {} ({})", v.accel, v.reason);
    }).detach();
  } else {
    log::Info("accelerator: {} ({})", verdict.accel, verdict.reason);
  }

  VmManager vms({run_dir, data_dir, host_name, pooled}, db, storage, networks, tasks, events, accel);
  // Live restores' export servers come back before the VMs that read from them.
  std::error_code exe_error;
  auto exe_dir = std::filesystem::read_symlink("/proc/self/exe", exe_error).parent_path();
  if (appliance_dir.empty()) appliance_dir = guest_dir.empty() ? (exe_dir / "guest").string() : guest_dir;
  LiveRestores live(vms, db, storage, networks, tasks, events, (exe_dir / "pampa-backup-export").string());
  live.RestartExports();
  if (Status st = vms.Load(); !st.ok()) return Fail(st);
  vms.StartReconciler();
  ClusterConfig cluster_config{host_name, advertise, kVersion, pooled};
  cluster_config.tls = pool_tls;
  Cluster cluster(db, events, cluster_config, *token);
  if (Status st = cluster.Start(); !st.ok()) return Fail(st.Context("recording this host"));
  live.ResumeCopies();

  Router router;
  Repos repos(db);
  BackupJobs jobs(vms, db, storage, networks, tasks, events);
  BackupScheduler schedules(db, vms, jobs, repos, tasks, events);
  schedules.Start();
  RestoreDrills drills(db, vms, live, repos, tasks, events);
  drills.Start();
  VmImports imports(vms, storage, networks, tasks, events);
  FileRestores files({run_dir, appliance_dir + "/vmlinuz", appliance_dir + "/appliance.img"}, accel);
  Migrations migrations(vms, storage, cluster, tasks);
  migrations.StartReaper();
  WebSocketTickets tickets;
  PoolJoins joins(db, pool_tls, host_name, EtcdEndpoints(cluster_endpoints));
  FenceAgent fence_agent((exe_dir / "pampa-fence").string(), run_dir + "/fence.sock", data_dir + "/fence.log");
  HaManager ha(db, cluster, vms, events, fence_agent, HaConfig{});
  ha.Start();
  MetricsConfig metrics_config{data_dir, host_name};
  metrics_config.storage = &storage;
  if (!memory_reserve.empty()) {
    auto reserve = ParseSize(memory_reserve);
    if (!reserve.ok()) return Fail(reserve.status().Context("--memory-reserve"));
    metrics_config.memory_reserve = std::max<uint64_t>(*reserve, 1);
  }
  Metrics metrics(metrics_config, vms, events);
  metrics.Start();
  ApiContext ctx{vms,   jobs,    live,       files,   repos, schedules, drills,  imports,  storage,   networks, tasks,
                 accel, cluster, migrations, tickets, joins, ha,        metrics, kVersion, host_name, data_dir};
  RemoveStaleUploads(data_dir);
  RegisterAllRoutes(router, ctx);

  HttpServerOptions opts;
  opts.unix_socket = socket_path;
  opts.ui_dir = app.count("--ui-dir") ? ui_dir : DefaultUiDir("/proc/self/exe");
  opts.token = *token;
  // A read-only token for Prometheus: it opens /metrics and nothing else.
  auto metrics_token = LoadOrCreateToken(data_dir + "/metrics.token");
  if (!metrics_token.ok()) return Fail(metrics_token.status());
  opts.metrics_token = *metrics_token;
  opts.tls = pool_tls;
  opts.host = host_name;
  if (!listen.empty()) {
    auto colon = listen.rfind(':');
    if (colon == std::string::npos) return Fail(Status::Invalid("--listen must be ADDR:PORT, e.g. 127.0.0.1:8006"));
    opts.tcp_address = listen.substr(0, colon);
    if (opts.tcp_address.size() > 2 && opts.tcp_address.front() == '[') {
      opts.tcp_address = opts.tcp_address.substr(1, opts.tcp_address.size() - 2);
    }
    try {
      int port = std::stoi(listen.substr(colon + 1));
      if (port < 0 || port > 65535) throw std::out_of_range("port");
      opts.tcp_port = static_cast<uint16_t>(port);
    } catch (...) {
      return Fail(Status::Invalid("--listen port must be a number from 0 to 65535"));
    }
  }
  if (!socket_path.empty()) {
    if (Status st = MakeDirs(std::filesystem::path(socket_path).parent_path().string(), 0755); !st.ok())
      return Fail(st);
  }
  HttpServer server(
      opts, router, events,
      [&vms, &cluster](const std::string& name, const std::string& kind) -> Result<ConsoleTarget> {
        ConsoleTarget target;
        PAMPA_ASSIGN_OR_RETURN(std::string owner, cluster.pooled() ? cluster.OwnerOf(name) : std::string());
        if (!owner.empty() && owner != cluster.config().host) {
          // Another host runs it: its pampad streams the console here.
          PAMPA_ASSIGN_OR_RETURN(HostRecord h, cluster.Host(owner));
          if (h.state == HostState::kLost) {
            return Status::Unavailable("host " + owner + ", which runs vm '" + name + "', is lost");
          }
          PAMPA_RETURN_IF_ERROR(ParsePeerUrl(h.url, &target.peer_host, &target.peer_port, &target.secure));
          target.token = cluster.token();
          target.peer_name = owner;
          return target;
        }
        PAMPA_ASSIGN_OR_RETURN(auto c, vms.Console(name));
        if (!c.running) return Status::Conflict("vm '" + name + "' is not running");
        target.socket = kind == "vnc" ? c.vnc_socket : c.serial_socket;
        return target;
      },
      tickets);
  if (Status st = server.Start(); !st.ok()) return Fail(st);
  if (!socket_path.empty()) log::Info("listening on unix:{}", socket_path);
  if (!opts.tcp_address.empty()) {
    // "listening on ADDR:PORT" is what scripts (and the tests) look for.
    log::Info("listening on {}:{} ({}; token in {}/token)", opts.tcp_address, server.tcp_port(),
              pool_tls ? "https, the pool's certificate" : "http", data_dir);
  }
  if (!opts.tcp_address.empty()) {
    if (StaticFiles(opts.ui_dir).available())
      log::Info("web console on {}://{}:{}/ (files from {})", pool_tls ? "https" : "http", opts.tcp_address,
                server.tcp_port(), opts.ui_dir);
    else
      log::Warn("no web console: {} has no index.html (make build builds it; or --ui-dir DIR)", opts.ui_dir);
  }
  log::Info("pampad {} ready: data in {}, {} VM(s)", kVersion, data_dir, vms.List().size());

  int sig = 0;
  sigwait(&sigs, &sig);
  log::Info("signal {}: stopping pampad (VMs keep running)", sig);
  server.Stop();
  tasks.CancelAll();  // task bodies use everything below
  schedules.Stop();
  drills.Stop();
  ha.Stop();
  metrics.Stop();
  cluster.Stop();
  vms.StopReconciler();
  return 0;
}
