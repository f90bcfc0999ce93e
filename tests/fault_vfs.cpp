#include "tests/fault_vfs.hpp"

#include <sqlite3.h>

#include <memory>
#include <new>
#include <stdexcept>
#include <utility>

namespace deconvtune::db::testing {

namespace {

struct State {
  sqlite3_vfs* real = nullptr;
  sqlite3_vfs vfs{};
  bool armed = false;
  std::array<int64_t, kFileOps.size()> counts{};
  std::optional<FileOp> fail_op;
  int64_t fail_nth = 0;
  bool sticky = false;
  int64_t failures = 0;
  std::function<void(const PendingOp&)> hook;
};

State* g_state = nullptr;

// What SQLite allocates for a file of this VFS: ours first, the real VFS's file right after.
struct File {
  sqlite3_file base;
  sqlite3_file* real;
  const char* name;  // SQLite keeps it valid until xClose; null for a temporary file
};

constexpr size_t kRealOffset = (sizeof(File) + 15) / 16 * 16;

File* as_file(sqlite3_file* file) { return reinterpret_cast<File*>(file); }
sqlite3_file* real_of(sqlite3_file* file) { return as_file(file)->real; }

// Counts the operation and says what to return instead of passing it on (SQLITE_OK: pass on).
int before(FileOp op, const char* name, const void* data, int64_t size, int64_t offset) {
  State& state = *g_state;
  if (!state.armed) return SQLITE_OK;
  const int64_t nth = ++state.counts[static_cast<size_t>(op)];
  if (state.hook) state.hook(PendingOp{op, name ? name : "", data, size, offset});
  if (state.fail_op != op || nth < state.fail_nth || (nth > state.fail_nth && !state.sticky)) {
    return SQLITE_OK;
  }
  ++state.failures;
  switch (op) {
    case FileOp::kWrite:
      return state.sticky ? SQLITE_FULL : SQLITE_IOERR_WRITE;
    case FileOp::kSync:
      return SQLITE_IOERR_FSYNC;
    case FileOp::kTruncate:
      return SQLITE_IOERR_TRUNCATE;
    case FileOp::kDelete:
      return SQLITE_IOERR_DELETE;
  }
  return SQLITE_IOERR;
}

int file_close(sqlite3_file* file) {
  sqlite3_file* real = real_of(file);
  int code = real->pMethods->xClose(real);
  file->pMethods = nullptr;
  return code;
}

int file_read(sqlite3_file* file, void* data, int size, sqlite3_int64 offset) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xRead(real, data, size, offset);
}

int file_write(sqlite3_file* file, const void* data, int size, sqlite3_int64 offset) {
  if (int code = before(FileOp::kWrite, as_file(file)->name, data, size, offset)) return code;
  sqlite3_file* real = real_of(file);
  return real->pMethods->xWrite(real, data, size, offset);
}

int file_truncate(sqlite3_file* file, sqlite3_int64 size) {
  if (int code = before(FileOp::kTruncate, as_file(file)->name, nullptr, size, 0)) return code;
  sqlite3_file* real = real_of(file);
  return real->pMethods->xTruncate(real, size);
}

int file_sync(sqlite3_file* file, int flags) {
  if (int code = before(FileOp::kSync, as_file(file)->name, nullptr, 0, 0)) return code;
  sqlite3_file* real = real_of(file);
  return real->pMethods->xSync(real, flags);
}

int file_size(sqlite3_file* file, sqlite3_int64* size) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xFileSize(real, size);
}

int file_lock(sqlite3_file* file, int level) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xLock(real, level);
}

int file_unlock(sqlite3_file* file, int level) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xUnlock(real, level);
}

int file_check_reserved(sqlite3_file* file, int* reserved) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xCheckReservedLock(real, reserved);
}

int file_control(sqlite3_file* file, int op, void* argument) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xFileControl(real, op, argument);
}

int file_sector_size(sqlite3_file* file) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xSectorSize(real);
}

int file_device_characteristics(sqlite3_file* file) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xDeviceCharacteristics(real);
}

int file_shm_map(sqlite3_file* file, int region, int region_size, int extend,
                 void volatile** memory) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xShmMap(real, region, region_size, extend, memory);
}

int file_shm_lock(sqlite3_file* file, int offset, int count, int flags) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xShmLock(real, offset, count, flags);
}

void file_shm_barrier(sqlite3_file* file) {
  sqlite3_file* real = real_of(file);
  real->pMethods->xShmBarrier(real);
}

int file_shm_unmap(sqlite3_file* file, int delete_flag) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xShmUnmap(real, delete_flag);
}

int file_fetch(sqlite3_file* file, sqlite3_int64 offset, int size, void** pointer) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xFetch(real, offset, size, pointer);
}

int file_unfetch(sqlite3_file* file, sqlite3_int64 offset, void* pointer) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xUnfetch(real, offset, pointer);
}

// One table per io_methods version, so SQLite calls only what the real file has.
sqlite3_io_methods methods_of_version(int version) {
  return {version,
          file_close,
          file_read,
          file_write,
          file_truncate,
          file_sync,
          file_size,
          file_lock,
          file_unlock,
          file_check_reserved,
          file_control,
          file_sector_size,
          file_device_characteristics,
          file_shm_map,
          file_shm_lock,
          file_shm_barrier,
          file_shm_unmap,
          file_fetch,
          file_unfetch};
}

