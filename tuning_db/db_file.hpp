#pragma once
// Internal to tuning_db/: the file under a TuningDb before and while SQLite opens it. A file that
// is not an SQLite database is refused before SQLite touches it; a read-only or unwritable place
// is said so before any write; a file we did not create is checked whole (integrity_check) before
// our first write into it, so that SQLite never builds on a damaged page.
#include <memory>
#include <string>

#include "tuning_db/sqlite.hpp"

namespace deconvtune::db::detail {

// A Connection's messages start with the path; a message that names it already drops that.
std::string without_path(const std::string& message, const std::string& path);

// Returns whether there is a file with content: one that this process did not create. Creates the
// folder for a new file; throws DbError for a missing file when `read_only`, for something other
// than a regular file, and for a file that does not start with the SQLite header.
bool check_file(const std::string& path, bool read_only);

std::unique_ptr<sqlite::Connection> open_connection(const std::string& path, bool read_only);

// PRAGMA integrity_check's rows, joined: "ok", or what is wrong.
std::string integrity_verdict(const sqlite::Connection& connection);

// Throws DbError (nothing written) unless the whole file, cubin cache included, is sound.
void verify_before_writing(const sqlite::Connection& connection, const std::string& path);

}  // namespace deconvtune::db::detail
