// Partial failures of backups, restores and prunes: the repository's object
// store (or the state store) fails its Nth call, for N = 1, 2, 3... until the
// operation no longer reaches the fault. After each failure the repository
// still verifies, no VM is left busy, no half-restored VM or volume remains,
// and the same operation retried without faults succeeds. The VMs stay
// stopped (their disks are read and written with the real qemu-img, qemu-nbd
// and qemu-io); no guest is booted.
#include "jobs/backup_job.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <set>
#include <sstream>
#include <string>

#include "backup/object_store_wrapper.h"
#include "backup/prune.h"
#include "backup/verify.h"
#include "base/process.h"
#include "vm/vm_test_util.h"

namespace pampa {
namespace {

using testing_host::ExpectNothingLeft;
using testing_host::HalfDone;
using testing_host::Host;
using json = nlohmann::json;

// Far more calls than any of these operations makes.
constexpr int kMaxPoints = 40;
constexpr uint64_t kMiB = 1 << 20;

struct Mode {
  bool after_apply;
  const char* name;
};
constexpr Mode kModes[] = {{false, "not applied"}, {true, "applied, reply lost"}};
// How gtest names the parameter in its output.
void PrintTo(const Mode& mode, std::ostream* os) { *os << mode.name; }

const char* OpName(ObjectOp op) { return op == ObjectOp::kPut ? "Put" : op == ObjectOp::kGet ? "Get" : "Delete"; }

std::string Where(const std::string& what, const std::string& call, int n, const char* mode) {
  return what + " with " + call + " #" + std::to_string(n) + " failing (" + mode + ")";
}

void ExpectInjected(const Status& st, const std::string& where) {
  EXPECT_NE(st.message().find("injected fault"), std::string::npos) << where << ": failed otherwise: " << st.message();
}

HalfDone RetryRefused(const std::string& op, const Status& st) {
  return {"retry-refused", op + " retried without faults: " + st.message()};
}

// A repository in a local directory, behind a fault injector the test steers.
struct TestRepo {
  FaultInjectingObjectStore* faults = nullptr;  // owned by repo
  std::shared_ptr<Repository> repo;
};

const RepoSecret kSecret{"correct horse battery staple"};

TestRepo MakeRepo(const std::string& dir, bool create) {
  auto local = OpenLocalObjectStore(dir, create ? CreateDir::kLastComponent : CreateDir::kNo);
  EXPECT_TRUE(local.ok()) << local.status().message();
  if (!local.ok()) return {};
  auto wrapped = std::make_unique<FaultInjectingObjectStore>(std::move(*local));
  TestRepo r;
  r.faults = wrapped.get();
  auto repo = create ? Repository::Init(std::move(wrapped), kSecret) : Repository::Open(std::move(wrapped), kSecret);
  EXPECT_TRUE(repo.ok()) << repo.status().message();
  if (!repo.ok()) return {};
  r.repo = std::move(*repo);
  return r;
}

class BackupJobTest : public ::testing::Test {
 protected:
  void SetUp() override { NewHost(); }

  // A host (state store, pool, VmManager, jobs) with one stopped VM, src,
  // whose 64 MiB disk holds data in three of its sixteen 4 MiB chunks.
  void NewHost() {
    jobs_.reset();
    host_ = std::make_unique<Host>();
    jobs_ = std::make_unique<BackupJobs>(host_->vms, host_->store, host_->storage, host_->networks, host_->tasks,
                                         host_->events);
    ASSERT_TRUE(host_->CreateVm("src", {64 * kMiB}).ok());
    disk_ = host_->VolumePath("src-disk0");
    Write(0xab, 0, 4 * kMiB);
    Write(0xcd, 16 * kMiB, 4 * kMiB);
    Write(0x5a, 40 * kMiB, 1 * kMiB);
  }

