#include "backup/chunk_codec.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <zstd.h>

#include <cstring>
#include <memory>

namespace pampa {
namespace {

constexpr char kMagic[4] = {'P', 'C', 'K', '1'};
constexpr uint8_t kFlagZstd = 1, kFlagEncrypted = 2;
constexpr size_t kHeader = 5, kNonce = 12, kTag = 16;

struct CipherCtx {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  ~CipherCtx() { EVP_CIPHER_CTX_free(ctx); }
};

const uint8_t* U8(const char* p) { return reinterpret_cast<const uint8_t*>(p); }
uint8_t* U8(char* p) { return reinterpret_cast<uint8_t*>(p); }

// AES-256-GCM in place over data[0, n) with the given nonce; writes the tag to `tag`.
void GcmSealInPlace(const std::array<uint8_t, 32>& key, const char* nonce, std::string_view aad, char* data, size_t n,
                    char* tag) {
  CipherCtx c;
  int len = 0;
  EVP_EncryptInit_ex(c.ctx, EVP_aes_256_gcm(), nullptr, nullptr, nullptr);
  EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_SET_IVLEN, kNonce, nullptr);
  EVP_EncryptInit_ex(c.ctx, nullptr, nullptr, key.data(), U8(nonce));
  if (!aad.empty()) EVP_EncryptUpdate(c.ctx, nullptr, &len, U8(aad.data()), static_cast<int>(aad.size()));
  EVP_EncryptUpdate(c.ctx, U8(data), &len, U8(data), static_cast<int>(n));
  int fin = 0;
  EVP_EncryptFinal_ex(c.ctx, U8(data) + len, &fin);
  EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_GET_TAG, kTag, tag);
}

// Decrypts data[0, n) in place; false when the tag does not match.
bool GcmOpenInPlace(const std::array<uint8_t, 32>& key, const char* nonce, std::string_view aad, char* data, size_t n,
                    const char* tag) {
  CipherCtx c;
  int len = 0;
  EVP_DecryptInit_ex(c.ctx, EVP_aes_256_gcm(), nullptr, nullptr, nullptr);
  EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_SET_IVLEN, kNonce, nullptr);
  EVP_DecryptInit_ex(c.ctx, nullptr, nullptr, key.data(), U8(nonce));
  if (!aad.empty()) EVP_DecryptUpdate(c.ctx, nullptr, &len, U8(aad.data()), static_cast<int>(aad.size()));
  EVP_DecryptUpdate(c.ctx, U8(data), &len, U8(data), static_cast<int>(n));
  EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_SET_TAG, kTag, const_cast<char*>(tag));
  int fin = 0;
  return EVP_DecryptFinal_ex(c.ctx, U8(data) + len, &fin) == 1;
}

// nonce || AES-256-GCM(plain) || tag, for small blobs.
std::string GcmSeal(const std::array<uint8_t, 32>& key, const std::string& plain) {
  std::string out = RandomBytes(kNonce) + plain + std::string(kTag, '\0');
  GcmSealInPlace(key, out.data(), "", out.data() + kNonce, plain.size(), out.data() + kNonce + plain.size());
  return out;
}

Result<std::string> GcmOpen(const std::array<uint8_t, 32>& key, const std::string& sealed) {
  if (sealed.size() < kNonce + kTag) return Status::Invalid("encrypted data is truncated");
  size_t n = sealed.size() - kNonce - kTag;
  std::string out = sealed.substr(kNonce, n);
  if (!GcmOpenInPlace(key, sealed.data(), "", out.data(), n, sealed.data() + kNonce + n)) {
    return Status::Invalid("authentication failed: the data was modified or the key is wrong");
  }
  return out;
}

// zstd contexts are costly to set up (megabytes of tables): one per thread, reused.
ZSTD_CCtx* ThreadCCtx() {
  thread_local std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> ctx(ZSTD_createCCtx(), ZSTD_freeCCtx);
  return ctx.get();
}
ZSTD_DCtx* ThreadDCtx() {
  thread_local std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> ctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  return ctx.get();
}

// The GCM additional data of a chunk: its header and its id.
std::string ChunkAad(const char* header, const std::string& id) { return std::string(header, kHeader) + id; }

}  // namespace

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  RAND_bytes(reinterpret_cast<uint8_t*>(out.data()), static_cast<int>(n));
  return out;
}

RepoKeys RepoKeys::Generate() {
  RepoKeys k;
  k.encrypted = true;
  RAND_bytes(k.data_key.data(), 32);
  RAND_bytes(k.id_key.data(), 32);
  return k;
}

std::string ToHex(const std::string& bytes) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(hex[c >> 4]);
    out.push_back(hex[c & 15]);
  }
  return out;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(U8(data.data()), data.size(), md);
  return ToHex(std::string(reinterpret_cast<char*>(md), sizeof md));
}

std::string HmacSha256Hex(const std::array<uint8_t, 32>& key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), 32, U8(data.data()), data.size(), md, &len);
  return ToHex(std::string(reinterpret_cast<char*>(md), len));
}

std::string ChunkId(const RepoKeys& keys, std::string_view plaintext) {
  return keys.encrypted ? HmacSha256Hex(keys.id_key, plaintext) : Sha256Hex(plaintext);
}

