// SPDX-License-Identifier: Apache-2.0
// Helpers for the tc-merge integration tests: run the binary with a deadline, read databases
// independently of the tool (libpqxx, the SQLite C API) and checksum them.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <sys/types.h>

namespace tc::merge::test {

struct RunResult {
  int status = -1;       ///< exit status; -1 when killed or timed out
  std::string output;    ///< stdout and stderr, interleaved
  long peak_rss_kb = 0;  ///< the process's peak resident set (VmHWM, getrusage ru_maxrss)
};

/// Runs tc-merge with `args` and extra environment variables; kills it after `timeout`.
RunResult run_merge(const std::vector<std::string>& args,
                    const std::vector<std::pair<std::string, std::string>>& env = {},
                    std::chrono::seconds timeout = std::chrono::seconds(240));

/// Starts tc-merge in the background (output to `log_path`); returns its pid.
pid_t spawn_merge(const std::vector<std::string>& args, const std::string& log_path);
/// Waits for `pid` at most `timeout`; its exit status, or -1 when it was killed or is still
/// running (then it is killed).
int wait_for(pid_t pid, std::chrono::seconds timeout);

/// Per room: message count and MD5 over (stanza_id, sender_nick, sender_jid, kind, stanza_xml,
/// created_at) in seq order, computed the same way for PostgreSQL (in SQL) and SQLite (in C++).
/// `renames` maps a room JID to the JID it must have in the target (applied to the room key and
/// to attribute values inside stanza_xml, never to text), so a source's digests can be compared
/// with the target's.
using RoomDigests = std::map<std::string, std::pair<long long, std::string>>;
RoomDigests pg_room_digests(const std::string& url,
                            const std::map<std::string, std::string>& renames = {});
RoomDigests sqlite_room_digests(const std::string& path,
                                const std::map<std::string, std::string>& renames = {});

/// A digest of every tc_ table of a PostgreSQL database (sources-unchanged checks).
std::string pg_database_digest(const std::string& url);
/// SHA-256 of a file's bytes.
std::string file_digest(const std::string& path);

/// Runs SQL on PostgreSQL (autocommit).
void pg_exec(const std::string& url, const std::string& sql);
long long pg_count(const std::string& url, const std::string& sql);
std::string pg_text(const std::string& url, const std::string& sql);

/// A fresh temporary directory (removed by the caller or left for inspection).
std::string temp_dir(const std::string& tag);

}  // namespace tc::merge::test
