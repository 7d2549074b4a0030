// A SHA-256 over everything passed to Update (OpenSSL's EVP); what the snapshot file's
// trailer and the snapshot stream between members carry. Thread-compatible.
#ifndef KVSTORE_SERVER_SHA256_H_
#define KVSTORE_SERVER_SHA256_H_

#include <openssl/evp.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace kvstore::server {

class Sha256Digest {
 public:
  Sha256Digest() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256Digest() { EVP_MD_CTX_free(ctx_); }
  Sha256Digest(const Sha256Digest&) = delete;
  Sha256Digest& operator=(const Sha256Digest&) = delete;

  void Update(std::string_view bytes) { EVP_DigestUpdate(ctx_, bytes.data(), bytes.size()); }
  // The 32-byte digest; the object is spent afterwards.
  std::string Final() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, digest, &len);
    return std::string(reinterpret_cast<const char*>(digest), len);
  }

 private:
  EVP_MD_CTX* const ctx_;
};

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_SHA256_H_
