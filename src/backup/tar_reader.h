// Tar archives read as a stream: the parsing of one 512-byte header (ustar,
// with GNU's base-256 sizes) and a reader that walks an archive's members in
// order from a file descriptor, applying GNU long names and pax paths, so
// that a member's data can be consumed where it lies (an XVA's disk blocks)
// or its offset handed to another reader (a VMDK inside an OVA).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"

namespace pampa {

inline constexpr size_t kTarBlock = 512;

struct TarHeader {
  std::string name;  // the ustar prefix and name joined with '/'
  uint64_t size = 0;
  char type = '0';  // typeflag: '0' (or NUL) a file, '5' a directory, 'L' a GNU long name, 'x' pax...
};

// True for a block of zeros (two of them end an archive).
bool IsZeroTarBlock(std::string_view block);
// Parses a header block (kTarBlock bytes). kInvalid when its checksum is
// wrong ("header checksum mismatch") or a number field is malformed.
Result<TarHeader> ParseTarHeader(std::string_view block);

// Reads an archive front to back. Not thread-safe; the descriptor stays the
// caller's. Skipping a member's data seeks where the descriptor allows it and
// reads otherwise (a pipe).
class TarReader {
 public:
  struct Member {
    std::string name;
    uint64_t size = 0;
    uint64_t offset = 0;  // where its data begins in the stream
    char type = '0';
    bool regular() const { return type == '0' || type == '\0' || type == '7'; }
  };

  // `what` names the archive in errors.
  TarReader(int fd, std::string what) : fd_(fd), what_(std::move(what)) {}

  // The next member (long names applied; the long-name and pax records
  // themselves are not returned), after skipping what was left of the
  // previous one; nullopt at the end of the archive. kInvalid for a damaged
  // or truncated archive.
  Result<std::optional<Member>> Next();
  // Reads exactly n bytes of the current member's data (at most what is left of it).
  Status Read(char* buf, size_t n);
  uint64_t left() const { return left_; }  // data bytes of the current member not read yet
  uint64_t position() const { return pos_; }
  // The descriptor when it seeks (a file, a device), so that others may pread
  // a member's data at Member::offset while this reader goes on (Next skips
  // what was not read by seeking); -1 for a pipe, which must be read in order.
  int RandomAccessFd() const;

 private:
  Status ReadRaw(char* buf, size_t n);
  // One header block; false at the end of the file.
  Result<bool> ReadHeaderBlock(char* block);
  Status Skip(uint64_t n);
  // The data of an extension record (long name, pax) that describes the next header.
  Result<std::string> ReadRecord(uint64_t size);

  int fd_;
  std::string what_;
  uint64_t pos_ = 0;
  uint64_t left_ = 0;     // data bytes of the current member still unread
  uint64_t padding_ = 0;  // zero bytes after its data, up to the next header
};

}  // namespace pampa
