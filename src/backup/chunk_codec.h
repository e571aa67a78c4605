// How a chunk's bytes are named, compressed and encrypted (see
// docs/formats/backup-repository.md). Pure functions over a RepoKeys value;
// thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"

namespace pampa {

struct RepoKeys {
  bool encrypted = false;
  std::array<uint8_t, 32> data_key{};  // AES-256-GCM key for chunks and manifests
  std::array<uint8_t, 32> id_key{};    // HMAC-SHA256 key for chunk ids and manifest MACs
  static RepoKeys Generate();          // fresh random keys (encrypted = true)
};

// The chunk's name: hex SHA-256 of the plaintext, keyed (HMAC) when encrypted
// so that names reveal nothing about content.
std::string ChunkId(const RepoKeys& keys, std::string_view plaintext);

// plaintext -> stored object (magic, flags, [nonce], zstd or raw payload,
// [tag]), written into *buf (whose capacity is reused from call to call) at a
// page-aligned address, so stores can write it with O_DIRECT. `id` must be
// ChunkId(keys, plaintext): an encrypted object is bound to it (GCM additional data).
std::string_view SealChunk(const RepoKeys& keys, const std::string& id, std::string_view plaintext, int zstd_level,
                           std::string* buf);

// How much OpenChunk checks. kTag trusts the GCM tag of an encrypted object
// (it binds the id: only the key holder could have made it) and skips
// rehashing; unencrypted objects are always rehashed. kHash always rehashes.
enum class ChunkCheck { kTag, kHash };

// stored object -> exactly `size` plaintext bytes at dst. The object is
// decrypted in place (its bytes are garbage afterwards).
Status OpenChunkInto(const RepoKeys& keys, const std::string& id, std::string& object, char* dst, size_t size,
                     ChunkCheck check);
// stored object -> plaintext, with every check (tests and verify).
Result<std::string> OpenChunk(const RepoKeys& keys, const std::string& id, std::string object);

// AES-256-GCM of a whole small blob (manifests, the key file), nonce prepended.
std::string Encrypt(const std::array<uint8_t, 32>& key, const std::string& plaintext);
Result<std::string> Decrypt(const std::array<uint8_t, 32>& key, const std::string& sealed);

std::string HmacSha256Hex(const std::array<uint8_t, 32>& key, std::string_view data);
std::string Sha256Hex(std::string_view data);

struct KdfParams {
  uint64_t n = 1 << 15;  // scrypt cost: 32 MiB of memory per derivation
  uint32_t r = 8, p = 1;
  std::string salt;  // 16 random bytes
};
// The key-encryption key from a passphrase (scrypt, memory-hard).
Result<std::array<uint8_t, 32>> DeriveKey(const std::string& passphrase, const KdfParams& params);

std::string ToHex(const std::string& bytes);
std::string RandomBytes(size_t n);

}  // namespace pampa
