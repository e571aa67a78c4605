#include "qmp/qmp_client.h"

#include "base/clock.h"

namespace pampa {

Status QmpClient::Connect(const std::string& socket_path, std::chrono::milliseconds timeout) {
  PAMPA_RETURN_IF_ERROR(ch_.Connect(socket_path, timeout));
  return Handshake(timeout);
}

Status QmpClient::Handshake(std::chrono::milliseconds timeout) {
  auto greeting = ch_.Receive(timeout);
  if (!greeting.ok()) return greeting.status().Context("QMP greeting");
  if (!greeting->contains("QMP")) return Status::Unavailable("QMP greeting missing: " + greeting->dump());
  auto r = Execute("qmp_capabilities", nullptr, timeout);
  return r.status().Context("QMP capabilities");
}

Result<nlohmann::json> QmpClient::Execute(const std::string& command, const nlohmann::json& args,
                                          std::chrono::milliseconds timeout) {
  return Run(command, args, timeout, -1);
}

Status QmpClient::PassFd(const std::string& name, int fd, std::chrono::milliseconds timeout) {
  return Run("getfd", {{"fdname", name}}, timeout, fd).status();
}

Result<nlohmann::json> QmpClient::Run(const std::string& command, const nlohmann::json& args,
                                      std::chrono::milliseconds timeout, int pass_fd) {
  nlohmann::json msg = {{"execute", command}, {"id", next_id_++}};
  if (!args.is_null()) msg["arguments"] = args;
  PAMPA_RETURN_IF_ERROR(ch_.Send(msg, pass_fd));
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto reply = ch_.Receive(MillisecondsLeft(deadline));
    if (!reply.ok()) return reply.status().Context("QMP " + command);
    auto& j = *reply;
    if (j.contains("event")) {
      events_.push_back(std::move(j));
      continue;
    }
    if (!j.contains("id") || j["id"] != msg["id"]) continue;  // a stale reply
    if (j.contains("error")) {
      return Status::Invalid("QEMU refused " + command + ": " + j["error"].value("desc", j["error"].dump()));
    }
    return j.value("return", nlohmann::json::object());
  }
}

std::deque<nlohmann::json> QmpClient::TakeEvents() {
  while (ch_.connected()) {
    auto j = ch_.Receive(std::chrono::milliseconds(0));
    if (!j.ok()) break;
    if (j->contains("event")) events_.push_back(std::move(*j));
  }
  std::deque<nlohmann::json> out;
  out.swap(events_);
  return out;
}

}  // namespace pampa
