// SPDX-License-Identifier: Apache-2.0
#include "broker_process.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <system_error>
#include <thread>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace tc::bench {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::string errno_text(const std::string& what) {
  return what + ": " + std::generic_category().message(errno);
}

std::string read_whole(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// A TOML basic string; the values we write (paths, URLs, domains) need only these escapes.
std::string toml_string(const std::string& raw) {
  std::string out = "\"";
  for (const char c : raw) {
    if (c == '"' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  return out + "\"";
}

std::filesystem::path make_temp_dir() {
  // Called before tc-bench starts any thread.
  const char* base = std::getenv("TMPDIR");  // NOLINT(concurrency-mt-unsafe)
  std::string pattern =
      (std::filesystem::path(base != nullptr && *base != '\0' ? base : "/tmp") / "tc-bench.XXXXXX")
          .string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw BrokerError(errno_text("mkdtemp " + pattern));
  }
  return pattern;
}

}  // namespace

BrokerProcess::BrokerProcess(BrokerProcessOptions options) : options_(std::move(options)) {
  if (::access(options_.broker.c_str(), X_OK) != 0) {
    throw BrokerError(errno_text("tcbroker " + options_.broker.string()));
  }
  dir_ = make_temp_dir();
  config_path_ = dir_ / "tcbroker.toml";
  ready_path_ = dir_ / "ready.json";
  log_path_ = dir_ / "tcbroker.log";
  storage_url_ =
      options_.store == "sqlite" ? "sqlite://" + (dir_ / "tc.db").string() : options_.store;
  try {
    write_config();
    start();
    wait_until_ready();
  } catch (...) {
    stop(5s);
    if (!options_.keep_dir) {
      std::error_code ignored;
      std::filesystem::remove_all(dir_, ignored);
    }
    throw;
  }
}

BrokerProcess::~BrokerProcess() {
  stop();
  if (!options_.keep_dir) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

void BrokerProcess::write_config() {
  std::ofstream out(config_path_);
  out << "[node]\n"
      << "name = \"bench\"\n"
      << "domain = " << toml_string(options_.domain) << "\n";
  if (options_.shards > 0) {
    out << "shards = " << options_.shards << "\n";
  }
  // Plain TCP on loopback: the benchmark measures routing and durable commits, not TLS.
  out << "[client]\n"
      << "address = \"127.0.0.1\"\n"
      << "port = 0\n"
      // No per-connection rate limit: the load generator's senders are the point.
      << "max_stanzas_per_second = 0\n"
      << "max_bytes_per_second = 0\n"
      << "[tls]\n"
      << "required = false\n"
      << "[auth]\n"
      << "scram_iterations = 4096\n"
      << "allow_plain_without_tls = true\n"
      << "registration = true\n"
      << "[storage]\n"
      << "url = " << toml_string(storage_url_) << "\n"
      << "[log]\n"
      << "level = " << toml_string(options_.log_level) << "\n";
  if (options_.max_room_users > 200) {  // 200 is the server's default_max_users
    out << "[muc]\n"
        << "default_max_users = " << options_.max_room_users << "\n";
  }
  out.close();
  if (!out) {
    throw BrokerError("cannot write " + config_path_.string());
  }
}

void BrokerProcess::start() {
  // Everything the child touches is prepared before fork: only async-signal-safe calls after.
  std::vector<std::string> argv_strings = {options_.broker.string(), "--config",
                                           config_path_.string(), "--ready-file",
                                           ready_path_.string()};
  std::vector<char*> argv;
  argv.reserve(argv_strings.size() + 1);
  for (auto& s : argv_strings) {
    argv.push_back(s.data());
  }
  argv.push_back(nullptr);
  const int log_fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    throw BrokerError(errno_text("open " + log_path_.string()));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    throw BrokerError(errno_text("fork"));
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) {  // the parent died before prctl took effect
      ::_exit(127);
    }
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) {
      ::dup2(null_fd, STDIN_FILENO);
    }
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(log_fd);
  pid_ = pid;
}

void BrokerProcess::wait_until_ready() {
  const auto deadline = Clock::now() + options_.ready_timeout;
  while (Clock::now() < deadline) {
    // tcbroker writes the ready file under another name and renames it into place.
    const std::string text = read_whole(ready_path_);
    if (!text.empty()) {
      boost::system::error_code ec;
      const boost::json::value doc = boost::json::parse(text, ec);
      const auto* object = ec ? nullptr : doc.if_object();
      const auto* port = object != nullptr && object->contains("client_port")
                             ? object->at("client_port").if_int64()
                             : nullptr;
      if (port != nullptr && *port > 0 && *port <= 65535) {
        client_port_ = static_cast<int>(*port);
        return;
      }
    }
    if (reap(false)) {
      throw BrokerError("tcbroker exited with status " + std::to_string(*exit_status_) +
                        " before it was ready:\n" + log_tail());
    }
    std::this_thread::sleep_for(20ms);
  }
  throw BrokerError("tcbroker not ready after " + std::to_string(options_.ready_timeout.count()) +
                    " s:\n" + log_tail());
}

bool BrokerProcess::reap(bool block) {
  if (exit_status_) {
    return true;
  }
  if (pid_ <= 0) {
    return false;
  }
  int status = 0;
  pid_t r = 0;
  do {
    r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r != pid_) {
    return false;
  }
  exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return true;
}

int BrokerProcess::stop(std::chrono::seconds grace) {
  if (pid_ <= 0) {
    return -1;
  }
  if (!reap(false)) {
    ::kill(pid_, SIGTERM);
    const auto deadline = Clock::now() + grace;
    while (!reap(false) && Clock::now() < deadline) {
      std::this_thread::sleep_for(20ms);
    }
    if (!exit_status_) {
      ::kill(pid_, SIGKILL);
      reap(true);
    }
  }
  return *exit_status_;
}

std::string BrokerProcess::log_tail(std::size_t bytes) const {
  const std::string text = read_whole(log_path_);
  return text.size() > bytes ? "..." + text.substr(text.size() - bytes) : text;
}

}  // namespace tc::bench
