#include <string>

#include "fuzz/fuzz_support.hpp"
#include "gpu/nvrtc_compiler.hpp"

namespace deconvtune::fuzz {
namespace {

// What any answer of cubin_resources keeps to, whatever the bytes.
void check(const ResourceUsage& r, const std::string& query) {
  require(r.registers == -1 || (r.registers >= 1 && r.registers <= 255),
          query + ": registers out of range: " + std::to_string(r.registers));
  require(r.shared_bytes >= -1 && r.stack_bytes >= -1, query + ": a negative size");
  // The cubin records no spills: they are 0 exactly where the stack frame is, else unknown.
  require(r.spill_store_bytes == r.spill_load_bytes, query + ": spill stores and loads differ");
  require(r.spill_store_bytes == (r.stack_bytes == 0 ? 0 : -1),
          query + ": spills " + std::to_string(r.spill_store_bytes) + " beside a stack frame of " +
              std::to_string(r.stack_bytes));
}

}  // namespace

void cubin_target(std::string_view data) {
  const ResourceUsage module = cubin_resources(data, "");
  check(module, "the module");
  const ResourceUsage again = cubin_resources(data, "");
  require(again.registers == module.registers && again.shared_bytes == module.shared_bytes &&
              again.stack_bytes == module.stack_bytes,
          "two reads of the same bytes differ");
  // A kernel of the module uses no more than the module's most (where both are known).
  const ResourceUsage kernel = cubin_resources(data, "plain");
  check(kernel, "kernel 'plain'");
  if (module.registers >= 0 && kernel.registers >= 0) {
    require(kernel.registers <= module.registers, "a kernel uses more registers than its module");
  }
}

}  // namespace deconvtune::fuzz
