#include "qmp/json_channel.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "base/clock.h"
#include "base/fs.h"

namespace pampa {

JsonChannel::~JsonChannel() { Close(); }

void JsonChannel::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  buf_.clear();
}

Status JsonChannel::Connect(const std::string& socket_path, std::chrono::milliseconds timeout) {
  Close();
  PAMPA_ASSIGN_OR_RETURN(Fd fd, ConnectUnix(socket_path, timeout));
  fd_ = fd.Release();
  return Status::Ok();
}

Status JsonChannel::Send(const nlohmann::json& msg, int pass_fd) {
  if (fd_ < 0) return Status::Unavailable("not connected");
  std::string line = msg.dump() + "\n";
  size_t off = 0;
  while (off < line.size()) {
    iovec iov{line.data() + off, line.size() - off};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    if (pass_fd >= 0 && off == 0) {  // with the message's first byte
      m.msg_control = control;
      m.msg_controllen = sizeof control;
      cmsghdr* c = CMSG_FIRSTHDR(&m);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    }
    ssize_t n = sendmsg(fd_, &m, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      Status st = Status::Unavailable(std::string("write failed: ") + std::strerror(errno));
      Close();
      return st;
    }
    off += n;
  }
  return Status::Ok();
}

std::optional<nlohmann::json> JsonChannel::TakeBufferedLine() {
  while (true) {
    auto nl = buf_.find('\n');
    if (nl == std::string::npos) return std::nullopt;
    std::string line = buf_.substr(0, nl);
    buf_.erase(0, nl + 1);
    // The guest agent may send a 0xff sync byte before the reply.
    auto start = line.find('{');
    if (start == std::string::npos) continue;
    auto j = nlohmann::json::parse(line.begin() + start, line.end(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;
    return j;
  }
}

Result<nlohmann::json> JsonChannel::Receive(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (auto j = TakeBufferedLine()) return *j;
    if (fd_ < 0) return Status::Unavailable("not connected");
    if (!WaitReady(fd_, POLLIN, deadline)) {
      return Status::Unavailable("no answer within " + std::to_string(timeout.count()) + " ms");
    }
    char tmp[65536];
    ssize_t r = recv(fd_, tmp, sizeof tmp, 0);
    if (r <= 0) {
      Close();
      return Status::Unavailable("connection closed by peer");
    }
    buf_.append(tmp, r);
  }
}

void JsonChannel::Discard() {
  buf_.clear();
  if (fd_ < 0) return;
  char tmp[4096];
  while (true) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0) return;
    if (recv(fd_, tmp, sizeof tmp, 0) <= 0) return;
  }
}

}  // namespace pampa
