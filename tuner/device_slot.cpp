#include "tuner/device_slot.hpp"

#include <fmt/format.h>

#include <set>

#include "gpu/nvrtc_compiler.hpp"
#include "tuner/run_control.hpp"
#include "tuner/simulate.hpp"

namespace deconvtune::tuner {
namespace {

// The tuner's own context on a GPU, and the record and limits that follow from it.
void open_gpu(DeviceSlot& slot) {
  const Clock::time_point start = Clock::now();
  int count = 0;
  DT_CU(cuDeviceGetCount(&count));
  if (slot.ordinal < 0 || slot.ordinal >= count) {
    throw TuneError(fmt::format("device {} does not exist (this machine has {} GPU{})",
                                slot.ordinal, count, count == 1 ? "" : "s"));
  }
  slot.context = std::make_unique<Context>(slot.ordinal);
  slot.context_ms = ms_since(start);
  const DeviceInfo& info = slot.context->info();
  slot.record = device_record(info);
  slot.arch = info.arch();
  slot.limits = info.limits();
}

}  // namespace

db::DeviceRecord device_record(const DeviceInfo& info) {
  db::DeviceRecord record;
  record.name = info.name;
  record.arch = info.arch();
  record.sm_count = info.sm_count;
  record.driver_version = info.driver_version;
  record.nvrtc_version = nvrtc_version();
  return record;
}

std::vector<std::unique_ptr<DeviceSlot>> open_devices(const TuneRequest& request) {
  std::vector<int> ordinals = request.devices;
  if (ordinals.empty()) ordinals.push_back(request.device);
  std::set<int> seen;
  std::vector<std::unique_ptr<DeviceSlot>> slots;
  for (int ordinal : ordinals) {
    if (!seen.insert(ordinal).second) {
      throw TuneError(fmt::format("device {} is listed twice", ordinal));
    }
    auto slot = std::make_unique<DeviceSlot>();
    slot->ordinal = ordinal;
    if (request.simulation) {  // TEST SEAM
      slot->record = simulated_device();
    } else {
      open_gpu(*slot);
    }
    slots.push_back(std::move(slot));
  }
  return slots;
}

}  // namespace deconvtune::tuner
