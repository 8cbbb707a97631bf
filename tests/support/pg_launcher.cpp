// SPDX-License-Identifier: Apache-2.0
#include "pg_launcher.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace tc::test {
namespace {

namespace fs = std::filesystem;

/// A TCP port the kernel just handed out on 127.0.0.1; the server binds it a moment later.
int pick_free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw std::runtime_error("pg launcher: socket(): " + std::string(std::strerror(errno)));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string err = std::strerror(errno);
    ::close(fd);
    throw std::runtime_error("pg launcher: cannot find a free port: " + err);
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

fs::path find_bin_dir() {
  if (const char* env = std::getenv("TC_PG_BIN"); env != nullptr && *env != '\0') {
    if (::access((fs::path(env) / "pg_ctl").c_str(), X_OK) != 0) {
      throw std::runtime_error(std::string("pg launcher: TC_PG_BIN=") + env + " has no pg_ctl");
    }
    return env;
  }
  std::error_code ec;
  const fs::path root = "/usr/lib/postgresql";
  int best = -1;
  fs::path best_dir;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    const int version = std::atoi(name.c_str());
    if (version > best && fs::exists(entry.path() / "bin" / "pg_ctl", ec)) {
      best = version;
      best_dir = entry.path() / "bin";
    }
  }
  if (best >= 0) {
    return best_dir;
  }
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    std::stringstream dirs(path);
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
      if (!dir.empty() && ::access((fs::path(dir) / "pg_ctl").c_str(), X_OK) == 0) {
        return dir;
      }
    }
  }
  throw std::runtime_error(
      "pg launcher: no PostgreSQL server binaries (looked in $TC_PG_BIN, "
      "/usr/lib/postgresql/*/bin and PATH); install postgresql or set TC_SKIP_PG=1");
}

bool usable_base(const std::string& dir, std::uint64_t min_free_bytes) {
  struct statvfs fs_info {};
  return dir.size() < 60 && dir.find(' ') == std::string::npos &&
         ::access(dir.c_str(), W_OK | X_OK) == 0 && ::statvfs(dir.c_str(), &fs_info) == 0 &&
         static_cast<std::uint64_t>(fs_info.f_bavail) * fs_info.f_frsize >= min_free_bytes;
}

/// Where clusters go: $TC_PG_TMPDIR, else /dev/shm when it is a roomy tmpfs (a cluster is
/// ~40 MB and tests only ever kill processes, never the machine, so memory is as good as disk
/// and much faster), else $TMPDIR, else /tmp.
std::string temp_base() {
  if (const char* dir = std::getenv("TC_PG_TMPDIR"); dir != nullptr && *dir == '/') {
    return dir;
  }
  if (usable_base("/dev/shm", std::uint64_t{2} << 30)) {
    return "/dev/shm";
  }
  if (const char* tmp = std::getenv("TMPDIR");
      tmp != nullptr && *tmp == '/' && usable_base(tmp, 0)) {
    return tmp;
  }
  return "/tmp";
}

fs::path make_temp_dir() {
  // Short on purpose: the Unix socket path (dir + "/.s.PGSQL.<port>") must fit in 107 bytes,
  // and pg_ctl hands the path to a shell, so no spaces either.
  std::string templ = temp_base() + "/tc-pg-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    throw std::runtime_error("pg launcher: mkdtemp(" + templ + "): " + std::strerror(errno));
  }
  return templ;
}

std::string read_tail(const fs::path& file, std::size_t bytes) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return {};
  }
  in.seekg(0, std::ios::end);
  const auto size = static_cast<std::size_t>(in.tellg());
  in.seekg(static_cast<std::streamoff>(size > bytes ? size - bytes : 0));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return text;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (const char c : s) {
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  }
  return out + "'";
}

/// posix_spawn with stdin from `in_fd` (or /dev/null), stdout+stderr appended to `log`
/// (or /dev/null), and no other descriptor inherited.
pid_t spawn(const std::vector<std::string>& argv, int in_fd, const fs::path& log,
            bool new_session) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (in_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, in_fd, STDIN_FILENO);
  } else {
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  }
  const std::string out = log.empty() ? "/dev/null" : log.string();
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  if (new_session) {
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  }
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    throw std::runtime_error("pg launcher: cannot run " + argv[0] + ": " + std::strerror(rc));
  }
  return pid;
}

