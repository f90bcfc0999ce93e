// Resources of a cubin's kernels read from the cubin alone (an ELF64 file, EM_CUDA), for a compile
// that NVRTC served from its cache without running ptxas (so without ptxas's -v report).
//
// What the cubin holds, checked against ptxas's report on NVRTC 13.0's cubins (by hand for sm_75,
// sm_80, sm_86, sm_89, sm_90, sm_90a, sm_100 and sm_120; tests/test_compile.cpp's Compile.Cubin*
// compares the two for sm_80 and sm_90a on every run):
// - Kernels: FUNC symbols with STO_CUDA_ENTRY (0x10) in st_other; out-of-line __device__ functions
//   are FUNC symbols without it.
// - .nv.info (type SHT_CUDA_INFO, 0x70000000): attribute records, each a format byte, an attribute
//   byte and a 16-bit field; for format EIFMT_SVAL (4) the field is the size of the value that
//   follows, for the other formats (1, 2, 3) the record is those four bytes. EIATTR_REGCOUNT (0x2f)
//   and EIATTR_FRAME_SIZE (0x11) hold a symbol index and a 32-bit value: ptxas's "Used N
//   registers" and "N bytes stack frame". (EIATTR_MIN_STACK_SIZE, 0x12, is its "cumulative stack
//   size"; EIATTR_MAX_STACK_SIZE, 0x23, did not appear.)
// - .text.<kernel>'s sh_info bits 24-31: the register count up to sm_89 only; from sm_90 on
//   they are 0 (only the symbol's section index remains), so they are a fallback here.
// - .nv.shared.<kernel> (NOBITS): its size is the static shared memory up to sm_89; from
//   sm_90 on (cubins that carry a .nv.shared.reserved.* section) it adds the 1 KiB the system
//   reserves per block, which ptxas's "bytes smem" leaves out, and it exists whenever the kernel
//   uses shared memory at all (dynamic only: 1024 B).
// - Spill bytes are not in the ELF. Spills are stores to the stack frame, so a kernel whose frame
//   is 0 provably spills nothing; beside a nonzero frame (which may be spills or a local array)
//   they are unknown.
//
// The cubin is input (it may come from a tuning DB file): every offset and size is checked against
// the bytes before it is read, and anything malformed yields unknown resources, not a crash.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gpu/nvrtc_compiler.hpp"

namespace deconvtune {
namespace {

constexpr uint16_t kEmCuda = 190;
constexpr uint32_t kShtSymtab = 2;
constexpr uint32_t kShtNobits = 8;
constexpr uint32_t kShtCudaInfo = 0x70000000;
constexpr uint8_t kSttFunc = 2;
constexpr uint8_t kStoCudaEntry = 0x10;
constexpr uint8_t kEifmtSval = 4;
constexpr uint8_t kEiattrFrameSize = 0x11;
constexpr uint8_t kEiattrRegcount = 0x2f;
constexpr uint64_t kSectionHeaderSize = 64;
constexpr uint64_t kSymbolSize = 24;
constexpr int kReservedSharedBytes = 1024;  // sm_90 on: the system's part of .nv.shared.<kernel>
constexpr int kMaxRegisters = 255;

struct Malformed {};

// Little-endian reads that check their bounds first.
class Bytes {
 public:
  explicit Bytes(std::string_view data) : data_(data) {}
  bool holds(uint64_t offset, uint64_t size) const {
    return offset <= data_.size() && size <= data_.size() - offset;
  }
  uint64_t read(uint64_t offset, int width) const {
    if (!holds(offset, static_cast<uint64_t>(width))) throw Malformed{};
    uint64_t value = 0;
    for (int i = width - 1; i >= 0; --i) {
      value = (value << 8) | static_cast<unsigned char>(data_[offset + static_cast<uint64_t>(i)]);
    }
    return value;
  }
  std::string_view slice(uint64_t offset, uint64_t size) const {
    if (!holds(offset, size)) throw Malformed{};
    return data_.substr(offset, size);
  }

