// SPDX-License-Identifier: Apache-2.0
#include "merge_test_util.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pqxx/pqxx>
#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

namespace tc::merge::test {
namespace {

std::string hex(const unsigned char* data, unsigned int n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < n; ++i) {
    out.push_back(kHex[data[i] >> 4]);
    out.push_back(kHex[data[i] & 15]);
  }
  return out;
}

std::string md5(const std::string& text) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(text.data(), text.size(), md, &n, EVP_md5(), nullptr);
  return hex(md, n);
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

/// A room renamed in the address attributes (from, to, jid, by) only, never in text or other
/// attributes: what a rename must do to a stored stanza. Attributes written ` name="value"` or
/// ` name='value'`, as every stanza in these tests is.
std::string rename_in_attributes(std::string xml, const std::string& room, const std::string& to) {
  for (const std::string name : {"from", "to", "jid", "by"}) {
    for (const std::string q : {"\"", "'"}) {
      const std::string open = " " + name + "=" + q;
      xml = replace_all(xml, open + room + q, open + to + q);
      xml = replace_all(xml, open + room + "/", open + to + "/");
    }
  }
  return xml;
}

[[noreturn]] void exec_merge(const std::vector<std::string>& args,
                             const std::vector<std::pair<std::string, std::string>>& env) {
  for (const auto& [k, v] : env) {
    setenv(k.c_str(), v.c_str(), 1);
  }
  std::vector<char*> argv;
  std::string bin = TC_MERGE_BIN;
  argv.push_back(bin.data());
  std::vector<std::string> copy = args;
  for (auto& a : copy) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  execv(bin.c_str(), argv.data());
  _exit(127);
}

}  // namespace

RunResult run_merge(const std::vector<std::string>& args,
                    const std::vector<std::pair<std::string, std::string>>& env,
                    std::chrono::seconds timeout) {
  int fds[2];
  if (pipe(fds) != 0) {
    throw std::runtime_error("pipe");
  }
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    exec_merge(args, env);
  }
  close(fds[1]);
  RunResult result;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buffer[65536];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      kill(pid, SIGKILL);
      result.output += "\n[test: tc-merge timed out and was killed]\n";
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      continue;
    }
    const ssize_t n = read(fds[0], buffer, sizeof buffer);
    if (n <= 0) {
      break;
    }
    result.output.append(buffer, static_cast<std::size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  rusage usage{};
  wait4(pid, &status, 0, &usage);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.peak_rss_kb = usage.ru_maxrss;
  return result;
}

pid_t spawn_merge(const std::vector<std::string>& args, const std::string& log_path) {
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    exec_merge(args, {});
  }
  return pid;
}

int wait_for(pid_t pid, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

RoomDigests pg_room_digests(const std::string& url,
                            const std::map<std::string, std::string>& renames) {
  pqxx::connection c{url};
  pqxx::nontransaction tx{c};
  RoomDigests out;
  // The same string the SQLite variant builds: fields joined by \x1f, rows by \x1e.
  const pqxx::result rooms = tx.exec("SELECT DISTINCT room_jid FROM tc_archive");
  for (const auto& row : rooms) {
    const std::string room = row[0].as<std::string>();
    const auto renamed = renames.find(room);
    const std::string to = renamed == renames.end() ? room : renamed->second;
    const pqxx::result r = tx.exec_params(
        "SELECT count(*), md5(string_agg(stanza_id || chr(31) || sender_nick || chr(31) || "
        "sender_jid || chr(31) || kind || chr(31) || "
        // The rename in address attributes only, as rename_in_attributes() does.
        "regexp_replace(stanza_xml, '( (from|to|jid|by)=[\"''])' || regexp_replace($2, "
        "'([.*+?^$(){}|\\[\\]\\\\])', '\\\\\\1', 'g') || "
        "'([\"''/])', '\\1' || $3 || '\\3', 'g') || chr(31) || "
        "created_at::text, chr(30) ORDER BY seq)) FROM tc_archive WHERE room_jid = $1",
        room, room, to);
    out[to] = {r[0][0].as<long long>(), r[0][1].as<std::string>()};
  }
  return out;
}

RoomDigests sqlite_room_digests(const std::string& path,
                                const std::map<std::string, std::string>& renames) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    throw std::runtime_error("cannot open " + path);
  }
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db,
                     "SELECT room_jid, stanza_id, sender_nick, sender_jid, kind, stanza_xml, "
                     "created_at FROM tc_archive ORDER BY room_jid, seq",
                     -1, &st, nullptr);
  std::map<std::string, std::pair<long long, std::string>> text;
  while (sqlite3_step(st) == SQLITE_ROW) {
    const auto col = [st](int i) {
      const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st, i));
      return std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(st, i)));
    };
    const std::string room = col(0);
    const auto renamed = renames.find(room);
    const std::string to = renamed == renames.end() ? room : renamed->second;
    auto& [count, all] = text[to];
    if (count > 0) {
      all += '\x1e';
    }
    ++count;
    all += col(1) + '\x1f' + col(2) + '\x1f' + col(3) + '\x1f' + col(4) + '\x1f' +
           rename_in_attributes(col(5), room, to) + '\x1f' + col(6);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  RoomDigests out;
  for (const auto& [room, v] : text) {
    out[room] = {v.first, md5(v.second)};
  }
  return out;
}

std::string pg_database_digest(const std::string& url) {
  pqxx::connection c{url};
  pqxx::nontransaction tx{c};
  std::string all;
  for (const char* table : {"tc_schema_version", "tc_accounts", "tc_rooms", "tc_room_affiliations",
                            "tc_archive", "tc_nodes"}) {
    const pqxx::result r = tx.exec(std::string("SELECT count(*), coalesce(md5(string_agg(t::text, "
                                               "'|' ORDER BY t::text)), '') FROM ") +
                                   table + " t");
    all += std::string(table) + ":" + r[0][0].c_str() + ":" + r[0][1].c_str() + ";";
  }
  return all;
}

std::string file_digest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return md5(buffer.str());
}

void pg_exec(const std::string& url, const std::string& sql) {
  pqxx::connection c{url};
  pqxx::nontransaction tx{c};
  tx.exec(sql);
}

long long pg_count(const std::string& url, const std::string& sql) {
  pqxx::connection c{url};
  pqxx::nontransaction tx{c};
  return tx.exec(sql)[0][0].as<long long>();
}

std::string pg_text(const std::string& url, const std::string& sql) {
  pqxx::connection c{url};
  pqxx::nontransaction tx{c};
  const pqxx::result r = tx.exec(sql);
  return r.empty() || r[0][0].is_null() ? std::string() : r[0][0].as<std::string>();
}

std::string temp_dir(const std::string& tag) {
  std::string templ =
      (std::filesystem::temp_directory_path() / ("tc-merge-" + tag + "-XXXXXX")).string();
  if (mkdtemp(templ.data()) == nullptr) {
    throw std::runtime_error("mkdtemp");
  }
  return templ;
}

}  // namespace tc::merge::test
