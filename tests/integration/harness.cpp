// SPDX-License-Identifier: Apache-2.0
#include "harness.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>
#include <thread>

#include <boost/json.hpp>
#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef TC_INTEGRATION_TCBROKER
#define TC_INTEGRATION_TCBROKER ""
#endif
#ifndef TC_INTEGRATION_TCCTL
#define TC_INTEGRATION_TCCTL ""
#endif

namespace tc::integration {
namespace {

namespace fs = std::filesystem;

std::string errno_text(const std::string& what) {
  return what + ": " + errno_message(errno);
}

/// Closes a descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = -1;
  }

 private:
  int fd_;
};

fs::path program_from(const char* env_name, const char* compiled_in) {
  const std::string env = env_var(env_name);
  fs::path path = !env.empty() ? fs::path(env) : fs::path(compiled_in);
  if (path.empty()) {
    throw HarnessError(std::string("no path for the program under test: set ") + env_name +
                       " or build with the tcbroker/tcctl targets configured");
  }
  if (::access(path.c_str(), X_OK) != 0) {
    throw HarnessError(
        errno_text("cannot execute " + path.string() + " (from " + env_name + " or the build)"));
  }
  return path;
}

/// Looks `name` up in $PATH, as the tools (openssl) are not ours to locate at build time.
fs::path find_in_path(const std::string& name) {
  const std::string path_env = env_var("PATH");
  std::stringstream dirs(!path_env.empty() ? path_env : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    fs::path candidate = fs::path(dir.empty() ? "." : dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  throw HarnessError("program not found in PATH: " + name);
}

/// TOML basic string.
std::string toml_string(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  out += '"';
  return out;
}

std::string join_argv(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& arg : argv) {
    if (!out.empty()) {
      out += ' ';
    }
    out += arg;
  }
  return out;
}

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 60'000));
}

}  // namespace

std::string env_var(const char* name) {
  const char* value = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): see the header
  return value != nullptr ? value : "";
}

std::string errno_message(int err) {
  return std::generic_category().message(err);
}

fs::path tcbroker_path() {
  return program_from("TC_TCBROKER", TC_INTEGRATION_TCBROKER);
}
fs::path tcctl_path() {
  return program_from("TC_TCCTL", TC_INTEGRATION_TCCTL);
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return {};
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// ---- TempDir ----

TempDir::TempDir(const std::string& prefix) {
  const std::string tmp = env_var("TMPDIR");
  std::string templ = (fs::path(!tmp.empty() ? tmp : "/tmp") / (prefix + "-XXXXXX")).string();
  if (::mkdtemp(templ.data()) == nullptr) {
    throw HarnessError(errno_text("mkdtemp " + templ));
  }
  path_ = templ;
}

TempDir::~TempDir() {
  if (!env_var("TC_KEEP_TEMP").empty()) {
    return;
  }
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

// ---- ChildProcess ----

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const fs::path& output_file) {
  if (argv.empty()) {
    throw HarnessError("ChildProcess: empty argv");
  }
  // Everything the child touches is prepared before fork: only async-signal-safe calls after.
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& arg : argv) {
    args.push_back(const_cast<char*>(arg.c_str()));
  }
  args.push_back(nullptr);

  Fd out(::open(output_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (out.get() < 0) {
    throw HarnessError(errno_text("open " + output_file.string()));
  }
  Fd null_in(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (null_in.get() < 0) {
    throw HarnessError(errno_text("open /dev/null"));
  }
  // The child reports a failed exec through this pipe; a successful exec closes it (CLOEXEC).
  int exec_pipe[2];
  if (::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    throw HarnessError(errno_text("pipe2"));
  }
  Fd exec_read(exec_pipe[0]);
  Fd exec_write(exec_pipe[1]);

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    throw HarnessError(errno_text("fork"));
  }
  if (pid == 0) {
    // Die with the test: a hung or killed test binary must not leak servers.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) {
      ::_exit(127);
    }
    if (::dup2(null_in.get(), STDIN_FILENO) < 0 || ::dup2(out.get(), STDOUT_FILENO) < 0 ||
        ::dup2(out.get(), STDERR_FILENO) < 0) {
      const int err = errno;
      [[maybe_unused]] auto n = ::write(exec_write.get(), &err, sizeof err);
      ::_exit(127);
    }
    // Sockets of other clients in this process (gloox, raw) must not leak into the server.
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    ::execv(args[0], args.data());
    const int err = errno;
    [[maybe_unused]] auto n = ::write(exec_write.get(), &err, sizeof err);
    ::_exit(127);
  }

  pid_ = pid;
  exec_write.reset();  // the parent's copy: read() below then sees EOF on a successful exec
  int child_errno = 0;
  ssize_t n = 0;
  do {
    n = ::read(exec_read.get(), &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    throw HarnessError("exec " + argv[0] + ": " + errno_message(child_errno));
  }
  // glibc 2.36's <sys/pidfd.h> lacks extern "C", so call the kernel directly. -1 on kernels
  // before 5.3: wait_for() then falls back to polling.
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
}

ChildProcess::~ChildProcess() {
  if (running()) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reap(status);
  }
  if (pidfd_ >= 0) {
    ::close(pidfd_);
  }
}

void ChildProcess::reap(int wait_status) {
  if (WIFEXITED(wait_status)) {
    exit_code_ = WEXITSTATUS(wait_status);
  } else if (WIFSIGNALED(wait_status)) {
    exit_code_ = 128 + WTERMSIG(wait_status);
  } else {
    exit_code_ = 255;
  }
}

bool ChildProcess::running() {
  if (exit_code_) {
    return false;
  }
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    reap(status);
    return false;
  }
  return true;
}