 private:
  std::string_view data_;
};

struct Section {
  std::string_view name;
  uint32_t type = 0;
  uint64_t offset = 0, size = 0, entry_size = 0;
  uint32_t link = 0, info = 0;
};

// The NUL-terminated string at `offset` of a string table.
std::string_view string_at(std::string_view table, uint64_t offset) {
  if (offset >= table.size()) throw Malformed{};
  const size_t end = table.find('\0', offset);
  if (end == std::string_view::npos) throw Malformed{};
  return table.substr(offset, end - offset);
}

int as_int(uint64_t value) {
  if (value > static_cast<uint64_t>(std::numeric_limits<int>::max())) throw Malformed{};
  return static_cast<int>(value);
}

// The most of two figures, unknown (-1) when either is.
int most(int a, int b) { return a < 0 || b < 0 ? -1 : std::max(a, b); }

ResourceUsage unknown_resources() {
  ResourceUsage usage;
  usage.registers = -1;
  usage.shared_bytes = -1;
  usage.stack_bytes = -1;
  usage.spill_store_bytes = -1;
  usage.spill_load_bytes = -1;
  return usage;
}

// A cubin's section headers, named, with their contents checked to lie inside the file.
struct Elf {
  explicit Elf(std::string_view data) : bytes(data) {}
  Elf(const Elf&) = delete;  // by_name points into sections
  Elf& operator=(const Elf&) = delete;
  Bytes bytes;
  std::vector<Section> sections;
  std::map<std::string_view, const Section*> by_name;
  bool reserves_shared = false;  // the sm_90-on layout
  std::string_view contents(const Section& section) const {
    if (section.type == kShtNobits) throw Malformed{};
    return bytes.slice(section.offset, section.size);
  }
  const Section* named(const std::string& name) const {
    auto it = by_name.find(name);
    return it == by_name.end() ? nullptr : it->second;
  }
};

void read_sections(Elf& elf) {
  const Bytes& bytes = elf.bytes;
  if (bytes.slice(0, 4) != std::string_view("\x7f"
                                            "ELF",
                                            4))
    throw Malformed{};
  if (bytes.read(4, 1) != 2 || bytes.read(5, 1) != 1) throw Malformed{};  // ELF64, little-endian
  if (bytes.read(0x12, 2) != kEmCuda) throw Malformed{};
  const uint64_t header_table = bytes.read(0x28, 8);
  if (bytes.read(0x3a, 2) != kSectionHeaderSize) throw Malformed{};
  const uint64_t count = bytes.read(0x3c, 2);
  const uint64_t names_index = bytes.read(0x3e, 2);
  if (count == 0 || names_index >= count) throw Malformed{};  // no extended numbering in a cubin
  if (!bytes.holds(header_table, count * kSectionHeaderSize)) throw Malformed{};

  std::vector<Section>& sections = elf.sections;
  sections.resize(count);
  std::vector<uint64_t> name_offsets(count);
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t at = header_table + i * kSectionHeaderSize;
    name_offsets[i] = bytes.read(at, 4);
    sections[i].type = static_cast<uint32_t>(bytes.read(at + 4, 4));
    sections[i].offset = bytes.read(at + 24, 8);
    sections[i].size = bytes.read(at + 32, 8);
    sections[i].link = static_cast<uint32_t>(bytes.read(at + 40, 4));
    sections[i].info = static_cast<uint32_t>(bytes.read(at + 44, 4));
    sections[i].entry_size = bytes.read(at + 56, 8);
  }
  const std::string_view names = elf.contents(sections[names_index]);
  for (uint64_t i = 0; i < count; ++i) {
    sections[i].name = string_at(names, name_offsets[i]);
    elf.by_name.emplace(sections[i].name, &sections[i]);
    if (sections[i].name.rfind(".nv.shared.reserved.", 0) == 0) elf.reserves_shared = true;
  }
}

// EIATTR_REGCOUNT and EIATTR_FRAME_SIZE by symbol index, from every .nv.info* section.
struct InfoAttributes {
  std::map<uint64_t, uint64_t> registers_of, frame_of;
};

InfoAttributes read_info_attributes(const Elf& elf) {
  InfoAttributes out;
  for (const Section& section : elf.sections) {
    if (section.type != kShtCudaInfo || section.name.rfind(".nv.info", 0) != 0) continue;
    const Bytes records(elf.contents(section));
    for (uint64_t at = 0; at < section.size;) {
      const uint64_t format = records.read(at, 1);
      const uint64_t attribute = records.read(at + 1, 1);
      const uint64_t field = records.read(at + 2, 2);
      if (format == kEifmtSval) {
        if (!records.holds(at + 4, field)) throw Malformed{};
        if (attribute == kEiattrRegcount || attribute == kEiattrFrameSize) {
          if (field < 8) throw Malformed{};
          const uint64_t symbol = records.read(at + 4, 4);
          const uint64_t value = records.read(at + 8, 4);
          auto& into = attribute == kEiattrRegcount ? out.registers_of : out.frame_of;
          if (!into.emplace(symbol, value).second && into[symbol] != value) throw Malformed{};
        }
        at += 4 + field;
      } else if (format >= 1 && format <= 3) {
        at += 4;
      } else {
        throw Malformed{};  // a format whose length is not known: the rest cannot be walked
      }
    }
  }
  return out;
}

// The one symbol table (its entries and their string table).
const Section& symbol_table(const Elf& elf) {
  const Section* symbols = nullptr;
  for (const Section& section : elf.sections) {
    if (section.type != kShtSymtab) continue;
    if (symbols) throw Malformed{};
    symbols = &section;
  }
  if (!symbols || symbols->entry_size != kSymbolSize || symbols->link >= elf.sections.size())
    throw Malformed{};
  return *symbols;
}

// What the cubin says of entry `name`, symbol `index`; unknown where it says nothing.
ResourceUsage entry_resources(const Elf& elf, const InfoAttributes& info, uint64_t index,
                              std::string_view name) {
  ResourceUsage entry = unknown_resources();
  if (auto found = info.registers_of.find(index); found != info.registers_of.end()) {
    entry.registers = as_int(found->second);
  } else if (const Section* text = elf.named(".text." + std::string(name))) {
    entry.registers = static_cast<int>(text->info >> 24);
  }
  if (entry.registers <= 0 || entry.registers > kMaxRegisters) entry.registers = -1;
  if (auto found = info.frame_of.find(index); found != info.frame_of.end()) {
    entry.stack_bytes = as_int(found->second);
    if (entry.stack_bytes == 0) entry.spill_store_bytes = entry.spill_load_bytes = 0;
  }
  if (const Section* shared = elf.named(".nv.shared." + std::string(name)); shared == nullptr) {
    entry.shared_bytes = 0;
  } else if (shared->type == kShtNobits) {
    const int size = as_int(shared->size);
    const int reserved = elf.reserves_shared ? kReservedSharedBytes : 0;
    entry.shared_bytes = size >= reserved ? size - reserved : -1;
  }
  return entry;
}

// `kernel`'s resources, or (kernel empty) the most of every entry's.
ResourceUsage read_cubin(std::string_view data, const std::string& kernel) {
  Elf elf(data);
  read_sections(elf);
  const InfoAttributes info = read_info_attributes(elf);
  const Section& symbols = symbol_table(elf);
  const Bytes table(elf.contents(symbols));
  const std::string_view strings = elf.contents(elf.sections[symbols.link]);

  std::optional<ResourceUsage> usage;
  for (uint64_t index = 0; index < symbols.size / kSymbolSize; ++index) {
    const uint64_t at = index * kSymbolSize;
    const uint64_t type = table.read(at + 4, 1) & 0xf;
    const uint64_t other = table.read(at + 5, 1);
    if (type != kSttFunc || (other & kStoCudaEntry) == 0) continue;
    const std::string_view name = string_at(strings, table.read(at, 4));
    if (!kernel.empty() && name != kernel) continue;
    const ResourceUsage entry = entry_resources(elf, info, index, name);
    if (!kernel.empty()) return entry;
    if (!usage) {
      usage = entry;
      continue;
    }
    usage->registers = most(usage->registers, entry.registers);
    usage->shared_bytes = most(usage->shared_bytes, entry.shared_bytes);
    usage->stack_bytes = most(usage->stack_bytes, entry.stack_bytes);
    usage->spill_store_bytes = most(usage->spill_store_bytes, entry.spill_store_bytes);
    usage->spill_load_bytes = most(usage->spill_load_bytes, entry.spill_load_bytes);
  }
  return usage ? *usage : unknown_resources();
}

}  // namespace

ResourceUsage cubin_resources(std::string_view cubin, const std::string& kernel) {
  try {
    return read_cubin(cubin, kernel);
  } catch (const Malformed&) {
    return unknown_resources();
  }
}

ResourceUsage cubin_resources(const std::vector<char>& cubin, const std::string& kernel) {
  return cubin_resources(std::string_view(cubin.data(), cubin.size()), kernel);
}

}  // namespace deconvtune
