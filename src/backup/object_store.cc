#include "backup/object_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>

#include "base/fs.h"
#include "base/mutex.h"

namespace pampa {
namespace {

bool ValidObjectName(const std::string& name) {
  if (name.empty() || name.size() > 512 || name[0] == '/' || name.find("..") != std::string::npos) return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '-' || c == '_' || c == '.')) return false;
  }
  return true;
}

Status BadName(const std::string& name) { return Status::Invalid("invalid repository object name '" + name + "'"); }

class MemoryObjectStore final : public ObjectStore {
 public:
  Status Put(const std::string& name, std::string_view data) override {
    if (!ValidObjectName(name)) return BadName(name);
    MutexLock lock(&mu_);
    objects_[name] = std::string(data);
    return Status::Ok();
  }
  Result<std::string> Get(const std::string& name) override {
    MutexLock lock(&mu_);
    auto it = objects_.find(name);
    if (it == objects_.end()) return Status::NotFound("no object " + name + " in the repository");
    return it->second;
  }
  Result<bool> Exists(const std::string& name) override {
    MutexLock lock(&mu_);
    return objects_.count(name) > 0;
  }
  Result<std::vector<std::string>> List(const std::string& prefix) override {
    MutexLock lock(&mu_);
    std::vector<std::string> out;
    for (auto it = objects_.lower_bound(prefix); it != objects_.end() && it->first.rfind(prefix, 0) == 0; ++it) {
      out.push_back(it->first);
    }
    return out;
  }
  Status Delete(const std::string& name) override {
    MutexLock lock(&mu_);
    objects_.erase(name);
    return Status::Ok();
  }
  std::string Describe() const override { return "memory"; }

 private:
  Mutex mu_;
  std::map<std::string, std::string> objects_ GUARDED_BY(mu_);
};

class LocalObjectStore final : public ObjectStore {
 public:
  explicit LocalObjectStore(std::string dir) : dir_(std::move(dir)) {}
  int WriteBehindStreams() const override { return 4; }

  Status Put(const std::string& name, std::string_view data) override {
    if (!ValidObjectName(name)) return BadName(name);
    std::string path = dir_ + "/" + name;
    auto slash = path.rfind('/');
    std::error_code ec;
    std::filesystem::create_directories(path.substr(0, slash), ec);
    if (ec) return Status::Unavailable("cannot create " + path.substr(0, slash) + ": " + ec.message());
    // A unique temporary name: concurrent writers of the same object never
    // share a temporary file, and a crash leaves only a ".tmp-" file behind.
    static std::atomic<uint64_t> seq{0};
    std::string tmp = path + ".tmp-" + std::to_string(getpid()) + "-" + std::to_string(seq++);
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return Status::Unavailable("cannot write " + tmp + ": " + std::strerror(errno));
    // A page-aligned object (chunks are) goes to the disk with O_DIRECT, all
    // but its last partial page: copying it into the page cache cost more CPU
    // than anything but compression and hashing. tmpfs refuses O_DIRECT (-1).
    int dfd = open(tmp.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);
    Status written = WriteAtDirect(dfd, fd, data.data(), data.size(), 0, tmp);
    if (dfd >= 0) close(dfd);
    if (!written.ok()) {
      close(fd);
      unlink(tmp.c_str());
      return written;
    }
    if (fsync(fd) != 0) {
      Status st = Status::Unavailable("cannot sync " + tmp + ": " + std::strerror(errno));
      close(fd);
      unlink(tmp.c_str());
      return st;
    }
    close(fd);
    if (rename(tmp.c_str(), path.c_str()) != 0) {
      Status st = Status::Unavailable("cannot rename into " + path + ": " + std::strerror(errno));
      unlink(tmp.c_str());
      return st;
    }
    // Make the rename itself durable.
    int dirfd = open(path.substr(0, slash).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd >= 0) {
      fsync(dirfd);
      close(dirfd);
    }
    return Status::Ok();
  }

  Result<std::string> Get(const std::string& name) override {
    if (!ValidObjectName(name)) return BadName(name);
    std::string path = dir_ + "/" + name;
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return Status::NotFound("no object " + name + " in " + dir_);
    return ReadFile(path);
  }

  Result<bool> Exists(const std::string& name) override {
    if (!ValidObjectName(name)) return BadName(name);
    struct stat st;
    return ::stat((dir_ + "/" + name).c_str(), &st) == 0;
  }

  Result<std::vector<std::string>> List(const std::string& prefix) override {
    std::vector<std::string> out;
    std::string base = prefix.substr(0, prefix.rfind('/') == std::string::npos ? 0 : prefix.rfind('/') + 1);
    std::error_code ec;
    std::filesystem::path root = dir_ + "/" + base;
    if (!std::filesystem::exists(root, ec)) return out;
    for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_regular_file(ec)) continue;
      std::string rel = std::filesystem::relative(it->path(), dir_, ec).string();
      if (rel.find(".tmp-") != std::string::npos) continue;
      if (rel.rfind(prefix, 0) == 0) out.push_back(rel);
    }
    if (ec) return Status::Unavailable("cannot list " + root.string() + ": " + ec.message());
    std::sort(out.begin(), out.end());
    return out;
  }

  Status Delete(const std::string& name) override {
    if (!ValidObjectName(name)) return BadName(name);
    if (unlink((dir_ + "/" + name).c_str()) != 0 && errno != ENOENT) {
      return Status::Unavailable("cannot delete " + name + ": " + std::strerror(errno));
    }
    return Status::Ok();
  }

  std::string Describe() const override { return dir_; }

 private:
  std::string dir_;
};

}  // namespace

std::unique_ptr<ObjectStore> NewMemoryObjectStore() { return std::make_unique<MemoryObjectStore>(); }

Status MissingRepositoryDir(const std::string& where) {
  return Status::NotFound("the repository directory " + where +
                          " does not exist: is the backup disk mounted? (pampa creates it only at repo add)");
}

Result<std::unique_ptr<ObjectStore>> OpenLocalObjectStore(const std::string& dir, CreateDir create) {
  if (dir.empty() || dir[0] != '/') return Status::Invalid("repository path '" + dir + "' must be absolute");
  struct stat st {};
  if (stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return Status::Invalid("repository path " + dir + " is not a directory");
  } else if (errno != ENOENT) {
    return Status::Unavailable("cannot reach the repository directory " + dir + ": " + std::strerror(errno));
  } else if (create == CreateDir::kNo) {
    return MissingRepositoryDir(dir);
  } else {
    std::string parent = std::filesystem::path(dir).parent_path().string();
    struct stat pst {};
    if (stat(parent.c_str(), &pst) != 0 || !S_ISDIR(pst.st_mode)) {
      return Status::NotFound("cannot create the repository directory " + dir + ": " + parent +
                              " does not exist (is the backup disk mounted? create the parent first)");
    }
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return Status::Unavailable("cannot create the repository directory " + dir + ": " + std::strerror(errno));
    }
  }
  return std::unique_ptr<ObjectStore>(std::make_unique<LocalObjectStore>(dir));
}

}  // namespace pampa