std::optional<int> ChildProcess::wait_for(Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  while (running()) {
    const int left = remaining_ms(deadline);
    if (left == 0) {
      return std::nullopt;
    }
    if (pidfd_ >= 0) {
      pollfd p{pidfd_, POLLIN, 0};
      ::poll(&p, 1, left);  // readable when the child exits; running() reaps it
    } else {
      // No pidfd (kernel < 5.3): nothing to block on, so poll the child at a short interval.
      std::this_thread::sleep_for(std::min(Millis(10), Millis(left)));
    }
  }
  return exit_code_;
}

void ChildProcess::signal(int sig) {
  if (running()) {
    ::kill(pid_, sig);
  }
}

ProcessResult run_process(const std::vector<std::string>& argv, Millis timeout,
                          const fs::path& output_file) {
  ProcessResult result;
  {
    ChildProcess child(argv, output_file);
    result.exit_code = child.wait_for(timeout);
  }  // a child still running here is SIGKILLed and reaped
  result.output = read_file(output_file);
  if (!result.exit_code) {
    result.output += "\n[harness] killed after " + std::to_string(timeout.count()) +
                     " ms: " + join_argv(argv) + "\n";
  }
  return result;
}

// ---- Broker ----

Broker::Broker(BrokerOptions options) : options_(std::move(options)), dir_("tcbroker-integ") {
  config_path_ = dir_.path() / "tcbroker.toml";
  certificate_path_ = dir_.path() / "tls.crt";
  ready_path_ = dir_.path() / "ready.json";
  log_path_ = dir_.path() / "tcbroker.log";

  const fs::path broker = tcbroker_path();
  write_certificate();
  write_config();
  for (const auto& account : options_.accounts) {
    auto added = tcctl({"users", "add", account.name, "--password", account.password});
    if (added.exit_code != 0) {
      throw HarnessError("tcctl users add " + account.name + " failed (exit " +
                         (added.exit_code ? std::to_string(*added.exit_code) : "timeout") + "):\n" +
                         added.output);
    }
  }
  process_.emplace(std::vector<std::string>{broker.string(), "--config", config_path_.string(),
                                            "--ready-file", ready_path_.string()},
                   log_path_);
  wait_until_ready();
}

Broker::~Broker() {
  if (process_ && process_->running()) {
    stop();
  }  // ~ChildProcess SIGKILLs whatever ignored SIGTERM
}

void Broker::write_certificate() {
  const auto result = run_process(
      {find_in_path("openssl").string(), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj",
       "/CN=" + options_.domain, "-keyout", (dir_.path() / "tls.key").string(), "-out",
       certificate_path_.string(), "-days", "2"},
      kToolTimeout, dir_.path() / "openssl.log");
  if (result.exit_code != 0) {
    throw HarnessError("openssl req failed:\n" + result.output);
  }
}

