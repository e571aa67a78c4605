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
constexpr size_t kNonce = 12, kTag = 16;

struct CipherCtx {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  ~CipherCtx() { EVP_CIPHER_CTX_free(ctx); }
};

// AES-256-GCM with a random nonce: returns nonce || ciphertext || tag.
std::string GcmSeal(const std::array<uint8_t, 32>& key, const std::string& plain, const std::string& aad) {
  std::string nonce = RandomBytes(kNonce);
  std::string out(kNonce + plain.size() + kTag, '\0');
  std::memcpy(out.data(), nonce.data(), kNonce);
  CipherCtx c;
  int len = 0;
  EVP_EncryptInit_ex(c.ctx, EVP_aes_256_gcm(), nullptr, nullptr, nullptr);
  EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_SET_IVLEN, kNonce, nullptr);
  EVP_EncryptInit_ex(c.ctx, nullptr, nullptr, key.data(), reinterpret_cast<const uint8_t*>(nonce.data()));
  if (!aad.empty()) {
    EVP_EncryptUpdate(c.ctx, nullptr, &len, reinterpret_cast<const uint8_t*>(aad.data()), static_cast<int>(aad.size()));
  }
  auto* dst = reinterpret_cast<uint8_t*>(out.data() + kNonce);
  EVP_EncryptUpdate(c.ctx, dst, &len, reinterpret_cast<const uint8_t*>(plain.data()), static_cast<int>(plain.size()));
  int fin = 0;
  EVP_EncryptFinal_ex(c.ctx, dst + len, &fin);
  EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_GET_TAG, kTag, out.data() + kNonce + plain.size());
  return out;
}

Result<std::string> GcmOpen(const std::array<uint8_t, 32>& key, const std::string& sealed, const std::string& aad) {
  if (sealed.size() < kNonce + kTag) return Status::Invalid("encrypted data is truncated");
  size_t n = sealed.size() - kNonce - kTag;
  std::string out(n, '\0');
  CipherCtx c;
  int len = 0;
  EVP_DecryptInit_ex(c.ctx, EVP_aes_256_gcm(), nullptr, nullptr, nullptr);
  EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_SET_IVLEN, kNonce, nullptr);
  EVP_DecryptInit_ex(c.ctx, nullptr, nullptr, key.data(), reinterpret_cast<const uint8_t*>(sealed.data()));
  if (!aad.empty()) {
    EVP_DecryptUpdate(c.ctx, nullptr, &len, reinterpret_cast<const uint8_t*>(aad.data()), static_cast<int>(aad.size()));
  }
  EVP_DecryptUpdate(c.ctx, reinterpret_cast<uint8_t*>(out.data()), &len,
                    reinterpret_cast<const uint8_t*>(sealed.data() + kNonce), static_cast<int>(n));
  EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_SET_TAG, kTag, const_cast<char*>(sealed.data() + kNonce + n));
  int fin = 0;
  if (EVP_DecryptFinal_ex(c.ctx, reinterpret_cast<uint8_t*>(out.data()) + len, &fin) != 1) {
    return Status::Invalid("authentication failed: the data was modified or the key is wrong");
  }
  return out;
}

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

std::string Sha256Hex(const std::string& data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const uint8_t*>(data.data()), data.size(), md);
  return ToHex(std::string(reinterpret_cast<char*>(md), sizeof md));
}

std::string HmacSha256Hex(const std::array<uint8_t, 32>& key, const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), 32, reinterpret_cast<const uint8_t*>(data.data()), data.size(), md, &len);
  return ToHex(std::string(reinterpret_cast<char*>(md), len));
}

std::string ChunkId(const RepoKeys& keys, const std::string& plaintext) {
  return keys.encrypted ? HmacSha256Hex(keys.id_key, plaintext) : Sha256Hex(plaintext);
}

