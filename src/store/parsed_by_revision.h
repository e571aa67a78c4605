// The records of a store listing, parsed once per revision: a loop that looks
// at every record under a prefix each tick (the pool's VM specs, twice a
// second on every host) parses only those that changed since its last look.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "store/store.h"

namespace pampa {

template <class T>
class ParsedByRevision {
 public:
  // For every item of list, in its order: fn(key, revision, parsed), where parsed is
  // parse(value) as of the item's revision (T, reused while the revision has
  // not changed). Keys no longer listed are forgotten.
  template <class Parse, class Fn>
  void Refresh(const VersionedList& list, Parse parse, Fn fn) {
    std::map<std::string, std::pair<int64_t, T>> next;
    for (auto& [key, v] : list.items) {
      auto& entry = next[key];
      if (auto old = parsed_.find(key); old != parsed_.end() && old->second.first == v.mod_revision) {
        entry = std::move(old->second);
      } else {
        entry = {v.mod_revision, parse(v.value)};
      }
      fn(key, v.mod_revision, entry.second);
    }
    parsed_ = std::move(next);
  }

 private:
  std::map<std::string, std::pair<int64_t, T>> parsed_;
};

}  // namespace pampa