std::string_view SealChunk(const RepoKeys& keys, const std::string& id, std::string_view plaintext, int zstd_level,
                           std::string* buf) {
  constexpr size_t kPage = 4096;
  const size_t start = kHeader + (keys.encrypted ? kNonce : 0);
  const size_t bound = ZSTD_compressBound(plaintext.size());
  if (buf->size() < kPage + start + bound + kTag) buf->resize(kPage + start + bound + kTag);
  char* out = buf->data() + (kPage - reinterpret_cast<uintptr_t>(buf->data()) % kPage) % kPage;
  std::memcpy(out, kMagic, 4);
  uint8_t flags = 0;
  size_t n = ZSTD_compressCCtx(ThreadCCtx(), out + start, bound, plaintext.data(), plaintext.size(), zstd_level);
  if (!ZSTD_isError(n) && n < plaintext.size()) {
    flags |= kFlagZstd;
  } else {
    std::memcpy(out + start, plaintext.data(), plaintext.size());  // incompressible: stored as is
    n = plaintext.size();
  }
  if (!keys.encrypted) {
    out[4] = static_cast<char>(flags);
    return {out, start + n};
  }
  out[4] = static_cast<char>(flags | kFlagEncrypted);
  RAND_bytes(U8(out + kHeader), kNonce);
  // The header is authenticated too (flags cannot be flipped), and so is the
  // id: an object cannot be passed off as another chunk.
  GcmSealInPlace(keys.data_key, out + kHeader, ChunkAad(out, id), out + start, n, out + start + n);
  return {out, start + n + kTag};
}

namespace {

struct Payload {
  const char* data;
  size_t size;
  bool zstd;
};

// Checks an object's header and tag, decrypting it in place; returns its payload.
Result<Payload> Unseal(const RepoKeys& keys, const std::string& id, std::string& object) {
  if (object.size() < kHeader || std::memcmp(object.data(), kMagic, 4) != 0) {
    return Status::Invalid("chunk " + id + " is damaged (bad header)");
  }
  uint8_t flags = static_cast<uint8_t>(object[4]);
  Payload p{object.data() + kHeader, object.size() - kHeader, (flags & kFlagZstd) != 0};
  if (!(flags & kFlagEncrypted)) {
    if (keys.encrypted) return Status::Invalid("chunk " + id + " is not encrypted in an encrypted repository");
    return p;
  }
  if (!keys.encrypted) return Status::Invalid("chunk " + id + " is encrypted but the repository is not");
  if (p.size < kNonce + kTag) return Status::Invalid("chunk " + id + " is damaged (truncated)");
  p.size -= kNonce + kTag;
  char* data = object.data() + kHeader + kNonce;
  if (!GcmOpenInPlace(keys.data_key, object.data() + kHeader, ChunkAad(object.data(), id), data, p.size,
                      data + p.size)) {
    return Status::Invalid("chunk " + id + ": authentication failed: the data was modified or the key is wrong");
  }
  p.data = data;
  return p;
}

Status Unpack(const RepoKeys& keys, const std::string& id, const Payload& p, char* dst, size_t size, ChunkCheck check) {
  if (p.zstd) {
    size_t got = ZSTD_decompressDCtx(ThreadDCtx(), dst, size, p.data, p.size);
    if (ZSTD_isError(got) || got != size) return Status::Invalid("chunk " + id + " is damaged (cannot decompress)");
  } else {
    if (p.size != size) return Status::Invalid("chunk " + id + " is damaged (wrong length)");
    std::memcpy(dst, p.data, size);
  }
  if ((check == ChunkCheck::kHash || !keys.encrypted) && ChunkId(keys, std::string_view(dst, size)) != id) {
    return Status::Invalid("chunk " + id + " is damaged (content does not match its hash)");
  }
  return Status::Ok();
}

}  // namespace

Status OpenChunkInto(const RepoKeys& keys, const std::string& id, std::string& object, char* dst, size_t size,
                     ChunkCheck check) {
  PAMPA_ASSIGN_OR_RETURN(Payload p, Unseal(keys, id, object));
  if (p.zstd && ZSTD_getFrameContentSize(p.data, p.size) != size) {
    return Status::Invalid("chunk " + id + " is damaged (bad compressed frame)");
  }
  return Unpack(keys, id, p, dst, size, check);
}

Result<std::string> OpenChunk(const RepoKeys& keys, const std::string& id, std::string object) {
  PAMPA_ASSIGN_OR_RETURN(Payload p, Unseal(keys, id, object));
  unsigned long long size = p.size;
  if (p.zstd) {
    size = ZSTD_getFrameContentSize(p.data, p.size);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > (1ull << 30)) {
      return Status::Invalid("chunk " + id + " is damaged (bad compressed frame)");
    }
  }
  std::string plain(size, '\0');
  PAMPA_RETURN_IF_ERROR(Unpack(keys, id, p, plain.data(), size, ChunkCheck::kHash));
  return plain;
}

std::string Encrypt(const std::array<uint8_t, 32>& key, const std::string& plaintext) {
  return GcmSeal(key, plaintext);
}

Result<std::string> Decrypt(const std::array<uint8_t, 32>& key, const std::string& sealed) {
  return GcmOpen(key, sealed);
}

Result<std::array<uint8_t, 32>> DeriveKey(const std::string& passphrase, const KdfParams& p) {
  std::array<uint8_t, 32> key{};
  if (EVP_PBE_scrypt(passphrase.data(), passphrase.size(), reinterpret_cast<const uint8_t*>(p.salt.data()),
                     p.salt.size(), p.n, p.r, p.p, 256ull << 20, key.data(), key.size()) != 1) {
    return Status::Internal("scrypt key derivation failed");
  }
  return key;
}

}  // namespace pampa
