#include "codegen/sha256.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <stdexcept>

namespace deconvtune {

namespace {

void check(int status, const char* call) {
  if (status != 1) throw std::runtime_error(fmt::format("OpenSSL: {} failed for sha256", call));
}

}  // namespace

Sha256::Sha256() : context_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
  if (!context_) throw std::runtime_error("OpenSSL: cannot allocate a sha256 digest");
  check(EVP_DigestInit_ex(context_.get(), EVP_sha256(), nullptr), "EVP_DigestInit_ex");
}

Sha256& Sha256::add(const void* data, size_t size) {
  check(EVP_DigestUpdate(context_.get(), data, size), "EVP_DigestUpdate");
  return *this;
}

Sha256& Sha256::add_part(std::string_view part) {
  const uint64_t size = part.size();
  unsigned char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(size >> (8 * i));
  add(length, sizeof(length));
  return add(part);
}

Sha256::Digest Sha256::finish() {
  Digest digest{};
  unsigned int length = 0;
  check(EVP_DigestFinal_ex(context_.get(), digest.data(), &length), "EVP_DigestFinal_ex");
  if (length != digest.size())
    throw std::runtime_error("OpenSSL: sha256 gave a digest of odd size");
  return digest;
}

std::string Sha256::hex() {
  std::string text;
  for (unsigned char byte : finish()) text += fmt::format("{:02x}", byte);
  return text;
}

uint64_t sha256_prefix64(std::string_view text) {
  const Sha256::Digest digest = Sha256().add(text).finish();
  uint64_t hash = 0;
  for (int i = 0; i < 8; ++i) hash = hash << 8 | digest[i];
  return hash;
}

}  // namespace deconvtune
