#include "resources/balloon.h"

#include <algorithm>

namespace pampa {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

// Balloon moves of less than this are not worth the guest's work.
constexpr uint64_t kMinMove = 8 * kMiB;

std::string Mib(uint64_t bytes) { return std::to_string(bytes / kMiB) + " MiB"; }

}  // namespace

uint64_t BalloonHeadroom(uint64_t actual) { return std::max<uint64_t>(64 * kMiB, actual / 5); }

std::vector<BalloonMove> PlanBalloons(uint64_t host_available, const BalloonPolicy& policy,
                                      const std::vector<BalloonVm>& vms) {
  std::vector<BalloonMove> moves;
  uint64_t host = host_available;
  // First the guests that are short: under half their headroom available.
  for (const BalloonVm& vm : vms) {
    if (!vm.available || vm.actual >= vm.max) continue;
    uint64_t headroom = BalloonHeadroom(vm.actual);
    if (*vm.available >= headroom / 2) continue;
    uint64_t want = std::min(vm.max - vm.actual, std::max(headroom - *vm.available, policy.step / 2));
    uint64_t room = host > policy.floor ? host - policy.floor : 0;
    uint64_t give = std::min({want, room, policy.step});
    if (give < kMinMove) continue;
    host -= give;
    moves.push_back({vm.name, vm.actual + give,
                     "guest has " + Mib(*vm.available) + " available of " + Mib(vm.actual) + ": given " + Mib(give) +
                         " (host has " + Mib(host_available) + " available)"});
  }
  if (host >= policy.reserve) return moves;
  // Then, while the host is under its reserve, memory from the idlest guests.
  struct Spare {
    const BalloonVm* vm;
    uint64_t spare;
  };
  std::vector<Spare> spares;
  for (const BalloonVm& vm : vms) {
    if (!vm.available || vm.actual <= vm.min) continue;
    bool moved = std::any_of(moves.begin(), moves.end(), [&](const BalloonMove& m) { return m.name == vm.name; });
    if (moved) continue;
    uint64_t used = vm.actual > *vm.available ? vm.actual - *vm.available : 0;
    uint64_t keep = std::max(vm.min, used + BalloonHeadroom(used));
    if (vm.actual > keep + kMinMove) spares.push_back({&vm, vm.actual - keep});
  }
  std::sort(spares.begin(), spares.end(), [](const Spare& a, const Spare& b) { return a.spare > b.spare; });
  uint64_t short_by = policy.reserve - host;
  for (const Spare& s : spares) {
    if (short_by == 0) break;
    uint64_t take = std::min({s.spare, policy.step, std::max(short_by, kMinMove)});
    short_by -= std::min(short_by, take);
    moves.push_back({s.vm->name, s.vm->actual - take,
                     "host has " + Mib(host_available) + " available, under its reserve of " + Mib(policy.reserve) +
                         ": took " + Mib(take) + " the guest does not use"});
  }
  return moves;
}

}  // namespace pampa