void Broker::write_config() {
  std::ofstream out(config_path_);
  const auto boolean = [](bool b) { return b ? "true" : "false"; };
  // Relative paths resolve against the config's directory; the database URL is absolute.
  out << "[node]\n"
      << "name = \"node1\"\n"
      << "domain = " << toml_string(options_.domain) << "\n"
      << "[client]\n"
      << "address = \"127.0.0.1\"\n"
      << "port = 0\n"
      << "max_stanza_bytes = " << options_.max_stanza_bytes << "\n"
      << "[tls]\n"
      << "required = " << boolean(options_.tls_required) << "\n"
      << "certificate = \"tls.crt\"\n"
      << "private_key = \"tls.key\"\n"
      << "[auth]\n"
      << "scram_iterations = " << options_.scram_iterations << "\n"
      << "allow_plain_without_tls = " << boolean(options_.allow_plain_without_tls) << "\n"
      << "registration = " << boolean(options_.registration) << "\n"
      << "[storage]\n"
      << "url = " << toml_string("sqlite://" + (dir_.path() / "tcbroker.db").string()) << "\n"
      << "[log]\n"
      << "level = \"debug\"\n";
  out.close();
  if (!out) {
    throw HarnessError("cannot write " + config_path_.string());
  }
}

void Broker::wait_until_ready() {
  // Watch before the first look, so a rename between the two cannot be missed.
  Fd watch(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (watch.get() < 0 ||
      ::inotify_add_watch(watch.get(), dir_.path().c_str(), IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
    throw HarnessError(errno_text("inotify on " + dir_.path().string()));
  }
  const auto deadline = Clock::now() + kReadyTimeout;
  std::string last_parse_error = "ready file not written";
  while (true) {
    const std::string text = read_file(ready_path_);
    if (!text.empty()) {
      boost::system::error_code ec;
      const boost::json::value doc = boost::json::parse(text, ec);
      if (!ec && doc.is_object() && doc.as_object().contains("client_port")) {
        const auto& object = doc.as_object();
        const auto* port = object.at("client_port").if_int64();
        const auto* pid = object.contains("pid") ? object.at("pid").if_int64() : nullptr;
        if (port == nullptr || *port <= 0 || *port > 65535) {
          throw HarnessError("ready file has no valid client_port: " + text + "\n" + log());
        }
        if (pid == nullptr || *pid != process_->pid()) {
          throw HarnessError("ready file pid does not match the process started (" +
                             std::to_string(process_->pid()) + "): " + text + "\n" + log());
        }
        client_port_ = static_cast<int>(*port);
        return;
      }
      last_parse_error = "unparsable ready file: " + text;  // not yet renamed into place?
    }
    if (!process_->running()) {
      const auto code = process_->wait_for(0ms);
      throw HarnessError("tcbroker exited with " + std::to_string(code.value_or(-1)) +
                         " before it was ready. Its log:\n" + log());
    }
    const int left = remaining_ms(deadline);
    if (left == 0) {
      throw HarnessError("tcbroker not ready after " + std::to_string(kReadyTimeout.count()) +
                         " ms (" + last_parse_error + "). Its log:\n" + log());
    }
    pollfd fds[2] = {{watch.get(), POLLIN, 0}, {process_->pidfd(), POLLIN, 0}};
    // Without a pidfd, wake up now and then to notice a crashed server.
    ::poll(fds, process_->pidfd() >= 0 ? 2 : 1,
           process_->pidfd() >= 0 ? left : std::min(left, 100));
    char buffer[4096];
    while (::read(watch.get(), buffer, sizeof buffer) > 0) {
    }
  }
}

std::string Broker::log() const {
  return read_file(log_path_);
}

ProcessResult Broker::tcctl(const std::vector<std::string>& args) const {
  std::vector<std::string> argv{tcctl_path().string(), "--config", config_path_.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  // A fresh file per call keeps one command's output apart from the others'.
  static int counter = 0;
  return run_process(argv, kToolTimeout,
                     dir_.path() / ("tcctl-" + std::to_string(++counter) + ".log"));
}

std::optional<int> Broker::stop(Millis timeout) {
  process_->signal(SIGTERM);
  return process_->wait_for(timeout);
}

}  // namespace tc::integration
