#pragma once
// Device memory owned by RAII, with checked copies.
#include <cuda.h>

#include <cstddef>
#include <vector>

namespace deconvtune {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  CUdeviceptr get() const { return pointer_; }
  size_t bytes() const { return bytes_; }

  void upload(const void* host, size_t bytes, size_t offset = 0);
  void download(void* host, size_t bytes, size_t offset = 0) const;
  template <typename T>
  std::vector<T> download_all() const {
    std::vector<T> host(bytes_ / sizeof(T));
    download(host.data(), host.size() * sizeof(T));
    return host;
  }
  // Sets every 32-bit word, e.g. to a NaN pattern that poisons the buffer.
  void fill_words(unsigned word);

 private:
  CUdeviceptr pointer_ = 0;
  size_t bytes_ = 0;
};

}  // namespace deconvtune