const sqlite3_io_methods kMethods[] = {methods_of_version(1), methods_of_version(2),
                                       methods_of_version(3)};

sqlite3_vfs* real_vfs() { return g_state->real; }

int vfs_open(sqlite3_vfs*, const char* name, sqlite3_file* file, int flags, int* out_flags) {
  File* ours = as_file(file);
  ours->base.pMethods = nullptr;
  ours->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + kRealOffset);
  ours->real->pMethods = nullptr;
  ours->name = name;
  int code = real_vfs()->xOpen(real_vfs(), name, ours->real, flags, out_flags);
  if (const sqlite3_io_methods* methods = ours->real->pMethods) {
    int version = methods->iVersion < 1 ? 1 : methods->iVersion > 3 ? 3 : methods->iVersion;
    ours->base.pMethods = &kMethods[version - 1];
  }
  return code;
}

int vfs_delete(sqlite3_vfs*, const char* name, int sync_folder) {
  if (int code = before(FileOp::kDelete, name, nullptr, 0, 0)) return code;
  return real_vfs()->xDelete(real_vfs(), name, sync_folder);
}

int vfs_access(sqlite3_vfs*, const char* name, int flags, int* result) {
  return real_vfs()->xAccess(real_vfs(), name, flags, result);
}

int vfs_full_pathname(sqlite3_vfs*, const char* name, int size, char* out) {
  return real_vfs()->xFullPathname(real_vfs(), name, size, out);
}

void* vfs_dl_open(sqlite3_vfs*, const char* name) { return real_vfs()->xDlOpen(real_vfs(), name); }

void vfs_dl_error(sqlite3_vfs*, int size, char* message) {
  real_vfs()->xDlError(real_vfs(), size, message);
}

void (*vfs_dl_sym(sqlite3_vfs*, void* handle, const char* symbol))(void) {
  return real_vfs()->xDlSym(real_vfs(), handle, symbol);
}

void vfs_dl_close(sqlite3_vfs*, void* handle) { real_vfs()->xDlClose(real_vfs(), handle); }

int vfs_randomness(sqlite3_vfs*, int size, char* out) {
  return real_vfs()->xRandomness(real_vfs(), size, out);
}

int vfs_sleep(sqlite3_vfs*, int microseconds) {
  return real_vfs()->xSleep(real_vfs(), microseconds);
}

int vfs_current_time(sqlite3_vfs*, double* now) {
  return real_vfs()->xCurrentTime(real_vfs(), now);
}

int vfs_last_error(sqlite3_vfs*, int size, char* message) {
  return real_vfs()->xGetLastError(real_vfs(), size, message);
}

int vfs_current_time_int64(sqlite3_vfs*, sqlite3_int64* now) {
  return real_vfs()->xCurrentTimeInt64(real_vfs(), now);
}

}  // namespace

const char* op_name(FileOp op) {
  switch (op) {
    case FileOp::kWrite:
      return "write";
    case FileOp::kSync:
      return "sync";
    case FileOp::kTruncate:
      return "truncate";
    case FileOp::kDelete:
      return "delete";
  }
  return "?";
}

FaultVfs::FaultVfs() {
  if (g_state) throw std::runtime_error("a FaultVfs is installed already");
  sqlite3_initialize();
  auto state = std::make_unique<State>();
  state->real = sqlite3_vfs_find(nullptr);
  if (state->real == nullptr || state->real->iVersion < 2) {
    throw std::runtime_error("no default SQLite VFS of version 2 or later to wrap");
  }
  // Version 2: the system-call hooks of version 3 are the real VFS's business.
  state->vfs = {2,
                static_cast<int>(kRealOffset) + state->real->szOsFile,
                state->real->mxPathname,
                nullptr,
                "deconvtune-fault",
                nullptr,
                vfs_open,
                vfs_delete,
                vfs_access,
                vfs_full_pathname,
                vfs_dl_open,
                vfs_dl_error,
                vfs_dl_sym,
                vfs_dl_close,
                vfs_randomness,
                vfs_sleep,
                vfs_current_time,
                vfs_last_error,
                vfs_current_time_int64,
                nullptr,
                nullptr,
                nullptr};
  g_state = state.release();
  if (sqlite3_vfs_register(&g_state->vfs, /*makeDflt=*/1) != SQLITE_OK) {
    delete std::exchange(g_state, nullptr);
    throw std::runtime_error("sqlite3_vfs_register refused the fault VFS");
  }
}

FaultVfs::~FaultVfs() {
  sqlite3_vfs_register(g_state->real, /*makeDflt=*/1);
  sqlite3_vfs_unregister(&g_state->vfs);
  delete std::exchange(g_state, nullptr);
}

void FaultVfs::arm() {
  g_state->counts = {};
  g_state->failures = 0;
  g_state->armed = true;
}

void FaultVfs::disarm() {
  g_state->armed = false;
  g_state->fail_op.reset();
  g_state->hook = nullptr;
}

void FaultVfs::fail_at(FileOp op, int64_t nth, bool sticky) {
  g_state->fail_op = op;
  g_state->fail_nth = nth;
  g_state->sticky = sticky;
}

void FaultVfs::on_operation(std::function<void(const PendingOp&)> hook) {
  g_state->hook = std::move(hook);
}

int64_t FaultVfs::count(FileOp op) const { return g_state->counts[static_cast<size_t>(op)]; }

int64_t FaultVfs::failures() const { return g_state->failures; }

}  // namespace deconvtune::db::testing
