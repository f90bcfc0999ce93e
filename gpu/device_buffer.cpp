#include "gpu/device_buffer.hpp"

#include <fmt/format.h>

#include <stdexcept>
#include <utility>

#include "gpu/driver_api.hpp"

namespace deconvtune {

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes > 0) {
    check(DriverApi::get().cuMemAlloc(&pointer_, bytes),
          fmt::format("cuMemAlloc({} bytes)", bytes).c_str());
  }
}

DeviceBuffer::~DeviceBuffer() {
  if (pointer_ != 0) DriverApi::get().cuMemFree(pointer_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : pointer_(std::exchange(other.pointer_, 0)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (pointer_ != 0) DriverApi::get().cuMemFree(pointer_);
    pointer_ = std::exchange(other.pointer_, 0);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void DeviceBuffer::upload(const void* host, size_t bytes, size_t offset) {
  if (offset + bytes > bytes_) {
    throw std::out_of_range(
        fmt::format("upload of {} bytes at {} into a {}-byte buffer", bytes, offset, bytes_));
  }
  if (bytes > 0) DT_CU(cuMemcpyHtoD(pointer_ + offset, host, bytes));
}

void DeviceBuffer::download(void* host, size_t bytes, size_t offset) const {
  if (offset + bytes > bytes_) {
    throw std::out_of_range(
        fmt::format("download of {} bytes at {} from a {}-byte buffer", bytes, offset, bytes_));
  }
  if (bytes > 0) DT_CU(cuMemcpyDtoH(host, pointer_ + offset, bytes));
}

void DeviceBuffer::fill_words(unsigned word) {
  if (bytes_ >= 4) DT_CU(cuMemsetD32(pointer_, word, bytes_ / 4));
}

}  // namespace deconvtune
