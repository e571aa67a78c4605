#include "qemu/guest_agent.h"

#include <algorithm>
#include <random>
#include <thread>

#include "base/base64.h"
#include "base/clock.h"

namespace pampa {
namespace {}  // namespace

Result<std::unique_ptr<GuestAgentSession>> GuestAgentSession::Open(const std::string& socket_path,
                                                                   std::chrono::milliseconds timeout) {
  std::unique_ptr<GuestAgentSession> s(new GuestAgentSession);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  PAMPA_RETURN_IF_ERROR(
      s->ch_.Connect(socket_path, std::min(timeout, std::chrono::milliseconds(1000))).Context("guest agent socket"));
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  int64_t sync_id = static_cast<int64_t>(rng() >> 12);
  PAMPA_RETURN_IF_ERROR(s->ch_.Send({{"execute", "guest-sync-delimited"}, {"arguments", {{"id", sync_id}}}}));
  while (true) {
    auto r = s->ch_.Receive(MillisecondsLeft(deadline));
    if (!r.ok())
      return Status::Unavailable("the guest agent does not answer (is qemu-guest-agent running in the guest?)");
    if (r->contains("return") && (*r)["return"] == sync_id) return s;
  }
}

Result<nlohmann::json> GuestAgentSession::Call(const std::string& command, const nlohmann::json& args,
                                               std::chrono::milliseconds timeout) {
  nlohmann::json msg = {{"execute", command}};
  if (!args.is_null()) msg["arguments"] = args;
  PAMPA_RETURN_IF_ERROR(ch_.Send(msg));
  auto r = ch_.Receive(timeout);
  if (!r.ok()) return Status::Unavailable("the guest agent did not answer " + command + " in time");
  if (r->contains("error")) {
    return Status::Invalid("guest agent refused " + command + ": " + (*r)["error"].value("desc", r->dump()));
  }
  return r->value("return", nlohmann::json::object());
}

// A fresh session per call: a previous caller that gave up half-way cannot confuse this one.
Result<nlohmann::json> GuestAgent::Call(const std::string& command, const nlohmann::json& args,
                                        std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  PAMPA_ASSIGN_OR_RETURN(auto session, GuestAgentSession::Open(path_, timeout));
  return session->Call(command, args, MillisecondsLeft(deadline));
}

Status GuestAgent::Ping(std::chrono::milliseconds timeout) { return Call("guest-ping", nullptr, timeout).status(); }

Result<int64_t> GuestAgent::ExecStart(const std::vector<std::string>& argv) {
  if (argv.empty()) return Status::Invalid("no command given to run in the guest");
  nlohmann::json args = {{"path", argv[0]}, {"capture-output", true}};
  args["arg"] = std::vector<std::string>(argv.begin() + 1, argv.end());
  PAMPA_ASSIGN_OR_RETURN(auto started, Call("guest-exec", args, std::chrono::seconds(10)));
  return started.value("pid", int64_t{-1});
}

Result<std::optional<ExecResult>> GuestAgent::ExecStatus(int64_t pid) {
  PAMPA_ASSIGN_OR_RETURN(auto st, Call("guest-exec-status", {{"pid", pid}}, std::chrono::seconds(10)));
  if (!st.value("exited", false)) return std::optional<ExecResult>();
  ExecResult res;
  res.exit_code = st.value("exitcode", st.contains("signal") ? 128 + st.value("signal", 0) : -1);
  PAMPA_ASSIGN_OR_RETURN(res.out, FromBase64(st.value("out-data", "")));
  PAMPA_ASSIGN_OR_RETURN(res.err, FromBase64(st.value("err-data", "")));
  res.out_truncated = st.value("out-truncated", false);
  return std::optional<ExecResult>(std::move(res));
}

Result<ExecResult> GuestAgent::Exec(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  PAMPA_ASSIGN_OR_RETURN(int64_t pid, ExecStart(argv));
  auto delay = std::chrono::milliseconds(20);
  while (true) {
    PAMPA_ASSIGN_OR_RETURN(auto done, ExecStatus(pid));
    if (done.has_value()) return std::move(*done);
    if (std::chrono::steady_clock::now() > deadline) {
      return Status::Unavailable("the command is still running in the guest after " +
                                 std::to_string(timeout.count() / 1000) + " s (guest pid " + std::to_string(pid) + ")");
    }
    std::this_thread::sleep_for(delay);
    delay = std::min(delay * 2, std::chrono::milliseconds(200));
  }
}

Result<AgentChannel::Lease> AgentChannel::Claim(const std::string& what, std::chrono::milliseconds wait) {
  MutexLock lock(&mu_);
  if (!lock.WaitFor(free_, wait, [&]() REQUIRES(mu_) { return holder_.empty(); })) {
    return Status::Busy("the guest agent is busy with " + holder_ + "; try again in a moment");
  }
  holder_ = what;
  return Lease(this);
}

void AgentChannel::Lease::Release() {
  if (channel_ == nullptr) return;
  {
    MutexLock lock(&channel_->mu_);
    channel_->holder_.clear();
  }
  channel_->free_.notify_one();
  channel_ = nullptr;
}

}  // namespace pampa