/// Waits up to `timeout` for `pid`; kills it after that. Returns the exit status or -1.
int wait_bounded(pid_t pid, std::chrono::steady_clock::duration timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (r < 0 && errno != EINTR) {
      return -1;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace

PgLauncher::PgLauncher(PgLauncherOptions options) : options_(std::move(options)) {
  bin_dir_ = find_bin_dir();
  as_root_ = ::geteuid() == 0;
  dir_ = make_temp_dir();
  data_dir_ = dir_ / "data";
  try {
    if (as_root_) {
      // PostgreSQL refuses to run as root; hand the directory to the postgres user.
      const passwd* pw = ::getpwnam("postgres");
      if (pw == nullptr) {
        throw std::runtime_error(
            "pg launcher: running as root but there is no `postgres` user to run the server");
      }
      if (::chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
        throw std::runtime_error("pg launcher: chown " + dir_.string() + ": " +
                                 std::strerror(errno));
      }
    }
    init_cluster();
    start_watchdog();
    // A port picked now may be taken before the server binds it; try a few.
    for (int attempt = 0;; ++attempt) {
      port_ = pick_free_port();
      try {
        start_server();
        break;
      } catch (const std::runtime_error&) {
        if (attempt == 2 || log_tail().find("could not bind") == std::string::npos) {
          throw;
        }
      }
    }
    url_ = url(options_.database);
    create_database(options_.database);
  } catch (...) {
    if (running_) {
      try {
        stop();
      } catch (const std::exception&) {  // the watchdog below still cleans up
      }
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
    if (watchdog_fd_ >= 0) {
      ::close(watchdog_fd_);
      wait_bounded(watchdog_pid_, std::chrono::seconds(10));
    }
    throw;
  }
}

PgLauncher::~PgLauncher() {
  if (running_) {
    try {
      stop();
    } catch (const std::exception&) {  // the watchdog tries again
    }
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
  if (watchdog_fd_ >= 0) {
    ::close(watchdog_fd_);  // wakes the watchdog; it finds nothing left to do
    wait_bounded(watchdog_pid_, std::chrono::seconds(10));
  }
}

std::string PgLauncher::url(std::string_view database) const {
  return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" + std::string(database);
}

void PgLauncher::create_database(std::string_view name) {
  run({tool("createdb"), "-h", "127.0.0.1", "-p", std::to_string(port_), "-U", "postgres",
       std::string(name)},
      false, "createdb " + std::string(name));
}

void PgLauncher::stop() {
  run({tool("pg_ctl"), "-D", data_dir_.string(), "stop", "-m", "immediate", "-w", "-t",
       std::to_string(options_.timeout.count())},
      as_root_, "pg_ctl stop");
  running_ = false;
}

void PgLauncher::start() {
  if (!running_) {
    start_server();
  }
}

std::string PgLauncher::log_tail(std::size_t bytes) const {
  std::string text = read_tail(dir_ / "server.log", bytes);
  const std::string commands = read_tail(dir_ / "commands.log", bytes);
  if (!commands.empty()) {
    text += "\n--- command output ---\n" + commands;
  }
  return text;
}

void PgLauncher::init_cluster() {
  const auto initdb = [this](const fs::path& data) {
    // 1 MB WAL segments: a fresh cluster (and each copy of it) is 16 MB smaller.
    run({tool("initdb"), "-D", data.string(), "-U", "postgres", "-A", "trust", "-E", "UTF8",
         "--no-locale", "--no-sync", "--wal-segsize=1"},
        as_root_, "initdb");
  };
  if (const char* off = std::getenv("TC_PG_NO_TEMPLATE"); off != nullptr && *off == '1') {
    initdb(data_dir_);
    return;
  }
  // initdb costs about a second and every test process needs a cluster; run it once per machine
  // (per PostgreSQL build and user) into a template and copy that. The template is built in a
  // private directory and renamed into place, so concurrent test processes never see half of one.
  std::error_code ec;
  const auto stamp = static_cast<std::uint64_t>(
      fs::last_write_time(fs::path(tool("initdb")), ec).time_since_epoch().count());
  const fs::path templ =
      dir_.parent_path() / ("tc-pg-template-v2-" + std::to_string(::geteuid()) + "-" +
                            std::to_string(std::hash<std::string>{}(bin_dir_.string()) % 100000) +
                            "-" + std::to_string(stamp % 1000000007));
  if (!fs::exists(templ / "data" / "PG_VERSION", ec)) {
    const fs::path building = make_temp_dir();
    if (as_root_) {
      const passwd* pw = ::getpwnam("postgres");
      if (pw == nullptr || ::chown(building.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
        fs::remove_all(building, ec);
        throw std::runtime_error("pg launcher: cannot prepare " + building.string());
      }
    }
    try {
      initdb(building / "data");
    } catch (...) {
      fs::remove_all(building, ec);
      throw;
    }
    if (::rename(building.c_str(), templ.c_str()) != 0) {
      fs::remove_all(building, ec);  // another process won the race; use its template
    }
  }
  run({"cp", "-a", (templ / "data").string(), data_dir_.string()}, as_root_,
      "copying the initdb template " + templ.string());
}

void PgLauncher::start_server() {
  std::string opts = "-p " + std::to_string(port_) + " -k " + dir_.string() +
                     " -c listen_addresses=127.0.0.1 -c max_connections=60";
  if (options_.fast) {
    opts += " -c fsync=off -c full_page_writes=off";
  }
  run({tool("pg_ctl"), "-D", data_dir_.string(), "-l", (dir_ / "server.log").string(), "-o", opts,
       "-w", "-t", std::to_string(options_.timeout.count()), "start"},
      as_root_, "pg_ctl start");
  running_ = true;
}

void PgLauncher::start_watchdog() {
  // A shell in its own session waits for EOF on a pipe whose write end only this process holds
  // (close-on-exec). Any exit closes it, even SIGKILL, and the shell then stops the server and
  // removes the directory, so a crashed test leaves no postgres behind.
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    throw std::runtime_error("pg launcher: pipe: " + std::string(std::strerror(errno)));
  }
  std::string stop = shell_quote(tool("pg_ctl")) + " -D " + shell_quote(data_dir_.string()) +
                     " stop -m immediate -w -t 60";
  if (as_root_) {
    stop = "runuser -u postgres -- " + stop;
  }
  const std::string script =
      "cat >/dev/null; " + stop + " >/dev/null 2>&1; rm -rf " + shell_quote(dir_.string());
  try {
    watchdog_pid_ = spawn({"/bin/sh", "-c", script}, fds[0], {}, true);
  } catch (...) {
    ::close(fds[0]);
    ::close(fds[1]);
    throw;
  }
  ::close(fds[0]);
  watchdog_fd_ = fds[1];
}

void PgLauncher::run(std::vector<std::string> argv, bool as_postgres, std::string_view what) {
  if (as_postgres) {
    argv.insert(argv.begin(), {"runuser", "-u", "postgres", "--"});
  }
  const pid_t pid = spawn(argv, -1, dir_ / "commands.log", false);
  // pg_ctl bounds itself with -t; this bound (a little longer) covers everything else.
  const int status = wait_bounded(pid, options_.timeout + std::chrono::seconds(30));
  if (status != 0) {
    fail(std::string(what) +
         (status < 0 ? " timed out" : " exited with status " + std::to_string(status)));
  }
}

std::string PgLauncher::tool(std::string_view name) const {
  return (bin_dir_ / name).string();
}

void PgLauncher::fail(std::string_view what) const {
  throw std::runtime_error("pg launcher: " + std::string(what) + " (in " + dir_.string() + ")\n" +
                           log_tail());
}

}  // namespace tc::test

// Client libraries that leak when the server dies under a live connection: libpqxx 6.4 drops
// the PGresult of a statement that fails that way (transaction_base::direct_exec throws before
// taking ownership), and psqlODBC leaks its per-statement state. Tests that stop this server
// trigger both, and LeakSanitizer would fail them for third-party leaks. Matched by module
// because the Debian libraries lack frame pointers, so the unwinder stops inside them; objects
// our code allocates are still reported. Any ASan binary that links the launcher gets this.
extern "C" const char* __lsan_default_suppressions() {
  return "leak:libpqxx\nleak:psqlodbcw.so\nleak:psqlodbca.so\n";
}
