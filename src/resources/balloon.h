// The balloon controller's policy: which VM with dynamic memory gets how much,
// from the host's free memory and what each guest says it uses. Pure: the
// caller (resources/metrics.cc) feeds it a sample and carries out its moves.
//
// * A guest short of memory (available under a low-water mark) is given more,
//   up to its maximum, as long as the host keeps a hard floor free: a guest
//   that swaps or OOMs is worse than a host using its reserve, but the host
//   itself never swaps for a guest.
// * When the host's available memory is under the reserve, memory is taken
//   from the idlest guests (the most unused memory first), never below what
//   the guest uses plus headroom, nor below its minimum.
// * Moves are bounded per round, so the guest's kernel keeps up.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pampa {

struct BalloonVm {
  std::string name;
  uint64_t min = 0, max = 0;  // bytes
  uint64_t actual = 0;        // what the guest has now (the balloon's "actual")
  // The guest's own figure of memory it could use without swapping (its
  // MemAvailable, by the balloon driver); nullopt before its first report.
  std::optional<uint64_t> available;
};

struct BalloonMove {
  std::string name;
  uint64_t target = 0;  // bytes
  std::string reason;
};

struct BalloonPolicy {
  uint64_t reserve = 0;          // the host's available memory the controller keeps
  uint64_t floor = 0;            // giving memory to a guest never takes the host under this
  uint64_t step = 256ull << 20;  // the most one VM moves in one round
};

// The headroom a guest keeps over what it uses, and under which it is short.
uint64_t BalloonHeadroom(uint64_t actual);
std::vector<BalloonMove> PlanBalloons(uint64_t host_available, const BalloonPolicy& policy,
                                      const std::vector<BalloonVm>& vms);

}  // namespace pampa