  // What a guest would have written (qemu-io also updates the image's
  // persistent dirty bitmaps, as QEMU does for a running guest).
  void Write(int pattern, uint64_t offset, uint64_t length) {
    auto r = RunChecked(
        {"qemu-io", "-f", "qcow2", "-c",
         "write -P " + std::to_string(pattern) + " " + std::to_string(offset) + " " + std::to_string(length), disk_});
    ASSERT_TRUE(r.ok()) << r.status().message();
  }

  // Backs src up; *id gets the new backup's id.
  Status BackupNow(TestRepo& r, const std::string& repo_name, std::string* id) {
    auto task = jobs_->Backup("src", r.repo, repo_name);
    if (!task.ok()) return task.status();
    TaskInfo info = host_->Wait(*task);
    if (info.state != "succeeded") return Status::Unavailable("backup " + info.state + ": " + info.error);
    *id = info.result.value("id", "");
    return Status::Ok();
  }

  Status RestoreAs(TestRepo& r, const std::string& backup, const std::string& vm) {
    return host_->Finish(jobs_->Restore(r.repo, backup, vm, "default", false));
  }

  // Whether two images hold the same guest data.
  static bool SameData(const std::string& a, const std::string& b) {
    auto r = pampa::Run({"qemu-img", "compare", "-q", "-f", "qcow2", "-F", "qcow2", a, b});
    return r.ok() && r->exit_code == 0;
  }

  // What a failed job may have left in or around the repository.
  std::vector<HalfDone> RepoCheck(TestRepo& r) {
    std::vector<HalfDone> left;
    auto verified = VerifyRepository(*r.repo, "", 2, {}, nullptr);
    if (!verified.ok()) {
      left.push_back({"repo-unverifiable", verified.status().message()});
    } else if (!(*verified)["ok"].get<bool>()) {
      left.push_back({"repo-damaged", verified->dump()});
    }
    auto locks = r.repo->store().List("locks/");
    if (locks.ok()) {
      for (auto& l : *locks) left.push_back({"lock-left", l + " is still in the repository"});
    }
    // qemu-nbd servers of the backup's disk reads, and their files.
    std::error_code ec;
    for (auto& p : std::filesystem::directory_iterator("/proc", ec)) {
      std::ifstream in(p.path() / "cmdline", std::ios::binary);
      std::stringstream cmd;
      cmd << in.rdbuf();
      std::string line = cmd.str();
      if (line.find("qemu-nbd") != std::string::npos && line.find(host_->dir.path()) != std::string::npos) {
        left.push_back({"nbd-left", "qemu-nbd (pid " + p.path().filename().string() + ") still serves " + disk_});
      }
    }
    for (auto& e : std::filesystem::recursive_directory_iterator(host_->run_dir, ec)) {
      if (e.path().extension() == ".nbdpid" || e.path().extension() == ".sock") {
        left.push_back({"nbd-left", e.path().string() + " is still there"});
      }
    }
    return left;
  }

  void BackupFailingAtEveryPut(const Mode& mode, int write_behind);