Result<std::string> SealChunk(const RepoKeys& keys, const std::string& plaintext, int zstd_level) {
  std::string payload(ZSTD_compressBound(plaintext.size()), '\0');
  size_t n = ZSTD_compress(payload.data(), payload.size(), plaintext.data(), plaintext.size(), zstd_level);
  uint8_t flags = 0;
  if (!ZSTD_isError(n) && n < plaintext.size()) {
    payload.resize(n);
    flags |= kFlagZstd;
  } else {
    payload = plaintext;  // incompressible: store as is
  }
  std::string out(kMagic, 4);
  if (keys.encrypted) {
    flags |= kFlagEncrypted;
    out.push_back(static_cast<char>(flags));
    // The header is authenticated too, so flags cannot be flipped.
    out += GcmSeal(keys.data_key, payload, out);
  } else {
    out.push_back(static_cast<char>(flags));
    out += payload;
  }
  return out;
}

Result<std::string> OpenChunk(const RepoKeys& keys, const std::string& id, const std::string& object) {
  if (object.size() < 5 || std::memcmp(object.data(), kMagic, 4) != 0) {
    return Status::Invalid("chunk " + id + " is damaged (bad header)");
  }
  uint8_t flags = static_cast<uint8_t>(object[4]);
  std::string payload;
  if (flags & kFlagEncrypted) {
    if (!keys.encrypted) return Status::Invalid("chunk " + id + " is encrypted but the repository is not");
    auto p = GcmOpen(keys.data_key, object.substr(5), object.substr(0, 5));
    if (!p.ok()) return Status::Invalid("chunk " + id + ": " + p.status().message());
    payload = std::move(*p);
  } else {
    if (keys.encrypted) return Status::Invalid("chunk " + id + " is not encrypted in an encrypted repository");
    payload = object.substr(5);
  }
  std::string plain;
  if (flags & kFlagZstd) {
    unsigned long long size = ZSTD_getFrameContentSize(payload.data(), payload.size());
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > (1ull << 30)) {
      return Status::Invalid("chunk " + id + " is damaged (bad compressed frame)");
    }
    plain.resize(size);
    size_t n = ZSTD_decompress(plain.data(), plain.size(), payload.data(), payload.size());
    if (ZSTD_isError(n) || n != size) return Status::Invalid("chunk " + id + " is damaged (cannot decompress)");
  } else {
    plain = std::move(payload);
  }
  if (ChunkId(keys, plain) != id)
    return Status::Invalid("chunk " + id + " is damaged (content does not match its hash)");
  return plain;
}

std::string Encrypt(const std::array<uint8_t, 32>& key, const std::string& plaintext) {
  return GcmSeal(key, plaintext, "");
}

Result<std::string> Decrypt(const std::array<uint8_t, 32>& key, const std::string& sealed) {
  return GcmOpen(key, sealed, "");
}

Result<std::array<uint8_t, 32>> DeriveKey(const std::string& passphrase, const KdfParams& p) {
  std::array<uint8_t, 32> key{};
  if (EVP_PBE_scrypt(passphrase.data(), passphrase.size(), reinterpret_cast<const uint8_t*>(p.salt.data()),
                     p.salt.size(), p.n, p.r, p.p, 256ull << 20, key.data(), key.size()) != 1) {
    return Status::Internal("scrypt key derivation failed");
  }
  return key;
}

std::string ToBase64(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<uint8_t*>(out.data()), reinterpret_cast<const uint8_t*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(n);
  return out;
}

Result<std::string> FromBase64(const std::string& text) {
  if (text.size() % 4 != 0) return Status::Invalid("bad base64");
  std::string out(3 * text.size() / 4 + 1, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<uint8_t*>(out.data()), reinterpret_cast<const uint8_t*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return Status::Invalid("bad base64");
  size_t pad = 0;
  if (!text.empty() && text.back() == '=') ++pad;
  if (text.size() > 1 && text[text.size() - 2] == '=') ++pad;
  out.resize(n - pad);
  return out;
}

}  // namespace pampa
