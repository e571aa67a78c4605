// Tar archives built in memory for tests of the readers of tar streams.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace pampa::tar_test {

// A ustar header for a member of `size` bytes (typeflag type), with its checksum.
inline std::string TarHeaderBlock(const std::string& name, uint64_t size, char type = '0') {
  std::string h(512, '\0');
  h.replace(0, std::min<size_t>(name.size(), 100), name.substr(0, 100));
  std::snprintf(&h[100], 8, "%07o", 0644);
  std::snprintf(&h[124], 12, "%011llo", static_cast<unsigned long long>(size));
  h[156] = type;
  h.replace(257, 6, std::string("ustar\0", 6));
  h.replace(263, 2, "00");
  h.replace(148, 8, "        ");
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::snprintf(&h[148], 8, "%06o", sum);
  return h;
}

// A member: its header and data padded to whole blocks. Names longer than
// 100 bytes get a GNU long-name record first.
inline std::string TarMember(const std::string& name, const std::string& data) {
  std::string out;
  if (name.size() > 100) {
    out = TarHeaderBlock("././@LongLink", name.size() + 1, 'L') + name + '\0';
    out.resize((out.size() + 511) / 512 * 512, '\0');
  }
  std::string m = TarHeaderBlock(name, data.size()) + data;
  m.resize((m.size() + 511) / 512 * 512, '\0');
  return out + m;
}

inline std::string TarEnd() { return std::string(1024, '\0'); }

}  // namespace pampa::tar_test