  testing_host::TempDir work_;  // repositories and reference images, across hosts
  std::unique_ptr<Host> host_;
  std::unique_ptr<BackupJobs> jobs_;
  std::string disk_;
};

// Once per mode: .../NotApplied, .../AppliedReplyLost.
class BackupJobFaults : public BackupJobTest, public ::testing::WithParamInterface<Mode> {};

std::string ModeName(const Mode& mode) { return mode.after_apply ? "AppliedReplyLost" : "NotApplied"; }

// The backup fails at its nth object Put, for every n; with write_behind the
// repository uploads chunks on threads of its own (as to an SFTP store) and
// the failure comes back through AwaitUploads.
void BackupJobTest::BackupFailingAtEveryPut(const Mode& mode, int write_behind) {
  bool reached_the_end = false;
  for (int n = 1; n <= kMaxPoints && !reached_the_end; ++n) {
    std::string where = Where(write_behind ? "write-behind backup of a stopped VM" : "backup of a stopped VM",
                              "object Put", n, mode.name);
    std::string repo_name = std::string("r") + (mode.after_apply ? "a" : "b") + std::to_string(n);
    std::string dir = work_.path() + "/" + repo_name;
    TestRepo r = MakeRepo(dir, true);
    ASSERT_TRUE(r.repo) << where;
    r.faults->SetWriteBehind(write_behind);
    // A first backup, so that the one that fails is incremental (dirty bitmap).
    std::string id;
    Status base = BackupNow(r, repo_name, &id);
    ASSERT_TRUE(base.ok()) << where << ": first backup: " << base.message();
    Write(0x10 + n, 0, 1 * kMiB);
    Write(0x60 + n, 32 * kMiB, 4 * kMiB);

    int before = r.faults->calls(ObjectOp::kPut);
    r.faults->InjectFault({.op = ObjectOp::kPut, .nth = n, .after_apply = mode.after_apply});
    Status st = BackupNow(r, repo_name, &id);
    r.faults->Clear();
    bool hit = r.faults->calls(ObjectOp::kPut) - before >= n;
    ExpectNothingLeft(host_->Check(), where);
    ExpectNothingLeft(RepoCheck(r), where);
    if (!hit) {
      ASSERT_TRUE(st.ok()) << where << ": " << st.message();
      reached_the_end = true;
    }
    if (!st.ok()) {
      ExpectInjected(st, where);
      Status next = BackupNow(r, repo_name, &id);
      if (!next.ok()) {
        ExpectNothingLeft({RetryRefused("the next backup", next)}, where);
        continue;
      }
      ExpectNothingLeft(host_->Check(), where + ", then the next backup");
      ExpectNothingLeft(RepoCheck(r), where + ", then the next backup");
    }
    // The last backup holds the disk as it is now: nothing the failed
    // backup saw dirty was lost to the next one.
    Status restored = RestoreAs(r, id, "check");
    ASSERT_TRUE(restored.ok()) << where << ": restoring " << id << ": " << restored.message();
    EXPECT_TRUE(SameData(disk_, host_->VolumePath("check-disk0"))) << where << ": backup " << id << " lacks data";
    ASSERT_TRUE(host_->vms.Delete("check").ok()) << where;
    r = {};
    std::filesystem::remove_all(dir);
  }
  EXPECT_TRUE(reached_the_end) << "backup still reached the fault after " << kMaxPoints << " Puts";
}

TEST_P(BackupJobFaults, BackupFailingAtEveryObjectPutLeavesAVerifiedRepositoryAndAFreeVm) {
  BackupFailingAtEveryPut(GetParam(), 0);
}

TEST_P(BackupJobFaults, WriteBehindBackupFailingAtEveryObjectPutLeavesAVerifiedRepositoryAndAFreeVm) {
  BackupFailingAtEveryPut(GetParam(), 3);
}

TEST_F(BackupJobTest, RestoreAsNewVmFailingAtEveryObjectGetLeavesNothing) {
  TestRepo r = MakeRepo(work_.path() + "/repo", true);
  ASSERT_TRUE(r.repo);
  std::string id;
  ASSERT_TRUE(BackupNow(r, "repo", &id).ok());
  bool reached_the_end = false;
  for (int n = 1; n <= kMaxPoints && !reached_the_end; ++n) {
    std::string where = Where("restore as a new VM", "object Get", n, "not read");
    int before = r.faults->calls(ObjectOp::kGet);
    r.faults->InjectFault({.op = ObjectOp::kGet, .nth = n});
    Status st = RestoreAs(r, id, "copy");
    r.faults->Clear();
    bool hit = r.faults->calls(ObjectOp::kGet) - before >= n;
    ExpectNothingLeft(host_->Check(), where);
    if (!hit) {
      ASSERT_TRUE(st.ok()) << where << ": " << st.message();
      reached_the_end = true;
    }
    if (!st.ok()) {
      ExpectInjected(st, where);
      EXPECT_EQ(host_->vms.Show("copy").status().code(), ErrorCode::kNotFound) << where;
      EXPECT_FALSE(host_->memory->Get("vms/copy")->has_value()) << where;
      EXPECT_FALSE(std::filesystem::exists(host_->VolumePath("copy-disk0"))) << where;
      Status retry = RestoreAs(r, id, "copy");
      if (!retry.ok()) {
        ExpectNothingLeft({RetryRefused("restore", retry)}, where);
        break;
      }
      ExpectNothingLeft(host_->Check(), where + ", then retried");
    }
    EXPECT_TRUE(SameData(disk_, host_->VolumePath("copy-disk0"))) << where;
    ASSERT_TRUE(host_->vms.Delete("copy").ok()) << where;
    ExpectNothingLeft(host_->Check(), where + ", then deleted");
  }
  EXPECT_TRUE(reached_the_end) << "restore still reached the fault after " << kMaxPoints << " Gets";
}

TEST_P(BackupJobFaults, RestoreAsNewVmFailingAtEveryStoreWriteLeavesNothing) {
  TestRepo r = MakeRepo(work_.path() + "/repo", true);
  ASSERT_TRUE(r.repo);
  std::string id;
  ASSERT_TRUE(BackupNow(r, "repo", &id).ok());
  std::string reference = work_.path() + "/src.qcow2";  // the disk as backed up
  std::filesystem::copy_file(disk_, reference);
  const Mode& mode = GetParam();
  bool reached_the_end = false;
  for (int n = 1; n <= kMaxPoints && !reached_the_end; ++n) {
    std::string where = Where("restore as a new VM", "store write", n, mode.name);
    NewHost();  // each failure on a host of its own
    if (HasFatalFailure()) return;
    int before = host_->store.mutations();
    host_->store.InjectFault({.nth = n, .after_apply = mode.after_apply});
    Status st = RestoreAs(r, id, "copy");
    host_->store.Clear();
    bool hit = host_->store.mutations() - before >= n;
    ExpectNothingLeft(host_->Check(), where);
    if (!hit) {
      ASSERT_TRUE(st.ok()) << where << ": " << st.message();
      reached_the_end = true;
    }
    // A failed restore whose VM is nowhere is retried; one whose VM is
    // whole (an ambiguous write that did land) needs no retry.
    if (!st.ok()) {
      ExpectInjected(st, where);
      if (!host_->vms.Show("copy").ok()) {
        Status retry = RestoreAs(r, id, "copy");
        if (!retry.ok()) {
          ExpectNothingLeft({RetryRefused("restore", retry)}, where);
          continue;
        }
        ExpectNothingLeft(host_->Check(), where + ", then retried");
      }
    }
    EXPECT_TRUE(SameData(reference, host_->VolumePath("copy-disk0"))) << where;
    ASSERT_TRUE(host_->vms.Delete("copy").ok()) << where;
    ExpectNothingLeft(host_->Check(), where + ", then deleted");
  }
  EXPECT_TRUE(reached_the_end) << "restore still reached the fault after " << kMaxPoints << " writes";
}

// Prune's Deletes (manifests, chunks, the GC's lock), and its one Put (the
// GC's lock), each in both modes.
struct PruneFault {
  ObjectOp op;
  Mode mode;
};
class PruneFaults : public BackupJobTest, public ::testing::WithParamInterface<PruneFault> {};
void PrintTo(const PruneFault& f, std::ostream* os) { *os << OpName(f.op) << ", " << f.mode.name; }

TEST_P(PruneFaults, PruneFailingAtEveryObjectDeleteOrPutLeavesAVerifiedRepositoryAndARetryFinishes) {
  // Three backups, each rewriting the first two chunks: keeping the last one
  // removes two manifests and four chunks.
  std::string tmpl = work_.path() + "/template";
  std::string kept;
  {
    TestRepo r = MakeRepo(tmpl, true);
    ASSERT_TRUE(r.repo);
    std::string id;
    ASSERT_TRUE(BackupNow(r, "template", &id).ok());
    Write(0x21, 0, 4 * kMiB);
    Write(0x22, 4 * kMiB, 4 * kMiB);
    ASSERT_TRUE(BackupNow(r, "template", &id).ok());
    Write(0x31, 0, 4 * kMiB);
    Write(0x32, 4 * kMiB, 4 * kMiB);
    ASSERT_TRUE(BackupNow(r, "template", &kept).ok());
    ASSERT_EQ(r.repo->ListBackups()->size(), 3u);
  }
  RetentionPolicy keep_last;
  keep_last.keep_last = 1;

  const PruneFault& f = GetParam();
  bool reached_the_end = false;
  for (int n = 1; n <= kMaxPoints && !reached_the_end; ++n) {
    std::string where = Where("prune --keep-last 1", std::string("object ") + OpName(f.op), n, f.mode.name);
    std::string dir = work_.path() + "/prune";
    std::filesystem::remove_all(dir);
    std::filesystem::copy(tmpl, dir, std::filesystem::copy_options::recursive);
    TestRepo r = MakeRepo(dir, false);
    ASSERT_TRUE(r.repo) << where;
    std::set<std::string> wanted;  // the chunks of the backup kept
    auto manifest = r.repo->ReadManifest(kept);
    ASSERT_TRUE(manifest.ok()) << where << ": " << manifest.status().message();
    for (auto& d : manifest->disks) {
      for (auto& c : d.chunks) {
        if (c != kZeroChunk) wanted.insert(c);
      }
    }

    int before = r.faults->calls(f.op);
    r.faults->InjectFault({.op = f.op, .nth = n, .after_apply = f.mode.after_apply});
    auto pruned = Prune(*r.repo, keep_last, "", false);
    r.faults->Clear();
    bool hit = r.faults->calls(f.op) - before >= n;
    ExpectNothingLeft(RepoCheck(r), where);
    auto backups = r.repo->ListBackups();
    ASSERT_TRUE(backups.ok());
    EXPECT_TRUE(std::find(backups->begin(), backups->end(), kept) != backups->end()) << where << ": lost " << kept;
    if (!hit) {
      ASSERT_TRUE(pruned.ok()) << where << ": " << pruned.status().message();
      reached_the_end = true;
    }
    if (!pruned.ok()) ExpectInjected(pruned.status(), where);
    // Retried without faults, the prune finishes the job.
    auto again = Prune(*r.repo, keep_last, "", false);
    ASSERT_TRUE(again.ok()) << where << ", then retried: " << again.status().message();
    ExpectNothingLeft(RepoCheck(r), where + ", then retried");
    EXPECT_EQ(*r.repo->ListBackups(), std::vector<std::string>{kept}) << where << ", then retried";
    auto chunks = r.repo->ListChunks();
    ASSERT_TRUE(chunks.ok());
    std::set<std::string> left(chunks->begin(), chunks->end());
    if (left != wanted) {
      ExpectNothingLeft(
          {HalfDone{"chunks-left", std::to_string(left.size()) + " chunk(s) where the backup kept has " +
                                       std::to_string(wanted.size()) + " after the retried prune: " + again->dump()}},
          where + ", then retried");
    }
  }
  EXPECT_TRUE(reached_the_end) << "prune still reached the fault after " << kMaxPoints << " calls";
}

INSTANTIATE_TEST_SUITE_P(ObjectAndStoreWrites, BackupJobFaults, ::testing::ValuesIn(kModes),
                         [](const ::testing::TestParamInfo<Mode>& info) { return ModeName(info.param); });

INSTANTIATE_TEST_SUITE_P(DeleteAndPut, PruneFaults,
                         ::testing::Values(PruneFault{ObjectOp::kDelete, kModes[0]},
                                           PruneFault{ObjectOp::kDelete, kModes[1]},
                                           PruneFault{ObjectOp::kPut, kModes[0]},
                                           PruneFault{ObjectOp::kPut, kModes[1]}),
                         [](const ::testing::TestParamInfo<PruneFault>& info) {
                           return std::string(OpName(info.param.op)) + ModeName(info.param.mode);
                         });

}  // namespace
}  // namespace pampa
