// SHA-256 for every digest deconvtune takes: the generator version, cubin cache keys and cubin
// digests (tuning DB integrity), shard assignment and the simulated measurer's noise. One helper
// so that each use frames its input the same way and every OpenSSL call is checked.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

struct evp_md_ctx_st;

namespace deconvtune {

class Sha256 {
 public:
  using Digest = std::array<unsigned char, 32>;

  Sha256();  // throws std::runtime_error when OpenSSL cannot start a digest
  Sha256& add(const void* data, size_t size);
  Sha256& add(std::string_view text) { return add(text.data(), text.size()); }
  // The part preceded by its length, so that ("ab", "c") and ("a", "bc") hash differently.
  Sha256& add_part(std::string_view part);
  // Ends the digest; the object cannot be used after it.
  Digest finish();
  std::string hex();  // finish() as 64 lowercase hex digits

 private:
  std::unique_ptr<evp_md_ctx_st, void (*)(evp_md_ctx_st*)> context_;
};

// The first 8 bytes of a digest, big-endian: a well-mixed 64-bit hash of the text.
uint64_t sha256_prefix64(std::string_view text);

}  // namespace deconvtune
